"""Fault tests of the refresh engine (tokend.md section 6). Each test tries to
break one promise against a real tokend, the test PostgreSQL and the fake
platform server: a crash between the upstream answer and the commit (§6.1),
PostgreSQL refusing the commit while connected (§6.1), PostgreSQL stopped
during a refresh burst (§6.1, §6.6), two daemons on one database (§6.2), TLS
trust (§6.5), and every fault the fake can inject (§6.5): wrong state, a lost
token, a spent token presented again, a dead daemon or a sanitizer report
fails the test. Stored tokens are checked by opening them (AES-GCM, as
docs/sealed-format.md says) and comparing with the fake's current ones."""

import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

import psycopg2
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, os.path.dirname(__file__))
from fake import FakePlatforms  # noqa: E402
from harness import (Daemon, Database, insert_account, postgres_controllable,  # noqa: E402
                     postgres_stopped, refresh_token_of, has_failed, wait_for)

SOURCE = os.environ.get("TOKEND_SOURCE_DIR",
                        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
                            __file__)))))
SEAL_COLUMNS = {"access_token": 1, "refresh_token": 2, "app_password": 3}


def open_sealed(keyring_path, account_id, column, sealed):
    """Open a sealed value as docs/sealed-format.md describes it: proof that
    what tokend stored opens with the daemon's keyring for that row."""
    keys = {}
    with open(keyring_path) as f:
        for line in f:
            parts = line.split()
            if parts:
                keys[int(parts[0])] = base64.b64decode(parts[1])
    sealed = bytes(sealed)
    assert len(sealed) >= 33 and sealed[0] == 1, "malformed sealed value"
    key_id = int.from_bytes(sealed[1:5], "big")
    aad = sealed[:5] + uuid.UUID(account_id).bytes + bytes([SEAL_COLUMNS[column]])
    return AESGCM(keys[key_id]).decrypt(sealed[5:17], sealed[17:], aad).decode()


def row(db, account_id, *columns):
    return db.sql(f"SELECT {', '.join(columns)} FROM platform_accounts WHERE id = %s",
                  account_id)[0]


def log_of(daemon):
    """The daemon's log, "" when it never started."""
    return daemon.log_text() if os.path.exists(daemon.log_path) else ""


def metric_sum(daemon, prefix):
    """The sum of every series whose line starts with prefix."""
    status, text = daemon.request("GET", "/metrics")
    assert status == 200, "no /metrics"
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(prefix))


class FaultTest(unittest.TestCase):
    """A fake platform server, and daemons (each on a database of its own
    unless given one) that are stopped, and whose logs are printed on a
    failure, at the end."""

    settings = {}

    def fake_args(self):
        return ()

    def setUp(self):
        self.fake = FakePlatforms(*self.fake_args())
        self.secrets = tempfile.mkdtemp(prefix="tokend-secrets-")
        self.daemons, self.dbs = [], []
        self.db = self.new_db()
        self.daemon = self.new_daemon(self.db)
        self.daemon.migrate()

    def new_db(self):
        db = Database()
        self.dbs.append(db)
        return db

    def new_daemon(self, db, **settings):
        all_settings = self.fake.settings(self.secrets)
        all_settings.update(self.settings)
        all_settings.update(settings)
        daemon = Daemon(db, all_settings)
        self.daemons.append(daemon)
        return daemon

    def tearDown(self):
        for daemon in self.daemons:
            daemon.stop()
        if has_failed(self) or os.environ.get("TOKEND_TEST_VERBOSE"):
            for daemon in self.daemons:
                print(f"--- tokend log ({daemon.log_path}) ---\n{log_of(daemon)[-8000:]}")
        self.fake.stop()
        for db in self.dbs:
            db.close()
        shutil.rmtree(self.secrets, ignore_errors=True)
        # Under ASan/UBSan (scripts/test) a report lands in the daemon's log.
        for daemon in self.daemons:
            text = log_of(daemon)
            for word in ("Sanitizer", "runtime error:"):
                self.assertNotIn(word, text, f"sanitizer report in {daemon.log_path}")

    # ---- helpers ----

    def version(self, a, db=None):
        return row(db or self.db, a, "token_version")[0]

    def request_refresh(self, a, db=None):
        self.assertTrue((db or self.db).one("SELECT tokend_request_refresh(%s)", a))

    def x_account(self, daemon=None, db=None, access_in="2 hours"):
        return insert_account(db or self.db, daemon or self.daemon, platform="x",
                              access_in=access_in, refresh=True)

    def assert_holds_upstream_tokens(self, a, daemon=None, db=None):
        """The row's sealed tokens open and are the fake's current ones: the
        rotated refresh token was stored, not lost."""
        daemon, db = daemon or self.daemon, db or self.db
        upstream = self.fake.account(refresh_token_of("x", a))
        access, refresh = row(db, a, "access_token", "refresh_token")
        self.assertEqual(open_sealed(daemon.keyring, a, "refresh_token", refresh),
                         upstream["refresh_token"])
        self.assertEqual(open_sealed(daemon.keyring, a, "access_token", access),
                         upstream["access_token"])
        return upstream

    def journal_size(self, daemon=None):
        path = os.path.join((daemon or self.daemon).dir, "journal")
        return os.path.getsize(path) if os.path.exists(path) else 0


