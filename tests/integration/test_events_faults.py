"""The outbox relay under faults, against real Redis servers of the tests' own:
Redis stopped while events are produced and started again; tokend killed
between the commit and the relay, and in the middle of a drain; Redis
answering errors (a wrong type at the stream key, OOM); two daemons on one
database. Every event arrives, a redelivery always carries the same id and
bytes, per-account order holds, and nothing is marked published that Redis
did not acknowledge."""

import os
import signal
import sys
import time
import unittest

import redis

sys.path.insert(0, os.path.dirname(__file__))
from harness import Daemon, DaemonTest, wait_for  # noqa: E402
from events_util import (RedisServer, accounts, expire, fire_expiring,  # noqa: E402
                         metric, outbox, sanitizer_findings, seed_outbox, stream_events,
                         wait_delivered, wait_log)


class PrivateRedisTest(DaemonTest):
    """A daemon relaying to a redis-server that the test stops and starts."""

    redis_args = ()
    redis_password = None

    def redis_url(self):
        return self.server.url

    def setUp(self):
        self.server = RedisServer(*self.redis_args)
        self.server.password = self.redis_password
        self.server.start()
        self.settings = dict(self.settings, redis_url=self.redis_url())
        super().setUp()
        self.stream = self.daemon.settings["events_stream"]

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            self.server.stop()
        self.assertEqual(sanitizer_findings(self.daemon), [])

    def events(self):
        return stream_events(self.server.client(), self.stream)

    def unpublished(self):
        return self.db.one("SELECT count(*) FROM tokend_outbox WHERE published_at IS NULL")


class RedisOutage(PrivateRedisTest, unittest.TestCase):
    def test_redis_stopped_then_started_every_event_arrives(self):
        ids = accounts(self.db, 40)
        self.daemon.start()
        for a in ids[:20]:
            fire_expiring(self.db, a)
        wait_delivered(self.server.client(), self.stream, self.db)

        self.server.stop()
        wait_for(lambda: metric(self.daemon, "tokend_redis_up") == 0, 10, "redis down seen")
        for a in ids[20:]:
            fire_expiring(self.db, a)
        for a in ids:
            expire(self.db, a)
        time.sleep(2)
        self.assertEqual(self.unpublished(), 60)  # nothing marked while Redis is away
        status, body = self.daemon.get("/readyz")
        self.assertEqual(status, 200)  # readiness does not flap with Redis
        self.assertFalse(body["events"]["redis"])
        wait_for(lambda: self.daemon.get("/readyz")[1]["events"]["backlog"] == 60, 8,
                 "backlog 60 reported")
        self.assertEqual(metric(self.daemon, "tokend_outbox_backlog"), 60)

        self.server.start()
        events = wait_delivered(self.server.client(), self.stream, self.db, timeout=30)
        self.assertEqual(len(events), 80)
        self.assertEqual([e["id"] for e in events], [r[0] for r in outbox(self.db)])
        for a in ids:
            self.assertEqual([e["type"] for e in events if e["subject"] == a],
                             ["token.expiring", "token.revoked"])
        wait_for(lambda: metric(self.daemon, "tokend_outbox_backlog") == 0, 8, "backlog 0")


class KilledDaemon(PrivateRedisTest, unittest.TestCase):
    settings = {"relay_batch": "100"}

    def test_killed_between_commit_and_relay(self):
        ids = accounts(self.db, 10)
        self.server.stop()
        self.daemon.start()
        for a in ids:
            fire_expiring(self.db, a)  # committed; Redis is away: not relayed
        time.sleep(1)
        self.daemon.signal(signal.SIGKILL)
        self.daemon.proc.wait(timeout=10)
        self.assertEqual(self.unpublished(), 10)
        self.server.start()
        self.daemon.stop()
        self.daemon.start()
        events = wait_delivered(self.server.client(), self.stream, self.db)
        self.assertEqual(sorted(e["subject"] for e in events), sorted(ids))

    def test_killed_in_the_middle_of_a_drain(self):
        seed_outbox(self.db, 20000)
        self.daemon.start()
        published = lambda: self.db.one(  # noqa: E731
            "SELECT count(*) FROM tokend_outbox WHERE published_at IS NOT NULL")
        wait_for(lambda: published() >= 3000, 30, "part of the backlog relayed", interval=0.01)
        self.daemon.signal(signal.SIGKILL)
        self.daemon.proc.wait(timeout=10)
        self.assertLess(published(), 20000, "killed too late to test anything")
        self.daemon.stop()
        self.daemon.start()
        events = wait_delivered(self.server.client(), self.stream, self.db, timeout=60)
        self.assertEqual(len(events), 20000)
        # In outbox order; a batch sent before the kill may come again, same bytes.
        self.assertEqual([e["id"] for e in events], [r[0] for r in outbox(self.db)])
        self.assertLessEqual(len(self.events()) - 20000, 100)  # at most one batch again


