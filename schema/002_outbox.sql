-- 002_outbox: every event tokend emits is first a row here, written in the
-- same transaction as the state change that caused it; the relay publishes
-- rows to Redis in id order and marks them published after Redis acknowledged.

CREATE TABLE IF NOT EXISTS tokend_outbox (
    id            bigserial PRIMARY KEY,            -- relay order
    event_id      text NOT NULL UNIQUE
                  DEFAULT 'evt_' || replace(gen_random_uuid()::text, '-', ''),
    type          text NOT NULL
                  CHECK (type IN ('token.expiring', 'token.revoked', 'token.recovered')),
    account_id    uuid NOT NULL,
    token_version bigint NOT NULL,
    reason        text NOT NULL DEFAULT '',
    data          jsonb NOT NULL,                   -- the CloudEvents "data" member
    created_at    timestamptz NOT NULL DEFAULT now(), -- the CloudEvents "time"
    published_at  timestamptz
);

-- One occurrence, one row: an event fires at most once per account, token
-- version, type and reason.
CREATE UNIQUE INDEX IF NOT EXISTS tokend_outbox_once
    ON tokend_outbox (account_id, token_version, type, reason);

-- Record an event for an account as it is now. The data member follows
-- docs/events.md and never carries token material; the free-text members
-- of data.error are cut to the lengths the event schema allows
-- (docs/events.schema.json), so an upstream's long message cannot make the
-- event invalid. Returns the event id, or NULL when this occurrence was
-- already recorded.
CREATE OR REPLACE FUNCTION tokend_outbox_add(
    p_account platform_accounts, p_type text, p_reason text,
    p_error_code text DEFAULT NULL, p_upstream_code text DEFAULT NULL,
    p_message text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_error jsonb;
    v_event_id text;
BEGIN
    IF p_error_code IS NOT NULL THEN
        v_error := jsonb_strip_nulls(jsonb_build_object(
            'code', p_error_code,
            'upstream_code', left(nullif(p_upstream_code, ''), 128),
            'message', left(nullif(p_message, ''), 1024)));
    END IF;
    INSERT INTO tokend_outbox (type, account_id, token_version, reason, data)
    VALUES (p_type, p_account.id, p_account.token_version, coalesce(p_reason, ''),
            jsonb_strip_nulls(jsonb_build_object(
                'account_id', p_account.id,
                'platform', p_account.platform,
                'external_id', p_account.external_id,
                'token_version', p_account.token_version,
                'expires_at', to_char(p_account.access_expires_at AT TIME ZONE 'UTC',
                                      'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                'reason', nullif(p_reason, ''),
                'error', v_error)))
    ON CONFLICT DO NOTHING
    RETURNING event_id INTO v_event_id;
    RETURN v_event_id;
END $$;
