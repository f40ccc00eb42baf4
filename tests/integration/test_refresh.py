"""The refresh engine against the fake platform server: X and Bluesky
refreshed on schedule and on request, rotated tokens stored (proven by the
next refresh succeeding with no reuse of a spent token), dead grants
revoked, transient failures retried with backoff, bad bodies contained."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from fake import FakeDaemonTest  # noqa: E402
from harness import insert_account, refresh_token_of, wait_for  # noqa: E402


def row(db, account_id, *columns):
    cols = ", ".join(columns)
    return db.sql(f"SELECT {cols} FROM platform_accounts WHERE id = %s", account_id)[0]


class RefreshTest(FakeDaemonTest, unittest.TestCase):
    def refreshed(self, a, version):
        return lambda: self.version(a) >= version

    def request_refresh(self, a):
        self.assertTrue(self.db.one("SELECT tokend_request_refresh(%s)", a))


class XRefresh(RefreshTest):
    def test_due_token_is_refreshed_and_rotation_is_kept(self):
        a = insert_account(self.db, self.daemon, platform="x", access_in="4 minutes",
                           refresh=True)
        self.daemon.start()
        wait_for(self.refreshed(a, 2), 10, "first refresh")
        expires_in, status, failures = self.db.sql(
            "SELECT extract(epoch FROM access_expires_at - now()), status, failure_count "
            "FROM platform_accounts WHERE id = %s", a)[0]
        self.assertAlmostEqual(expires_in, 7200, delta=30)  # from expires_in, not a guess
        self.assertEqual((status, failures), ("active", 0))
        entry = self.daemon.schedule()[a]
        self.assertEqual(entry["action"], "refresh")
        self.assertGreater(entry["due_in_seconds"], 7200 - 6 * 60 - 30)
        # The rotated refresh token is what the database holds: the next
        # refresh uses it, and the fake sees no reuse of a spent token.
        self.request_refresh(a)
        wait_for(self.refreshed(a, 3), 10, "second refresh")
        stats = self.fake.stats("x")
        self.assertEqual(stats["reuse"], 0)
        self.assertEqual(stats["ok"], 2)
        self.assertNotIn(refresh_token_of("x", a), self.daemon.log_text())

    def test_admin_api_request_coalesces(self):
        a = insert_account(self.db, self.daemon, platform="x", access_in="2 hours",
                           refresh=True)
        self.daemon.start()
        # Five callers saw version 1 fail; whether their requests land before,
        # during or after the refresh, they make one refresh.
        for _ in range(5):
            status, body = self.daemon.request("POST",
                                               f"/v1/accounts/{a}/refresh?token_version=1")
            self.assertEqual(status, 202, body)
        wait_for(self.refreshed(a, 2), 10, "requested refresh")
        for _ in range(3):
            status, body = self.daemon.request("POST",
                                               f"/v1/accounts/{a}/refresh?token_version=1")
            self.assertEqual(status, 202, body)
        time.sleep(1)
        self.assertEqual(self.version(a), 2)
        self.assertEqual(self.fake.stats("x")["ok"], 1)
        status, _ = self.daemon.request("POST", f"/v1/accounts/{a}/refresh?token_version=x")
        self.assertEqual(status, 400)
        status, _ = self.daemon.request("POST", "/v1/accounts/00000000-0000-4000-8000-"
                                                "000000000000/refresh")
        self.assertEqual(status, 404)

    def test_dead_grant_is_revoked_with_an_event(self):
        a = insert_account(self.db, self.daemon, platform="x", access_in="4 minutes",
                           refresh=True)
        self.fake.revoke(refresh_token_of("x", a))
        self.daemon.start()
        wait_for(lambda: row(self.db, a, "status")[0] == "revoked", 10, "revoked")
        events = self.db.sql("SELECT type, reason, data FROM tokend_outbox WHERE account_id = %s",
                             a)
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0][0], "token.revoked")
        self.assertEqual(events[0][2]["error"]["code"], "platform_auth_failed")
        self.assertEqual(events[0][2]["error"]["upstream_code"], "invalid_request")
        self.assertNotIn(refresh_token_of("x", a), str(events[0][2]))

    def test_transient_failures_retry_with_backoff(self):
        a = insert_account(self.db, self.daemon, platform="x", access_in="4 minutes",
                           refresh=True)
        self.fake.fault("x", "500", count=1)
        self.daemon.start()
        wait_for(lambda: row(self.db, a, "failure_count")[0] == 1, 10, "failure recorded")
        code, wait_s = self.db.sql("SELECT last_error_code, extract(epoch FROM next_attempt_at "
                                   "- now()) FROM platform_accounts WHERE id = %s", a)[0]
        self.assertGreater(wait_s, 30)  # backoff, not an immediate retry
        self.assertEqual(self.daemon.schedule()[a]["action"], "retry")
        # Pull the retry forward: it succeeds, and the state is clean again.
        self.db.sql("UPDATE platform_accounts SET next_attempt_at = now() WHERE id = %s", a)
        self.request_refresh(a)
        wait_for(self.refreshed(a, 2), 10, "refresh after the fault")
        self.assertEqual(row(self.db, a, "failure_count", "last_error_code"), (0, None))

    def test_rate_limit_honours_reset_header(self):
        a = insert_account(self.db, self.daemon, platform="x", access_in="4 minutes",
                           refresh=True)
        self.fake.fault("x", "429", count=1, retry_after=600)
        self.daemon.start()
        wait_for(lambda: row(self.db, a, "failure_count")[0] == 1, 10, "rate limit recorded")
        wait_s = self.db.one("SELECT extract(epoch FROM next_attempt_at - now()) "
                             "FROM platform_accounts WHERE id = %s", a)
        self.assertGreater(wait_s, 590)

    def test_bad_bodies_are_contained(self):
        accounts = [insert_account(self.db, self.daemon, platform="x", access_in="4 minutes",
                                   refresh=True) for _ in range(4)]
        good = insert_account(self.db, self.daemon, platform="youtube", access_in="3 minutes",
                              refresh=True)
        for kind in ("malformed", "oversized", "wrong_types"):
            self.fake.fault("x", kind, count=1)
        # curl resends once when a reused connection is reset before any
        # answer, so a reset must happen twice to be seen.
        self.fake.fault("x", "reset", count=2)
        self.daemon.start()
        for a in accounts:
            wait_for(lambda: row(self.db, a, "failure_count")[0] >= 1, 15, "failure recorded")
            self.assertEqual(row(self.db, a, "status")[0], "active")
        wait_for(self.refreshed(good, 2), 10, "other accounts unaffected")
        self.fake.clear_faults()
        self.assertGreaterEqual(
            self.daemon.metric('tokend_bad_input_total{kind="upstream_body"}'), 3)
        self.daemon.assert_running()


class BlueskyRefresh(RefreshTest):
    def test_session_refreshed_from_jwt_expiry_and_on_request(self):
        a = insert_account(self.db, self.daemon, platform="bluesky", access_in="5 minutes",
                           refresh=True, external_id="did:plc:test")
        self.daemon.start()
        wait_for(self.refreshed(a, 2), 10, "refreshSession")
        expires_in = self.db.one("SELECT extract(epoch FROM access_expires_at - now()) "
                                 "FROM platform_accounts WHERE id = %s", a)
        self.assertAlmostEqual(expires_in, 7200, delta=60)  # the JWT's exp
        self.request_refresh(a)  # the API saw a 401
        wait_for(self.refreshed(a, 3), 10, "refresh on request")
        self.assertEqual(self.fake.stats("bluesky")["reuse"], 0)

    def test_dead_refresh_jwt_falls_back_to_app_password(self):
        a = insert_account(self.db, self.daemon, platform="bluesky", access_in="5 minutes",
                           refresh=True, external_id="alice.test")
        self.db.sql("UPDATE platform_accounts SET app_password = %s WHERE id = %s",
                    self.daemon.seal(a, "app_password", "bluesky-app-password"), a)
        self.fake.revoke(refresh_token_of("bluesky", a))
        self.daemon.start()
        wait_for(self.refreshed(a, 3), 10, "new session from the app password")
        self.assertEqual(row(self.db, a, "status")[0], "active")


if __name__ == "__main__":
    unittest.main(verbosity=2)
