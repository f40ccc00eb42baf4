"""Rows inserted, updated and deleted while tokend runs show up in
/v1/schedule within a second (LISTEN/NOTIFY, no polling); a restart loads
what is there."""

import sys
import time
import unittest

sys.path.insert(0, __import__("os").path.dirname(__file__))
from harness import DaemonTest, insert_account, wait_for  # noqa: E402


class ScheduleSync(DaemonTest, unittest.TestCase):
    def test_existing_rows_are_loaded_at_start(self):
        a = insert_account(self.db, self.daemon, platform="linkedin", access_in="30 days")
        b = insert_account(self.db, self.daemon, platform="x", access_in="2 hours", refresh=True)
        self.daemon.start()
        sched = self.daemon.schedule()
        self.assertEqual(sched[a]["action"], "warn")  # linkedin without refresh: reauth warning
        self.assertEqual(sched[a]["platform"], "linkedin")
        self.assertEqual(sched[b]["action"], "refresh")
        # X refreshes ~5 minutes (plus at most 1 minute of jitter) before expiry.
        self.assertGreater(sched[b]["due_in_seconds"], 7200 - 6 * 60 - 5)
        self.assertLess(sched[b]["due_in_seconds"], 7200 - 5 * 60 + 1)

    def test_insert_update_delete_follow_within_a_second(self):
        self.daemon.start()
        t0 = time.monotonic()
        a = insert_account(self.db, self.daemon, platform="pinterest", access_in="30 days",
                           refresh=True)
        wait_for(lambda: a in self.daemon.schedule(), 1.0, "inserted row in the schedule")
        due_before = self.daemon.schedule()[a]["due_in_seconds"]

        self.db.sql("UPDATE platform_accounts SET access_expires_at = now() + interval '10 days'"
                    " WHERE id = %s", a)
        wait_for(lambda: self.daemon.schedule()[a]["due_in_seconds"] < due_before - 86400,
                 1.0, "updated expiry in the schedule")

        self.db.sql("UPDATE platform_accounts SET status = 'revoked' WHERE id = %s", a)
        wait_for(lambda: a not in self.daemon.schedule(), 1.0, "revoked row leaves the heap")

        self.db.sql("DELETE FROM platform_accounts WHERE id = %s", a)
        wait_for(lambda: self.daemon.get(f"/v1/accounts/{a}")[0] == 404, 1.0,
                 "deleted row forgotten")
        self.assertLess(time.monotonic() - t0, 30)

    def test_reauthorised_account_is_rescheduled(self):
        a = insert_account(self.db, self.daemon, platform="linkedin", access_in="1 day",
                           status="revoked")
        self.daemon.start()
        self.assertNotIn(a, self.daemon.schedule())
        # The API stores new tokens and reactivates the row.
        self.db.sql("UPDATE platform_accounts SET status = 'active', access_token = %s, "
                    "access_expires_at = now() + interval '60 days' WHERE id = %s",
                    self.daemon.seal(a, "access_token", "new-token"), a)
        entry = wait_for(lambda: self.daemon.schedule().get(a), 1.0, "re-authorised account")
        self.assertEqual(entry["action"], "warn")
        self.assertAlmostEqual(entry["due_in_seconds"], 53 * 86400, delta=60)
        self.assertEqual(self.db.one("SELECT token_version FROM platform_accounts WHERE id = %s",
                                     a), 2)

    def test_schedule_is_in_due_order_and_limited(self):
        ids = [insert_account(self.db, self.daemon, platform="linkedin",
                              access_in=f"{30 - i} days") for i in range(5)]
        self.daemon.start()
        status, body = self.daemon.get("/v1/schedule?limit=3")
        self.assertEqual(status, 200)
        self.assertEqual(body["accounts"], 5)
        got = [e["account_id"] for e in body["upcoming"]]
        self.assertEqual(got, [ids[4], ids[3], ids[2]])

    def test_refresh_request_through_sql_is_due_at_once(self):
        a = insert_account(self.db, self.daemon, platform="x", access_in="2 hours", refresh=True)
        self.daemon.start()
        self.assertEqual(self.db.one("SELECT tokend_request_refresh(%s)", a), True)
        # The platform is unreachable here (tests/integration/test_refresh.py
        # has the fake server): the attempt is made at once, fails as a
        # network error, and a retry is scheduled.
        wait_for(lambda: self.db.one("SELECT last_error_code FROM platform_accounts "
                                     "WHERE id = %s", a) == "network_error",
                 5, "the refresh request handled")
        self.assertIsNone(self.db.one("SELECT refresh_requested_at FROM platform_accounts "
                                      "WHERE id = %s", a))
        self.assertIn(f"account {a} (x): refresh failed, will retry", self.daemon.log_text())
        entry = wait_for(lambda: self.daemon.schedule().get(a), 2, "rescheduled")
        self.assertEqual(entry["action"], "retry")
        self.assertGreater(entry["due_in_seconds"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
