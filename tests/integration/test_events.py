"""Events on the Redis stream (issue 5): what the lifecycle records in the
outbox reaches the stream in order per account, with the outbox's event ids,
each event valid by docs/events.schema.json (checked by python3-jsonschema);
token.recovered; invalid rows never reach the stream; the Pub/Sub nudge;
pruning; tokenctl events tail. The fault tests are in test_events_faults.py."""

import json
import os
import signal
import subprocess
import sys
import time
import unittest

import psycopg2
import redis

sys.path.insert(0, os.path.dirname(__file__))
from harness import (DaemonTest, TOKENCTL, daemon_env, insert_account,  # noqa: E402
                     test_redis_url, wait_for)
from events_util import (accounts, check_event, expire, fire_expiring,  # noqa: E402
                         metric, outbox, sanitizer_findings, stream_events, wait_delivered,
                         wait_log)

REDIS_PORT = os.environ.get("TOKEND_TEST_REDIS_PORT")


class EventsTest(DaemonTest):
    def setUp(self):
        if not REDIS_PORT:
            raise unittest.SkipTest("TOKEND_TEST_REDIS_PORT is not set (run through scripts/test)")
        super().setUp()
        self.redis = redis.Redis(host="127.0.0.1", port=int(REDIS_PORT), decode_responses=True)
        self.stream = self.daemon.settings["events_stream"]

    def tearDown(self):
        super().tearDown()
        if REDIS_PORT:
            self.redis.delete(self.stream)
        self.assertEqual(sanitizer_findings(self.daemon), [])

    def events(self):
        return stream_events(self.redis, self.stream)


class LifecycleEvents(EventsTest, unittest.TestCase):
    settings = {"platform.linkedin.reauth_warn_lead": "3s"}

    def test_linkedin_lifecycle_arrives_in_order_with_outbox_ids(self):
        self.daemon.start()
        a = insert_account(self.db, self.daemon, platform="linkedin", access_in="5 seconds")
        events = wait_for(lambda: len(self.events()) >= 2 and self.events(), 15,
                          "token.expiring and token.revoked on the stream")
        rows = outbox(self.db)
        self.assertEqual([e["id"] for e in events], [r[0] for r in rows])
        self.assertEqual([(e["type"], e["data"]["reason"]) for e in events],
                         [("token.expiring", "reauth_required"), ("token.revoked", "expired")])
        for e in events:
            self.assertEqual(e["subject"], a)
            self.assertEqual(e["source"], "tokend")
            self.assertEqual(e["data"]["platform"], "linkedin")
            self.assertNotIn("at-", json.dumps(e))  # never token material
        self.assertEqual(events[1]["data"]["error"]["code"], "platform_auth_failed")
        wait_for(lambda: all(r[4] for r in outbox(self.db)), 5, "rows marked published")
        self.assertEqual(metric(self.daemon, 'tokend_events_published_total{type="token.revoked"}'),
                         1)
        status, body = self.daemon.get("/readyz")
        self.assertEqual(status, 200)
        self.assertTrue(body["events"]["redis"])
        self.assertTrue(body["events"]["relaying"])

    def test_order_per_account_under_interleaving(self):
        ids = accounts(self.db, 60)
        self.daemon.start()
        for reason in ("refresh_failing", "reauth_required"):
            for a in ids:
                fire_expiring(self.db, a, reason)
        for a in ids:
            expire(self.db, a)
        events = wait_delivered(self.redis, self.stream, self.db)
        self.assertEqual(len(events), 180)
        by_account = {}
        for e in events:
            by_account.setdefault(e["subject"], []).append((e["type"], e["data"]["reason"]))
        for a in ids:
            self.assertEqual(by_account[a], [("token.expiring", "refresh_failing"),
                                             ("token.expiring", "reauth_required"),
                                             ("token.revoked", "expired")])
        # The stream is the outbox in id order, and nothing was sent twice.
        self.assertEqual([e["id"] for e in self.events()], [r[0] for r in outbox(self.db)])