class CrashSafety(FaultTest):
    """§6.1: the upstream answered, tokend dies before PostgreSQL committed:
    the rotated token is in the journal and lands after the restart."""

    def commit_blocked_by(self, locker):
        """The pid of tokend's backend waiting on the test's row lock in
        tokend_store_many (so the journal entry was synced: the store is
        sent only after that), or None."""
        return self.db.one(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> %s AND wait_event_type = 'Lock' "
            "AND query LIKE '%%tokend_store_%%'", locker.get_backend_pid())

    def restart_and_check_replay(self, a):
        self.assertEqual(self.version(a), 1, "committed before the restart: nothing tested")
        upstream = self.fake.account(refresh_token_of("x", a))
        self.assertEqual(upstream["refresh_generation"], 1, "the fake did not rotate")
        self.assertEqual(upstream["reuse"], 0)
        self.daemon.start()  # same state_directory, so the same journal
        wait_for(lambda: self.version(a) == 2, 15, "the journal entry committed")
        self.assert_holds_upstream_tokens(a)
        self.assertEqual(self.daemon.metric("tokend_journal_replayed_total"), 1)
        self.assertIn("journal: entry 1 committed", self.daemon.log_text())
        status, lease = row(self.db, a, "status", "lease_owner")
        self.assertEqual((status, lease), ("active", None))
        wait_for(lambda: self.journal_size() == 0, 5, "the journal compacted")
        # The stored refresh token is the live one: the next refresh works
        # and presents no spent token.
        self.request_refresh(a)
        wait_for(lambda: self.version(a) == 3, 10, "refresh after the replay")
        stats = self.fake.stats("x")
        self.assertEqual((stats["ok"], stats["reuse"], stats["dead"]), (2, 0, 0))
        self.daemon.assert_running()

    def kill_during_commit(self, a, let_it_commit):
        """SIGKILL tokend while its tokend_store_many waits on a row lock
        the test holds (so the journal entry was synced, the commit not
        done); then let that orphaned statement commit, or end it first."""
        self.daemon.start()
        self.fake.fault("x", "delay", delay_ms=1500)
        self.request_refresh(a)
        wait_for(lambda: self.fake.stats("x")["faults"] == 1, 10, "the request in flight")
        # Claimed and in flight: lock the row so the commit blocks behind us.
        locker = psycopg2.connect(self.db.dsn)
        try:
            with locker.cursor() as cur:
                cur.execute("SELECT 1 FROM platform_accounts WHERE id = %s FOR UPDATE", (a,))
            pid = wait_for(lambda: self.commit_blocked_by(locker), 10,
                           "the store blocked on the row lock")
            self.assertGreater(self.journal_size(), 0)
            self.daemon.kill()
            if not let_it_commit:
                # The killed daemon's backend would still commit once the
                # lock goes (it has not noticed its client is gone): end it,
                # so only the journal can bring the token back.
                self.db.one("SELECT pg_terminate_backend(%s)", pid)
                wait_for(lambda: not self.db.one("SELECT count(*) FROM pg_stat_activity "
                                                 "WHERE pid = %s", pid), 10, "backend gone")
        finally:
            locker.rollback()
            locker.close()

    def test_sigkill_after_journal_before_commit(self):
        a = self.x_account()
        self.kill_during_commit(a, let_it_commit=False)
        self.restart_and_check_replay(a)

    def test_sigkill_after_commit_before_retire(self):
        # The commit lands but the journal never heard: the replay after the
        # restart must be fenced out by token_version, not store twice.
        a = self.x_account()
        self.kill_during_commit(a, let_it_commit=True)
        wait_for(lambda: self.version(a) == 2, 10, "the orphaned commit")
        self.assertGreater(self.journal_size(), 0)
        self.daemon.start()
        wait_for(lambda: "journal: entry 1 already superseded; dropped" in
                 self.daemon.log_text(), 10, "the replay fenced out")
        wait_for(lambda: self.journal_size() == 0, 5, "the journal compacted")
        self.assertEqual(self.version(a), 2)
        self.assert_holds_upstream_tokens(a)
        self.request_refresh(a)
        wait_for(lambda: self.version(a) == 3, 10, "refresh after the restart")
        stats = self.fake.stats("x")
        self.assertEqual((stats["ok"], stats["reuse"], stats["dead"]), (2, 0, 0))

    @unittest.skipUnless(postgres_controllable(), "needs scripts/services' PostgreSQL")
    def test_sigkill_while_postgres_is_down(self):
        a = self.x_account()
        self.daemon.start()
        self.fake.fault("x", "delay", delay_ms=1500)
        self.request_refresh(a)
        wait_for(lambda: self.fake.stats("x")["faults"] == 1, 10, "the request in flight")
        with postgres_stopped():
            # The answer comes while PostgreSQL is down: journaled, the store
            # fails, the daemon dies before PostgreSQL is back.
            wait_for(lambda: metric_sum(self.daemon, 'tokend_actions_total{action="refresh",'
                                                     'result="failed"}') == 1,
                     10, "the store failed")
            self.assertGreater(self.journal_size(), 0)
            self.daemon.kill()
        self.db.reconnect()
        self.restart_and_check_replay(a)


