-- 004_events_relay: what the outbox relay (daemon/relay.c) needs, and
-- token.recovered.
--
-- The relay's queue is tokend_outbox_pending: the ids of the rows still to
-- send, added by a trigger on every insert into tokend_outbox and deleted
-- when Redis acknowledged the row (in the statement that sets published_at).
-- Why not a partial index on "published_at IS NULL": its predicate makes
-- every UPDATE of published_at a non-HOT update, which writes a new entry
-- into each of the table's indexes (two of them unique, checked) — about
-- 15-40 µs and several kB of WAL per event, the relay's bottleneck. With no
-- index on published_at and pages half empty (fillfactor 50), that UPDATE
-- is a HOT update: the heap page only.

ALTER TABLE tokend_outbox SET (fillfactor = 50);

-- Rows the relay refused (their data would not make a valid event; see
-- docs/events.md). They stay for an operator: tokend_outbox_requeue(id)
-- sends one again after it was fixed.
ALTER TABLE tokend_outbox ADD COLUMN IF NOT EXISTS rejected_at timestamptz;
ALTER TABLE tokend_outbox ADD COLUMN IF NOT EXISTS rejected_reason text;

CREATE TABLE IF NOT EXISTS tokend_outbox_pending (
    id bigint PRIMARY KEY REFERENCES tokend_outbox (id) ON DELETE CASCADE
);
-- A queue table: rows come and go all day; vacuum it early (the relay also
-- vacuums it during long drains).
ALTER TABLE tokend_outbox_pending SET (autovacuum_vacuum_scale_factor = 0,
                                       autovacuum_vacuum_threshold = 10000);
INSERT INTO tokend_outbox_pending (id)
SELECT id FROM tokend_outbox WHERE published_at IS NULL AND rejected_at IS NULL
ON CONFLICT DO NOTHING;

-- New rows join the queue, and the relay gets NOTIFY tokend_outbox (empty
-- payload) once per inserting statement. It also polls: a lost
-- notification only delays.
CREATE OR REPLACE FUNCTION tokend_outbox_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tokend_outbox_pending (id)
    SELECT id FROM inserted WHERE published_at IS NULL AND rejected_at IS NULL;
    PERFORM pg_notify('tokend_outbox', '');
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS tokend_outbox_inserted ON tokend_outbox;
CREATE TRIGGER tokend_outbox_inserted
    AFTER INSERT ON tokend_outbox
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION tokend_outbox_enqueue();

-- Send a row again: after a rejected row was fixed, or to replay one.
-- Returns false when there is no such row.
CREATE OR REPLACE FUNCTION tokend_outbox_requeue(p_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tokend_outbox SET rejected_at = NULL, rejected_reason = NULL, published_at = NULL
     WHERE id = p_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO tokend_outbox_pending (id) VALUES (p_id) ON CONFLICT DO NOTHING;
    PERFORM pg_notify('tokend_outbox', '');
    RETURN true;
END $$;

-- token.recovered: a new token version on an active account whose previous
-- version had an event fired (token.expiring, token.revoked) or was not
-- active. Reason "refreshed" when the writer also moved last_refresh_at (the
-- refresh engine does, in the same UPDATE: tokend_store_tokens), else
-- "reauthorized" (the API wrote new tokens, or the account came back from
-- revoked/expired). Runs inside the UPDATE, so the event commits with the
-- new token and its id comes after every earlier event of the account (they
-- committed before this row lock was granted): id order is per-account order.
CREATE OR REPLACE FUNCTION tokend_track_recovery() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'active' AND (OLD.events_fired <> 0 OR OLD.status <> 'active') THEN
        PERFORM tokend_outbox_add(NEW, 'token.recovered',
            CASE WHEN OLD.status = 'active'
                      AND NEW.last_refresh_at IS DISTINCT FROM OLD.last_refresh_at
                 THEN 'refreshed' ELSE 'reauthorized' END);
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS platform_accounts_recovered ON platform_accounts;
CREATE TRIGGER platform_accounts_recovered
    AFTER UPDATE ON platform_accounts
    FOR EACH ROW WHEN (NEW.token_version <> OLD.token_version)
    EXECUTE FUNCTION tokend_track_recovery();
