-- 001_accounts: the connected accounts, tokend's bookkeeping on them, and the
-- triggers that tell tokend about changes (LISTEN tokend_accounts).
-- Applied by `tokend --migrate` / `tokenctl migrate` inside one transaction.

CREATE TABLE IF NOT EXISTS platform_accounts (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    platform             text NOT NULL,
    external_id          text NOT NULL,
    status               text NOT NULL DEFAULT 'active'
                         CHECK (status IN ('active', 'revoked', 'expired')),
    -- Sealed values (docs/sealed-format.md); never plaintext.
    access_token         bytea,
    refresh_token        bytea,
    app_password         bytea,
    access_expires_at    timestamptz,          -- NULL: does not expire
    refresh_expires_at   timestamptz,          -- NULL: unknown / none
    needs_exchange       boolean NOT NULL DEFAULT false, -- Meta short-lived token
    token_version        bigint NOT NULL DEFAULT 1,      -- fencing; bumped on token change
    token_issued_at      timestamptz NOT NULL DEFAULT now(),
    -- tokend's bookkeeping
    last_refresh_at      timestamptz,
    last_check_at        timestamptz,
    failure_count        integer NOT NULL DEFAULT 0,
    last_error_code      text,
    next_attempt_at      timestamptz,
    events_fired         integer NOT NULL DEFAULT 0,     -- bits, per token_version
    cannot_extend        boolean NOT NULL DEFAULT false, -- last refresh did not extend
    refresh_requested_at timestamptz,
    lease_owner          text,
    lease_expires_at     timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS platform_accounts_platform_external_id
    ON platform_accounts (platform, external_id);

-- A token change starts a new token version: bump the version when the
-- writer did not, and reset what was per version (events fired, failures).
-- Not while tokend.resealing is on: re-sealing under another key keeps the
-- token (only tokend_reseal, 006, sets it, around its own UPDATE).
CREATE OR REPLACE FUNCTION tokend_track_token_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.access_token IS DISTINCT FROM OLD.access_token
        OR NEW.refresh_token IS DISTINCT FROM OLD.refresh_token
        OR NEW.app_password IS DISTINCT FROM OLD.app_password)
       AND NEW.token_version = OLD.token_version
       AND current_setting('tokend.resealing', true) IS DISTINCT FROM 'on' THEN
        NEW.token_version := OLD.token_version + 1;
    END IF;
    IF NEW.token_version <> OLD.token_version THEN
        IF NEW.events_fired = OLD.events_fired THEN
            NEW.events_fired := 0;
        END IF;
        IF NEW.failure_count = OLD.failure_count THEN
            NEW.failure_count := 0;
            NEW.next_attempt_at := NULL;
            NEW.last_error_code := NULL;
        END IF;
        IF NEW.token_issued_at = OLD.token_issued_at THEN
            NEW.token_issued_at := now();
        END IF;
        IF NEW.cannot_extend = OLD.cannot_extend THEN
            NEW.cannot_extend := false;
        END IF;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS platform_accounts_token_change ON platform_accounts;
CREATE TRIGGER platform_accounts_token_change
    BEFORE UPDATE ON platform_accounts
    FOR EACH ROW EXECUTE FUNCTION tokend_track_token_change();

-- NOTIFY tokend_accounts, payload "<op>:<id>" (op = I, U or D), on inserts,
-- deletes, and updates of anything that changes an account's schedule.
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

DROP TRIGGER IF EXISTS platform_accounts_notify ON platform_accounts;
CREATE TRIGGER platform_accounts_notify
    AFTER INSERT OR UPDATE OR DELETE ON platform_accounts
    FOR EACH ROW EXECUTE FUNCTION tokend_notify_change();
