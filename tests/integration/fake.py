"""The fake platform server (tests/fake) for integration tests: start it on a
free loopback port, point a daemon's platforms at it, inject faults, read
its counters."""

import json
import os
import subprocess
import tempfile
import urllib.parse
import urllib.request

from harness import BUILD, PLATFORM_NAMES as PLATFORMS, DaemonTest

FAKE = os.path.join(BUILD, "tests", "fake", "fake_platforms")


class FakePlatforms:
    def __init__(self, *args):
        self.proc = subprocess.Popen([FAKE, "--port", "0", "--quiet", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        first = self.proc.stdout.readline().strip()
        if not first.startswith("listening on "):
            raise AssertionError(f"fake_platforms did not start: {first}")
        self.address = first.split()[2]
        self.url = "http://" + self.address
        # With --tls-cert (and plain HTTP kept for the control API), the
        # second line names the HTTPS listener: tls_url is what tokend uses.
        self.tls_url = None
        if "--tls-cert" in args and "--no-http" not in args:
            second = self.proc.stdout.readline().strip()
            if not second.endswith("(tls)"):
                raise AssertionError(f"fake_platforms: no HTTPS listener: {second}")
            self.tls_url = "https://" + second.split()[2]

    def base_url(self, platform):
        # Facebook's base URL includes the Graph version, as in production.
        version = "/v21.0" if platform == "facebook" else ""
        return f"{self.tls_url or self.url}/{platform}{version}"

    def settings(self, secrets_dir):
        """Daemon settings pointing every platform here, with client credentials
        (secrets in 0600 files in secrets_dir, as systemd credentials would be)."""
        out = {}
        for p in PLATFORMS:
            path = os.path.join(secrets_dir, f"{p}_client_secret")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"{p}-secret\n")
            out[f"platform.{p}.base_url"] = self.base_url(p)
            out[f"platform.{p}.client_id"] = f"{p}-client"
            out[f"platform.{p}.client_secret_file"] = path
        return out

    def control(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}/_control/{path}", data=data,
                                     method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            text = resp.read().decode()
            return json.loads(text) if text else None

    def fault(self, platform, kind, count=1, **extra):
        self.control("fault", {"platform": platform, "kind": kind, "count": count, **extra})

    def revoke(self, token):
        self.control("revoke", {"token": token})

    def clear_faults(self):
        req = urllib.request.Request(f"{self.url}/_control/fault", method="DELETE")
        urllib.request.urlopen(req, timeout=5).close()

    def account(self, token):
        """The grant a token (seed, issued or spent) belongs to, with its
        current tokens (GET /_control/account?token=)."""
        return self.control("account?" + urllib.parse.urlencode({"token": token}))

    def stats(self, platform=None):
        s = self.control("stats")
        return s["platforms"][platform] if platform else s

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc.stdout.close()


class FakeDaemonTest(DaemonTest):
    """DaemonTest with the fake platform server: every platform of the
    daemon points at it, with client credentials in files."""

    def setUp(self):
        self.fake = FakePlatforms()
        self.secrets = tempfile.mkdtemp(prefix="tokend-secrets-")
        super().setUp()

    def daemon_settings(self):
        settings = self.fake.settings(self.secrets)
        settings.update(self.settings)
        return settings

    def tearDown(self):
        super().tearDown()
        self.fake.stop()

    def version(self, account_id):
        return self.db.one("SELECT token_version FROM platform_accounts WHERE id = %s",
                           account_id)
