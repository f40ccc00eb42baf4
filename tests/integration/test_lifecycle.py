"""Actions that need no platform: a linkedin account without a refresh token
gets token.expiring (reauth_required) before expiry and, at expiry, status
expired + token.revoked — each an outbox row written with the state change,
at its due time, once."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import DaemonTest, insert_account, wait_for  # noqa: E402

SLACK = 0.5  # seconds: the daemon's and the database's clocks are the same clock


class LinkedinLifecycle(DaemonTest, unittest.TestCase):
    # Shrink "7 days ahead" to 3 seconds so the test watches the whole life.
    settings = {"platform.linkedin.reauth_warn_lead": "3s"}

    def outbox(self, account_id):
        return self.db.sql(
            "SELECT o.type, o.reason, o.token_version, o.data, "
            "extract(epoch FROM o.created_at - a.access_expires_at)::float8 "
            "FROM tokend_outbox o JOIN platform_accounts a ON a.id = o.account_id "
            "WHERE o.account_id = %s ORDER BY o.id", account_id)

    def test_warn_then_expire_at_their_times(self):
        self.daemon.start()
        a = insert_account(self.db, self.daemon, platform="linkedin", access_in="6 seconds")
        entry = wait_for(lambda: self.daemon.schedule().get(a), 1, "account scheduled")
        self.assertEqual(entry["action"], "warn")

        wait_for(lambda: len(self.outbox(a)) >= 1, 10, "token.expiring")
        self.assertEqual(self.db.one("SELECT status FROM platform_accounts WHERE id = %s", a),
                         "active")
        wait_for(lambda: self.db.one("SELECT status FROM platform_accounts WHERE id = %s", a)
                 == "expired", 10, "status expired")

        events = self.outbox(a)
        self.assertEqual([(e[0], e[1]) for e in events],
                         [("token.expiring", "reauth_required"), ("token.revoked", "expired")])
        warn_at, revoked_at = events[0][4], events[1][4]
        # Not before due (exp - 3 s and exp), not absurdly late.
        self.assertGreaterEqual(warn_at, -3 - SLACK)
        self.assertLess(warn_at, 0)
        self.assertGreaterEqual(revoked_at, -SLACK)
        self.assertLess(revoked_at, 5)
        data = events[1][3]
        self.assertEqual(data["account_id"], a)
        self.assertEqual(data["platform"], "linkedin")
        self.assertEqual(data["reason"], "expired")
        self.assertEqual(data["error"]["code"], "platform_auth_failed")
        self.assertEqual(events[0][3]["reason"], "reauth_required")
        for e in events:
            self.assertNotIn("at-" + a, str(e[3]))  # never token material

        # Expired: out of the heap, and nothing more is recorded.
        wait_for(lambda: a not in self.daemon.schedule(), 2, "expired account leaves the heap")
        time.sleep(1)
        self.assertEqual(len(self.outbox(a)), 2)

    def test_events_fire_once_across_a_restart(self):
        a = insert_account(self.db, self.daemon, platform="linkedin", access_in="2 seconds")
        self.daemon.start()
        wait_for(lambda: self.db.one("SELECT status FROM platform_accounts WHERE id = %s", a)
                 == "expired", 10, "status expired")
        self.daemon.stop()
        self.daemon.start()
        time.sleep(1)
        types = [e[0] for e in self.outbox(a)]
        self.assertEqual(types, ["token.expiring", "token.revoked"])

    def test_past_due_account_at_start_expires(self):
        a = insert_account(self.db, self.daemon, platform="linkedin", access_in="-1 hour")
        self.daemon.start()
        wait_for(lambda: self.db.one("SELECT status FROM platform_accounts WHERE id = %s", a)
                 == "expired", 5, "past-due account expired")
        # The warning window was missed entirely: the revocation says what happened.
        self.assertIn(("token.revoked", "expired"), [(e[0], e[1]) for e in self.outbox(a)])

    def test_fencing_reauth_before_warning_wins(self):
        self.daemon.start()
        a = insert_account(self.db, self.daemon, platform="linkedin", access_in="4 seconds")
        wait_for(lambda: a in self.daemon.schedule(), 1, "scheduled")
        # The user re-authorises before the warning: a new token, 60 days.
        self.db.sql("UPDATE platform_accounts SET access_token = %s, "
                    "access_expires_at = now() + interval '60 days' WHERE id = %s",
                    self.daemon.seal(a, "access_token", "fresh"), a)
        time.sleep(5)
        self.assertEqual(self.outbox(a), [])
        self.assertEqual(self.db.one("SELECT status FROM platform_accounts WHERE id = %s", a),
                         "active")


if __name__ == "__main__":
    unittest.main(verbosity=2)