class StoreRefused(FaultTest):
    """§6.1 with PostgreSQL up but refusing the commit (here a lock timeout;
    a failover to a read-only standby or a full disk look the same): the
    rotated token stays in the journal, is committed on the next attempt, and
    the spent refresh token it replaced is never presented again."""

    def test_kept_token_is_committed_not_refreshed_again(self):
        self.db.sql(f'ALTER DATABASE "{self.db.name}" SET lock_timeout = \'300ms\'')
        a = self.x_account()
        self.daemon.start()
        self.fake.fault("x", "delay", delay_ms=1000)
        self.request_refresh(a)
        wait_for(lambda: self.fake.stats("x")["faults"] == 1, 10, "the request in flight")
        locker = psycopg2.connect(self.db.dsn)
        try:
            with locker.cursor() as cur:
                cur.execute("SET lock_timeout = 0")
                cur.execute("SELECT 1 FROM platform_accounts WHERE id = %s FOR UPDATE", (a,))
            wait_for(lambda: "kept in the journal" in self.daemon.log_text(), 10,
                     "the store refused")
        finally:
            locker.rollback()
            locker.close()
        self.assertEqual(self.version(a), 1)
        self.assertGreater(self.journal_size(), 0)
        # The next attempt (the API saw a 401; the retry after the failure
        # does the same 30 s later) must commit the kept token, not present
        # the spent one upstream.
        self.request_refresh(a)
        wait_for(lambda: self.version(a) >= 2 or row(self.db, a, "status")[0] != "active",
                 10, "the next attempt")
        self.assertEqual(row(self.db, a, "status", "token_version"), ("active", 2))
        self.assert_holds_upstream_tokens(a)
        stats = self.fake.stats("x")
        self.assertEqual((stats["ok"], stats["reuse"], stats["dead"]), (1, 0, 0))
        wait_for(lambda: self.journal_size() == 0, 5, "the journal compacted")
        self.request_refresh(a)  # and the kept token is the live one
        wait_for(lambda: self.version(a) == 3, 10, "refresh after the commit")
        self.assertEqual(self.fake.stats("x")["reuse"], 0)
        self.daemon.assert_running()


