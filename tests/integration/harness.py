"""Integration-test harness: a fresh database on the PostgreSQL that
scripts/test started (TOKEND_TEST_PG*), a keyring, a config file, and a real
tokend process with its admin listener on a free loopback port."""

import contextlib
import glob
import hashlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import uuid

import psycopg2

BUILD = os.environ.get("TOKEND_BUILD_DIR", "build")
TOKEND = os.path.join(BUILD, "daemon", "tokend")
TOKENCTL = os.path.join(BUILD, "tools", "tokenctl")


def require_env(name):
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set: run the tests through scripts/test, "
                         "or point TOKEND_TEST_PGHOST/PGPORT/PGUSER at a PostgreSQL")
    return value


def server_dsn(dbname="postgres"):
    return (f"host={require_env('TOKEND_TEST_PGHOST')} port={require_env('TOKEND_TEST_PGPORT')} "
            f"user={require_env('TOKEND_TEST_PGUSER')} dbname={dbname}")


def test_redis_url():
    """The Redis of scripts/test (TOKEND_TEST_REDIS_PORT), or "" (relay off)."""
    port = os.environ.get("TOKEND_TEST_REDIS_PORT")
    return f"redis://127.0.0.1:{port}/0" if port else ""


PLATFORM_NAMES = ["x", "bluesky", "threads", "instagram", "facebook", "linkedin", "pinterest",
                  "tiktok", "youtube"]


def daemon_env():
    """The environment for tokend and tokenctl: TOKEND_* would be read as
    config overrides, so the test's own TOKEND_* variables stay out."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TOKEND_")}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.05):
    """Poll predicate until it returns a truthy value; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Database:
    """A database of its own for one test, dropped at close()."""

    def __init__(self):
        self.name = "tokend_it_" + uuid.uuid4().hex[:12]
        admin = psycopg2.connect(server_dsn())
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.name}"')
        admin.close()
        self.dsn = server_dsn(self.name)
        self.conn = psycopg2.connect(self.dsn)
        self.conn.autocommit = True

    def sql(self, query, *args):
        with self.conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall() if cur.description else None

    def one(self, query, *args):
        rows = self.sql(query, *args)
        return rows[0][0] if rows else None

    def reconnect(self):
        """A new connection, after PostgreSQL was restarted under this one."""
        try:
            self.conn.close()
        except psycopg2.Error:
            pass
        self.conn = psycopg2.connect(self.dsn)
        self.conn.autocommit = True

    def close(self):
        self.conn.close()
        admin = psycopg2.connect(server_dsn())
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        admin.close()


