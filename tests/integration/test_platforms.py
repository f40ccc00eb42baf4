"""Every platform of platforms.md through the real engine against the fake
platform server (tests/fake): the request each platform needs (the fake
checks method, path, query vs form, grant_type and client authentication
strictly, with exact client credentials here, so a success proves the shape;
its per-request log and counters confirm it), the expiry stored from the
response, the token tokend stored being the platform's current one (opened
from the database and compared with the fake's own state), dead grants
revoked and transient failures retried, per platform; the Meta rules (the
exchange, the 24-hour rule of Threads and Instagram, the Facebook
re-exchange that does not extend, the daily Page check and the Page the user
no longer manages) and LinkedIn's no-refresh and partner paths."""

import base64
import collections
import ctypes
import ctypes.util
import datetime
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from fake import FAKE  # noqa: E402
from harness import (PLATFORM_NAMES, Daemon, Database, access_token_of,  # noqa: E402
                     insert_account, refresh_token_of, has_failed, wait_for)

CLIENT_ID = "tokend-client"
CLIENT_SECRET = "tokend-secret"
DAY = 86400
META = ("threads", "instagram", "facebook")
GRAPH_TRANSIENT = (1, 2, 4, 17, 32, 341, 368, 613)


def ago(seconds):
    return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)


# ---- opening sealed tokens (docs/sealed-format.md), with libcrypto ----

_crypto = ctypes.CDLL(ctypes.util.find_library("crypto"))
_crypto.EVP_CIPHER_CTX_new.restype = ctypes.c_void_p
_crypto.EVP_CIPHER_CTX_free.argtypes = [ctypes.c_void_p]
_crypto.EVP_aes_256_gcm.restype = ctypes.c_void_p
_crypto.EVP_DecryptInit_ex.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                       ctypes.c_char_p, ctypes.c_char_p]
_crypto.EVP_DecryptUpdate.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                      ctypes.POINTER(ctypes.c_int), ctypes.c_char_p, ctypes.c_int]
_crypto.EVP_DecryptFinal_ex.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                        ctypes.POINTER(ctypes.c_int)]
_crypto.EVP_CIPHER_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                        ctypes.c_void_p]
EVP_CTRL_GCM_SET_IVLEN, EVP_CTRL_GCM_SET_TAG = 0x9, 0x11
COLUMNS = {"access_token": 1, "refresh_token": 2, "app_password": 3}


def load_keyring(path):
    keys = {}
    with open(path) as f:
        for line in f:
            fields = line.split("#", 1)[0].split()
            if fields:
                keys[int(fields[0])] = base64.b64decode(fields[1])
    return keys


def open_sealed(keys, account_id, column, sealed):
    sealed = bytes(sealed)
    assert len(sealed) >= 33 and sealed[0] == 1, "malformed sealed value"
    key = keys[struct.unpack(">I", sealed[1:5])[0]]
    aad = sealed[:5] + uuid.UUID(account_id).bytes + bytes([COLUMNS[column]])
    nonce, body, tag = sealed[5:17], sealed[17:-16], sealed[-16:]
    ctx = _crypto.EVP_CIPHER_CTX_new()
    try:
        n = ctypes.c_int(0)
        out = ctypes.create_string_buffer(len(body) + 16)
        ok = (_crypto.EVP_DecryptInit_ex(ctx, _crypto.EVP_aes_256_gcm(), None, None, None) == 1
              and _crypto.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, None) == 1
              and _crypto.EVP_DecryptInit_ex(ctx, None, None, key, nonce) == 1
              and _crypto.EVP_DecryptUpdate(ctx, None, ctypes.byref(n), aad, len(aad)) == 1
              and _crypto.EVP_DecryptUpdate(ctx, out, ctypes.byref(n), body, len(body)) == 1)
        length = n.value
        tag_buf = ctypes.create_string_buffer(tag, 16)
        ok = ok and _crypto.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag_buf) == 1
        ok = ok and _crypto.EVP_DecryptFinal_ex(ctx, out, ctypes.byref(n)) == 1
        assert ok, "sealed value does not open"
        return out.raw[:length].decode()
    finally:
        _crypto.EVP_CIPHER_CTX_free(ctx)


