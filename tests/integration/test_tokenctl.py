"""tokenctl against a real tokend, PostgreSQL and the fake platform server:
status, schedule, account, refresh and migrate (happy path, usage errors
exit 2, an unreachable admin API or database exits 1), and rekey: a key
rotation re-sealed online while the daemon keeps refreshing, fenced so that
no token the daemon stored meanwhile is overwritten, without new token
versions, resumable and idempotent."""

import base64
import http.server
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

import psycopg2
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, os.path.dirname(__file__))
from fake import FakeDaemonTest  # noqa: E402
from harness import (PLATFORM_NAMES, TOKENCTL, Database, access_token_of,  # noqa: E402
                     daemon_env, free_port, insert_account, refresh_token_of, tokenctl,
                     wait_for)

COMMANDS = ["status", "schedule", "account", "refresh", "migrate", "rekey"]
SEALED_COLUMNS = {"access_token": 1, "refresh_token": 2, "app_password": 3}
SCHEMA_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "schema")


def ctl(*args, env=None, timeout=120):
    """Run tokenctl; the CompletedProcess (returncode, stdout, stderr)."""
    return subprocess.run([TOKENCTL, *args], capture_output=True, text=True, timeout=timeout,
                          env={**daemon_env(), **(env or {})})


def dead_address():
    return f"127.0.0.1:{free_port()}"


def latest_schema_version():
    return max(int(name[:3]) for name in os.listdir(SCHEMA_DIR) if re.match(r"\d{3}_", name))


# ---- keyrings and sealed values, independently of tokend (docs/sealed-format.md) ----

def read_keyring(path):
    keys, primary = {}, None
    with open(path) as f:
        for line in f:
            fields = line.split("#", 1)[0].split()
            if fields:
                keys[int(fields[0])] = base64.b64decode(fields[1])
                if fields[2:] == ["primary"]:
                    primary = int(fields[0])
    return keys, primary