class ErrorReplies(PrivateRedisTest, unittest.TestCase):
    def check_refused_then_flows(self, words, fix):
        (a,) = accounts(self.db, 1)
        self.daemon.start()
        fire_expiring(self.db, a)
        wait_log(self.daemon, words)
        wait_log(self.daemon, "nothing marked published; retrying in")
        time.sleep(1.5)  # several retries, all refused
        self.assertEqual(self.unpublished(), 1)
        self.assertGreaterEqual(metric(self.daemon, "tokend_relay_failed_batches_total"), 2)
        fix()
        events = wait_delivered(self.server.client(), self.stream, self.db)
        self.assertEqual([e["subject"] for e in events], [a])
        wait_log(self.daemon, "delivering again after")

    def test_wrong_type_at_the_stream_key(self):
        client = self.server.client()
        client.set(self.stream, "not a stream")
        self.check_refused_then_flows("WRONGTYPE", lambda: client.delete(self.stream))

    def test_out_of_memory(self):
        client = self.server.client()
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")
        self.check_refused_then_flows("OOM command not allowed",
                                      lambda: client.config_set("maxmemory", "0"))

    def test_no_reply_drops_the_connection(self):
        (a,) = accounts(self.db, 1)
        self.daemon.start()
        wait_for(lambda: metric(self.daemon, "tokend_redis_up") == 1, 10, "redis up")
        self.server.proc.send_signal(signal.SIGSTOP)  # alive, silent
        try:
            fire_expiring(self.db, a)
            wait_log(self.daemon, "no reply to a batch within 15 s", timeout=25)
            self.assertEqual(self.unpublished(), 1)
        finally:
            self.server.proc.send_signal(signal.SIGCONT)
        events = wait_delivered(self.server.client(), self.stream, self.db, timeout=30)
        self.assertEqual([e["subject"] for e in events], [a])


class Connection(PrivateRedisTest, unittest.TestCase):
    """How the relay reaches Redis: a host name (resolved without blocking,
    evdns), a password (AUTH before anything), a wrong password (logged with
    Redis's words, retried, nothing marked)."""

    redis_args = ("--requirepass", "s3cret pass", "--databases", "4")
    redis_password = "s3cret pass"

    def redis_url(self):
        return f"redis://:s3cret%20pass@localhost:{self.server.port}/2"

    def test_host_name_password_and_database(self):
        (a,) = accounts(self.db, 1)
        self.daemon.start()
        fire_expiring(self.db, a)
        client = redis.Redis(host="127.0.0.1", port=self.server.port, password="s3cret pass",
                             db=2, decode_responses=True)
        events = wait_delivered(client, self.stream, self.db)
        self.assertEqual([e["subject"] for e in events], [a])
        self.assertNotIn("s3cret", self.daemon.log_text())

    def test_wrong_password(self):
        self.daemon.settings["redis_url"] = f"redis://:wrong@127.0.0.1:{self.server.port}/0"
        self.daemon.write_config()
        (a,) = accounts(self.db, 1)
        self.daemon.start()
        fire_expiring(self.db, a)
        wait_log(self.daemon, "AUTH refused: WRONGPASS")
        time.sleep(1)
        self.assertEqual(self.db.one("SELECT count(*) FROM tokend_outbox "
                                    "WHERE published_at IS NULL"), 1)
        self.assertEqual(metric(self.daemon, "tokend_redis_up"), 0)
        self.assertNotIn("wrong@", self.daemon.log_text())


class TwoDaemons(PrivateRedisTest, unittest.TestCase):
    settings = {"relay_batch": "50"}

    def setUp(self):
        super().setUp()
        self.other = Daemon(self.db, self.settings)

    def tearDown(self):
        self.other.stop()
        super().tearDown()
        self.assertEqual(sanitizer_findings(self.other), [])

    def test_one_relays_no_duplicates_and_the_other_takes_over(self):
        ids = accounts(self.db, 200)
        self.daemon.start()
        wait_for(lambda: metric(self.daemon, "tokend_relay_active") == 1, 10, "first relays")
        self.other.start()
        time.sleep(1)
        self.assertEqual(metric(self.other, "tokend_relay_active"), 0)
        for a in ids[:100]:
            fire_expiring(self.db, a)
        wait_delivered(self.server.client(), self.stream, self.db)
        self.assertEqual(len(self.events()), 100)  # exactly once: one relayer

        seed_outbox(self.db, 5000)
        wait_for(lambda: self.db.one("SELECT count(*) FROM tokend_outbox "
                                     "WHERE published_at IS NOT NULL") > 150, 20, "draining",
                 interval=0.01)
        self.daemon.signal(signal.SIGKILL)
        self.daemon.proc.wait(timeout=10)
        for a in ids[100:]:
            fire_expiring(self.db, a)
        wait_for(lambda: metric(self.other, "tokend_relay_active") == 1, 15, "the other relays")
        events = wait_delivered(self.server.client(), self.stream, self.db, timeout=60)
        self.assertEqual(len(events), 5200)
        self.assertEqual([e["id"] for e in events], [r[0] for r in outbox(self.db)])
        self.assertLessEqual(len(self.events()) - 5200, 50)


if __name__ == "__main__":
    unittest.main(verbosity=2)
