-- 005_refresh: the refresh engine's write path. Every call is one statement
-- (one transaction), fenced by token_version: whoever changed the token
-- first wins, and a stale writer learns it from the result. Two rules on
-- top of the version:
-- 1. Bookkeeping writes (failure, check, revoke) take the writer's lease
--    owner and leave an account alone while another owner's lease is live:
--    a job whose lease lapsed must not release (or record on) the lease of
--    the instance that has the account now.
-- 2. Stored tokens win over a revocation made from a spent token: if the
--    grant was declared dead (platform_auth_failed) at the very version a
--    writer still holds new tokens for (kept in its journal while
--    PostgreSQL refused the commit, and another instance meanwhile presented
--    the spent refresh token), storing them brings the account back.

-- Which rows a store may write: the version it started from, active — or
-- revoked as a dead grant at that same version (rule 2 above).
CREATE OR REPLACE FUNCTION tokend_storable(p_row platform_accounts, p_version bigint)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_row.token_version = p_version
       AND (p_row.status = 'active'
            OR (p_row.status = 'revoked' AND p_row.last_error_code = 'platform_auth_failed'));
$$;

-- Whether owner may write the row's lease bookkeeping (rule 1 above): no
-- lease, its own lease, or a lapsed one. A NULL owner (an operator's call)
-- always may.
CREATE OR REPLACE FUNCTION tokend_lease_free(p_row platform_accounts, p_owner text)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT p_owner IS NULL OR p_row.lease_owner IS NULL OR p_row.lease_owner = p_owner
        OR p_row.lease_expires_at < now();
$$;

CREATE OR REPLACE FUNCTION tokend_store_tokens(p_id uuid, p_version bigint,
                                               p_access bytea, p_refresh bytea,
                                               p_access_expires_at timestamptz,
                                               p_refresh_expires_at timestamptz,
                                               p_cannot_extend boolean)
RETURNS boolean
LANGUAGE sql AS $$
    UPDATE platform_accounts a
       SET access_token = p_access,
           refresh_token = coalesce(p_refresh, a.refresh_token),
           access_expires_at = p_access_expires_at,
           refresh_expires_at = coalesce(p_refresh_expires_at, a.refresh_expires_at),
           status = 'active',
           token_version = a.token_version + 1,
           token_issued_at = now(), last_refresh_at = now(),
           needs_exchange = false, cannot_extend = p_cannot_extend,
           failure_count = 0, last_error_code = NULL, next_attempt_at = NULL,
           refresh_requested_at = NULL, lease_owner = NULL, lease_expires_at = NULL
     WHERE a.id = p_id AND tokend_storable(a, p_version)
    RETURNING true;
$$;

CREATE OR REPLACE FUNCTION tokend_revoke(p_id uuid, p_version bigint, p_error_code text,
                                         p_upstream_code text, p_message text,
                                         p_owner text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_row platform_accounts;
BEGIN
    SELECT * INTO v_row FROM platform_accounts WHERE id = p_id FOR UPDATE;
    IF NOT FOUND OR v_row.status <> 'active' THEN
        RETURN 'inactive';
    END IF;
    IF v_row.token_version <> p_version THEN
        RETURN 'adopted';
    END IF;
    IF NOT tokend_lease_free(v_row, p_owner) THEN
        RETURN 'leased';
    END IF;
    UPDATE platform_accounts
       SET status = 'revoked', events_fired = events_fired | 4,
           last_error_code = p_error_code, refresh_requested_at = NULL,
           lease_owner = NULL, lease_expires_at = NULL
     WHERE id = p_id
    RETURNING * INTO v_row;
    PERFORM tokend_outbox_add(v_row, 'token.revoked', 'revoked', p_error_code,
                              p_upstream_code, p_message);
    RETURN 'revoked';
END $$;

CREATE OR REPLACE FUNCTION tokend_record_failure(p_id uuid, p_version bigint,
                                                 p_error_code text, p_next_attempt_at timestamptz,
                                                 p_owner text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql AS $$
    UPDATE platform_accounts
       SET failure_count = failure_count + 1, last_error_code = p_error_code,
           next_attempt_at = p_next_attempt_at, refresh_requested_at = NULL,
           lease_owner = NULL, lease_expires_at = NULL
     WHERE id = p_id AND token_version = p_version AND status = 'active'
       AND tokend_lease_free(platform_accounts, p_owner)
    RETURNING true;
$$;

CREATE OR REPLACE FUNCTION tokend_record_check(p_id uuid, p_version bigint,
                                               p_owner text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql AS $$
    UPDATE platform_accounts
       SET last_check_at = now(), failure_count = 0, last_error_code = NULL,
           next_attempt_at = NULL, refresh_requested_at = NULL,
           lease_owner = NULL, lease_expires_at = NULL
     WHERE id = p_id AND token_version = p_version AND status = 'active'
       AND tokend_lease_free(platform_accounts, p_owner)
    RETURNING true;
$$;

-- Ask for a refresh now (the API after a 401). With the token version the
-- caller saw fail, a request that a refresh already answered is a no-op:
-- duplicate requests coalesce into one refresh even when they straddle it.
-- Returns false for an unknown or inactive account.
CREATE OR REPLACE FUNCTION tokend_request_refresh(p_id uuid, p_seen_version bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE platform_accounts SET refresh_requested_at = coalesce(refresh_requested_at, now())
     WHERE id = p_id AND status = 'active'
       AND (p_seen_version IS NULL OR token_version <= p_seen_version);
    IF FOUND THEN
        PERFORM pg_notify('tokend_accounts', 'R:' || p_id::text);
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT 1 FROM platform_accounts WHERE id = p_id AND status = 'active');
END $$;