def add_primary_key(daemon, key_id):
    """Step 1+2 of a rotation: keep the keys, add key_id and make it primary."""
    with open(daemon.keyring) as f:
        lines = [line.replace(" primary", "").rstrip() for line in f if line.strip()]
    lines.append(tokenctl("keygen", "--id", str(key_id), "--primary").strip())
    fd = os.open(daemon.keyring, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")


def key_id_of(sealed):
    return struct.unpack(">I", bytes(sealed[1:5]))[0]


def open_sealed(keys, account, column, sealed):
    sealed = bytes(sealed)
    header = sealed[:5]
    aad = header + uuid.UUID(account).bytes + bytes([SEALED_COLUMNS[column]])
    return AESGCM(keys[key_id_of(sealed)]).decrypt(sealed[5:17], sealed[17:], aad).decode()


# ---- a stand-in admin API, to see what tokenctl sends and feed it answers ----

class StubAdmin:
    def __init__(self, ready=True, metrics=""):
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append((self.path, self.headers.get("Authorization")))
                if self.path == "/readyz":
                    body = json.dumps({"ready": ready, "checks": {
                        "database": ready, "loaded": ready, "stopping": False},
                        "events": {"redis": False, "relaying": False, "backlog": None}})
                    self.answer(200 if ready else 503, body, "application/json")
                elif self.path == "/metrics":
                    self.answer(200, metrics, "text/plain")
                else:
                    self.answer(404, '{"error":{"status":404,"message":"no such endpoint"}}',
                                "application/json")

            def answer(self, code, body, ctype):
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---- no services needed ----

class Usage(unittest.TestCase):
    def test_help_exits_0(self):
        for cmd in COMMANDS:
            run = ctl(cmd, "--help")
            self.assertEqual(run.returncode, 0, f"{cmd}: {run.stderr}")
            self.assertTrue(run.stdout.startswith(f"Usage: tokenctl {cmd}"), run.stdout)
            self.assertEqual(run.stderr, "")
            self.assertEqual(ctl("help", cmd).stdout, run.stdout)
        main = ctl("--help")
        for cmd in COMMANDS:
            self.assertIn(f"\n  {cmd} ", main.stdout)

    def test_bad_usage_exits_2_with_one_message(self):
        a = str(uuid.uuid4())
        cases = [
            ["status", "--bogus"], ["status", "extra"], ["status", "--admin", "nonsense"],
            ["status", "--admin", "::1:9180"], ["status", "--admin"],
            ["schedule", "--limit", "0"], ["schedule", "--limit", "10001"],
            ["schedule", "--limit", "x"], ["schedule", "extra"],
            ["account"], ["account", "not-a-uuid"], ["account", a, a], ["account", a, "--x"],
            ["refresh"], ["refresh", "nope"], ["refresh", a, "--token-version", "0"],
            ["refresh", a, "--token-version", "v2"], ["refresh", a, a],
            ["migrate", "--bogus"], ["migrate", "extra"], ["migrate", "--database-url"],
            ["rekey", "--batch", "0"], ["rekey", "--batch", "10001"], ["rekey", "--pause", "-1"],
            ["rekey", "extra"], ["rekey", "--dry"],
        ]
        for argv in cases:
            run = ctl(*argv)
            self.assertEqual(run.returncode, 2, f"{argv}: {run.stdout} {run.stderr}")
            first = run.stderr.splitlines()[0]
            self.assertTrue(first.startswith(f"tokenctl {argv[0]}: "), f"{argv}: {first}")
            self.assertEqual(run.stdout, "")

    def test_unreachable_admin_api_exits_1(self):
        a = str(uuid.uuid4())
        for argv in (["status"], ["schedule"], ["schedule", "--json"], ["account", a],
                     ["refresh", a]):
            address = dead_address()
            run = ctl(*argv, "--admin", address)
            self.assertEqual(run.returncode, 1, f"{argv}: {run.stderr}")
            self.assertIn(f"tokenctl {argv[0]}: cannot reach the admin API at {address}",
                          run.stderr)

    def test_admin_address_from_the_config(self):
        port = free_port()
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as conf:
            conf.write(f"admin_listen = 0.0.0.0:{port}\n")  # reached on loopback
            conf.flush()
            run = ctl("status", "-c", conf.name)
        self.assertEqual(run.returncode, 1)
        self.assertIn(f"at 0.0.0.0:{port}: Failed to connect to 127.0.0.1 port {port}",
                      run.stderr)
        run = ctl("status", "-c", "/nonexistent/tokend.conf")
        self.assertEqual(run.returncode, 1)
        self.assertIn("config /nonexistent/tokend.conf", run.stderr)

    def test_unreachable_database_exits_1(self):
        url = f"host=127.0.0.1 port={free_port()} dbname=x connect_timeout=3"
        run = ctl("migrate", "--database-url", url)
        self.assertEqual(run.returncode, 1, run.stderr)
        self.assertIn("tokenctl migrate: migrations failed", run.stderr)
        self.assertIn("Connection refused", run.stderr)
        with tempfile.TemporaryDirectory() as d:
            keyring = os.path.join(d, "keyring")
            fd = os.open(keyring, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(tokenctl("keygen", "--primary"))
            run = ctl("rekey", "--database-url", url, "--keyring", keyring)
        self.assertEqual(run.returncode, 1, run.stderr)
        self.assertIn("tokenctl rekey: cannot connect to PostgreSQL", run.stderr)

    def test_rekey_without_a_keyring(self):
        run = ctl("rekey", "--database-url", "host=127.0.0.1", "--keyring", "/nonexistent")
        self.assertEqual(run.returncode, 1)
        self.assertIn("/nonexistent", run.stderr)


class StatusFromStub(unittest.TestCase):
    metrics = ("tokend_ready 1\ntokend_scheduled_accounts 42\ntokend_heap_size 40\n"
               "tokend_actions_in_flight 2\ntokend_next_deadline_seconds 299.4\n"
               "tokend_outbox_backlog 7\ntokend_journal_pending 3\n")

    def test_fields_and_bearer_token(self):
        stub = StubAdmin(metrics=self.metrics)
        self.addCleanup(stub.close)
        with tempfile.TemporaryDirectory() as d:
            token = os.path.join(d, "admin_token")
            with open(token, "w") as f:
                f.write("s3cret\n")
            run = ctl("status", "--admin", stub.address, "--admin-token-file", token)
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertEqual(stub.seen, [("/readyz", "Bearer s3cret"),
                                         ("/metrics", "Bearer s3cret")])
            del stub.seen[:]
            run_env = ctl("status", "--admin", stub.address,
                          env={"TOKEND_ADMIN_TOKEN_FILE": token})
            self.assertEqual(run_env.returncode, 0, run_env.stderr)
            self.assertEqual(stub.seen[0][1], "Bearer s3cret")
            run_missing = ctl("status", "--admin", stub.address, "--admin-token-file",
                              os.path.join(d, "missing"))
            self.assertEqual(run_missing.returncode, 1)
            self.assertIn("admin token file", run_missing.stderr)
        out = run.stdout
        self.assertIn(f"tokend at {stub.address}: ready", out)
        for label, value in (("accounts", "42"), ("heap size", "40"), ("in flight", "2"),
                             ("next deadline", "in 4m59s"), ("outbox backlog", "7"),
                             ("journal pending", "3"), ("database", "up"), ("redis", "down")):
            self.assertRegex(out, rf"\n  {label} +{value}\n")
        self.assertNotIn("s3cret", out + run.stderr)
        del stub.seen[:]
        ctl("status", "--admin", stub.address)
        self.assertEqual(stub.seen[0][1], None)  # no token, no header

    def test_not_ready_exits_1(self):
        stub = StubAdmin(ready=False, metrics="tokend_ready 0\n")
        self.addCleanup(stub.close)
        run = ctl("status", "--admin", stub.address)
        self.assertEqual(run.returncode, 1)
        self.assertIn("NOT READY", run.stdout)
        self.assertRegex(run.stdout, r"\n  database +down\n")
        self.assertRegex(run.stdout, r"\n  journal pending +unknown\n")


# ---- against a real daemon ----

class WithDaemon(FakeDaemonTest, unittest.TestCase):
    """A database, the fake platforms and a daemon pointed at them."""


class AdminCommands(WithDaemon):
    def test_status(self):
        for p in ("x", "linkedin", "youtube"):
            insert_account(self.db, self.daemon, platform=p, access_in="30 days", refresh=True)
        self.daemon.start()
        run = ctl("status", "-c", self.daemon.config)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn(f"tokend at 127.0.0.1:{self.daemon.port}: ready", run.stdout)
        self.assertRegex(run.stdout, r"\n  accounts +3\n")
        self.assertRegex(run.stdout, r"\n  heap size +3\n")
        self.assertRegex(run.stdout, r"\n  database +up\n")
        self.assertRegex(run.stdout, r"\n  next deadline +in \d+d\d\dh\n")
        self.assertRegex(run.stdout, r"\n  in flight +0\n")
        run = ctl("status", "--admin", f"127.0.0.1:{self.daemon.port}")
        self.assertEqual(run.returncode, 0, run.stderr)

    def test_schedule(self):
        accounts = {insert_account(self.db, self.daemon, platform=p, access_in=f"{d} days",
                                   refresh=True): p
                    for d, p in ((20, "x"), (25, "linkedin"), (30, "youtube"))}
        self.daemon.start()
        run = ctl("schedule", "-c", self.daemon.config)
        self.assertEqual(run.returncode, 0, run.stderr)
        lines = run.stdout.splitlines()
        self.assertEqual(lines[0], "3 accounts, 3 with a pending action, 0 in flight")
        self.assertEqual(lines[1].split(), ["DUE", "(UTC)", "IN", "ACTION", "PLATFORM",
                                            "ACCOUNT"])
        rows = [line.split() for line in lines[2:]]
        self.assertEqual(len(rows), 3)
        self.assertEqual([r[-1] for r in rows], list(accounts))  # earliest first
        for r in rows:
            self.assertEqual(r[-2], accounts[r[-1]])
            self.assertRegex(r[0], r"^\d{4}-\d\d-\d\d$")
            self.assertRegex(r[2], r"^\d+d\d\dh$")
        run = ctl("schedule", "-c", self.daemon.config, "--limit", "1", "--json")
        self.assertEqual(run.returncode, 0, run.stderr)
        body = json.loads(run.stdout)
        self.assertEqual(body["accounts"], 3)
        self.assertEqual([e["account_id"] for e in body["upcoming"]], list(accounts)[:1])

    def test_account(self):
        a = insert_account(self.db, self.daemon, platform="linkedin", access_in="30 days",
                           refresh=True)
        self.daemon.start()
        run = ctl("account", a, "-c", self.daemon.config)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertRegex(run.stdout, rf"^account +{a}\n")
        self.assertRegex(run.stdout, r"\nplatform +linkedin\n")
        self.assertRegex(run.stdout, r"\naction +refresh\n")
        self.assertRegex(run.stdout, r"\ndue at +\d{4}-.*Z \(in \d+d\d\dh\)\n")
        self.assertRegex(run.stdout, r"\nin flight +no\n")
        self.assertNotIn(access_token_of("linkedin", a), run.stdout)
        run = ctl("account", a.upper(), "-c", self.daemon.config, "--json")
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(json.loads(run.stdout)["account_id"], a)
        missing = str(uuid.uuid4())
        run = ctl("account", missing, "-c", self.daemon.config)
        self.assertEqual(run.returncode, 1)
        self.assertEqual(run.stdout, "")
        self.assertIn(f"tokenctl account: {missing}: no such account in the schedule",
                      run.stderr)

    def test_refresh(self):
        a = insert_account(self.db, self.daemon, platform="x", access_in="30 days", refresh=True)
        self.daemon.start()
        run = ctl("refresh", a, "-c", self.daemon.config)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.stdout, f"refresh requested for {a}\n")
        wait_for(lambda: self.version(a) == 2, 10, "the requested refresh")
        # The version that failed was 1: version 2 answers it already.
        run = ctl("refresh", a, "--token-version", "1", "-c", self.daemon.config)
        self.assertEqual(run.returncode, 0, run.stderr)
        time.sleep(1)
        self.assertEqual(self.version(a), 2)
        self.assertEqual(self.fake.stats("x")["ok"], 1)
        missing = str(uuid.uuid4())
        run = ctl("refresh", missing, "-c", self.daemon.config)
        self.assertEqual(run.returncode, 1)
        self.assertIn(f"tokenctl refresh: {missing}: no such active account", run.stderr)


class Migrate(unittest.TestCase):
    def setUp(self):
        self.db = Database()

    def tearDown(self):
        self.db.close()

    def test_applies_then_nothing_to_do(self):
        latest = latest_schema_version()
        run = ctl("migrate", "--database-url", self.db.dsn)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.stdout, f"schema at version {latest} ({latest} migrations applied "
                                     "now)\n")
        self.assertEqual(self.db.one("SELECT max(version) FROM tokend_migrations"), latest)
        self.assertEqual(self.db.one("SELECT to_regprocedure('tokend_reseal(uuid,bigint,bytea,"
                                     "bytea,bytea,bytea,bytea,bytea)') IS NOT NULL"), True)
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as conf:
            conf.write(f"database_url = {self.db.dsn}\n")
            conf.flush()
            run = ctl("migrate", "-c", conf.name)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.stdout, f"schema at version {latest} (0 migrations applied now)\n")


