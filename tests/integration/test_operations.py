"""Operating the daemon: SIGHUP reloads (a broken config or keyring is
rejected and the old one keeps running), --check-config, migrations that are
safe to rerun and to run concurrently, losing PostgreSQL and getting it
back, SIGTERM."""

import os
import signal
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (TOKEND, Daemon, DaemonTest, Database, daemon_env, insert_account,
                     wait_for)  # noqa: E402


class Reload(DaemonTest, unittest.TestCase):
    def test_broken_config_keeps_the_old_one(self):
        a = insert_account(self.db, self.daemon, platform="linkedin", access_in="30 days")
        self.daemon.start()
        before = self.daemon.schedule()[a]["due_in_seconds"]
        with open(self.daemon.config, "a") as f:
            f.write("platform.linkedin.reauth_warn_lead = soon\n")
        self.daemon.signal(signal.SIGHUP)
        wait_for(lambda: "reload rejected" in self.daemon.log_text(), 5, "rejection logged")
        self.assertIn("platform.linkedin.reauth_warn_lead", self.daemon.log_text())
        self.assertEqual(self.daemon.metric('tokend_bad_input_total{kind="config_reload"}'), 1)
        self.assertEqual(self.daemon.metric("tokend_config_reloads_total"), 0)
        self.assertTrue(self.daemon.ready())
        self.assertAlmostEqual(self.daemon.schedule()[a]["due_in_seconds"], before, delta=5)

    def test_good_config_applies_and_reschedules(self):
        a = insert_account(self.db, self.daemon, platform="linkedin", access_in="30 days")
        self.daemon.start()
        self.daemon.settings["platform.linkedin.reauth_warn_lead"] = "20d"
        self.daemon.write_config()
        self.daemon.signal(signal.SIGHUP)
        wait_for(lambda: self.daemon.metric("tokend_config_reloads_total") == 1, 5, "reload")
        # The warning moves from 30-7 = 23 days out to 30-20 = 10 days out.
        wait_for(lambda: abs(self.daemon.schedule()[a]["due_in_seconds"] - 10 * 86400) < 60, 5,
                 "rescheduled with the new lead")

    def test_world_readable_keyring_is_refused(self):
        os.chmod(self.daemon.keyring, 0o644)
        run = subprocess.run([TOKEND, "-c", self.daemon.config], capture_output=True, text=True,
                             timeout=30, env=daemon_env())
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("keyring", run.stderr)
        self.assertIn(self.daemon.keyring, run.stderr)
        # At reload, the same file is refused and the running keyring kept.
        os.chmod(self.daemon.keyring, 0o600)
        self.daemon.start()
        os.chmod(self.daemon.keyring, 0o644)
        self.daemon.signal(signal.SIGHUP)
        wait_for(lambda: "reload rejected" in self.daemon.log_text(), 5, "rejection logged")
        self.assertTrue(self.daemon.ready())

    def test_check_config(self):
        run = subprocess.run([TOKEND, "-c", self.daemon.config, "--check-config"],
                             capture_output=True, text=True, timeout=30,
                             env=daemon_env())
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("database_url = (secret)", run.stdout)
        self.assertNotIn(self.db.name, run.stdout)
        with open(self.daemon.config, "a") as f:
            f.write("databse_url = oops\n")
        run = subprocess.run([TOKEND, "-c", self.daemon.config, "--check-config"],
                             capture_output=True, text=True, timeout=30,
                             env=daemon_env())
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("unknown key 'databse_url'", run.stderr)


class Migrations(unittest.TestCase):
    def setUp(self):
        self.db = Database()
        self.daemon = Daemon(self.db)

    def tearDown(self):
        self.db.close()

    def test_rerun_and_concurrent_runs_are_safe(self):
        errors = []

        def migrate():
            try:
                self.daemon.migrate()
            except AssertionError as e:
                errors.append(e)

        threads = [threading.Thread(target=migrate) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        versions = [r[0] for r in self.db.sql("SELECT version FROM tokend_migrations "
                                              "ORDER BY version")]
        self.assertEqual(versions, sorted(set(versions)))
        self.assertGreaterEqual(len(versions), 3)
        self.daemon.migrate()  # and once more
        self.assertEqual(self.db.one("SELECT count(*) FROM tokend_migrations"), len(versions))


class Outages(DaemonTest, unittest.TestCase):
    settings = {"platform.linkedin.reauth_warn_lead": "3s"}

    def test_lost_connection_recovers_and_catches_up(self):
        a = insert_account(self.db, self.daemon, platform="linkedin", access_in="30 days")
        self.daemon.start()
        self.db.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'tokend' AND datname = current_database()")
        # While it is away, a change is made that no notification will carry.
        b = insert_account(self.db, self.daemon, platform="linkedin", access_in="30 days")
        self.db.sql("DELETE FROM platform_accounts WHERE id = %s", a)
        wait_for(lambda: b in self.daemon.schedule() and a not in self.daemon.schedule(), 10,
                 "reconnect and reload")
        self.assertTrue(self.daemon.ready())
        self.assertIn("PostgreSQL connection lost", self.daemon.log_text())

    def test_database_down_at_start(self):
        self.daemon.settings["database_url"] = (self.db.dsn.replace(
            f"port={os.environ['TOKEND_TEST_PGPORT']}", "port=1"))
        self.daemon.write_config()
        self.daemon.start(wait_ready=False)
        wait_for(lambda: "reconnecting" in self.daemon.log_text(), 10, "reconnect attempts")
        self.assertEqual(self.daemon.get("/healthz")[0], 200)
        self.assertEqual(self.daemon.get("/readyz")[0], 503)
        self.daemon.assert_running()

    def test_sigterm_exits_cleanly(self):
        self.daemon.start()
        self.assertEqual(self.daemon.stop(), 0)
        self.assertIn("tokend stopped", self.daemon.log_text())


if __name__ == "__main__":
    unittest.main(verbosity=2)
