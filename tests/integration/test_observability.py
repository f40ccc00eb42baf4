"""Operations with the operators' own tools: a live /metrics scrape passes
`promtool check metrics`; the alert rules pass `promtool check rules` and
their unit tests; a real Prometheus server scrapes tokend (with the admin
bearer token), evaluates every rule without error and fires the
tokens-expired-while-active alert the test provokes; docs/metrics.md, the
rules and the Grafana dashboard name only metrics tokend exports; the
systemd unit passes `systemd-analyze verify` and rates low exposure in
`systemd-analyze security`."""

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from fake import FakePlatforms  # noqa: E402
from harness import (TOKEND, TOKENCTL, Daemon, Database, daemon_env, free_port,  # noqa: E402
                     insert_account, test_redis_url, wait_for)

SOURCE = os.environ.get("TOKEND_SOURCE_DIR",
                        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
RULES = os.path.join(SOURCE, "docs", "prometheus", "tokend-alerts.yml")
RULE_TESTS = os.path.join(SOURCE, "docs", "prometheus", "tokend-alerts.test.yml")
RUNBOOK = os.path.join(SOURCE, "docs", "operations.md")
DASHBOARD = os.path.join(SOURCE, "docs", "grafana", "tokend-dashboard.json")
METRICS_DOC = os.path.join(SOURCE, "docs", "metrics.md")
UNIT = os.path.join(SOURCE, "systemd", "tokend.service")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def need(tool):
    path = shutil.which(tool)
    if not path:
        raise unittest.SkipTest(f"{tool} is not installed (scripts/setup installs it)")
    return path


def families(text):
    """{name: type} from the # TYPE lines of an exposition."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def samples(text):
    """{'name{labels}': value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def rule_exprs(rules):
    """The expr of every rule in a rules file (plain or '>-' block scalars)."""
    exprs, lines = [], rules.splitlines()
    for i, line in enumerate(lines):
        key, _, rest = line.strip().partition(" ")
        if key != "expr:":
            continue
        if rest.strip() != ">-":
            exprs.append(rest)
            continue
        indent = len(line) - len(line.lstrip())
        block = []
        for more in lines[i + 1:]:
            if more.strip() and len(more) - len(more.lstrip()) <= indent:
                break
            block.append(more.strip())
        exprs.append(" ".join(block))
    return exprs


def unknown_metrics(text, exported):
    """tokend_* names an expression text uses that are not exported
    (a histogram's _bucket, _sum and _count series are its family's)."""
    unknown = set()
    for name in set(re.findall(r"\btokend_[a-z_]+", text)):
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in exported and exported.get(family) != "histogram":
            unknown.add(name)
    return unknown


class LiveDaemon(unittest.TestCase):
    """One daemon (admin bearer token on, platforms on the fake server) with
    accounts that exercise every new series, shared by the tests below."""

    @classmethod
    def setUpClass(cls):
        cls.fake = FakePlatforms()
        cls.addClassCleanup(cls.fake.stop)
        cls.db = Database()
        cls.addClassCleanup(cls.db.close)
        cls.tmp = tempfile.mkdtemp(prefix="tokend-obs-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.token = secrets.token_urlsafe(32)
        cls.token_file = os.path.join(cls.tmp, "admin_token")
        fd = os.open(cls.token_file, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(cls.token + "\n")
        settings = cls.fake.settings(cls.tmp)
        settings["admin_token_file"] = cls.token_file
        cls.daemon = Daemon(cls.db, settings)
        cls.daemon.admin_token = cls.token
        cls.addClassCleanup(cls.stop_daemon)
        cls.daemon.migrate()
        d, db = cls.daemon, cls.db
        # Refreshed on time (lead ~4 minutes), and refreshed 10 minutes
        # after its access token expired with nobody told: counted.
        cls.on_time = insert_account(db, d, platform="x", access_in="4 minutes", refresh=True)
        cls.late = insert_account(db, d, platform="x", access_in="-10 minutes", refresh=True)
        # Expired, but token.expiring (reauth_required) was recorded: not counted.
        cls.warned = insert_account(db, d, platform="linkedin", access_in="-10 minutes",
                                    events_fired=2)
        insert_account(db, d, platform="linkedin", access_in="30 days")
        insert_account(db, d, platform="linkedin", access_in="30 days", status="revoked")
        insert_account(db, d, platform="myspace", access_in="1 day")
        d.start()
        wait_for(lambda: db.one("SELECT count(*) FROM platform_accounts WHERE token_version > 1")
                 == 2, 15, "both x accounts refreshed")
        wait_for(lambda: db.one("SELECT status FROM platform_accounts WHERE id = %s",
                                cls.warned) == "expired", 10, "the warned account expired")
        # The census follows within a tick or two of the last change.
        wait_for(lambda: cls.series().get('tokend_accounts{platform="linkedin",status="expired"}')
                 == 1, 40, "tokend_accounts counted after the changes")

    @classmethod
    def stop_daemon(cls):
        status = cls.daemon.stop()
        log = cls.daemon.log_text() if cls.daemon.proc else ""
        if os.environ.get("TOKEND_TEST_VERBOSE"):
            print(f"--- tokend log ---\n{log[-6000:]}")
        for marker in ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer"):
            assert marker not in log, f"sanitizer report in the tokend log:\n{log[-6000:]}"
        assert status in (None, 0), f"tokend exited {status}:\n{log[-6000:]}"

    @classmethod
    def scrape(cls):
        status, text = cls.daemon.request("GET", "/metrics")
        assert status == 200, f"/metrics: {status} {text}"
        return text

    @classmethod
    def series(cls):
        return samples(cls.scrape())

    # ---- the exposition ----

    def test_promtool_check_metrics(self):
        promtool = need("promtool")
        text = self.scrape()
        run = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                             text=True, timeout=30)
        print(f"\npromtool check metrics: exit {run.returncode}, "
              f"{len(families(text))} families, {len(samples(text))} series; "
              f"output: {(run.stdout + run.stderr).strip() or '(none)'}")
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertEqual((run.stdout + run.stderr).strip(), "", "lint findings")

    def test_no_ids_or_secrets_in_labels(self):
        text = self.scrape()
        self.assertIsNone(UUID.search(text), "an account id in /metrics")
        self.assertNotIn(self.token, text)
        self.assertNotIn("x-rt-", text)

    def test_accounts_by_platform_and_status(self):
        s = self.series()
        want = {("x", "active"): 2, ("linkedin", "active"): 1, ("linkedin", "expired"): 1,
                ("linkedin", "revoked"): 1, ("unknown", "active"): 1, ("x", "revoked"): 0}
        for (platform, status), n in want.items():
            self.assertEqual(s[f'tokend_accounts{{platform="{platform}",status="{status}"}}'], n,
                             f"{platform} {status}")
        self.assertEqual(s["tokend_scheduled_accounts"], 5)  # the unknown platform is not
        self.assertAlmostEqual(s["tokend_accounts_counted_timestamp_seconds"], time.time(),
                               delta=60)

    def test_refresh_histograms_and_counters(self):
        s = self.series()
        x = 'platform="x"'
        self.assertEqual(s[f'tokend_refreshes_total{{{x},outcome="refreshed"}}'], 2)
        self.assertEqual(s[f"tokend_refresh_duration_seconds_count{{{x}}}"], 2)
        self.assertEqual(s[f'tokend_refresh_duration_seconds_bucket{{{x},le="+Inf"}}'], 2)
        self.assertGreater(s[f"tokend_refresh_duration_seconds_sum{{{x}}}"], 0)
        # One refreshed 10 minutes after expiry (le="0"), one ~4 minutes before.
        self.assertEqual(s[f'tokend_refresh_lead_seconds_bucket{{{x},le="0"}}'], 1)
        self.assertEqual(s[f'tokend_refresh_lead_seconds_bucket{{{x},le="120"}}'], 1)
        self.assertEqual(s[f'tokend_refresh_lead_seconds_bucket{{{x},le="300"}}'], 2)
        self.assertEqual(s['tokend_refresh_duration_seconds_count{platform="linkedin"}'], 0)
        self.assertEqual(s["tokend_refreshes_in_flight"], 0)
        # x twice, the linkedin expire once (more if a retry ran).
        self.assertGreaterEqual(s["tokend_schedule_lateness_seconds_count"], 3)
        self.assertEqual(s['tokend_schedule_lateness_seconds_bucket{le="+Inf"}'],
                         s["tokend_schedule_lateness_seconds_count"])

    def test_tokens_expired_while_active(self):
        s = self.series()
        self.assertEqual(s['tokend_tokens_expired_while_active_total{platform="x"}'], 1)
        self.assertEqual(s['tokend_tokens_expired_while_active_total{platform="linkedin"}'], 0)
        log = self.daemon.log_text()
        self.assertRegex(log, rf"account {self.late} \(x\): access token had expired 6\d\d s "
                              "before tokend acted")
        self.assertNotIn(f"account {self.warned} (linkedin): access token had expired", log)

    def test_connection_state(self):
        s = self.series()
        self.assertEqual(s["tokend_database_up"], 1)
        if test_redis_url():
            wait_for(lambda: self.series().get("tokend_redis_up") == 1, 10, "redis up")

    # ---- docs, rules and dashboard name what tokend exports ----

    def exported(self):
        text = self.scrape()
        if test_redis_url():
            wait_for(lambda: "tokend_outbox_backlog" in families(self.scrape()), 10,
                     "the outbox counted")
            text = self.scrape()
        return families(text)

    def test_metrics_doc_matches_the_exposition(self):
        with open(METRICS_DOC) as f:
            doc = f.read()
        documented = dict(re.findall(r"^\| `(tokend_[a-z_]+)` \| (counter|gauge|histogram) \|",
                                     doc, re.M))
        exported = self.exported()
        conditional = {"tokend_redis_up", "tokend_outbox_backlog",
                       "tokend_outbox_oldest_unpublished_seconds"}
        missing_from_doc = set(exported) - set(documented)
        self.assertEqual(missing_from_doc, set(), "exported but not in docs/metrics.md")
        not_exported = set(documented) - set(exported)
        if test_redis_url():
            self.assertEqual(not_exported, set(), "documented but not exported")
        else:
            self.assertLessEqual(not_exported, conditional)
        for name, kind in exported.items():
            self.assertEqual(documented[name], kind, f"{name}: type in docs/metrics.md")

    def test_rules_and_dashboard_use_exported_metrics(self):
        exported = self.exported()
        with open(RULES) as f:
            rules = f.read()
        with open(DASHBOARD) as f:
            dashboard_text = f.read()
        dashboard = json.loads(dashboard_text)
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        self.assertGreaterEqual(len(exprs), 10)
        self.assertEqual(len(rule_exprs(rules)), rules.count("- alert: "))
        for where, text in (("alert rules", "\n".join(rule_exprs(rules))),
                            ("dashboard", "\n".join(exprs))):
            self.assertEqual(unknown_metrics(text, exported), set(),
                             f"{where} name metrics tokend does not export")

    def test_every_alert_has_a_runbook_section(self):
        with open(RULES) as f:
            rules = f.read()
        with open(RUNBOOK) as f:
            headings = re.findall(r"^#+ (.+)$", f.read(), re.M)
        anchors = {re.sub(r"[^a-z0-9_ -]", "", h.lower()).replace(" ", "-") for h in headings}
        links = re.findall(r'runbook: "docs/operations\.md#([^"]+)"', rules)
        self.assertEqual(len(links), len(re.findall(r"- alert: ", rules)))
        self.assertEqual(set(links) - anchors, set(), "runbook links without a section")

    # ---- Prometheus ----

    def test_promtool_rules(self):
        promtool = need("promtool")
        check = subprocess.run([promtool, "check", "rules", RULES], capture_output=True,
                               text=True, timeout=30)
        print("\n" + (check.stdout + check.stderr).strip())
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        unit = subprocess.run([promtool, "test", "rules", os.path.basename(RULE_TESTS)],
                              cwd=os.path.dirname(RULE_TESTS), capture_output=True, text=True,
                              timeout=60)
        print((unit.stdout + unit.stderr).strip())
        self.assertEqual(unit.returncode, 0, unit.stdout + unit.stderr)

    def test_prometheus_scrapes_and_evaluates_the_rules(self):
        prometheus = need("prometheus")
        port = free_port()
        work = tempfile.mkdtemp(prefix="prometheus-", dir=self.tmp)
        config = os.path.join(work, "prometheus.yml")
        with open(config, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {RULES}
scrape_configs:
  - job_name: tokend
    authorization:
      type: Bearer
      credentials_file: {self.token_file}
    static_configs:
      - targets: ['127.0.0.1:{self.daemon.port}']
""")
        log = open(os.path.join(work, "prometheus.log"), "wb")
        proc = subprocess.Popen([prometheus, f"--config.file={config}",
                                 f"--storage.tsdb.path={os.path.join(work, 'data')}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            self.query_prometheus(proc, port, work)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()

    def query_prometheus(self, proc, port, work):
        def api(path, **params):
            if proc.poll() is not None:
                with open(os.path.join(work, "prometheus.log")) as f:
                    raise AssertionError(f"prometheus exited {proc.returncode}: {f.read()}")
            url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    body = json.load(resp)
            except OSError:
                return None
            return body["data"] if body.get("status") == "success" else None

        def value(query):
            data = api("query", query=query)
            return float(data["result"][0]["value"][1]) if data and data["result"] else None

        wait_for(lambda: value('up{job="tokend"}') == 1, 30, "Prometheus scrapes tokend: up == 1",
                 interval=0.5)
        self.assertEqual(value('tokend_heap_size{job="tokend"}'),
                         self.series()["tokend_heap_size"])
        self.assertEqual(value('tokend_tokens_expired_while_active_total{platform="x"}'), 1)
        self.assertEqual(value('sum(tokend_accounts{status="active"})'), 4)

        def firing():
            data = api("alerts")
            return [a for a in data["alerts"] if a["state"] == "firing"] if data else []

        alerts = wait_for(lambda: [a for a in firing()
                                   if a["labels"]["alertname"] == "TokendTokensExpiredWhileActive"],
                          20, "TokendTokensExpiredWhileActive firing", interval=0.5)
        self.assertEqual(alerts[0]["labels"]["platform"], "x")

        def rules_health():
            data = api("rules")
            rules = [r for g in data["groups"] for r in g["rules"]] if data else []
            return rules if rules and all(r.get("health") != "unknown" for r in rules) else None

        rules = wait_for(rules_health, 20, "every rule evaluated", interval=0.5)
        bad = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
        self.assertEqual(bad, {}, "rules that fail to evaluate")
        # Every dashboard query parses and evaluates.
        with open(DASHBOARD) as f:
            dashboard = json.load(f)
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                query = target["expr"].replace("$instance", ".*")
                self.assertIsNotNone(api("query", query=query),
                                     f"dashboard panel {panel['title']!r}: {query}")
        names = sorted(a["labels"]["alertname"] for a in firing())
        print(f"\nprometheus: up == 1, {len(rules)} rules healthy, firing: {names}")
        # The unknown platform's row is bad input (info); nothing else is wrong.
        self.assertEqual(set(names) - {"TokendBadInput"}, {"TokendTokensExpiredWhileActive"})

    def test_tokenctl_status_with_the_token(self):
        run = subprocess.run([TOKENCTL, "status", "--admin", f"127.0.0.1:{self.daemon.port}",
                              "--admin-token-file", self.token_file], capture_output=True,
                             text=True, timeout=30, env=daemon_env())
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertRegex(run.stdout, r"\n  accounts +5\n")
        refused = subprocess.run([TOKENCTL, "status", "--admin", f"127.0.0.1:{self.daemon.port}"],
                                 capture_output=True, text=True, timeout=30, env=daemon_env())
        self.assertEqual(refused.returncode, 1)
        self.assertIn("401", refused.stderr + refused.stdout)


class SystemdUnit(unittest.TestCase):
    """The unit as shipped, with ExecStart/ExecStartPre pointing at the built
    binary (the only change: systemd-analyze checks that it exists)."""

    def setUp(self):
        self.analyze = need("systemd-analyze")
        self.dir = tempfile.mkdtemp(prefix="tokend-unit-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        with open(UNIT) as f:
            shipped = f.read()
        self.unit = os.path.join(self.dir, "tokend.service")
        copy = shipped.replace("/usr/sbin/tokend", os.path.abspath(TOKEND))
        changed = [line for line in copy.splitlines() if line not in shipped.splitlines()]
        self.assertEqual(len(changed), 2, changed)
        self.assertTrue(all(line.startswith(("ExecStart=", "ExecStartPre=")) for line in changed))
        with open(self.unit, "w") as f:
            f.write(copy)

    def test_verify(self):
        run = subprocess.run([self.analyze, "verify", self.unit], capture_output=True, text=True,
                             timeout=60)
        print(f"\nsystemd-analyze verify: exit {run.returncode}, output: "
              f"{(run.stdout + run.stderr).strip() or '(none)'}")
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertEqual((run.stdout + run.stderr).strip(), "")

    def test_security_exposure_is_low(self):
        run = subprocess.run([self.analyze, "security", "--offline=true", "--no-pager",
                              self.unit], capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        line = next(l for l in run.stdout.splitlines() if "Overall exposure level" in l)
        print("\nsystemd-analyze security: " + line.strip())
        score = float(re.search(r"level for \S+: ([0-9.]+)", line).group(1))
        self.assertLess(score, 2.0)

    def test_sysusers_entry(self):
        sysusers = need("systemd-sysusers")
        root = os.path.join(self.dir, "root")
        os.makedirs(os.path.join(root, "etc"))
        run = subprocess.run([sysusers, f"--root={root}",
                              os.path.join(SOURCE, "systemd", "tokend.sysusers")],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        with open(os.path.join(root, "etc", "passwd")) as f:
            self.assertRegex(f.read(), r"^tokend:x:\d+:\d+:tokend OAuth token daemon:/var/lib/tokend:",
                             )


if __name__ == "__main__":
    unittest.main(verbosity=2)
