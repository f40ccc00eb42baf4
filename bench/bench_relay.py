#!/usr/bin/python3
"""Outbox → Redis stream throughput (issue 5, docs/benchmarks.md).

Starts a throwaway PostgreSQL and Redis (scripts/services), seeds a backlog of
N outbox rows (default 1,000,000) with INSERT ... SELECT generate_series,
starts tokend and times the relay until every row is on the stream and marked
published. In the same run, redis-benchmark -P 64 sends the same XADD (same
stream arguments, same event size) to the same Redis: the ceiling.

    bench/bench_relay.py [--rows N] [--batch B ...] [--build DIR]

BENCH_WRAP="perf record -g -o FILE --" profiles tokend;
BENCH_LOG_LEVEL=debug keeps its log (/tmp/bench-relay-tokend.log: where each
batch's time goes). Reports events/s two ways: wall time from tokend's start to an empty
backlog (connects and the first read included), and the steady rate between
the first and the last published_at. Needs a build (RelWithDebInfo) and the
tools of scripts/setup. Never pass/fail: the figures go in the docs."""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import psycopg2
import redis

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Services:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tokend-bench-")
        out = sh(os.path.join(ROOT, "scripts", "services"), "start", self.dir)
        self.env = dict(line.split("=", 1) for line in out.split())

    def dsn(self, db="postgres"):
        e = self.env
        return (f"host={e['TOKEND_TEST_PGHOST']} port={e['TOKEND_TEST_PGPORT']} "
                f"user={e['TOKEND_TEST_PGUSER']} dbname={db}")

    @property
    def redis_port(self):
        return int(self.env["TOKEND_TEST_REDIS_PORT"])

    def stop(self):
        subprocess.run([os.path.join(ROOT, "scripts", "services"), "stop", self.dir])
        shutil.rmtree(self.dir, ignore_errors=True)


def connect(dsn):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    return conn


def create_db(svc, name):
    with connect(svc.dsn()).cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    return svc.dsn(name)


def seed(dsn, rows):
    """rows valid outbox rows (one account each), then ANALYZE, as a backlog
    that built up during a Redis outage would look after autovacuum."""
    t0 = time.monotonic()
    with connect(dsn).cursor() as cur:
        cur.execute(
            "INSERT INTO tokend_outbox (type, account_id, token_version, reason, data) "
            "SELECT 'token.expiring', u, 1, 'refresh_failing', jsonb_build_object("
            "'account_id', u, 'platform', 'linkedin', 'external_id', 'urn:li:person:' || g, "
            "'token_version', 1, 'expires_at', '2025-03-01T00:00:00Z', "
            "'reason', 'refresh_failing') "
            "FROM (SELECT g, gen_random_uuid() AS u FROM generate_series(1, %s) g) s", (rows,))
        cur.execute("VACUUM ANALYZE tokend_outbox")
    return time.monotonic() - t0


def sample_event(dsn):
    """One seeded row's envelope as tokend sends it (via tokenctl events
    check's rules, built the same way): used for the ceiling's payload."""
    with connect(dsn).cursor() as cur:
        cur.execute("SELECT event_id, account_id::text, data::text FROM tokend_outbox LIMIT 1")
        event_id, account, data = cur.fetchone()
    event = {"specversion": "1.0", "id": event_id, "source": "tokend",
             "type": "token.expiring", "subject": account,
             "time": "2025-01-02T03:04:05.123456Z", "datacontenttype": "application/json",
             "data": json.loads(data)}
    return event_id, json.dumps(event, separators=(",", ":"))


