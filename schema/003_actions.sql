-- 003_actions: the state changes tokend makes without talking to a platform,
-- each one statement (one transaction) fenced by token_version, and the
-- function the API calls to ask for an immediate refresh.

-- token.expiring once per account, token version and reason.
-- Returns false when fenced out (token changed, not active, already fired).
CREATE OR REPLACE FUNCTION tokend_fire_expiring(p_id uuid, p_version bigint, p_reason text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_bit integer := CASE p_reason WHEN 'refresh_failing' THEN 1
                                   WHEN 'reauth_required' THEN 2 END;
    v_row platform_accounts;
BEGIN
    IF v_bit IS NULL THEN
        RAISE EXCEPTION 'tokend_fire_expiring: unknown reason %', p_reason;
    END IF;
    UPDATE platform_accounts SET events_fired = events_fired | v_bit
     WHERE id = p_id AND token_version = p_version AND status = 'active'
       AND events_fired & v_bit = 0
    RETURNING * INTO v_row;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM tokend_outbox_add(v_row, 'token.expiring', p_reason);
    RETURN true;
END $$;

-- The token lapsed with no way to refresh it: status expired + token.revoked.
CREATE OR REPLACE FUNCTION tokend_expire(p_id uuid, p_version bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_row platform_accounts;
BEGIN
    UPDATE platform_accounts SET status = 'expired', events_fired = events_fired | 4
     WHERE id = p_id AND token_version = p_version AND status = 'active'
    RETURNING * INTO v_row;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM tokend_outbox_add(v_row, 'token.revoked', 'expired', 'platform_auth_failed',
                              NULL, 'token expired and cannot be refreshed; re-authorise');
    RETURN true;
END $$;

-- A refresh attempt that did not happen or failed transiently: count it and
-- say when to try again. Clears a pending refresh request (it was handled).
CREATE OR REPLACE FUNCTION tokend_record_failure(p_id uuid, p_version bigint,
                                                 p_error_code text, p_next_attempt_at timestamptz)
RETURNS boolean
LANGUAGE sql AS $$
    UPDATE platform_accounts
       SET failure_count = failure_count + 1, last_error_code = p_error_code,
           next_attempt_at = p_next_attempt_at, refresh_requested_at = NULL
     WHERE id = p_id AND token_version = p_version AND status = 'active'
    RETURNING true;
$$;

-- The API asks for a refresh now (e.g. after a 401). Duplicate requests
-- coalesce: tokend refreshes once. Returns false for an unknown or inactive
-- account.
CREATE OR REPLACE FUNCTION tokend_request_refresh(p_id uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE platform_accounts SET refresh_requested_at = coalesce(refresh_requested_at, now())
     WHERE id = p_id AND status = 'active';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pg_notify('tokend_accounts', 'R:' || p_id::text);
    RETURN true;
END $$;
