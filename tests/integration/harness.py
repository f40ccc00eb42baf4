"""Integration-test harness: a fresh database on the PostgreSQL that
scripts/test started (TOKEND_TEST_PG*), a keyring, a config file, and a real
tokend process with its admin listener on a free loopback port."""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
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
        self.settings = {
            "database_url": db.dsn,
            "admin_listen": f"127.0.0.1:{self.port}",
            "keyring_file": self.keyring,
            "state_directory": self.dir,
            "log_level": "debug",
            "log_timestamps": "true",
            "reconnect_min": "200ms",
            "reconnect_max": "1s",
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

    def request(self, method, path):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
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

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def seal(self, account_id, column, plaintext):
        out = tokenctl("seal", "--keyring", self.keyring, "--account", account_id,
                       "--column", column, input=plaintext)
        return psycopg2.Binary(bytes.fromhex(out.strip()[2:]))


def tokenctl(*args, input=None):
    run = subprocess.run([TOKENCTL, *args], capture_output=True, text=True, input=input,
                         timeout=30, env=daemon_env())
    assert run.returncode == 0, f"tokenctl {args[0]} failed: {run.stderr}"
    return run.stdout


def insert_account(db, daemon, platform="linkedin", access_in=None, refresh=False,
                   status="active", account_id=None, **columns):
    """Insert a platform_accounts row with sealed tokens; access_in is the
    access token's remaining life as an SQL interval ('7 days 5 seconds')."""
    account_id = account_id or str(uuid.uuid4())
    values = {
        "id": account_id, "platform": platform, "external_id": "ext-" + account_id[:8],
        "status": status,
        "access_token": daemon.seal(account_id, "access_token", "at-" + account_id),
    }
    if refresh:
        values["refresh_token"] = daemon.seal(account_id, "refresh_token", "rt-" + account_id)
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


class DaemonTest:
    """unittest mix-in: a database and a daemon per test, logs on failure."""

    settings = {}

    def setUp(self):
        self.db = Database()
        self.daemon = Daemon(self.db, self.settings)
        self.daemon.migrate()

    def tearDown(self):
        self.daemon.stop()
        result = getattr(self._outcome, "result", None)
        problems = (result.errors + result.failures) if result else []
        failed = any(test is self for test, _ in problems)
        if failed or os.environ.get("TOKEND_TEST_VERBOSE"):
            print(f"--- tokend log ({self.daemon.log_path}) ---\n{self.daemon.log_text()[-6000:]}")
        self.db.close()
