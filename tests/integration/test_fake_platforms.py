"""The fake platform server (tests/fake) on its own: every platform's token
endpoint answers in its documented shape, refuses wrong shapes, rotates and
counts reuse, honours revocation; every fault kind is served; HTTPS works
with a test CA and an unknown CA is refused. Needs no database."""

import base64
import http.client
import json
import os
import select
import signal
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("TOKEND_SOURCE_DIR", os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("TOKEND_BUILD_DIR", "build")
FAKE = os.path.join(BUILD, "tests", "fake", "fake_platforms")
MAKE_CA = os.path.join(SOURCE, "tests", "fake", "make-test-ca.sh")

CLIENT = ("client-1", "secret-1")
MIB2 = 2 << 20


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


class Fake:
    """One fake_platforms process on free loopback ports."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([FAKE, "--port", "0", "--quiet", *args],
                                     stdout=subprocess.PIPE, text=True)
        self.port = self.tls_port = None
        # One line per listener: "listening on 127.0.0.1:PORT[ (tls)]".
        for _ in range(("--no-http" not in args) + ("--tls-cert" in args)):
            line = self._line()
            port = int(line.split(":")[1].split()[0])
            if line.rstrip().endswith("(tls)"):
                self.tls_port = port
            else:
                self.port = port

    def _line(self):
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("listening on 127.0.0.1:"):
            self.proc.kill()
            raise AssertionError(f"fake_platforms did not start: {line!r}")
        return line

    def stop(self):
        """SIGTERM; returns the exit status (0 expected, also under ASan)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        finally:
            self.proc.stdout.close()

    def request(self, method, path, body=None, headers=None, context=None, timeout=10):
        if context:
            conn = http.client.HTTPSConnection("127.0.0.1", self.tls_port, timeout=timeout,
                                               context=context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Response(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def form(self, path, params, basic=None, method="POST"):
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if basic:
            pair = f"{basic[0]}:{basic[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return self.request(method, path, urllib.parse.urlencode(params), headers)

    def get(self, path, params):
        return self.request("GET", path + "?" + urllib.parse.urlencode(params))

    def control(self, name, body=None, method="POST"):
        data = json.dumps(body or {}) if method == "POST" else None
        return self.request(method, "/_control/" + name, data,
                            {"Content-Type": "application/json"})

    def fault(self, **rule):
        resp = self.control("fault", rule)
        assert resp.status == 200, resp.body
        return resp.json()

    def stats(self, platform):
        return self.control("stats", method="GET").json()["platforms"][platform]

    # One refresh call per platform, shaped as platforms.md says.
    def refresh(self, platform, token):
        return REFRESH[platform](self, token)


def jwt_payload(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


REFRESH = {
    "x": lambda f, t: f.form("/x/2/oauth2/token", {
        "grant_type": "refresh_token", "refresh_token": t, "client_id": CLIENT[0]}, CLIENT),
    "bluesky": lambda f, t: f.request(
        "POST", "/bluesky/xrpc/com.atproto.server.refreshSession",
        headers={"Authorization": "Bearer " + t}),
    "threads": lambda f, t: f.get("/threads/refresh_access_token", {
        "grant_type": "th_refresh_token", "access_token": t}),
    "instagram": lambda f, t: f.get("/instagram/refresh_access_token", {
        "grant_type": "ig_refresh_token", "access_token": t}),
    "facebook": lambda f, t: f.get("/facebook/v21.0/oauth/access_token", {
        "grant_type": "fb_exchange_token", "client_id": CLIENT[0],
        "client_secret": CLIENT[1], "fb_exchange_token": t}),
    "linkedin": lambda f, t: f.form("/linkedin/oauth/v2/accessToken", {
        "grant_type": "refresh_token", "refresh_token": t, "client_id": CLIENT[0],
        "client_secret": CLIENT[1]}),
    "pinterest": lambda f, t: f.form("/pinterest/v5/oauth/token", {
        "grant_type": "refresh_token", "refresh_token": t}, CLIENT),
    "tiktok": lambda f, t: f.form("/tiktok/v2/oauth/token/", {
        "client_key": CLIENT[0], "client_secret": CLIENT[1], "grant_type": "refresh_token",
        "refresh_token": t}),
    "youtube": lambda f, t: f.form("/youtube/token", {
        "client_id": CLIENT[0], "client_secret": CLIENT[1], "refresh_token": t,
        "grant_type": "refresh_token"}),
}

# The fields (and JSON types) of each platform's success body.
SHAPE = {
    "x": {"token_type": str, "expires_in": int, "access_token": str, "scope": str,
          "refresh_token": str},
    "bluesky": {"accessJwt": str, "refreshJwt": str, "handle": str, "did": str, "active": bool},
    "threads": {"access_token": str, "token_type": str, "expires_in": int},
    "instagram": {"access_token": str, "token_type": str, "expires_in": int},
    "facebook": {"access_token": str, "token_type": str, "expires_in": int},
    "linkedin": {"access_token": str, "expires_in": int, "refresh_token": str,
                 "refresh_token_expires_in": int, "scope": str},
    "pinterest": {"access_token": str, "token_type": str, "expires_in": int, "scope": str,
                  "refresh_token": str, "refresh_token_expires_in": int,
                  "refresh_token_expires_at": int},
    "tiktok": {"open_id": str, "scope": str, "access_token": str, "expires_in": int,
               "refresh_token": str, "refresh_expires_in": int, "token_type": str},
    "youtube": {"access_token": str, "expires_in": int, "scope": str, "token_type": str},
}

LIFETIME = {"x": 7200, "bluesky": 7200, "threads": 5183944, "instagram": 5183944,
            "facebook": 5183944, "linkedin": 60 * 86400, "pinterest": 30 * 86400,
            "tiktok": 86400, "youtube": 3599}
ROTATES = {"x", "bluesky", "pinterest", "tiktok"}
META = {"threads", "instagram", "facebook"}


def next_token(platform, body, presented):
    """The token the next refresh presents."""
    if platform == "bluesky":
        return body["refreshJwt"]
    if platform in META:
        return body["access_token"]
    return body.get("refresh_token", presented)  # YouTube keeps its refresh token


class FakeTestCase(unittest.TestCase):
    args = ("--meta-min-age", "0")

    @classmethod
    def setUpClass(cls):
        if not os.access(FAKE, os.X_OK):
            raise AssertionError(f"{FAKE} is not built (target fake_platforms)")
        cls.fake = Fake(*cls.args)

    @classmethod
    def tearDownClass(cls):
        status = cls.fake.stop()
        if status != 0:
            raise AssertionError(f"fake_platforms exited {status} on SIGTERM")

    def setUp(self):
        self.assertEqual(self.fake.control("reset").status, 200)

    def assertDead(self, platform, resp):
        """resp is the platform's answer for a dead grant (platforms.md)."""
        body = resp.json()
        if platform == "x":
            self.assertEqual((resp.status, body["error"]), (400, "invalid_request"))
            self.assertEqual(body["error_description"], "Value passed for the token was invalid.")
        elif platform == "bluesky":
            self.assertEqual((resp.status, body["error"]), (400, "ExpiredToken"))
        elif platform in META:
            self.assertEqual((resp.status, body["error"]["code"]), (400, 190))
            self.assertEqual(body["error"]["type"], "OAuthException")
        elif platform == "linkedin":
            self.assertEqual((resp.status, body["error"]), (400, "invalid_request"))
        elif platform == "pinterest":
            self.assertEqual(resp.status, 400)
            self.assertIsInstance(body["code"], int)
            self.assertIsInstance(body["message"], str)
        else:
            self.assertEqual((resp.status, body["error"]), (400, "invalid_grant"))
            if platform == "tiktok":
                self.assertIn("log_id", body)


class TestEveryPlatform(FakeTestCase):
    def test_good_refresh_has_the_documented_shape(self):
        for platform, shape in SHAPE.items():
            with self.subTest(platform=platform):
                resp = self.fake.refresh(platform, f"{platform}-seed")
                self.assertEqual(resp.status, 200, resp.body)
                self.assertTrue(resp.headers["Content-Type"].startswith("application/json"))
                body = resp.json()
                self.assertEqual(set(body), set(shape))
                for key, kind in shape.items():
                    self.assertIsInstance(body[key], kind, key)
                if "expires_in" in body:
                    self.assertEqual(body["expires_in"], LIFETIME[platform])
                if platform == "bluesky":
                    claims = jwt_payload(body["accessJwt"])
                    self.assertEqual(claims["exp"] - claims["iat"], 7200)
                    self.assertEqual(claims["sub"], body["did"])
                    self.assertEqual(claims["scope"], "com.atproto.access")
                    refresh = jwt_payload(body["refreshJwt"])
                    self.assertEqual(refresh["exp"] - refresh["iat"], 90 * 86400)

    def test_rotation_and_reuse_detection(self):
        for platform in SHAPE:
            with self.subTest(platform=platform):
                seed = f"{platform}-rotate"
                first = self.fake.refresh(platform, seed).json()
                token = next_token(platform, first, seed)
                self.assertNotEqual(first["access_token" if platform != "bluesky"
                                          else "accessJwt"], seed)
                again = self.fake.refresh(platform, token)
                self.assertEqual(again.status, 200, again.body)
                stale = self.fake.refresh(platform, seed)
                if platform in ROTATES:  # two generations old: past Bluesky's grace too
                    self.assertNotEqual(token, seed)
                    self.assertDead(platform, stale)
                    self.assertEqual(self.fake.stats(platform)["reuse"], 1)
                else:  # not rotated (LinkedIn, YouTube), or long-lived and valid (Meta)
                    self.assertEqual(stale.status, 200, stale.body)
                    self.assertEqual(self.fake.stats(platform)["reuse"], 0)

    def test_revoke_gives_the_dead_grant_error(self):
        for platform in SHAPE:
            with self.subTest(platform=platform):
                seed = f"{platform}-revoke"
                token = next_token(platform, self.fake.refresh(platform, seed).json(), seed)
                resp = self.fake.control("revoke", {"account": seed})
                self.assertEqual(resp.status, 200, resp.body)
                self.assertDead(platform, self.fake.refresh(platform, token))

    def test_revoke_before_first_use(self):
        self.fake.control("revoke", {"token": "x-never-used"})
        self.assertDead("x", self.fake.refresh("x", "x-never-used"))

    def test_tokens_of_another_platform_are_unknown(self):
        self.assertDead("x", self.fake.refresh("x", "youtube-abc"))
        self.assertDead("youtube", self.fake.refresh("youtube", "no-prefix"))

    def test_dead_fault_leaves_the_grant_alive(self):
        for platform in SHAPE:
            with self.subTest(platform=platform):
                self.fake.fault(platform=platform, kind="dead")
                self.assertDead(platform, self.fake.refresh(platform, f"{platform}-d"))
                self.assertEqual(self.fake.refresh(platform, f"{platform}-d").status, 200)


class TestWrongShapes(FakeTestCase):
    def test_x(self):
        path, good = "/x/2/oauth2/token", {"grant_type": "refresh_token",
                                           "refresh_token": "x-1", "client_id": CLIENT[0]}
        resp = self.fake.form(path, good)  # no Basic: confidential client
        self.assertEqual((resp.status, resp.json()["error"]), (401, "unauthorized_client"))
        resp = self.fake.form(path, good, ("other-client", "s"))  # id mismatch
        self.assertEqual(resp.status, 401)
        resp = self.fake.request("POST", path, json.dumps(good),
                                 {"Content-Type": "application/json"})
        self.assertEqual(resp.status, 400)
        resp = self.fake.form(path, {**good, "grant_type": "password"}, CLIENT)
        self.assertEqual((resp.status, resp.json()["error"]), (400, "invalid_request"))
        resp = self.fake.form(path, {k: v for k, v in good.items() if k != "refresh_token"},
                              CLIENT)
        self.assertEqual(resp.status, 400)
        self.assertEqual(self.fake.get(path, good).status, 405)
        self.assertEqual(self.fake.stats("x")["rejected"], 6)

    def test_bluesky(self):
        path = "/bluesky/xrpc/com.atproto.server.refreshSession"
        resp = self.fake.request("POST", path)
        self.assertEqual((resp.status, resp.json()["error"]), (401, "AuthMissing"))
        access = self.fake.refresh("bluesky", "bluesky-1").json()["accessJwt"]
        resp = self.fake.refresh("bluesky", access)  # access JWT where refresh goes
        self.assertEqual((resp.status, resp.json()["error"]), (400, "InvalidToken"))
        forged = access[:-4] + ("AAAA" if not access.endswith("AAAA") else "BBBB")
        self.assertEqual(self.fake.refresh("bluesky", forged).json()["error"], "InvalidToken")
        resp = self.fake.request("GET", path, headers={"Authorization": "Bearer bluesky-2"})
        self.assertEqual((resp.status, resp.json()["error"]), (400, "InvalidRequest"))

    def test_graph(self):
        for platform, grant in (("threads", "th_refresh_token"),
                                ("instagram", "ig_refresh_token")):
            path = f"/{platform}/refresh_access_token"
            resp = self.fake.form(path, {"grant_type": grant, "access_token": f"{platform}-1"})
            self.assertEqual(resp.status, 400)  # GET only
            self.assertEqual(resp.json()["error"]["code"], 100)
            resp = self.fake.get(path, {"access_token": f"{platform}-1"})
            self.assertEqual(resp.json()["error"]["code"], 100)
            resp = self.fake.get(f"/{platform}/access_token", {
                "grant_type": grant.replace("refresh", "exchange"),
                "access_token": f"{platform}-1"})  # no client_secret
            self.assertEqual(resp.json()["error"]["code"], 100)
        resp = self.fake.get("/facebook/v21.0/oauth/access_token", {
            "grant_type": "fb_exchange_token", "client_secret": "s",
            "fb_exchange_token": "facebook-1"})  # no client_id
        self.assertEqual(resp.status, 400)

    def test_oauth_platforms(self):
        resp = self.fake.form("/pinterest/v5/oauth/token",
                              {"grant_type": "refresh_token", "refresh_token": "pinterest-1"})
        self.assertEqual(resp.status, 401)
        self.assertEqual(set(resp.json()), {"code", "message"})
        resp = self.fake.form("/linkedin/oauth/v2/accessToken", {
            "grant_type": "refresh_token", "refresh_token": "linkedin-1",
            "client_id": CLIENT[0]})  # no client_secret
        self.assertEqual((resp.status, resp.json()["error"]), (400, "invalid_request"))
        resp = self.fake.form("/tiktok/v2/oauth/token/", {
            "client_id": CLIENT[0], "client_secret": CLIENT[1],  # client_key, not client_id
            "grant_type": "refresh_token", "refresh_token": "tiktok-1"})
        self.assertEqual(resp.status, 400)
        resp = self.fake.form("/youtube/token", {
            "client_id": CLIENT[0], "client_secret": CLIENT[1], "refresh_token": "youtube-1",
            "grant_type": "authorization_code"})
        self.assertEqual((resp.status, resp.json()["error"]), (400, "unsupported_grant_type"))

    def test_unknown_paths(self):
        self.assertEqual(self.fake.request("POST", "/x/2/oauth2/tokens").status, 404)
        self.assertEqual(self.fake.request("POST", "/tiktok/v2/oauth/token").status, 404)
        self.assertEqual(self.fake.request("GET", "/nowhere").status, 404)


class TestPlatformDetails(FakeTestCase):
    args = ("--meta-min-age", "0", "--bluesky-session-limit", "3")

    def test_bluesky_grace_returns_the_current_refresh_token(self):
        first = self.fake.refresh("bluesky", "bluesky-g").json()
        again = self.fake.refresh("bluesky", "bluesky-g")  # rotated, in grace
        self.assertEqual(again.status, 200, again.body)
        self.assertEqual(again.json()["refreshJwt"], first["refreshJwt"])
        self.fake.refresh("bluesky", first["refreshJwt"])  # rotates again
        self.assertDead("bluesky", self.fake.refresh("bluesky", "bluesky-g"))
        stats = self.fake.stats("bluesky")
        self.assertEqual((stats["reuse"], stats["grace_reuse"]), (2, 1))

    def test_bluesky_create_session(self):
        path = "/bluesky/xrpc/com.atproto.server.createSession"
        login = {"identifier": "alice.test", "password": "app-pass"}
        headers = {"Content-Type": "application/json"}
        resp = self.fake.request("POST", path, json.dumps(login), headers)
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(resp.json()["handle"], "alice.test")
        resp = self.fake.request("POST", path, json.dumps({**login, "password": "x"}), headers)
        self.assertEqual((resp.status, resp.json()["error"]), (401, "AuthenticationRequired"))
        resp = self.fake.request("POST", path, json.dumps({"identifier": "alice.test"}),
                                 headers)
        self.assertEqual((resp.status, resp.json()["error"]), (400, "InvalidRequest"))
        resp = self.fake.request("POST", path, json.dumps(login))  # no content type
        self.assertEqual(resp.status, 400)
        resp = self.fake.request("POST", path, json.dumps(login), headers)  # 3rd within 5 min
        self.assertEqual(resp.status, 200, resp.body)
        resp = self.fake.request("POST", path, json.dumps(login), headers)
        self.assertEqual((resp.status, resp.json()["error"]), (429, "RateLimitExceeded"))
        self.assertGreater(int(resp.headers["Retry-After"]), 0)
        bob = {"identifier": "bob.test", "password": "pw"}
        self.fake.control("revoke", {"account": "bob.test", "platform": "bluesky"})
        resp = self.fake.request("POST", path, json.dumps(bob), headers)
        self.assertEqual((resp.status, resp.json()["error"]), (401, "AuthenticationRequired"))

    def test_linkedin_refresh_token_is_fixed_from_the_first_grant(self):
        body = self.fake.refresh("linkedin", "linkedin-l").json()
        self.assertEqual(body["refresh_token"], "linkedin-l")
        self.assertLessEqual(body["refresh_token_expires_in"], 365 * 86400)

    def test_facebook_pages_and_debug_token(self):
        user = self.fake.refresh("facebook", "facebook-u").json()["access_token"]
        debug = self.fake.get("/facebook/v21.0/debug_token",
                              {"input_token": user, "access_token": "123|secret"}).json()
        self.assertTrue(debug["data"]["is_valid"])
        self.assertEqual((debug["data"]["type"], debug["data"]["app_id"]), ("USER", "123"))
        pages = self.fake.get("/facebook/v21.0/me/accounts", {"access_token": user}).json()
        self.assertEqual(len(pages["data"]), 1)
        page = pages["data"][0]
        resp = self.fake.get(f"/facebook/v21.0/{page['id']}",
                             {"fields": "access_token", "access_token": user})
        self.assertEqual(resp.json()["id"], page["id"])
        debug = self.fake.get("/facebook/v21.0/debug_token",
                              {"input_token": page["access_token"], "access_token": "123|s"})
        self.assertEqual((debug.json()["data"]["type"], debug.json()["data"]["expires_at"]),
                         ("PAGE", 0))
        self.fake.control("pages", {"token": user, "count": 0})
        self.assertEqual(self.fake.get("/facebook/v21.0/me/accounts",
                                       {"access_token": user}).json(), {"data": []})
        data = self.fake.get("/facebook/v21.0/debug_token", {
            "input_token": page["access_token"], "access_token": "123|s"}).json()["data"]
        self.assertFalse(data["is_valid"])
        self.assertEqual((data["error"]["code"], data["error"]["subcode"]), (190, 492))
        self.fake.control("revoke", {"token": user})
        data = self.fake.get("/facebook/v21.0/debug_token", {
            "input_token": user, "access_token": "123|s"}).json()["data"]
        self.assertEqual((data["is_valid"], data["error"]["code"]), (False, 190))

    def test_account_shows_the_current_tokens(self):
        body = self.fake.refresh("x", "x-acct").json()
        account = self.fake.control("account?token=x-acct", method="GET").json()
        self.assertEqual(account["refresh_token"], body["refresh_token"])
        self.assertEqual(account["key"], "x-acct")
        self.assertEqual(self.fake.control("account?token=x-nope", method="GET").status, 404)

    def test_control_refuses_typos(self):
        self.assertEqual(self.fake.control("fault", {"platform": "x", "kind": "500",
                                                     "cuont": 2}).status, 400)
        self.assertEqual(self.fake.control("fault", {"platform": "y", "kind": "500"}).status,
                         400)
        self.assertEqual(self.fake.control("fault", {"platform": "x", "kind": "boom"}).status,
                         400)
        self.assertEqual(self.fake.control("stats").status, 405)


class TestMetaMinimumAge(FakeTestCase):
    args = ()  # default --meta-min-age 86400

    def test_a_fresh_long_lived_token_is_too_young_to_refresh(self):
        token = self.fake.refresh("threads", "threads-young").json()["access_token"]
        resp = self.fake.refresh("threads", token)
        self.assertEqual((resp.status, resp.json()["error"]["code"]), (400, 100))
        self.assertEqual(self.fake.stats("threads")["rejected"], 1)


class TestFaults(FakeTestCase):
    def test_500_and_429_in_each_platform_shape(self):
        for platform in SHAPE:
            with self.subTest(platform=platform):
                self.fake.fault(platform=platform, kind="500")
                self.assertEqual(self.fake.refresh(platform, f"{platform}-f").status, 500)
                self.fake.fault(platform=platform, kind="429", retry_after=7, code=17)
                resp = self.fake.refresh(platform, f"{platform}-f")
                body = resp.json()
                if platform == "x":
                    self.assertEqual(resp.status, 429)
                    self.assertEqual(body["errors"][0]["code"], 88)
                    reset = int(resp.headers["x-rate-limit-reset"])
                    self.assertAlmostEqual(reset, time.time() + 7, delta=2)
                elif platform in META:
                    self.assertEqual((resp.status, body["error"]["code"]), (400, 17))
                else:
                    self.assertEqual((resp.status, resp.headers["Retry-After"]), (429, "7"))
                if platform == "bluesky":
                    self.assertEqual(body["error"], "RateLimitExceeded")
                self.assertEqual(self.fake.refresh(platform, f"{platform}-f").status, 200)
                self.assertEqual(self.fake.stats(platform)["faults"], 2)
        self.fake.fault(platform="facebook", kind="429", status=429)  # Graph: 400 by default
        resp = self.fake.refresh("facebook", "facebook-f")
        self.assertEqual((resp.status, resp.json()["error"]["code"]), (429, 4))
        self.assertIn("x-app-usage", resp.headers)

    def test_garbled_bodies(self):
        self.fake.fault(platform="x", kind="malformed")
        with self.assertRaises(ValueError):
            self.fake.refresh("x", "x-g").json()
        self.fake.fault(platform="x", kind="oversized")
        resp = self.fake.refresh("x", "x-g")
        self.assertGreaterEqual(len(resp.body), MIB2)
        self.fake.fault(platform="x", kind="wrong_types")
        body = self.fake.refresh("x", "x-g").json()
        self.assertIsInstance(body["expires_in"], str)
        self.assertIsInstance(body["access_token"], int)
        # None of these committed a rotation: the seed still works, once.
        self.assertEqual(self.fake.refresh("x", "x-g").status, 200)
        self.assertEqual(self.fake.stats("x")["reuse"], 0)

    def test_reset_closes_without_answer(self):
        self.fake.fault(platform="youtube", kind="reset")
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            self.fake.refresh("youtube", "youtube-r")
        self.assertEqual(self.fake.refresh("youtube", "youtube-r").status, 200)

    def test_reset_with_commit_loses_the_rotated_token(self):
        self.fake.fault(platform="x", kind="reset", commit=True)
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            self.fake.refresh("x", "x-lost")
        self.assertDead("x", self.fake.refresh("x", "x-lost"))
        self.assertEqual(self.fake.stats("x")["reuse"], 1)

    def test_delay(self):
        self.fake.fault(platform="*", kind="delay", delay_ms=300)
        start = time.monotonic()
        resp = self.fake.refresh("tiktok", "tiktok-slow")
        self.assertGreaterEqual(time.monotonic() - start, 0.29)
        self.assertEqual(resp.status, 200)

    def test_fault_count_and_endpoint(self):
        self.fake.fault(platform="bluesky", kind="500", count=2, endpoint="createSession")
        self.assertEqual(self.fake.refresh("bluesky", "bluesky-e").status, 200)
        login = json.dumps({"identifier": "carol.test", "password": "pw"})
        path = "/bluesky/xrpc/com.atproto.server.createSession"
        headers = {"Content-Type": "application/json"}
        statuses = [self.fake.request("POST", path, login, headers).status for _ in range(3)]
        self.assertEqual(statuses, [500, 500, 200])
        self.assertEqual(self.fake.control("stats", method="GET").json()["faults_pending"], 0)


class TestLifetimes(FakeTestCase):
    args = ("--access-ttl", "x=60", "--refresh-ttl", "tiktok=1", "--bluesky-grace", "0")

    def test_configured_lifetimes(self):
        self.assertEqual(self.fake.refresh("x", "x-t").json()["expires_in"], 60)
        body = self.fake.refresh("tiktok", "tiktok-t").json()
        self.assertEqual(body["refresh_expires_in"], 1)
        time.sleep(1.1)
        self.assertDead("tiktok", self.fake.refresh("tiktok", body["refresh_token"]))

    def test_no_bluesky_grace(self):
        self.fake.refresh("bluesky", "bluesky-ng")
        self.assertDead("bluesky", self.fake.refresh("bluesky", "bluesky-ng"))


class TestTls(unittest.TestCase):
    def test_https_with_the_test_ca_and_an_unknown_ca_refused(self):
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("ca", "other"):
                subprocess.run([MAKE_CA, os.path.join(tmp, name)], check=True,
                               stdout=subprocess.DEVNULL)
            ca = os.path.join(tmp, "ca")
            fake = Fake("--no-http", "--tls-cert", os.path.join(ca, "server.pem"),
                        "--tls-key", os.path.join(ca, "server.key"))
            try:
                trusted = ssl.create_default_context(cafile=os.path.join(ca, "ca.pem"))
                resp = fake.request("POST", "/youtube/token", urllib.parse.urlencode({
                    "client_id": "a", "client_secret": "b", "refresh_token": "youtube-tls",
                    "grant_type": "refresh_token"}),
                    {"Content-Type": "application/x-www-form-urlencoded"}, context=trusted)
                self.assertEqual(resp.status, 200, resp.body)
                for context in (ssl.create_default_context(),
                                ssl.create_default_context(
                                    cafile=os.path.join(tmp, "other", "ca.pem"))):
                    with self.assertRaises(ssl.SSLCertVerificationError):
                        fake.request("GET", "/_control/stats", context=context)
            finally:
                self.assertEqual(fake.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