def sanitizer_findings(log):
    """Reports of a -DTOKEND_SANITIZE=ON build in a daemon log: AddressSanitizer
    and UBSan errors, and leaks from the code these tests drive (the platform
    modules, the policy, the refresh engine)."""
    found = [log[log.index(marker):][:2000] for marker in ("ERROR: AddressSanitizer",
                                                          "runtime error:") if marker in log]
    found += [block for block in log.split("\n\n") if "leak of" in block
              and any(src in block for src in ("platforms/", "scheduler/policy.c",
                                               "daemon/refresh.c"))]
    return found


# ---- the fake, with exact client credentials and its request log ----

class Fake:
    def __init__(self, *args):
        self.log_path = tempfile.mkstemp(prefix="fake-platforms-", suffix=".log")[1]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [FAKE, "--port", "0", "--verbose", "--client-id", CLIENT_ID, "--client-secret",
             CLIENT_SECRET, *args], stdout=subprocess.PIPE, stderr=self.log, text=True)
        first = self.proc.stdout.readline().strip()
        if not first.startswith("listening on "):
            raise AssertionError(f"fake_platforms did not start: {first}")
        self.url = "http://" + first.split()[-1]

    def settings(self, secrets_dir):
        path = os.path.join(secrets_dir, "client_secret")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(CLIENT_SECRET + "\n")
        out = {}
        for p in PLATFORM_NAMES:
            out[f"platform.{p}.base_url"] = f"{self.url}/{p}" + ("/v21.0" if p == "facebook"
                                                                 else "")
            out[f"platform.{p}.client_id"] = CLIENT_ID
            out[f"platform.{p}.client_secret_file"] = path
        return out

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read().decode() or "null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "null")

    def control(self, path, body=None):
        status, out = self.call("POST" if body is not None else "GET", "/_control/" + path, body)
        assert status == 200, f"/_control/{path}: {status} {out}"
        return out

    def fault(self, platform, kind, count=1, **extra):
        self.control("fault", {"platform": platform, "kind": kind, "count": count, **extra})

    def revoke(self, token):
        self.control("revoke", {"token": token})

    def stats(self, platform):
        return self.control("stats")["platforms"][platform]

    def account(self, key):
        return self.control("account?" + urllib.parse.urlencode({"account": key}))

    def page_token(self, user_token):
        """A Page token the way the API gets one at connect time: /me/accounts."""
        query = urllib.parse.urlencode({"access_token": user_token})
        status, body = self.call("GET", f"/facebook/v21.0/me/accounts?{query}")
        assert status == 200, body
        return body["data"][0]["access_token"]

    def requests(self):
        """'<platform> <path> -> <status>' for every answered request so far."""
        self.log.flush()
        with open(self.log_path) as f:
            return [line.split(": ", 1)[1].strip() for line in f
                    if line.startswith("fake_platforms: ") and " -> " in line]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.log.close()
        os.unlink(self.log_path)