class Daemon:
    """A tokend process with its own config, keyring and admin port."""

    def __init__(self, db, settings=None):
        self.db = db
        self.dir = tempfile.mkdtemp(prefix="tokend-it-")
        self.port = free_port()
        self.keyring = os.path.join(self.dir, "keyring")
        self.config = os.path.join(self.dir, "tokend.conf")
        self.log_path = os.path.join(self.dir, "tokend.log")
        self.proc = None
        self.admin_token = None  # sent as a bearer token when set (admin_token_file)
        self.settings = {
            "database_url": db.dsn,
            "admin_listen": f"127.0.0.1:{self.port}",
            "keyring_file": self.keyring,
            "state_directory": self.dir,
            "log_level": "debug",
            "log_timestamps": "true",
            "reconnect_min": "200ms",
            "reconnect_max": "1s",
            # No test reaches a real platform: unless a test points them at
            # the fake server, platforms answer "connection refused".
            **{f"platform.{p}.base_url": f"http://127.0.0.1:1/{p}" for p in PLATFORM_NAMES},
            # Events go to the Redis scripts/test started, on a stream of this
            # database's own (no cross-talk); without that Redis, no relay.
            "redis_url": test_redis_url(),
            "events_stream": "tokend-it:" + hashlib.sha1(db.name.encode()).hexdigest()[:16],
        }
        self.settings.update(settings or {})
        self.write_keyring(1)
        self.write_config()

    def write_keyring(self, *key_ids):
        """The last key id is the primary."""
        lines = [tokenctl("keygen", "--id", str(k)).strip() for k in key_ids[:-1]]
        lines.append(tokenctl("keygen", "--id", str(key_ids[-1]), "--primary").strip())
        fd = os.open(self.keyring, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")

    def write_config(self, text=None):
        if text is None:
            text = "".join(f"{k} = {v}\n" for k, v in self.settings.items())
        with open(self.config, "w") as f:
            f.write(text)

    def migrate(self):
        run = subprocess.run([TOKEND, "-c", self.config, "--migrate"], capture_output=True,
                             text=True, timeout=60, env=daemon_env())
        assert run.returncode == 0, f"migrate failed: {run.stderr}"

    def start(self, wait_ready=True):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([TOKEND, "-c", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=daemon_env())
        if wait_ready:
            wait_for(lambda: self.ready(), 30, "tokend /readyz")
        return self

    def ready(self):
        self.assert_running()
        return self.get("/readyz")[0] == 200

    def assert_running(self):
        if self.proc and self.proc.poll() is not None:
            raise AssertionError(f"tokend exited with {self.proc.returncode}:\n{self.log_text()}")

    def request(self, method, path, headers=None, auth=True):
        """One admin API request; with auth, the bearer token when there is one."""
        headers = dict(headers or {})
        if auth and self.admin_token:
            headers.setdefault("Authorization", f"Bearer {self.admin_token}")
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, ConnectionError):
            return None, ""

    def get(self, path):
        status, body = self.request("GET", path)
        try:
            return status, json.loads(body) if body and path != "/metrics" else body
        except ValueError:
            return status, body

    def schedule(self, limit=1000):
        status, body = self.get(f"/v1/schedule?limit={limit}")
        assert status == 200, f"/v1/schedule: {status} {body}"
        return {e["account_id"]: e for e in body["upcoming"]}

    def metric(self, name):
        """The value of one series ('name' or 'name{labels}'), or None."""
        status, text = self.request("GET", "/metrics")
        assert status == 200
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        if self.proc:
            self.log.close()
        return self.proc.returncode if self.proc else None

    def kill(self):
        """SIGKILL: no shutdown path runs (a crash, as far as tokend can tell)."""
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.log.close()

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def seal(self, account_id, column, plaintext):
        out = tokenctl("seal", "--keyring", self.keyring, "--account", account_id,
                       "--column", column, input=plaintext)
        return psycopg2.Binary(bytes.fromhex(out.strip()[2:]))


def _pg_ctl_path():
    """pg_ctl of the newest installed PostgreSQL, as scripts/services picks it."""
    found = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    return max(found, key=lambda p: int(p.split("/")[4])) if found else None


def postgres_controllable():
    """Whether tests may stop and start the PostgreSQL of scripts/services."""
    return bool(os.environ.get("TOKEND_TEST_SERVICES_DIR") and _pg_ctl_path())


def _pg_ctl(*args):
    """pg_ctl on the PostgreSQL scripts/services started (as postgres when root)."""
    if not postgres_controllable():
        raise unittest.SkipTest("needs the PostgreSQL of scripts/services "
                                "(TOKEND_TEST_SERVICES_DIR) to stop and start it")
    cmd = [_pg_ctl_path(), "-D", os.path.join(os.environ["TOKEND_TEST_SERVICES_DIR"], "pg"),
           *args]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert run.returncode == 0, f"pg_ctl {' '.join(args)}: {run.stdout}{run.stderr}"


def stop_postgres():
    _pg_ctl("-m", "fast", "-w", "stop")


def start_postgres():
    """Start it again with the options of scripts/services."""
    services = os.environ["TOKEND_TEST_SERVICES_DIR"]
    options = (f"-c listen_addresses=127.0.0.1 -c port={require_env('TOKEND_TEST_PGPORT')} "
               f"-c unix_socket_directories={services} -c fsync=off -c max_connections=200 "
               "-c shared_buffers=256MB")
    _pg_ctl("-l", os.path.join(services, "pg.log"), "-w", "-t", "60", "start", "-o", options)


@contextlib.contextmanager
def postgres_stopped():
    """The test PostgreSQL is down inside the block, and up again after it
    whatever happens (other tests need it). Reconnect Databases afterwards."""
    stop_postgres()
    try:
        yield
    finally:
        start_postgres()


def tokenctl(*args, input=None):
    run = subprocess.run([TOKENCTL, *args], capture_output=True, text=True, input=input,
                         timeout=30, env=daemon_env())
    assert run.returncode == 0, f"tokenctl {args[0]} failed: {run.stderr}"
    return run.stdout


def access_token_of(platform, account_id):
    """The plaintext access token insert_account seals (the fake adopts it)."""
    return f"{platform}-at-{account_id}"


def refresh_token_of(platform, account_id):
    return f"{platform}-rt-{account_id}"


def insert_account(db, daemon, platform="linkedin", access_in=None, refresh=False,
                   status="active", account_id=None, **columns):
    """Insert a platform_accounts row with sealed tokens; access_in is the
    access token's remaining life as an SQL interval ('7 days 5 seconds')."""
    account_id = account_id or str(uuid.uuid4())
    values = {
        "id": account_id, "platform": platform, "external_id": "ext-" + account_id[:8],
        "status": status,
        "access_token": daemon.seal(account_id, "access_token",
                                    access_token_of(platform, account_id)),
    }
    if refresh:
        values["refresh_token"] = daemon.seal(account_id, "refresh_token",
                                              refresh_token_of(platform, account_id))
    values.update(columns)
    names = list(values)
    exprs = ["%s"] * len(names)
    if access_in is not None:
        names.append("access_expires_at")
        exprs.append("now() + %s::interval")
        values["access_expires_at"] = access_in
    db.sql(f"INSERT INTO platform_accounts ({', '.join(names)}) VALUES ({', '.join(exprs)})",
           *[values[n] for n in names])
    return account_id


def has_failed(test):
    """Whether the running unittest test has failed or errored so far."""
    result = getattr(test._outcome, "result", None)
    problems = (result.errors + result.failures) if result else []
    return any(t is test for t, _ in problems)


def print_log_if_failed(test, daemon, tail=8000):
    if has_failed(test) or os.environ.get("TOKEND_TEST_VERBOSE"):
        print(f"--- tokend log ({daemon.log_path}) ---\n{daemon.log_text()[-tail:]}")


class DaemonTest:
    """unittest mix-in: a database and a daemon per test, logs on failure.
    Subclasses set `settings`, or override daemon_settings()."""

    settings = {}

    def daemon_settings(self):
        return dict(self.settings)

    def setUp(self):
        self.db = Database()
        self.daemon = Daemon(self.db, self.daemon_settings())
        self.daemon.migrate()

    def tearDown(self):
        self.daemon.stop()
        print_log_if_failed(self, self.daemon)
        self.db.close()
