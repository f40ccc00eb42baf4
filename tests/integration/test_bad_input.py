"""Bad input gets a clear log line and a metric, affects only that account or
request, and never stops the daemon: unknown platforms, odd expiries, sealed
values that do not open, malformed notifications, malformed admin requests,
admin requests without the bearer token."""

import os
import subprocess
import sys
import unittest
import urllib.error
import urllib.request
import uuid

import psycopg2

sys.path.insert(0, os.path.dirname(__file__))
from harness import TOKEND, DaemonTest, daemon_env, insert_account, wait_for  # noqa: E402


class BadRows(DaemonTest, unittest.TestCase):
    def test_unknown_platform_is_skipped_and_counted(self):
        bad = insert_account(self.db, self.daemon, platform="myspace", access_in="1 day")
        good = insert_account(self.db, self.daemon, platform="linkedin", access_in="30 days")
        self.daemon.start()
        self.assertIn(good, self.daemon.schedule())
        self.assertEqual(self.daemon.get(f"/v1/accounts/{bad}")[0], 404)
        self.assertIn(f"account {bad}: unknown platform 'myspace'", self.daemon.log_text())
        self.assertGreaterEqual(
            self.daemon.metric('tokend_bad_input_total{kind="unknown_platform"}'), 1)

    def test_infinite_and_missing_expiries(self):
        never = insert_account(self.db, self.daemon, platform="linkedin",
                               access_expires_at="infinity")
        null = insert_account(self.db, self.daemon, platform="linkedin")
        past = insert_account(self.db, self.daemon, platform="linkedin",
                              access_expires_at="-infinity")
        self.daemon.start()
        for a in (never, null):
            status, entry = self.daemon.get(f"/v1/accounts/{a}")
            self.assertEqual(status, 200)
            self.assertEqual(entry["action"], "none")  # does not expire: nothing to do
        wait_for(lambda: self.db.one("SELECT status FROM platform_accounts WHERE id = %s",
                                     past) == "expired", 5, "-infinity expires")

    def test_sealed_value_that_does_not_open(self):
        garbage = insert_account(self.db, self.daemon, platform="x", access_in="2 hours",
                                 refresh=True)
        self.db.sql("UPDATE platform_accounts SET access_token = '\\x0102030405'::bytea "
                    "WHERE id = %s", garbage)
        # A valid sealed value copied from another account must not open either.
        other = insert_account(self.db, self.daemon, platform="x", access_in="2 hours",
                               refresh=True)
        copied = insert_account(self.db, self.daemon, platform="x", access_in="2 hours",
                                refresh=True)
        self.db.sql("UPDATE platform_accounts SET refresh_token = "
                    "(SELECT refresh_token FROM platform_accounts WHERE id = %s) WHERE id = %s",
                    other, copied)
        self.daemon.start()
        for a in (garbage, copied, other):
            self.db.one("SELECT tokend_request_refresh(%s)", a)
        for a in (garbage, copied):
            wait_for(lambda: self.db.one("SELECT last_error_code FROM platform_accounts "
                                         "WHERE id = %s", a) == "token_undecryptable",
                     5, "undecryptable recorded")
        wait_for(lambda: self.db.one("SELECT last_error_code FROM platform_accounts WHERE id = %s",
                                     other) == "network_error", 5, "good account handled")
        log = self.daemon.log_text()
        self.assertIn(f"account {garbage} (x): access_token does not open", log)
        self.assertIn(f"account {copied} (x): refresh_token does not open", log)
        self.assertNotIn("rt-" + other, log)  # never a token in the log
        self.assertEqual(
            self.daemon.metric('tokend_bad_input_total{kind="undecryptable_token"}'), 2)
        self.daemon.assert_running()

    def test_malformed_notification(self):
        self.daemon.start()
        self.db.sql("SELECT pg_notify('tokend_accounts', 'garbage')")
        self.db.sql("SELECT pg_notify('tokend_accounts', 'U:not-a-uuid')")
        wait_for(lambda: self.daemon.metric('tokend_bad_input_total{kind="notification"}') == 2,
                 2, "malformed notifications counted")
        a = insert_account(self.db, self.daemon, platform="linkedin", access_in="30 days")
        wait_for(lambda: a in self.daemon.schedule(), 1, "later notifications still work")

    def test_refresh_request_for_unknown_account(self):
        self.daemon.start()
        self.assertFalse(self.db.one("SELECT tokend_request_refresh(%s)", str(uuid.uuid4())))
        with self.assertRaises(psycopg2.Error):
            self.db.one("SELECT tokend_request_refresh('not-a-uuid')")