@unittest.skipUnless(postgres_controllable(), "needs scripts/services' PostgreSQL")
class PostgresOutage(FaultTest):
    """§6.1 and §6.6: PostgreSQL goes away while 20 refreshes are in flight;
    every rotated token lands when it is back, without a restart."""

    settings = {"platform.x.max_inflight": "64"}
    COUNT = 20

    def test_every_rotated_token_lands_after_the_outage(self):
        accounts = [self.x_account() for _ in range(self.COUNT)]
        self.daemon.start()
        # curl keeps 8 connections per host: the answers come in three waves,
        # about 1, 2 and 3 s after the claims, all while PostgreSQL is down.
        self.fake.fault("x", "delay", count=self.COUNT, delay_ms=1000)
        for a in accounts:
            self.request_refresh(a)
        wait_for(lambda: self.db.one("SELECT count(*) FROM platform_accounts "
                                     "WHERE lease_owner IS NOT NULL") == self.COUNT,
                 10, "every account claimed")
        failed = 'tokend_actions_total{action="refresh",result="failed"}'
        with postgres_stopped():
            wait_for(lambda: metric_sum(self.daemon, failed) == self.COUNT, 20,
                     "every answer kept while PostgreSQL is down")
            self.assertEqual(self.daemon.metric("tokend_database_up"), 0)
            self.assertGreater(self.journal_size(), 0)
            self.assertEqual(self.fake.stats("x")["ok"], self.COUNT)  # all rotated upstream
            self.daemon.assert_running()
        self.db.reconnect()
        wait_for(lambda: all(self.version(a) == 2 for a in accounts), 20,
                 "every rotated token committed")
        self.assertEqual(self.daemon.metric("tokend_journal_replayed_total"), self.COUNT)
        for a in accounts:
            self.assert_holds_upstream_tokens(a)
            self.assertEqual(row(self.db, a, "status", "failure_count", "lease_owner"),
                             ("active", 0, None))
        wait_for(lambda: self.journal_size() == 0, 5, "the journal compacted")
        # A further round presents only live tokens.
        for a in accounts:
            self.request_refresh(a)
        wait_for(lambda: all(self.version(a) == 3 for a in accounts), 20, "second round")
        stats = self.fake.stats("x")
        self.assertEqual((stats["ok"], stats["reuse"], stats["dead"]),
                         (2 * self.COUNT, 0, 0))


class TwoDaemons(FaultTest):
    """§6.2: two instances on one database, 50 accounts due at once: each
    account refreshed exactly once, no rotated refresh token presented twice
    (with --reuse-revokes a reuse would also kill the grant: revoked)."""

    COUNT = 50

    def fake_args(self):
        return ("--reuse-revokes",)

    settings = {"platform.x.max_inflight": "64", "platform.x.rate_limit": "0"}

    def test_each_account_refreshed_once(self):
        accounts = [self.x_account(access_in="4 minutes") for _ in range(self.COUNT)]
        other = self.new_daemon(self.db)
        shutil.copy(self.daemon.keyring, other.keyring)  # one keyring for both
        # Answers take a while, so the daemons' windows overlap.
        self.fake.fault("x", "delay", count=2 * self.COUNT, delay_ms=300)
        self.daemon.start(wait_ready=False)
        other.start(wait_ready=False)
        for d in (self.daemon, other):
            wait_for(d.ready, 30, "tokend /readyz")
        wait_for(lambda: self.db.one("SELECT count(*) FROM platform_accounts "
                                     "WHERE token_version >= 2 OR status <> 'active'")
                 == self.COUNT, 20, "every account refreshed (or revoked)")
        time.sleep(1)  # a second refresh of any account would show by now
        versions = self.db.sql("SELECT token_version, status, count(*) FROM platform_accounts "
                               "GROUP BY 1, 2")
        self.assertEqual(versions, [(2, "active", self.COUNT)])
        stats = self.fake.stats("x")
        self.assertEqual((stats["ok"], stats["reuse"], stats["dead"]), (self.COUNT, 0, 0))
        for a in accounts:
            self.assertFalse(self.fake.account(refresh_token_of("x", a))["revoked"])
        self.assertEqual(self.db.one("SELECT count(*) FROM tokend_outbox "
                                     "WHERE type = 'token.revoked'"), 0)
        done = [metric_sum(d, 'tokend_refreshes_total{platform="x",outcome="refreshed"}')
                for d in (self.daemon, other)]
        self.assertEqual(sum(done), self.COUNT)
        for d in (self.daemon, other):
            d.assert_running()