class PlatformTest(unittest.TestCase):
    fake_args = ()
    settings = {}

    def setUp(self):
        self.fake = Fake(*self.fake_args)
        self.db = Database()
        self.secrets = tempfile.mkdtemp(prefix="tokend-secrets-")
        settings = self.fake.settings(self.secrets)
        settings.update(self.settings)
        self.daemon = Daemon(self.db, settings)
        self.daemon.migrate()
        self.keys = load_keyring(self.daemon.keyring)

    def tearDown(self):
        self.daemon.stop()
        log = self.daemon.log_text() if self.daemon.proc else ""
        if has_failed(self) or os.environ.get("TOKEND_TEST_VERBOSE"):
            print(f"--- tokend log ---\n{log[-8000:]}")
            print("--- fake requests ---\n" + "\n".join(self.fake.requests()[-60:]))
        self.fake.stop()
        self.db.close()
        shutil.rmtree(self.secrets, ignore_errors=True)
        self.assertEqual(sanitizer_findings(log), [])

    # -- rows --

    def seed(self, platform, access_token=None, **kw):
        """insert_account, optionally with an access token of the test's choosing."""
        account_id = kw.pop("account_id", None) or str(uuid.uuid4())
        if access_token is not None:
            kw["access_token"] = self.daemon.seal(account_id, "access_token", access_token)
        return insert_account(self.db, self.daemon, platform=platform, account_id=account_id,
                              **kw)

    def row(self, a, *columns):
        return self.db.sql(f"SELECT {', '.join(columns)} FROM platform_accounts WHERE id = %s",
                           a)[0]

    def secs(self, a, column):
        """Seconds from now to a timestamp column (None when NULL)."""
        return self.db.one(f"SELECT extract(epoch FROM {column} - now())::float8 "
                           "FROM platform_accounts WHERE id = %s", a)

    def version(self, a):
        return self.row(a, "token_version")[0]

    def token(self, a, column):
        sealed = self.row(a, column)[0]
        return None if sealed is None else open_sealed(self.keys, a, column, sealed)

    def events(self, a):
        return self.db.sql("SELECT type, reason, token_version, data FROM tokend_outbox "
                           "WHERE account_id = %s ORDER BY id", a)

    def wait_version(self, a, version, timeout=10):
        wait_for(lambda: self.version(a) >= version, timeout, f"token_version {version} of {a}")

    def wait_status(self, a, status, timeout=10):
        wait_for(lambda: self.row(a, "status")[0] == status, timeout, f"{a} {status}")

    def wait_failures(self, a, n=1, timeout=10):
        wait_for(lambda: self.row(a, "failure_count")[0] >= n, timeout, f"failure of {a}")

    def request_refresh(self, a):
        self.assertTrue(self.db.one("SELECT tokend_request_refresh(%s)", a))


# ---- success: one account per way of keeping a token alive ----

# name, platform, row (insert_account arguments; "issued_ago" sets
# token_issued_at), the request the platform must see, the lifetime the
# response gives (s), the refresh token (rotates / kept / none) and the
# refresh token's lifetime from the response (s, None: not stored).
SUCCESS = [
    ("x", "x", dict(access_in="4 minutes", refresh=True),
     "x /x/2/oauth2/token", 7200, "rotates", None),
    ("bluesky", "bluesky", dict(access_in="5 minutes", refresh=True, external_id="alice.test"),
     "bluesky /bluesky/xrpc/com.atproto.server.refreshSession", 7200, "rotates", 90 * DAY),
    ("threads exchange", "threads", dict(access_in="1 hour", needs_exchange=True),
     "threads /threads/access_token", 5183944, "none", None),
    ("threads refresh", "threads", dict(access_in="10 days", issued_ago=2 * DAY),
     "threads /threads/refresh_access_token", 5183944, "none", None),
    ("instagram exchange", "instagram", dict(access_in="1 hour", needs_exchange=True),
     "instagram /instagram/access_token", 5183944, "none", None),
    ("instagram refresh", "instagram", dict(access_in="10 days", issued_ago=2 * DAY),
     "instagram /instagram/refresh_access_token", 5183944, "none", None),
    ("facebook exchange", "facebook", dict(access_in="2 hours", needs_exchange=True),
     "facebook /facebook/v21.0/oauth/access_token", 5183944, "none", None),
    ("facebook re-exchange", "facebook", dict(access_in="13 days"),
     "facebook /facebook/v21.0/oauth/access_token", 5183944, "none", None),
    ("linkedin partner", "linkedin",
     dict(access_in="23 hours", refresh=True, refresh_expires_at=ago(-300 * DAY)),
     "linkedin /linkedin/oauth/v2/accessToken", 60 * DAY, "kept", 365 * DAY),
    ("pinterest", "pinterest", dict(access_in="23 hours", refresh=True),
     "pinterest /pinterest/v5/oauth/token", 30 * DAY, "rotates", 60 * DAY),
    ("tiktok", "tiktok", dict(access_in="20 minutes", refresh=True, issued_ago=DAY - 1200),
     "tiktok /tiktok/v2/oauth/token/", DAY, "rotates", 365 * DAY),
    ("youtube", "youtube", dict(access_in="4 minutes", refresh=True),
     "youtube /youtube/token", 3599, "kept", None),
]