class Tokend:
    def __init__(self, build, dsn, redis_port, stream, batch, rows):
        self.dir = tempfile.mkdtemp(prefix="tokend-bench-d-")
        self.port = free_port()
        tokenctl = os.path.join(build, "tools", "tokenctl")
        key = sh(tokenctl, "keygen", "--id", "1", "--primary")
        keyring = os.path.join(self.dir, "keyring")
        with open(os.open(keyring, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(key)
        self.config = os.path.join(self.dir, "tokend.conf")
        settings = {"database_url": dsn, "admin_listen": f"127.0.0.1:{self.port}",
                    "keyring_file": keyring, "state_directory": self.dir,
                    "log_level": os.environ.get("BENCH_LOG_LEVEL", "info"), "redis_url": f"redis://127.0.0.1:{redis_port}/0",
                    "events_stream": stream, "events_stream_maxlen": str(2 * rows),
                    "relay_batch": str(batch)}
        with open(self.config, "w") as f:
            f.write("".join(f'{k} = "{v}"\n' for k, v in settings.items()))
        self.binary = os.path.join(build, "daemon", "tokend")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TOKEND_")}
        self.proc = None

    def migrate(self):
        subprocess.run([self.binary, "-c", self.config, "--migrate"], check=True,
                       capture_output=True, env=self.env)

    def start(self):
        self.log = open(os.path.join(self.dir, "tokend.log"), "wb")
        wrap = os.environ.get("BENCH_WRAP", "").split()  # e.g. "perf record -g --"
        self.proc = subprocess.Popen([*wrap, self.binary, "-c", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=self.env)

    def published(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return 0
        return sum(float(m) for m in re.findall(
            r'^tokend_events_published_total\{[^}]*\} (\S+)$', text, re.M))

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.log.close()
        if os.environ.get("BENCH_LOG_LEVEL"):
            shutil.copy(os.path.join(self.dir, "tokend.log"), "/tmp/bench-relay-tokend.log")
        shutil.rmtree(self.dir, ignore_errors=True)


def run_relay(args, svc, batch):
    dsn = create_db(svc, f"tokend_bench_{batch}")
    stream = f"bench:relay:{batch}"
    r = redis.Redis(port=svc.redis_port)
    r.delete(stream)
    daemon = Tokend(args.build, dsn, svc.redis_port, stream, batch, args.rows)
    daemon.migrate()
    seed_s = seed(dsn, args.rows)
    t0 = time.monotonic()
    daemon.start()
    curve, last = [], 0.0
    while (published := daemon.published()) < args.rows:
        if daemon.proc.poll() is not None:
            sys.exit(f"tokend exited with {daemon.proc.returncode}")
        if args.progress and time.monotonic() - last >= 1:
            last = time.monotonic()
            curve.append((last - t0, published))
        time.sleep(0.05)
    for (t1, p1), (t2, p2) in zip(curve, curve[1:]):
        print(f"  {t2:5.1f} s: {p2:9.0f} published, {(p2 - p1) / (t2 - t1):9,.0f} events/s")
    wall = time.monotonic() - t0
    cpu = daemon.cpu_seconds()
    with connect(dsn).cursor() as cur:
        cur.execute("SELECT count(*) FILTER (WHERE published_at IS NULL), "
                    "extract(epoch FROM max(published_at) - min(published_at)) "
                    "FROM tokend_outbox")
        unpublished, span = cur.fetchone()
    length = r.xlen(stream)
    daemon.stop()
    r.delete(stream)
    with connect(svc.dsn()).cursor() as cur:
        cur.execute(f'DROP DATABASE "tokend_bench_{batch}" WITH (FORCE)')
    assert unpublished == 0 and length == args.rows, (unpublished, length)
    return {"batch": batch, "seed_s": seed_s, "wall_s": wall, "span_s": float(span),
            "cpu_s": cpu, "rate_wall": args.rows / wall, "rate_steady": args.rows / float(span)}


def run_ceiling(args, svc, event_id, event, clients):
    stream = "bench:ceiling"
    out = sh("redis-benchmark", "-p", str(svc.redis_port), "-P", "64", "-c", str(clients),
             "-n", str(args.rows), "-q", "XADD", stream, "MAXLEN", "~", str(2 * args.rows),
             "*", "id", event_id, "type", "token.expiring", "event", event)
    redis.Redis(port=svc.redis_port).delete(stream)
    rate = re.findall(r"([0-9.]+) requests per second", out)
    return float(rate[-1]) if rate else None


def versions():
    pg = sh("sh", "-c", "ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1")
    pg_version = sh(os.path.join(pg.strip(), "postgres"), "--version").strip()
    redis_version = sh("redis-server", "--version").split()[2]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    return f"{os.cpu_count()} × {cpu}; {pg_version}; Redis {redis_version}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--progress", action="store_true", help="print the rate every second")
    args = parser.parse_args()
    svc = Services()
    try:
        lines = [f"outbox -> stream: {args.rows:,} events ({versions()})"]
        print(lines[0], flush=True)
        for batch in args.batch:
            res = run_relay(args, svc, batch)
            lines.append(f"tokend relay_batch={batch:<5}  {res['rate_wall']:9,.0f} events/s "
                         f"(start to empty backlog {res['wall_s']:.1f} s; steady "
                         f"{res['rate_steady']:,.0f}/s; tokend CPU "
                         f"{1e6 * res['cpu_s'] / args.rows:.1f} us/event)")
            print(lines[-1], flush=True)
        dsn = create_db(svc, "tokend_bench_sample")
        Tokend(args.build, dsn, svc.redis_port, "x", 1, 1).migrate()
        seed(dsn, 1)
        event_id, event = sample_event(dsn)
        for clients in (1, 50):
            rate = run_ceiling(args, svc, event_id, event, clients)
            lines.append(f"redis-benchmark -P 64 -c {clients:<2}   {rate:9,.0f} XADD/s "
                         f"(same XADD, {len(event)} B event)")
            print(lines[-1], flush=True)
        print("\n" + "\n".join(lines))
    finally:
        svc.stop()


if __name__ == "__main__":
    main()