class Tls(FaultTest):
    """§6.5: the platform over HTTPS. Trusted with http_ca_file = the test CA;
    refused with the system CAs or another CA: a network_error failure,
    nothing stored, the daemon alive."""

    def fake_args(self):
        self.ca_dir = tempfile.mkdtemp(prefix="tokend-ca-")
        self.other_ca_dir = tempfile.mkdtemp(prefix="tokend-ca-other-")
        script = os.path.join(SOURCE, "tests", "fake", "make-test-ca.sh")
        for d in (self.ca_dir, self.other_ca_dir):
            subprocess.run([script, d], check=True, capture_output=True, timeout=60)
        return ("--tls-cert", os.path.join(self.ca_dir, "server.pem"),
                "--tls-key", os.path.join(self.ca_dir, "server.key"))

    def tearDown(self):
        super().tearDown()
        shutil.rmtree(self.ca_dir, ignore_errors=True)
        shutil.rmtree(self.other_ca_dir, ignore_errors=True)

    def test_trusts_only_the_configured_ca(self):
        self.assertTrue(self.fake.base_url("x").startswith("https://"))
        self.daemon.settings["http_ca_file"] = os.path.join(self.ca_dir, "ca.pem")
        self.daemon.write_config()
        refused = []
        for ca in ("", os.path.join(self.other_ca_dir, "ca.pem")):
            db = self.new_db()
            daemon = self.new_daemon(db, http_ca_file=ca)
            daemon.migrate()
            refused.append((db, daemon, self.x_account(daemon, db, access_in="4 minutes")))
        good = self.x_account(access_in="4 minutes")
        before = {a: row(db, a, "access_token", "refresh_token") for db, _, a in refused}
        for daemon in self.daemons:
            daemon.start()
        wait_for(lambda: self.version(good) == 2, 10, "refresh over trusted TLS")
        self.assert_holds_upstream_tokens(good)
        for db, daemon, a in refused:
            wait_for(lambda: row(db, a, "failure_count")[0] == 1, 10, "TLS refusal recorded")
            status, version, code, tokens = (*row(db, a, "status", "token_version",
                                                  "last_error_code"),
                                             row(db, a, "access_token", "refresh_token"))
            self.assertEqual((status, version, code), ("active", 1, "network_error"))
            self.assertEqual(tokens, before[a])
            self.assertRegex(daemon.log_text(), r"(?i)certificate|SSL")
            daemon.assert_running()
        # The refused handshakes never reached the HTTP layer.
        stats = self.fake.stats("x")
        self.assertEqual((stats["requests"], stats["ok"]), (1, 1))