def seed_case(test, platform, row):
    row = dict(row)
    issued_ago = row.pop("issued_ago", None)
    if issued_ago is not None:
        row["token_issued_at"] = ago(issued_ago)
    return test.seed(platform, **row)


def fake_key(platform, a):
    """The fake's stable key of the grant: the seed token it adopted first."""
    if platform in META:
        return access_token_of(platform, a)
    return refresh_token_of(platform, a)


class Success(PlatformTest):
    def test_every_platform_refreshes_with_the_right_request(self):
        accounts = {name: seed_case(self, platform, row)
                    for name, platform, row, *_ in SUCCESS}
        self.daemon.start()
        for name, *_ in SUCCESS:
            self.wait_version(accounts[name], 2)
        # One request per account, each to its platform's endpoint, none refused.
        self.assertEqual(collections.Counter(self.fake.requests()),
                         collections.Counter(case[3] + " -> 200" for case in SUCCESS))
        for name, platform, row, request, lifetime, refresh, refresh_life in SUCCESS:
            a = accounts[name]
            with self.subTest(name):
                # Extended (a re-exchange included): no reauth_required path.
                self.assertEqual(self.row(a, "status", "failure_count", "needs_exchange",
                                          "cannot_extend"), ("active", 0, False, False))
                # The expiry is the response's, not a default.
                self.assertAlmostEqual(self.secs(a, "access_expires_at"), lifetime, delta=30)
                if refresh_life:
                    self.assertAlmostEqual(self.secs(a, "refresh_expires_at"), refresh_life,
                                           delta=60)
                # What tokend stored is what the platform considers current.
                upstream = self.fake.account(fake_key(platform, a))
                self.assertEqual(self.token(a, "access_token"), upstream["access_token"])
                stored_refresh = self.token(a, "refresh_token")
                if refresh == "none":
                    self.assertIsNone(stored_refresh)
                elif refresh == "kept":
                    self.assertEqual(stored_refresh, refresh_token_of(platform, a))
                    self.assertEqual(upstream["refresh_token"], refresh_token_of(platform, a))
                else:
                    self.assertEqual(stored_refresh, upstream["refresh_token"])
                    self.assertNotEqual(stored_refresh, refresh_token_of(platform, a))
                self.assertEqual(self.events(a), [])
        for platform in PLATFORM_NAMES:
            stats = self.fake.stats(platform)
            with self.subTest(platform=platform):
                self.assertEqual((stats["rejected"], stats["dead"], stats["reuse"]), (0, 0, 0))
                self.assertEqual(stats["ok"], stats["requests"])
        self.assertNotIn(refresh_token_of("x", accounts["x"]), self.daemon.log_text())

    def test_rotating_and_kept_refresh_tokens_carry_on(self):
        """A second refresh on request uses what the first stored: rotated
        tokens (X, Bluesky, Pinterest, TikTok) with no reuse of a spent one,
        kept ones (YouTube, LinkedIn) unchanged in the row."""
        names = ("x", "bluesky", "pinterest", "tiktok", "youtube", "linkedin partner")
        cases = {c[0]: c for c in SUCCESS}
        accounts = {n: seed_case(self, cases[n][1], cases[n][2]) for n in names}
        self.daemon.start()
        for n in names:
            self.wait_version(accounts[n], 2)
            self.request_refresh(accounts[n])
        for n in names:
            self.wait_version(accounts[n], 3)
        for n in names:
            platform, refresh = cases[n][1], cases[n][5]
            with self.subTest(n):
                stats = self.fake.stats(platform)
                self.assertEqual((stats["ok"], stats["reuse"], stats["dead"]), (2, 0, 0))
                same = self.token(accounts[n], "refresh_token") == refresh_token_of(platform,
                                                                                  accounts[n])
                self.assertEqual(same, refresh == "kept")
                self.assertEqual(self.row(accounts[n], "status")[0], "active")


# ---- dead grants ----