class BadRequests(DaemonTest, unittest.TestCase):
    def test_admin_api_rejects_bad_requests_with_json(self):
        self.daemon.start()
        cases = [
            ("GET", "/v1/schedule?limit=abc", 400),
            ("GET", "/v1/schedule?limit=0", 400),
            ("GET", "/v1/schedule?limit=100000", 400),
            ("GET", "/v1/accounts/not-a-uuid", 400),
            ("GET", f"/v1/accounts/{uuid.uuid4()}", 404),
            ("GET", "/nope", 404),
            ("POST", "/healthz", 405),
            ("DELETE", "/v1/schedule", 405),
        ]
        for method, path, want in cases:
            status, body = self.daemon.request(method, path)
            self.assertEqual(status, want, f"{method} {path}")
            self.assertIn('"error"', body, f"{method} {path}")
        self.assertEqual(self.daemon.metric('tokend_bad_input_total{kind="admin_request"}'),
                         len(cases))
        self.assertEqual(self.daemon.get("/healthz"), (200, {"status": "ok"}))


class AdminToken(DaemonTest, unittest.TestCase):
    """admin_token_file: every endpoint but /healthz needs the bearer token."""

    token = "tok-3f9c1a7e5b2d4c6e8a0b1c2d3e4f5a6b"

    def setUp(self):
        super().setUp()
        self.token_file = os.path.join(self.daemon.dir, "admin_token")
        self.write_token(self.token + "\n")
        self.daemon.settings["admin_token_file"] = self.token_file
        self.daemon.write_config()

    def write_token(self, text):
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)

    def raw(self, method, path, authorization=None):
        """(status, WWW-Authenticate, body) of one request."""
        headers = {"Authorization": authorization} if authorization is not None else {}
        req = urllib.request.Request(f"http://127.0.0.1:{self.daemon.port}{path}",
                                     method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, resp.headers.get("WWW-Authenticate"), resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("WWW-Authenticate"), e.read().decode()

    def test_requests_without_the_token_get_401(self):
        self.daemon.admin_token = self.token
        self.daemon.start()
        a = insert_account(self.db, self.daemon, platform="linkedin", access_in="30 days")
        wait_for(lambda: a in self.daemon.schedule(), 5, "account scheduled")
        refused = [
            ("GET", "/metrics", None),
            ("GET", "/readyz", None),
            ("GET", "/v1/schedule", ""),
            ("GET", f"/v1/accounts/{a}", "Bearer"),
            ("GET", f"/v1/accounts/{a}", "Bearer "),
            ("GET", "/metrics", "Bearer wrong"),
            ("GET", "/metrics", f"Bearer {self.token}x"),       # longer
            ("GET", "/metrics", f"Bearer {self.token[:-1]}"),   # shorter
            ("GET", "/metrics", f"Basic {self.token}"),
            ("GET", "/metrics", self.token),
            ("GET", "/metrics", f"Bearer {self.token} extra"),
            ("POST", f"/v1/accounts/{a}/refresh", None),
            ("DELETE", "/v1/schedule", None),                   # 401 before 405
            ("GET", "/nope", None),                             # 401 before 404
        ]
        for method, path, authorization in refused:
            status, challenge, body = self.raw(method, path, authorization)
            what = f"{method} {path} with {authorization!r}"
            self.assertEqual(status, 401, what)
            self.assertEqual(challenge, 'Bearer realm="tokend"', what)
            self.assertIn('"error"', body, what)
            self.assertIn('"status":401', body, what)
        # The token opens everything; the scheme is case-insensitive.
        self.assertEqual(self.raw("GET", "/metrics", f"Bearer {self.token}")[0], 200)
        self.assertEqual(self.raw("GET", "/readyz", f"bearer {self.token}")[0], 200)
        self.assertEqual(self.raw("GET", f"/v1/accounts/{a}", f"BEARER  {self.token}")[0], 200)
        # Liveness needs no token; bad requests with it get their own 4xx.
        self.assertEqual(self.raw("GET", "/healthz")[:1], (200,))
        self.assertEqual(self.raw("GET", "/v1/schedule?limit=abc", f"Bearer {self.token}")[0],
                         400)
        self.assertEqual(self.raw("GET", f"/v1/accounts/{uuid.uuid4()}",
                                  f"Bearer {self.token}")[0], 404)
        self.assertEqual(self.raw("POST", "/healthz")[0], 405)
        self.assertEqual(self.daemon.metric('tokend_bad_input_total{kind="admin_request"}'),
                         len(refused) + 3)
        log = self.daemon.log_text()
        self.assertIn("admin: refused a request from 127.0.0.1:", log)
        self.assertIn("bearer token required", log)
        self.assertNotIn(self.token, log)
        self.daemon.assert_running()

    def test_unusable_token_file_stops_the_start(self):
        for content, why in (("", "printable"), ("two words\n", "printable"),
                             ("tab\there\n", "printable"), (None, "cannot open")):
            if content is None:
                os.unlink(self.token_file)
            else:
                self.write_token(content)
            run = subprocess.run([TOKEND, "-c", self.daemon.config], capture_output=True,
                                 text=True, timeout=30, env=daemon_env())
            with open(self.daemon.log_path, "a") as log:  # shown by tearDown on failure
                log.write(run.stdout + run.stderr)
            self.assertNotEqual(run.returncode, 0, content)
            self.assertIn("admin_token_file", run.stderr + run.stdout, content)
            self.assertIn(why, run.stderr + run.stdout, content)


if __name__ == "__main__":
    unittest.main(verbosity=2)
