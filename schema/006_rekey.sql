-- 006_rekey: re-sealing tokens under the primary key (`tokenctl rekey`)
-- without starting a new token version. A re-sealed value holds the same
-- token, so nothing that hangs on the version (fencing, events fired, the
-- daemon's schedule) may move: tokend_reseal writes under a transaction-local
-- flag, tokend.resealing, that the token-change trigger honours.

-- Replace an account's sealed values with the same tokens sealed again
-- (under another key), keeping token_version. Fenced twice: the version the
-- caller read, and every sealed value it read (NULL = the column is NULL),
-- so a token stored meanwhile (a refresh, a re-auth) is never overwritten.
-- A NULL column stays NULL and a set one stays set. Returns true when the
-- row was re-sealed, false when it changed or is gone (read it again).
CREATE OR REPLACE FUNCTION tokend_reseal(p_id uuid, p_version bigint,
                                         p_old_access bytea, p_new_access bytea,
                                         p_old_refresh bytea, p_new_refresh bytea,
                                         p_old_app_password bytea, p_new_app_password bytea)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_done boolean;
BEGIN
    IF (p_old_access IS NULL) <> (p_new_access IS NULL)
       OR (p_old_refresh IS NULL) <> (p_new_refresh IS NULL)
       OR (p_old_app_password IS NULL) <> (p_new_app_password IS NULL) THEN
        RAISE EXCEPTION 'tokend_reseal: a re-sealed value must stay NULL or set';
    END IF;
    PERFORM set_config('tokend.resealing', 'on', true);
    UPDATE platform_accounts
       SET access_token = p_new_access, refresh_token = p_new_refresh,
           app_password = p_new_app_password
     WHERE id = p_id AND token_version = p_version
       AND access_token IS NOT DISTINCT FROM p_old_access
       AND refresh_token IS NOT DISTINCT FROM p_old_refresh
       AND app_password IS NOT DISTINCT FROM p_old_app_password;
    v_done := FOUND;
    PERFORM set_config('tokend.resealing', 'off', true);
    RETURN v_done;
END $$;