# platform, row, the platform's own code for the dead grant
DEAD = [
    ("x", dict(access_in="4 minutes", refresh=True), "invalid_request"),
    ("bluesky", dict(access_in="5 minutes", refresh=True, external_id="bob.test"),
     "ExpiredToken"),
    ("threads", dict(access_in="1 hour", needs_exchange=True), "190/460"),
    ("instagram", dict(access_in="10 days", issued_ago=2 * DAY), "190/460"),
    ("facebook", dict(access_in="13 days"), "190/460"),
    ("linkedin", dict(access_in="23 hours", refresh=True), "invalid_request"),
    ("pinterest", dict(access_in="23 hours", refresh=True), "1"),
    ("tiktok", dict(access_in="20 minutes", refresh=True, issued_ago=DAY - 1200),
     "invalid_grant"),
    ("youtube", dict(access_in="4 minutes", refresh=True), "invalid_grant"),
]


class DeadGrants(PlatformTest):
    def test_dead_grant_is_revoked_on_every_platform(self):
        accounts = {}
        for platform, row, _ in DEAD:
            a = seed_case(self, platform, row)
            self.fake.revoke(fake_key(platform, a))
            accounts[platform] = a
        self.daemon.start()
        for platform, _, upstream_code in DEAD:
            a = accounts[platform]
            with self.subTest(platform):
                self.wait_status(a, "revoked")
                self.assertEqual(self.row(a, "last_error_code")[0], "platform_auth_failed")
                events = self.events(a)
                self.assertEqual([(t, r) for t, r, _, _ in events], [("token.revoked",
                                                                      "revoked")])
                error = events[0][3]["error"]
                self.assertEqual((error["code"], error["upstream_code"]),
                                 ("platform_auth_failed", upstream_code))
                self.assertNotIn(fake_key(platform, a), json.dumps(events[0][3]))
                self.assertEqual(self.fake.stats(platform)["requests"], 1)  # no retry

    def test_dead_answer_to_an_exchange(self):
        """A dead answer to the exchange of a short-lived token revokes too
        (the fake's "dead" fault: 190/460 while the grant lives on there)."""
        a = self.seed("facebook", access_in="2 hours", needs_exchange=True)
        self.fake.fault("facebook", "dead")
        self.daemon.start()
        self.wait_status(a, "revoked")
        self.assertEqual(self.events(a)[0][3]["error"]["upstream_code"], "190/460")


# ---- transient failures ----

