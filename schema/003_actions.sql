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