class LateCommit(EventsTest, unittest.TestCase):
    settings = {"relay_batch": "10"}

    def test_a_late_commit_keeps_the_account_order(self):
        """A transaction takes an outbox id for account a and holds it while
        3000 later ids commit; in the middle of their drain it commits and a's
        next event follows at once. The late row is not passed by: a's events
        arrive in their order (a relay reading "ids after the last batch"
        would send a's second event first)."""
        (a,) = accounts(self.db, 1)
        accounts(self.db, 3000)
        self.daemon.start()
        slow = psycopg2.connect(self.db.dsn)
        with slow.cursor() as cur:
            cur.execute("SELECT tokend_fire_expiring(%s, 1, 'refresh_failing')", (a,))
        self.db.sql("SELECT tokend_fire_expiring(id, token_version, 'refresh_failing') "
                    "FROM platform_accounts WHERE id <> %s", a)
        published = lambda: self.db.one(  # noqa: E731
            "SELECT count(*) FROM tokend_outbox WHERE published_at IS NOT NULL")
        wait_for(lambda: published() >= 200, 20, "the drain under way", interval=0.005)
        slow.commit()
        slow.close()
        expire(self.db, a)
        self.assertLess(published(), 3000, "the drain ended too soon to test anything")
        events = wait_delivered(self.redis, self.stream, self.db, timeout=60)
        self.assertEqual(len(events), 3002)
        self.assertEqual([e["type"] for e in events if e["subject"] == a],
                         ["token.expiring", "token.revoked"])
        self.assertEqual(self.db.one("SELECT count(*) FROM tokend_outbox_pending"), 0)


class RecoveredEvents(EventsTest, unittest.TestCase):
    settings = {"platform.linkedin.reauth_warn_lead": "3s"}

    def types_of(self, account_id):
        return [(e["type"], e["data"]["reason"]) for e in self.events()
                if e["subject"] == account_id]

    def test_reauthorised_after_a_warning(self):
        self.daemon.start()
        a = insert_account(self.db, self.daemon, platform="linkedin", access_in="5 seconds")
        wait_for(lambda: self.types_of(a), 10, "token.expiring")
        # The API re-authorises: new token, 60 days.
        self.db.sql("UPDATE platform_accounts SET access_token = %s, "
                    "access_expires_at = now() + interval '60 days' WHERE id = %s",
                    self.daemon.seal(a, "access_token", "fresh"), a)
        wait_for(lambda: len(self.types_of(a)) == 2, 10, "token.recovered")
        self.assertEqual(self.types_of(a), [("token.expiring", "reauth_required"),
                                            ("token.recovered", "reauthorized")])
        recovered = self.events()[-1]
        self.assertEqual(recovered["data"]["token_version"], 2)
        self.assertNotIn("error", recovered["data"])
        time.sleep(7)  # the old deadline passes: nothing more for the new version
        self.assertEqual(len(self.types_of(a)), 2)
        self.assertEqual(self.db.one("SELECT status FROM platform_accounts WHERE id = %s", a),
                         "active")

    def test_refreshed_and_back_from_expired(self):
        warned, revoked, quiet = accounts(self.db, 3)
        self.daemon.start()
        fire_expiring(self.db, warned, "refresh_failing")
        expire(self.db, revoked)
        # A refresh (the engine moves last_refresh_at with the new token) ...
        self.db.sql("UPDATE platform_accounts SET access_token = '\\x01', "
                    "last_refresh_at = now() WHERE id = %s", warned)
        # ... a re-auth of an expired account, and a re-auth nobody was warned about.
        self.db.sql("UPDATE platform_accounts SET access_token = '\\x02', status = 'active' "
                    "WHERE id = %s", revoked)
        self.db.sql("UPDATE platform_accounts SET access_token = '\\x03' WHERE id = %s", quiet)
        wait_delivered(self.redis, self.stream, self.db)
        self.assertEqual(self.types_of(warned), [("token.expiring", "refresh_failing"),
                                                 ("token.recovered", "refreshed")])
        self.assertEqual(self.types_of(revoked), [("token.revoked", "expired"),
                                                  ("token.recovered", "reauthorized")])
        self.assertEqual(self.types_of(quiet), [])

    def test_recovered_once_per_version(self):
        (a,) = accounts(self.db, 1)
        fire_expiring(self.db, a)
        self.db.sql("UPDATE platform_accounts SET access_token = '\\x01' WHERE id = %s", a)
        self.db.sql("UPDATE platform_accounts SET failure_count = 1 WHERE id = %s", a)
        self.db.sql("UPDATE platform_accounts SET access_token = '\\x02' WHERE id = %s", a)
        types = [r[1] for r in outbox(self.db)]
        self.assertEqual(types, ["token.expiring", "token.recovered"])