class Transient(PlatformTest):
    def test_transient_answers_are_retried_on_every_platform(self):
        # Outside the Graph: a server error and a rate limit per platform.
        # Which account meets which fault is the engine's order, so each
        # platform's codes are compared as a set.
        grant_rows = {
            "x": (dict(access_in="4 minutes", refresh=True), {"131", "88"}),
            "bluesky": (dict(access_in="5 minutes", refresh=True, external_id="carol.test"),
                        {"InternalServerError", "RateLimitExceeded"}),
            "linkedin": (dict(access_in="23 hours", refresh=True),
                         {"server_error", "rate_limit_exceeded"}),
            "pinterest": (dict(access_in="23 hours", refresh=True), {"5", "8"}),
            "tiktok": (dict(access_in="20 minutes", refresh=True, issued_ago=DAY - 1200),
                       {"internal_error", "rate_limit_exceeded"}),
            "youtube": (dict(access_in="4 minutes", refresh=True),
                        {"internal_failure", "rate_limit_exceeded"}),
        }
        accounts = {}
        for platform, (row, _) in grant_rows.items():
            self.fake.fault(platform, "500")
            self.fake.fault(platform, "429", retry_after=600)
            accounts[platform] = [seed_case(self, platform, row) for _ in range(2)]
        # The Graph: every transient code of platforms.md, on each Meta platform.
        meta_rows = {
            "threads": dict(access_in="10 days", issued_ago=2 * DAY),
            "instagram": dict(access_in="1 hour", needs_exchange=True),
            "facebook": dict(access_in="13 days"),
        }
        for platform, row in meta_rows.items():
            for code in GRAPH_TRANSIENT:
                self.fake.fault(platform, "429", code=code, endpoint="access_token")
            accounts[platform] = [seed_case(self, platform, row) for _ in GRAPH_TRANSIENT]
        # The Page check: a server error of /debug_token.
        self.fake.fault("facebook", "500", endpoint="debug_token")
        page = self.seed("facebook", access_token="facebook-page-transient",
                         last_check_at=ago(25 * 3600))
        self.daemon.start()
        expected = {p: codes for p, (_, codes) in grant_rows.items()}
        expected.update({p: {str(c) for c in GRAPH_TRANSIENT} for p in meta_rows})
        for platform, ids in accounts.items():
            with self.subTest(platform):
                for a in ids:
                    self.wait_failures(a)
                rows = [self.row(a, "status", "last_error_code", "token_version") for a in ids]
                self.assertEqual({r[0] for r in rows}, {"active"})
                self.assertEqual({r[2] for r in rows}, {1})
                self.assertEqual({r[1] for r in rows}, expected[platform])
                for a in ids:
                    self.assertGreater(self.secs(a, "next_attempt_at"), 20)  # backoff
                    self.assertEqual(self.events(a), [])
                if platform not in META:
                    # The rate limit's Retry-After / x-rate-limit-reset is honoured.
                    waits = sorted(self.secs(a, "next_attempt_at") for a in ids)
                    self.assertGreater(waits[-1], 590)
        self.wait_failures(page)
        self.assertEqual(self.row(page, "status", "last_error_code"), ("active", "1"))
        self.assertLess(self.secs(page, "last_check_at"), -24 * 3600)  # not checked
        # Retried after the backoff: an exchange and a check stay what they are.
        schedule = self.daemon.schedule()
        for platform, ids in accounts.items():
            for a in ids:
                entry, retry_in = schedule[a], self.secs(a, "next_attempt_at")
                warn_lead = {"x": 120, "bluesky": 120, "tiktok": 300, "youtube": 120}
                if retry_in > self.secs(a, "access_expires_at") - warn_lead.get(platform, 0):
                    # Retry-After beyond the warning time (platforms.md's
                    # warn column): token.expiring (refresh_failing) first.
                    self.assertEqual(entry["action"], "warn")
                    continue
                self.assertEqual(entry["action"],
                                 "exchange" if platform == "instagram" else "retry")
                self.assertAlmostEqual(entry["due_in_seconds"], retry_in, delta=2)
        self.assertEqual(schedule[page]["action"], "check")
        self.assertGreater(schedule[page]["due_in_seconds"], 20)

    def test_retry_succeeds_once_the_platform_recovers(self):
        a = self.seed("pinterest", access_in="23 hours", refresh=True)
        self.fake.fault("pinterest", "500")
        self.daemon.start()
        self.wait_failures(a)
        self.db.sql("UPDATE platform_accounts SET next_attempt_at = now() WHERE id = %s", a)
        self.request_refresh(a)
        self.wait_version(a, 2)
        self.assertEqual(self.row(a, "failure_count", "last_error_code", "status"),
                         (0, None, "active"))


# ---- Meta ----

class MetaMinimumAge(PlatformTest):
    """Threads and Instagram: a long-lived token is refreshed 14 days before
    expiry but never before it is 24 hours old. Lifetimes here are 10 days,
    so every token is inside its 14-day window from the start (9 days for the
    seeded long-lived ones, so a refresh extends them); the fake keeps
    its own 24-hour rule (--meta-min-age 86400) and would refuse a young one."""
    fake_args = ("--access-ttl", "threads=864000", "--access-ttl", "instagram=864000")

    def test_young_tokens_wait_for_their_24_hours(self):
        acc = {}
        for p in ("threads", "instagram"):
            acc[p, "exchange"] = self.seed(p, access_in="1 hour", needs_exchange=True)
            acc[p, "young"] = self.seed(p, access_in="9 days")  # issued now
            acc[p, "old"] = self.seed(p, access_in="9 days", token_issued_at=ago(2 * DAY))
        self.daemon.start()
        for p in ("threads", "instagram"):
            self.wait_version(acc[p, "exchange"], 2)
            self.wait_version(acc[p, "old"], 2)
        self.request_refresh(acc["threads", "young"])  # the API asks: still too young
        time.sleep(1.5)
        schedule = self.daemon.schedule()
        for (p, kind), a in acc.items():
            with self.subTest(platform=p, kind=kind):
                self.assertEqual(self.version(a), 1 if kind == "young" else 2)
                self.assertAlmostEqual(self.secs(a, "access_expires_at"),
                                       (9 if kind == "young" else 10) * DAY, delta=60)
                entry = schedule[a]
                self.assertEqual(entry["action"], "refresh")
                # Due at issue time + 24 h, although expiry - 14 d is long past.
                self.assertAlmostEqual(entry["due_in_seconds"], DAY, delta=60)
        for p in ("threads", "instagram"):
            stats = self.fake.stats(p)
            with self.subTest(platform=p):
                self.assertEqual((stats["ok"], stats["rejected"], stats["requests"]), (2, 0, 2))
        requests = self.fake.requests()
        self.assertEqual(requests.count("threads /threads/access_token -> 200"), 1)
        self.assertEqual(requests.count("threads /threads/refresh_access_token -> 200"), 1)
        self.assertEqual(requests.count("instagram /instagram/refresh_access_token -> 200"), 1)


