"""The write path's SQL functions, fenced as docs/schema.md says: a lapsed
job cannot touch another instance's live lease; tokens stored for the
version a dead-grant revocation was made at bring the account back (the
revocation came from a spent token); claims and stores many at once."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, Database, insert_account  # noqa: E402


class WriteFencing(unittest.TestCase):
    def setUp(self):
        self.db = Database()
        self.daemon = Daemon(self.db)
        self.daemon.migrate()
        self.a = insert_account(self.db, self.daemon, platform="x", access_in="1 hour",
                                refresh=True)

    def tearDown(self):
        self.db.close()

    def row(self, *cols):
        return self.db.sql(f"SELECT {', '.join(cols)} FROM platform_accounts WHERE id = %s",
                           self.a)[0]

    def claim(self, owner):
        return self.db.sql("SELECT id FROM tokend_claim_many(ARRAY[%s::uuid], ARRAY[1::int8], "
                           "%s, 60000)", self.a, owner)

    def test_a_live_lease_is_only_its_owners(self):
        self.assertEqual(len(self.claim("A")), 1)
        self.assertEqual(self.claim("B"), [])  # A holds it
        # B's late bookkeeping neither records on nor frees A's lease.
        self.assertIsNone(self.db.one("SELECT tokend_record_failure(%s, 1, 'x', now(), 'B')",
                                      self.a))
        self.assertIsNone(self.db.one("SELECT tokend_record_check(%s, 1, 'B')", self.a))
        self.assertEqual(self.db.one("SELECT tokend_revoke(%s, 1, 'platform_auth_failed', "
                                     "NULL, NULL, 'B')", self.a), "leased")
        self.assertEqual(self.row("lease_owner", "status", "failure_count"), ("A", "active", 0))
        # A's own failure is recorded and releases the lease.
        self.assertTrue(self.db.one("SELECT tokend_record_failure(%s, 1, 'x', now(), 'A')",
                                    self.a))
        self.assertEqual(self.row("lease_owner", "failure_count"), (None, 1))

    def test_stored_tokens_undo_a_revocation_from_a_spent_token(self):
        self.assertEqual(self.db.one("SELECT tokend_revoke(%s, 1, 'platform_auth_failed', "
                                     "'invalid_request', NULL, 'B')", self.a), "revoked")
        stored = self.db.sql("SELECT tokend_store_many(ARRAY[%s::uuid], ARRAY[1::int8], "
                             "ARRAY['\\x01'::bytea], ARRAY[NULL::bytea], "
                             "ARRAY[extract(epoch FROM now()) + 7200], ARRAY[NULL::float8], "
                             "ARRAY[false])", self.a)
        self.assertEqual(len(stored), 1)
        self.assertEqual(self.row("status", "token_version"), ("active", 2))
        events = [r[0] for r in self.db.sql("SELECT type FROM tokend_outbox WHERE account_id = %s "
                                            "ORDER BY id", self.a)]
        self.assertEqual(events, ["token.revoked", "token.recovered"])

    def test_other_revocations_and_stale_versions_stay(self):
        self.db.sql("UPDATE platform_accounts SET status = 'revoked', "
                    "last_error_code = 'operator' WHERE id = %s", self.a)
        self.assertFalse(self.db.one("SELECT tokend_store_tokens(%s, 1, '\\x01', NULL, "
                                     "now() + interval '2 hours', NULL, false)", self.a))
        self.db.sql("UPDATE platform_accounts SET status = 'active' WHERE id = %s", self.a)
        self.assertFalse(self.db.one("SELECT tokend_store_tokens(%s, 0, '\\x01', NULL, "
                                     "now() + interval '2 hours', NULL, false)", self.a))


if __name__ == "__main__":
    unittest.main(verbosity=2)
