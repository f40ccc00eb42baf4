-- 005_refresh: the refresh engine's write path. Every call is one statement
-- (one transaction), fenced by token_version: whoever changed the token
-- first wins, and a stale writer learns it from the result.

-- Claim an account for one refresh: a lease that keeps other instances (and
-- a second claim here) off it until it ends or expires. Returns the sealed
-- tokens to open, or no row when the version moved on, the account is not
-- active, or another owner holds a live lease.
CREATE OR REPLACE FUNCTION tokend_claim(p_id uuid, p_version bigint, p_owner text,
                                        p_lease_ms integer)
RETURNS TABLE (access_token bytea, refresh_token bytea, app_password bytea, external_id text)
LANGUAGE sql AS $$
    UPDATE platform_accounts a
       SET lease_owner = p_owner,
           lease_expires_at = now() + p_lease_ms * interval '1 millisecond'
     WHERE a.id = p_id AND a.token_version = p_version AND a.status = 'active'
       AND (a.lease_owner IS NULL OR a.lease_owner = p_owner OR a.lease_expires_at < now())
    RETURNING a.access_token, a.refresh_token, a.app_password, a.external_id;
$$;

-- Store what a refresh or exchange returned: new sealed tokens (a NULL
-- refresh token or refresh expiry keeps the current one), a new version,
-- bookkeeping reset, lease released. Fenced by the version only: a lease
-- that ran out while the upstream answered does not throw away a rotated
-- token nobody else can have.
CREATE OR REPLACE FUNCTION tokend_store_tokens(p_id uuid, p_version bigint,
                                               p_access bytea, p_refresh bytea,
                                               p_access_expires_at timestamptz,
                                               p_refresh_expires_at timestamptz,
                                               p_cannot_extend boolean)
RETURNS boolean
LANGUAGE sql AS $$
    UPDATE platform_accounts
       SET access_token = p_access,
           refresh_token = coalesce(p_refresh, refresh_token),
           access_expires_at = p_access_expires_at,
           refresh_expires_at = coalesce(p_refresh_expires_at, refresh_expires_at),
           token_version = token_version + 1,
           token_issued_at = now(), last_refresh_at = now(),
           needs_exchange = false, cannot_extend = p_cannot_extend,
           failure_count = 0, last_error_code = NULL, next_attempt_at = NULL,
           refresh_requested_at = NULL, lease_owner = NULL, lease_expires_at = NULL
     WHERE id = p_id AND token_version = p_version AND status = 'active'
    RETURNING true;
$$;

-- The platform says the grant is dead. If another writer stored a newer
-- token meanwhile (re-auth, another instance), that token is adopted and
-- nothing is revoked. Returns 'revoked', 'adopted' (version moved on) or
-- 'inactive' (already not active, or gone).
CREATE OR REPLACE FUNCTION tokend_revoke(p_id uuid, p_version bigint, p_error_code text,
                                         p_upstream_code text, p_message text)
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

-- A transient failure (or an attempt that could not be made): count it,
-- say when to try again, release the lease, clear a handled request.
CREATE OR REPLACE FUNCTION tokend_record_failure(p_id uuid, p_version bigint,
                                                 p_error_code text, p_next_attempt_at timestamptz)
RETURNS boolean
LANGUAGE sql AS $$
    UPDATE platform_accounts
       SET failure_count = failure_count + 1, last_error_code = p_error_code,
           next_attempt_at = p_next_attempt_at, refresh_requested_at = NULL,
           lease_owner = NULL, lease_expires_at = NULL
     WHERE id = p_id AND token_version = p_version AND status = 'active'
    RETURNING true;
$$;

-- A validity check (token without expiry) passed.
CREATE OR REPLACE FUNCTION tokend_record_check(p_id uuid, p_version bigint)
RETURNS boolean
LANGUAGE sql AS $$
    UPDATE platform_accounts
       SET last_check_at = now(), failure_count = 0, last_error_code = NULL,
           next_attempt_at = NULL, refresh_requested_at = NULL,
           lease_owner = NULL, lease_expires_at = NULL
     WHERE id = p_id AND token_version = p_version AND status = 'active'
    RETURNING true;
$$;

-- Ask for a refresh now (the API after a 401). With the token version the
-- caller saw fail, a request that a refresh already answered is a no-op:
-- duplicate requests coalesce into one refresh even when they straddle it.
-- Returns false for an unknown or inactive account.
DROP FUNCTION IF EXISTS tokend_request_refresh(uuid);
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

-- tokend's own writes (session setting tokend.origin = 'engine', set on its
-- connections) are not announced: tokend re-reads what it changed itself,
-- and a NOTIFY per refresh would cost a round trip per refresh at scale.
-- Changes by anyone else (the API, operators, tokenctl) are announced.
CREATE OR REPLACE FUNCTION tokend_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('tokend_accounts', 'D:' || OLD.id::text);
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND current_setting('tokend.origin', true) = 'engine' THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE'
       AND NEW.token_version = OLD.token_version
       AND NEW.status = OLD.status
       AND NEW.platform = OLD.platform
       AND NEW.access_expires_at IS NOT DISTINCT FROM OLD.access_expires_at
       AND NEW.refresh_expires_at IS NOT DISTINCT FROM OLD.refresh_expires_at
       AND NEW.needs_exchange = OLD.needs_exchange
       AND NEW.refresh_requested_at IS NOT DISTINCT FROM OLD.refresh_requested_at THEN
        RETURN NEW;
    END IF;
    PERFORM pg_notify('tokend_accounts', left(TG_OP, 1) || ':' || NEW.id::text);
    RETURN NEW;
END $$;