class FacebookReexchangeDoesNotExtend(PlatformTest):
    """A re-exchange that returns no later expiry than the stored one cannot
    keep the account alive: token.expiring (reauth_required) 7 days ahead of
    the expiry (at once here: 5 days left), then expiry; no exchange loop."""
    fake_args = ("--access-ttl", "facebook=432000")

    def test_reexchange_without_extension_warns_reauth(self):
        a = self.seed("facebook", access_in="5 days 30 seconds")
        self.daemon.start()
        self.wait_version(a, 2)
        wait_for(lambda: self.events(a), 10, "token.expiring")
        time.sleep(0.5)
        self.assertEqual(self.row(a, "status", "cannot_extend", "token_version"),
                         ("active", True, 2))
        self.assertEqual([(t, r, v) for t, r, v, _ in self.events(a)],
                         [("token.expiring", "reauth_required", 2)])
        entry = self.daemon.schedule()[a]
        self.assertEqual(entry["action"], "expire")
        self.assertAlmostEqual(entry["due_in_seconds"], 5 * DAY, delta=60)
        self.assertEqual(self.fake.stats("facebook")["ok"], 1)  # no second re-exchange


class FacebookPages(PlatformTest):
    settings = {"platform.facebook.rate_limit": "4"}

    def checks(self):
        return self.fake.requests().count("facebook /facebook/v21.0/debug_token -> 200")

    def test_page_check_then_page_no_longer_managed(self):
        user = "facebook-user-" + uuid.uuid4().hex[:8]
        page_token = self.fake.page_token(user)
        page = self.seed("facebook", access_token=page_token, last_check_at=ago(25 * 3600))
        self.daemon.start()
        wait_for(lambda: self.secs(page, "last_check_at") is not None
                 and self.secs(page, "last_check_at") > -5, 10, "the daily check")
        self.assertIn("facebook /facebook/v21.0/debug_token -> 200", self.fake.requests())
        # No token change, no expiry, next check a day later (minus jitter).
        self.assertEqual(self.row(page, "token_version", "status", "access_expires_at"),
                         (1, "active", None))
        entry = self.daemon.schedule()[page]
        self.assertEqual(entry["action"], "check")
        self.assertTrue(DAY - 6 * 3600 - 60 <= entry["due_in_seconds"] <= DAY,
                        entry["due_in_seconds"])
        # The user loses the Page; the API notices and asks for a check now.
        self.fake.control("pages", {"account": user, "count": 0})
        self.request_refresh(page)
        self.wait_status(page, "revoked")
        self.assertEqual(self.row(page, "last_error_code")[0], "facebook.pages.none")
        events = self.events(page)
        self.assertEqual([(t, r) for t, r, _, _ in events], [("token.revoked", "revoked")])
        self.assertEqual((events[0][3]["error"]["code"], events[0][3]["error"]["upstream_code"]),
                         ("facebook.pages.none", "190/492"))
        stats = self.fake.stats("facebook")
        self.assertEqual((stats["rejected"], stats["dead"]), (0, 0))  # the app token was right

    def test_page_checks_are_spread_and_rate_limited(self):
        user = "facebook-user-" + uuid.uuid4().hex[:8]
        self.fake.control("pages", {"account": user, "count": 30})
        query = urllib.parse.urlencode({"access_token": user})
        _, body = self.fake.call("GET", f"/facebook/v21.0/me/accounts?{query}")
        tokens = [p["access_token"] for p in body["data"]]
        # Ten Pages connected at the same moment and checked just now ...
        fresh = [self.seed("facebook", access_token=t, last_check_at=ago(0)) for t in tokens[:10]]
        # ... and twenty due at once: at most 4 checks a second (a second's
        # worth at once, then one every 250 ms).
        due = [self.seed("facebook", access_token=t, last_check_at=ago(25 * 3600))
               for t in tokens[10:]]
        self.daemon.start()
        started = time.monotonic()
        seen = []
        wait_for(lambda: seen.append((round(time.monotonic() - started, 2), self.checks()))
                 or seen[-1][1] >= 20, 20, "twenty checks")
        self.assertLessEqual(seen[0][1], 8, seen)
        self.assertGreater(seen[-1][0], 2.0, seen)
        for a in due:
            self.assertEqual(self.row(a, "status", "failure_count"), ("active", 0))
        time.sleep(0.5)
        self.assertEqual(self.checks(), 20)  # the fresh ones wait
        schedule = self.daemon.schedule()
        dues = sorted(schedule[a]["due_in_seconds"] for a in fresh)
        self.assertTrue(all(DAY - 6 * 3600 - 60 <= d <= DAY for d in dues), dues)
        self.assertGreater(dues[-1] - dues[0], 3600, dues)  # spread by the jitter
        self.assertEqual(len(set(round(d) for d in dues)), len(dues))