# ---- rekey ----

class Rekey(WithDaemon):
    def keys(self):
        return read_keyring(self.daemon.keyring)[0]

    def rotate(self):
        """Key 2 becomes primary (key 1 kept); the running daemon reloads it."""
        add_primary_key(self.daemon, 2)
        self.daemon.signal(signal.SIGHUP)
        wait_for(lambda: self.daemon.metric("tokend_config_reloads_total") == 1, 10,
                 "keyring reloaded")

    def values_not_under(self, key_id):
        return self.db.one(
            "SELECT count(*) FROM platform_accounts, LATERAL (VALUES (access_token), "
            "(refresh_token), (app_password)) AS c(v) WHERE v IS NOT NULL "
            "AND substring(v from 2 for 4) <> %s", struct.pack(">I", key_id))

    def populate(self, n):
        """n accounts across the platforms, sealed under key 1: every other one
        with a refresh token, Bluesky ones with an app password. Nothing is
        due for weeks: refreshes happen only when asked for."""
        expected = {}
        for i in range(n):
            p = PLATFORM_NAMES[i % len(PLATFORM_NAMES)]
            a = str(uuid.uuid4())
            refresh = p in ("x", "bluesky") or i % 2 == 0
            columns = {}
            if p == "bluesky":
                columns["app_password"] = self.daemon.seal(a, "app_password", f"pw-{a}")
                columns["external_id"] = f"u{a[:8]}.bsky.test"
            insert_account(self.db, self.daemon, platform=p, access_in="40 days",
                           refresh=refresh, account_id=a, **columns)
            expected[a] = {"platform": p, "access_token": access_token_of(p, a)}
            if refresh:
                expected[a]["refresh_token"] = refresh_token_of(p, a)
            if p == "bluesky":
                expected[a]["app_password"] = f"pw-{a}"
        return expected

    def request_refreshes(self, accounts, interval):
        for a in accounts:
            self.assertTrue(self.db.one("SELECT tokend_request_refresh(%s)", a))
            time.sleep(interval)

    def refresh_ok(self):
        stats = self.fake.stats()["platforms"]
        return sum(stats[p]["ok"] for p in ("x", "bluesky"))

    def assert_no_reuse(self):
        stats = self.fake.stats()["platforms"]
        for p in PLATFORM_NAMES:
            self.assertEqual(stats[p]["reuse"], 0, f"{p}: a spent refresh token was presented")

    def test_online_rotation_while_the_daemon_refreshes(self):
        expected = self.populate(200)
        self.daemon.start()
        self.rotate()
        self.assertEqual(self.values_not_under(1), 0)
        versions_before = dict(self.db.sql("SELECT id::text, token_version FROM "
                                           "platform_accounts"))
        self.assertEqual(set(versions_before.values()), {1})

        # A dry run opens what it would re-seal and writes nothing.
        run = ctl("rekey", "-c", self.daemon.config, "--dry-run")
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("dry run: 200 rows", run.stdout)
        self.assertIn("; 200 left under an old key", run.stdout)
        self.assertEqual(self.values_not_under(1), 0)

        # Rekey in small batches while 40 X and Bluesky accounts (rotating
        # refresh tokens) are refreshed on request at the same time.
        hot = ([a for a, e in expected.items() if e["platform"] == "x"][:15]
               + [a for a, e in expected.items() if e["platform"] == "bluesky"][:15])
        ok_before = self.refresh_ok()
        requester = threading.Thread(target=self.request_refreshes, args=(hot, 0.05))
        requester.start()
        run = ctl("rekey", "-c", self.daemon.config, "--batch", "10", "--pause", "100")
        ok_during = self.refresh_ok() - ok_before
        requester.join()
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        # (Rows the daemon refreshed before rekey started are under key 2 already.)
        self.assertRegex(run.stdout, r"^rekey: primary key 2; \d+ rows hold values under "
                                     r"other keys\nrekey: \d+ values under key 1\n")
        self.assertRegex(run.stdout, r"\nrekey: \d+ rows re-sealed, up to \d+ left\n")
        self.assertTrue(run.stdout.endswith("; 0 left under an old key\n"), run.stdout)
        self.assertGreater(ok_during, 0, "no refresh happened during the rekey")
        wait_for(lambda: all(self.version(a) >= 2 for a in hot), 20, "requested refreshes")
        self.assert_no_reuse()

        # Every sealed value carries key id 2 and opens under key 2 alone.
        keys = self.keys()
        only_key_2 = {2: keys[2]}
        rows = self.db.sql("SELECT id::text, platform, token_version, last_refresh_at, "
                           "access_token, refresh_token, app_password FROM platform_accounts")
        self.assertEqual(len(rows), 200)
        untouched = 0
        for a, platform, version, refreshed_at, *sealed in rows:
            for column, value in zip(SEALED_COLUMNS, sealed):
                self.assertEqual(value is None, column not in expected[a], f"{a} {column}")
                if value is None:
                    continue
                self.assertEqual(key_id_of(value), 2, f"{a} {column}")
                plain = open_sealed(only_key_2, a, column, value)
                if refreshed_at is None:  # not refreshed meanwhile: the same token
                    self.assertEqual(plain, expected[a][column], f"{a} {column}")
            if refreshed_at is None:
                untouched += 1
                self.assertEqual(version, versions_before[a], f"{a}: token_version moved")
            else:
                self.assertIn(a, hot)
        self.assertGreaterEqual(untouched, 150)
        self.assertEqual(self.values_not_under(2), 0)

        # The daemon opens what rekey sealed: refreshes with the re-sealed (or
        # rotated) refresh tokens succeed with no reuse, and a Bluesky account
        # whose refreshJwt died logs in with its re-sealed app password.
        cold = ([a for a, e in expected.items() if e["platform"] == "x" and a not in hot][:3]
                + [a for a, e in expected.items() if e["platform"] == "bluesky"
                   and a not in hot][:3])
        bluesky = cold[-1]
        self.fake.revoke(refresh_token_of("bluesky", bluesky))
        sample = hot[:4] + cold
        before = {a: self.version(a) for a in sample}
        self.request_refreshes(sample, 0)
        wait_for(lambda: all(self.version(a) > before[a] for a in sample), 20,
                 "refreshes after the rekey")
        self.assert_no_reuse()
        self.assertEqual(self.db.one("SELECT status FROM platform_accounts WHERE id = %s",
                                     bluesky), "active")
        for p in ("x", "bluesky"):
            self.assertEqual(self.daemon.metric(
                f'tokend_refreshes_total{{platform="{p}",outcome="unopenable"}}'), 0)
        self.assertEqual(self.daemon.metric(
            'tokend_bad_input_total{kind="undecryptable_token"}'), 0)

        # Run again: nothing to do. A dry run agrees.
        for extra in ([], ["--dry-run"]):
            run = ctl("rekey", "-c", self.daemon.config, *extra)
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertIn("rekey: primary key 2; 0 rows hold values under other keys",
                          run.stdout)
            self.assertTrue(run.stdout.endswith("nothing to do; 0 left under an old key\n"))
        self.daemon.assert_running()

    def test_a_row_changed_during_the_rekey_is_not_overwritten(self):
        """Deterministic fencing: hold a row lock so rekey's write waits, store
        a new token meanwhile; rekey must skip the row, then re-seal what is
        left of it under the old key in a second pass."""
        expected = self.populate(20)
        add_primary_key(self.daemon, 2)  # no daemon needed here
        target = sorted(a for a, e in expected.items() if "refresh_token" in e)[10]
        new_access = self.daemon.seal(target, "access_token", "x-at-reauthorised")  # key 2
        conn = psycopg2.connect(self.db.dsn)
        self.addCleanup(conn.close)
        cur = conn.cursor()
        cur.execute("SELECT 1 FROM platform_accounts WHERE id = %s FOR UPDATE", (target,))
        proc = subprocess.Popen([TOKENCTL, "rekey", "-c", self.daemon.config, "--batch", "5"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=daemon_env())
        wait_for(lambda: self.db.one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tokenctl rekey' "
            "AND wait_event_type = 'Lock'"), 20, "rekey waiting for the row lock")
        # The API re-authorises the account (the trigger makes version 2).
        cur.execute("UPDATE platform_accounts SET access_token = %s WHERE id = %s",
                    (new_access, target))
        conn.commit()
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, out + err)
        self.assertIn("rekey: 1 rows changed while being re-sealed; another pass", out)
        self.assertTrue(out.endswith("; 0 left under an old key\n"), out)
        access, refresh, version = self.db.sql(
            "SELECT access_token, refresh_token, token_version FROM platform_accounts "
            "WHERE id = %s", target)[0]
        keys = self.keys()
        self.assertEqual(version, 2)  # the re-auth's version; re-sealing added none
        self.assertEqual(open_sealed(keys, target, "access_token", access), "x-at-reauthorised")
        self.assertEqual(key_id_of(refresh), 2)
        self.assertEqual(open_sealed({2: keys[2]}, target, "refresh_token", refresh),
                         expected[target]["refresh_token"])
        self.assertEqual(self.values_not_under(2), 0)

    def test_values_that_do_not_open_are_reported(self):
        expected = self.populate(10)
        a, b = sorted(expected)[:2]
        # b's access token copied onto a: it does not open there (AAD).
        self.db.sql("UPDATE platform_accounts SET access_token = (SELECT access_token FROM "
                    "platform_accounts WHERE id = %s) WHERE id = %s", b, a)
        add_primary_key(self.daemon, 2)
        run = ctl("rekey", "-c", self.daemon.config, "--dry-run")
        self.assertEqual(run.returncode, 1)
        self.assertIn(f"tokenctl rekey: account {a} access_token: authentication failed",
                      run.stderr)
        self.assertIn("1 rows have a value that does not open", run.stdout)
        run = ctl("rekey", "-c", self.daemon.config)
        self.assertEqual(run.returncode, 1)
        self.assertIn("done: 9 rows re-sealed", run.stdout)
        self.assertIn("1 left under an old key", run.stdout)
        self.assertIn("1 rows still hold a value under an old key", run.stderr)
        # Only a's row is left; the rest moved to key 2.
        self.assertEqual(self.db.one(
            "SELECT count(*) FROM platform_accounts WHERE substring(access_token from 2 for 4) "
            "<> %s", struct.pack(">I", 2)), 1)

    def test_reseal_function_is_fenced_and_keeps_the_version(self):
        a = insert_account(self.db, self.daemon, platform="x", access_in="40 days",
                           refresh=True)
        old_access, old_refresh = self.db.sql("SELECT access_token, refresh_token FROM "
                                              "platform_accounts WHERE id = %s", a)[0]
        other = self.daemon.seal(a, "access_token", "x-at-other")
        call = "SELECT tokend_reseal(%s, %s, %s, %s, %s, %s, NULL, NULL)"
        # Stale version, stale bytes: nothing written.
        self.assertFalse(self.db.one(call, a, 2, old_access, other, old_refresh, old_refresh))
        self.assertFalse(self.db.one(call, a, 1, other, other, old_refresh, old_refresh))
        self.assertEqual(bytes(self.db.one("SELECT access_token FROM platform_accounts WHERE "
                                           "id = %s", a)), bytes(old_access))
        # A NULL column stays NULL.
        with self.assertRaisesRegex(Exception, "must stay NULL or set"):
            self.db.one("SELECT tokend_reseal(%s, 1, %s, %s, %s, %s, NULL, %s)", a, old_access,
                        other, old_refresh, old_refresh, other)
        # Current version and bytes: written, version kept, no notification.
        listener = psycopg2.connect(self.db.dsn)
        self.addCleanup(listener.close)
        listener.autocommit = True
        listener.cursor().execute("LISTEN tokend_accounts")
        self.assertTrue(self.db.one(call, a, 1, old_access, other, old_refresh, old_refresh))
        self.assertEqual(self.version(a), 1)
        time.sleep(0.2)
        listener.poll()
        self.assertEqual(listener.notifies, [])
        # The flag does not outlive the call, even inside one transaction:
        # a plain token change right after it still makes a new version.
        with self.db.conn.cursor() as cur:
            self.db.conn.autocommit = False
            cur.execute(call, (a, 1, other, old_access, old_refresh, old_refresh))
            cur.execute("UPDATE platform_accounts SET access_token = %s WHERE id = %s",
                        (other, a))
            self.db.conn.commit()
            self.db.conn.autocommit = True
        self.assertEqual(self.version(a), 2)
        wait_for(lambda: listener.poll() or listener.notifies, 5, "the token change announced")
        self.assertEqual([n.payload for n in listener.notifies], [f"U:{a}"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