class InvalidRows(EventsTest, unittest.TestCase):
    def test_invalid_payload_never_reaches_the_stream(self):
        a, b = accounts(self.db, 2)
        # Rows no tokend function would write: token material in data, a
        # data.account_id that is not the subject, a reason that is not one.
        self.db.sql("INSERT INTO tokend_outbox (type, account_id, token_version, reason, data) "
                    "VALUES ('token.expiring', %s, 1, 'x', jsonb_build_object('account_id', "
                    "%s::text, 'platform', 'linkedin', 'external_id', 'e', 'token_version', 1, "
                    "'reason', 'refresh_failing', 'access_token', 'SECRET-TOKEN'))", a, a)
        self.db.sql("INSERT INTO tokend_outbox (type, account_id, token_version, reason, data) "
                    "VALUES ('token.expiring', %s, 1, 'y', jsonb_build_object('account_id', "
                    "%s::text, 'platform', 'linkedin', 'external_id', 'e', 'token_version', 1, "
                    "'reason', 'refresh_failing'))", a, b)
        self.db.sql("INSERT INTO tokend_outbox (type, account_id, token_version, reason, data) "
                    "VALUES ('token.recovered', %s, 1, 'z', jsonb_build_object('account_id', "
                    "%s::text, 'platform', 'linkedin', 'external_id', 'e', 'token_version', 1, "
                    "'reason', 'because'))", a, a)
        fire_expiring(self.db, b)
        self.daemon.start()
        wait_for(lambda: len(self.events()) == 1, 10, "the valid event")
        self.assertEqual(self.events()[0]["subject"], b)
        rejected = self.db.sql("SELECT reason, rejected_reason FROM tokend_outbox "
                               "WHERE rejected_at IS NOT NULL ORDER BY id")
        self.assertEqual([r[0] for r in rejected], ["x", "y", "z"])
        self.assertIn('unexpected member "access_token"', rejected[0][1])
        self.assertIn("not the subject", rejected[1][1])
        self.assertIn("not a reason of token.recovered", rejected[2][1])
        wait_log(self.daemon, "set aside (rejected_at)")
        self.assertNotIn("SECRET-TOKEN", self.daemon.log_text())
        self.assertEqual(metric(self.daemon, "tokend_events_rejected_total"), 3)
        time.sleep(1)
        self.assertEqual(len(self.events()), 1)
        # The backlog does not count rows set aside.
        wait_for(lambda: self.daemon.get("/readyz")[1]["events"]["backlog"] == 0, 8,
                 "backlog 0")
        # An operator fixes a row and sends it again.
        row = self.db.one("SELECT id FROM tokend_outbox WHERE reason = 'x'")
        self.db.sql("UPDATE tokend_outbox SET data = data - 'access_token' WHERE id = %s", row)
        self.assertTrue(self.db.one("SELECT tokend_outbox_requeue(%s)", row))
        wait_for(lambda: len(self.events()) == 2, 10, "the fixed row")
        self.assertEqual(self.events()[1]["subject"], a)
        self.assertIsNone(self.db.one("SELECT rejected_at FROM tokend_outbox WHERE id = %s",
                                      row))


class Nudges(EventsTest, unittest.TestCase):
    def setUp(self):
        self.settings = {"events_channel": "tokend-it-nudge-" + str(os.getpid())}
        super().setUp()

    def test_publish_on_the_channel_after_the_stream(self):
        pubsub = self.redis.pubsub()
        pubsub.subscribe(self.settings["events_channel"])
        wait_for(lambda: pubsub.get_message(timeout=0.1), 5, "subscribed")
        (a,) = accounts(self.db, 1)
        self.daemon.start()
        fire_expiring(self.db, a)
        message = wait_for(lambda: pubsub.get_message(timeout=0.1), 10, "a nudge")
        event = json.loads(message["data"])
        self.assertEqual(event, self.events()[0])
        pubsub.close()


class Pruning(EventsTest, unittest.TestCase):
    settings = {"outbox_retention": "1d"}

    def test_published_rows_pruned_after_retention(self):
        a, b = accounts(self.db, 2)
        fire_expiring(self.db, a)
        fire_expiring(self.db, b)
        self.daemon.start()
        wait_delivered(self.redis, self.stream, self.db)
        self.daemon.stop()
        self.db.sql("UPDATE tokend_outbox SET published_at = now() - interval '2 days' "
                    "WHERE account_id = %s", a)
        self.daemon.start()  # the relay prunes when it takes the lock
        wait_for(lambda: self.db.one("SELECT count(*) FROM tokend_outbox") == 1, 10,
                 "the old published row pruned")
        self.assertEqual(self.db.one("SELECT account_id::text FROM tokend_outbox"), b)
        self.assertEqual(metric(self.daemon, "tokend_outbox_pruned_total"), 1)