# ---- LinkedIn ----

class LinkedIn(PlatformTest):
    settings = {"platform.linkedin.reauth_warn_lead": "7d"}

    def test_without_refresh_token_no_request_warn_then_expire(self):
        warn = self.seed("linkedin", access_in="6 days")
        expire = self.seed("linkedin", access_in="2 seconds")
        quiet = self.seed("linkedin", access_in="30 days")
        self.daemon.start()
        wait_for(lambda: self.events(warn), 10, "token.expiring")
        self.wait_status(expire, "expired")
        self.assertEqual([(t, r) for t, r, _, _ in self.events(warn)],
                         [("token.expiring", "reauth_required")])
        self.assertEqual([(t, r) for t, r, _, _ in self.events(expire)][-1],
                         ("token.revoked", "expired"))
        schedule = self.daemon.schedule()
        self.assertEqual(schedule[warn]["action"], "expire")
        self.assertEqual((schedule[quiet]["action"], round(schedule[quiet]["due_in_seconds"]
                                                           / DAY)), ("warn", 23))
        self.assertEqual(self.fake.stats("linkedin")["requests"], 0)  # nothing to call

    def test_partner_refresh_token_fixed_expiry_warns_reauth(self):
        """The partner refresh token dies 365 days after the first grant
        (the first row: in 6 days): token.expiring (reauth_required) 7 days
        before, and no refresh while the access token is not due. The second
        row is refreshed 24 h before its access token expires."""
        a = self.seed("linkedin", access_in="30 days", refresh=True,
                      refresh_expires_at=ago(-6 * DAY))
        due = self.seed("linkedin", access_in="23 hours", refresh=True,
                        refresh_expires_at=ago(-300 * DAY))
        self.daemon.start()
        wait_for(lambda: self.events(a), 10, "token.expiring")
        self.wait_version(due, 2)
        self.assertEqual([(t, r, v) for t, r, v, _ in self.events(a)],
                         [("token.expiring", "reauth_required", 1)])
        self.assertEqual(self.version(a), 1)  # the access token is not due
        self.assertEqual(self.events(due), [])
        self.assertEqual(self.fake.stats("linkedin")["ok"], 1)
        # The response's refresh_token_expires_in is stored: it counts from
        # the first grant and a refresh does not extend it.
        before = self.secs(due, "refresh_expires_at")
        self.request_refresh(due)
        self.wait_version(due, 3)
        self.assertAlmostEqual(self.secs(due, "refresh_expires_at"), before, delta=5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
