"""Helpers of the event tests (test_events*.py): reading the stream with every
event checked against docs/events.schema.json by a real validator
(python3-jsonschema), a private redis-server that a test may stop and start,
and producers of outbox events through tokend's own SQL functions."""

import json
import os
import signal
import subprocess
import tempfile

import jsonschema
import redis

from harness import free_port, wait_for

SOURCE = os.environ.get("TOKEND_SOURCE_DIR",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
with open(os.path.join(SOURCE, "docs", "events.schema.json")) as f:
    SCHEMA = json.load(f)
jsonschema.Draft7Validator.check_schema(SCHEMA)
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)


def check_event(fields):
    """One stream entry's fields: the event is valid by the schema, and the
    entry's id/type fields agree with it. Returns the event."""
    event = json.loads(fields["event"])
    errors = sorted(VALIDATOR.iter_errors(event), key=str)
    assert not errors, f"event fails docs/events.schema.json: {errors[0].message}\n{event}"
    assert fields["id"] == event["id"] and fields["type"] == event["type"], fields
    assert event["data"]["account_id"] == event["subject"], event
    return event


def stream_events(client, stream):
    """Every event on the stream, in stream order, each checked. Duplicates
    (a redelivery) must be byte-identical to the first delivery."""
    seen, events = {}, []
    for _, fields in client.xrange(stream):
        event = check_event(fields)
        if event["id"] in seen:
            assert seen[event["id"]] == fields["event"], \
                f"event id {event['id']} delivered twice with different content"
        seen[event["id"]] = fields["event"]
        events.append(event)
    return events


def distinct(events):
    """Events without redeliveries, in first-delivery order."""
    seen, out = set(), []
    for e in events:
        if e["id"] not in seen:
            seen.add(e["id"])
            out.append(e)
    return out


def outbox(db):
    """(event_id, type, account_id, reason, published) of every row, in id order."""
    return db.sql("SELECT event_id, type, account_id::text, reason, published_at IS NOT NULL "
                  "FROM tokend_outbox ORDER BY id")


def wait_delivered(client, stream, db, timeout=20):
    """Wait until every outbox row is on the stream and marked published;
    returns the distinct events."""
    def done():
        rows = outbox(db)
        events = distinct(stream_events(client, stream))
        ids = {e["id"] for e in events}
        return events if rows and all(r[0] in ids and r[4] for r in rows) else None
    return wait_for(done, timeout, "every outbox event on the stream and marked published",
                    interval=0.2)


def accounts(db, n, platform="linkedin"):
    """n active accounts (no tokens: the events do not need them) whose next
    action is weeks away, so the daemon leaves them alone. Returns their ids."""
    rows = db.sql("INSERT INTO platform_accounts (platform, external_id, access_expires_at) "
                  "SELECT %s, 'ext-' || g, now() + interval '60 days' "
                  "FROM generate_series(1, %s) g RETURNING id::text", platform, n)
    return [r[0] for r in rows]


def version(db, account_id):
    return db.one("SELECT token_version FROM platform_accounts WHERE id = %s", account_id)


def fire_expiring(db, account_id, reason="refresh_failing"):
    """token.expiring through tokend's function (the state change + outbox row)."""
    assert db.one("SELECT tokend_fire_expiring(%s, %s, %s)", account_id,
                  version(db, account_id), reason)


def expire(db, account_id):
    """status expired + token.revoked through tokend's function."""
    assert db.one("SELECT tokend_expire(%s, %s)", account_id, version(db, account_id))


def seed_outbox(db, n):
    """n outbox rows at once, valid events (as the benchmark seeds them)."""
    db.sql("INSERT INTO tokend_outbox (type, account_id, token_version, reason, data) "
           "SELECT 'token.expiring', u, 1, 'refresh_failing', jsonb_build_object("
           "'account_id', u, 'platform', 'x', 'external_id', 'ext-' || g, "
           "'token_version', 1, 'reason', 'refresh_failing') "
           "FROM (SELECT g, gen_random_uuid() AS u FROM generate_series(1, %s) g) s", n)


class RedisServer:
    """A redis-server of the test's own on a free port, with an append-only
    file so that a stop and start keeps the stream (as a real one would)."""

    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="tokend-redis-")
        self.port = free_port()
        self.proc = None
        self.args = list(args)  # more redis-server options
        self.password = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           decode_responses=True)

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", self.dir,
             "--logfile", os.path.join(self.dir, "redis.log"), *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.ping, 10, "redis-server up")
        return self

    def ping(self):
        try:
            return self.client().ping()
        except (redis.ConnectionError, redis.AuthenticationError):
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        self.proc = None

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "redis.log")) as f:
                return f.read()
        except OSError:
            return ""


def metric(daemon, name):
    value = daemon.metric(name)
    return 0 if value is None else value


def wait_log(daemon, text, timeout=10):
    wait_for(lambda: text in daemon.log_text(), timeout, f"log line with '{text}'",
             interval=0.1)


RELAY_SOURCES = ("relay.c", "redis.c", "envelope.c")


def sanitizer_findings(daemon):
    """Sanitizer reports in a daemon's log (a -DTOKEND_SANITIZE=ON build) that
    concern the relay: any AddressSanitizer error or UBSan runtime error, and
    leaks allocated from the relay's sources. (Leaks elsewhere belong to the
    tests of those modules.) [] when the daemon never ran."""
    if not os.path.exists(daemon.log_path):
        return []
    log = daemon.log_text()
    found = []
    if "ERROR: AddressSanitizer" in log:
        found.append(log[log.index("ERROR: AddressSanitizer"):][:2000])
    if "runtime error:" in log:
        found.append(log[log.index("runtime error:"):][:2000])
    for block in log.split("\n\n"):
        if "leak of" in block and any(src in block for src in RELAY_SOURCES):
            found.append(block)
    return found