class Reload(EventsTest, unittest.TestCase):
    def test_sighup_moves_events_to_a_new_stream(self):
        a, b = accounts(self.db, 2)
        self.daemon.start()
        fire_expiring(self.db, a)
        wait_for(lambda: len(self.events()) == 1, 10, "the first event")
        new_stream = self.stream + ":v2"
        self.daemon.settings.update(events_stream=new_stream, relay_batch="7",
                                    redis_url=test_redis_url().replace("/0", "/1"))
        self.daemon.write_config()
        self.daemon.signal(signal.SIGHUP)
        wait_log(self.daemon, "reload: configuration and keyring applied")
        self.assertIn("redis_url changed; takes effect after restart", self.daemon.log_text())
        fire_expiring(self.db, b)
        try:
            wait_for(lambda: self.redis.xlen(new_stream) == 1, 10, "the second event")
            self.assertEqual(stream_events(self.redis, new_stream)[0]["subject"], b)
            self.assertEqual(len(self.events()), 1)
        finally:
            self.redis.delete(new_stream)


class TokenctlTail(EventsTest, unittest.TestCase):
    def tail(self, *args, timeout=30):
        return subprocess.run([TOKENCTL, "events", "tail", "--redis-url", test_redis_url(),
                               "--stream", self.stream, *args], capture_output=True, text=True,
                              timeout=timeout, env=daemon_env())

    def test_tail_prints_and_acknowledges(self):
        ids = accounts(self.db, 3)
        self.daemon.start()
        for a in ids:
            fire_expiring(self.db, a)
        wait_delivered(self.redis, self.stream, self.db)
        run = self.tail("--group", "g1", "--from-start", "--count", "3", "--timeout", "10")
        self.assertEqual(run.returncode, 0, run.stderr)
        printed = [json.loads(line) for line in run.stdout.splitlines()]
        self.assertEqual([e["subject"] for e in printed], ids)
        for fields_event in printed:
            check_event({"event": json.dumps(fields_event), "id": fields_event["id"],
                         "type": fields_event["type"]})
        self.assertEqual(self.redis.xpending(self.stream, "g1")["pending"], 0)
        # The group has consumed them: nothing more for g1 ...
        again = self.tail("--group", "g1", "--count", "1", "--timeout", "1")
        self.assertEqual(again.returncode, 1)
        self.assertEqual(again.stdout, "")
        # ... while a new group starting at the beginning sees them all, and a
        # group created now sees only new events.
        self.assertEqual(len(self.tail("--group", "g2", "--from-start", "--count", "3",
                                       "--timeout", "5").stdout.splitlines()), 3)
        late = subprocess.Popen([TOKENCTL, "events", "tail", "--redis-url", test_redis_url(),
                                 "--stream", self.stream, "--group", "g3", "--count", "1",
                                 "--timeout", "20"], stdout=subprocess.PIPE, text=True,
                                env=daemon_env())
        time.sleep(1)
        (b,) = accounts(self.db, 1)
        fire_expiring(self.db, b)
        out, _ = late.communicate(timeout=30)
        self.assertEqual(late.returncode, 0)
        self.assertEqual(json.loads(out)["subject"], b)

    def test_tail_redelivers_what_was_not_acknowledged(self):
        ids = accounts(self.db, 2)
        self.daemon.start()
        for a in ids:
            fire_expiring(self.db, a)
        wait_delivered(self.redis, self.stream, self.db)
        # A worker read both and died before acknowledging.
        self.redis.xgroup_create(self.stream, "g", id="0")
        self.redis.xreadgroup("g", "worker-1", {self.stream: ">"})
        run = self.tail("--group", "g", "--consumer", "worker-1", "--count", "2",
                        "--timeout", "5")
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual([json.loads(x)["subject"] for x in run.stdout.splitlines()], ids)
        self.assertEqual(self.redis.xpending(self.stream, "g")["pending"], 0)

    def test_bad_usage(self):
        run = self.tail("--count", "zero")
        self.assertEqual(run.returncode, 2)
        run = subprocess.run([TOKENCTL, "events", "tail", "--redis-url", "rediss://x"],
                             capture_output=True, text=True, env=daemon_env())
        self.assertEqual(run.returncode, 1)
        self.assertIn("TLS", run.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