class InjectedFaults(FaultTest):
    """§6.5: every fault kind of the fake against a real daemon: the account
    records the failure, keeps its token and version and stays active with a
    retry scheduled; another platform's account refreshes meanwhile; the
    daemon keeps running; and once the fault is gone the account refreshes
    from the token it kept."""

    settings = {"http_timeout": "1s", "refresh_lease": "10s"}

    # kind, fault options, last_error_code, least wait before the retry (s)
    KINDS = [
        ("500", {}, "131", 30),  # X's server-error body {"errors":[{"code":131}]}
        ("429", {"retry_after": 600}, "88", 590),  # x-rate-limit-reset honoured
        ("delay", {"delay_ms": 2500}, "network_error", 30),  # beyond http_timeout
        # curl sends a request again, once, when a reused keep-alive
        # connection dies before any answer: reset both.
        ("reset", {"count": 2}, "network_error", 30),
        ("malformed", {}, "malformed_response", 30),
        ("oversized", {}, "response_too_large", 30),  # 2 MiB > http_max_response_size
        ("wrong_types", {}, "malformed_response", 30),
    ]

    def test_each_fault_leaves_the_account_retrying(self):
        accounts = {kind: self.x_account() for kind, *_ in self.KINDS}
        other = insert_account(self.db, self.daemon, platform="youtube", access_in="2 hours",
                               refresh=True)
        before = {a: row(self.db, a, "access_token", "refresh_token")
                  for a in accounts.values()}
        self.daemon.start()
        for n, (kind, options, code, least_wait) in enumerate(self.KINDS):
            with self.subTest(kind=kind):
                a = accounts[kind]
                self.fake.fault("x", kind, **options)
                self.request_refresh(a)
                wait_for(lambda: row(self.db, a, "failure_count")[0] == 1, 10,
                         f"{kind}: failure recorded")
                self.fake.clear_faults()  # a reset's second rule may be unused
                status, version, last_code, wait_s, lease, requested = self.db.sql(
                    "SELECT status, token_version, last_error_code, "
                    "extract(epoch FROM next_attempt_at - now()), lease_owner, "
                    "refresh_requested_at FROM platform_accounts WHERE id = %s", a)[0]
                self.assertEqual((status, version, last_code), ("active", 1, code))
                self.assertGreater(wait_s, least_wait)
                self.assertEqual((lease, requested), (None, None))
                self.assertEqual(row(self.db, a, "access_token", "refresh_token"), before[a])
                self.assertEqual(self.daemon.schedule()[a]["action"], "retry")
            # Nothing else is affected: another platform refreshes now.
            self.request_refresh(other)
            wait_for(lambda: self.version(other) == n + 2, 10, f"{kind}: youtube refresh")
            self.daemon.assert_running()
        self.assertGreaterEqual(
            self.daemon.metric('tokend_bad_input_total{kind="upstream_body"}'), 3)
        # Pull the retries forward: every account refreshes from the token it
        # kept, presenting no spent token...
        delayed = accounts["delay"]
        time.sleep(2)  # the delayed answer is over (to a closed connection)
        self.db.sql("UPDATE platform_accounts SET next_attempt_at = now() WHERE platform = 'x'")
        for a in accounts.values():
            self.request_refresh(a)
        kept = [a for a in accounts.values() if a != delayed]
        wait_for(lambda: all(self.version(a) == 2 for a in kept), 15,
                 "refresh after the faults")
        for a in kept:
            self.assert_holds_upstream_tokens(a)
        # ...except the one whose request timed out: the fake, like a real
        # platform, finished that refresh after tokend had given up, so the
        # refresh token tokend kept is spent and nobody has the new one. The
        # retry presents it and the grant is revoked (token.revoked): the
        # same as a lost answer, below.
        wait_for(lambda: row(self.db, delayed, "status")[0] == "revoked", 10,
                 "the timed-out account revoked")
        self.assertEqual(self.version(delayed), 1)
        self.assertEqual(self.fake.stats("x")["reuse"], 1)

    def test_lost_answer_after_rotation_ends_in_revocation(self):
        # The fake rotates the refresh token and drops the answer: the new
        # token exists only upstream, so no journal can save it. tokend sees
        # a network error and keeps the token it has, which is now spent; the
        # next attempt presents it, X answers with its dead-grant error, and
        # the account is revoked through the dead-grant path (token.revoked),
        # so the owner re-authorises. This is the documented limit of
        # §6.1: a token is safe only once tokend has received it.
        a = self.x_account()
        self.daemon.start()
        self.fake.fault("x", "reset", commit=True)
        self.request_refresh(a)
        wait_for(lambda: row(self.db, a, "failure_count")[0] == 1, 10, "failure recorded")
        self.assertEqual(row(self.db, a, "status", "token_version", "last_error_code"),
                         ("active", 1, "network_error"))
        upstream = self.fake.account(refresh_token_of("x", a))
        self.assertEqual(upstream["refresh_generation"], 1)  # rotated upstream
        self.db.sql("UPDATE platform_accounts SET next_attempt_at = now() WHERE id = %s", a)
        self.request_refresh(a)
        wait_for(lambda: row(self.db, a, "status")[0] == "revoked", 10, "revoked")
        self.assertEqual(row(self.db, a, "token_version", "last_error_code"),
                         (1, "platform_auth_failed"))
        events = self.db.sql("SELECT type, data FROM tokend_outbox WHERE account_id = %s", a)
        self.assertEqual([e[0] for e in events], ["token.revoked"])
        self.assertEqual(events[0][1]["error"]["upstream_code"], "invalid_request")
        self.assertEqual(self.fake.stats("x")["reuse"], 1)
        self.daemon.assert_running()


if __name__ == "__main__":
    unittest.main(verbosity=2)
