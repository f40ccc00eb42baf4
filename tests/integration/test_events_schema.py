"""docs/events.schema.json and tokend's own check (daemon/envelope.c, which
keeps an invalid event off the stream) hold the same rules: a corpus of
events — valid ones of every type and reason, and one mutation per rule —
gets the same verdict from python3-jsonschema and from `tokenctl events
check`. tokend may only be stricter where JSON Schema cannot say the rule
(data.account_id equal to subject) or where JSON parsers differ (3.0 as an
integer); those cases are listed, and checked to be rejected by tokend."""

import copy
import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import TOKENCTL, daemon_env  # noqa: E402
from events_util import SOURCE, VALIDATOR  # noqa: E402

ACCOUNT = "2f1c6b1e-8a4d-4c3b-9e21-0d5f7a6b8c9d"

BASE = {
    "specversion": "1.0", "id": "evt_" + "0123456789abcdef" * 2, "source": "tokend",
    "type": "token.expiring", "subject": ACCOUNT, "time": "2025-01-02T03:04:05.123456Z",
    "datacontenttype": "application/json",
    "data": {"account_id": ACCOUNT, "platform": "linkedin", "external_id": "urn:li:person:1",
             "token_version": 3, "expires_at": "2025-03-01T00:00:00Z",
             "reason": "reauth_required"},
}

REASONS = {"token.expiring": ["refresh_failing", "reauth_required"],
           "token.revoked": ["expired", "revoked"],
           "token.recovered": ["refreshed", "reauthorized"]}
ERROR = {"code": "platform_auth_failed", "upstream_code": "invalid_grant",
         "message": "the grant is gone"}


def variant(path, value, base=BASE):
    """A copy of base with the member at path (a tuple) set, or removed when
    value is DELETE."""
    event = copy.deepcopy(base)
    target = event
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return event


DELETE = object()


def of_type(type_, reason, error=None):
    event = variant(("type",), type_)
    event["data"]["reason"] = reason
    if error is not None:
        event["data"]["error"] = error
    return event


def corpus():
    cases = []
    for type_, reasons in REASONS.items():
        for reason in reasons:
            error = ERROR if type_ == "token.revoked" else None
            cases.append((f"{type_}/{reason}", of_type(type_, reason, error)))
        cases.append((f"{type_}/other reason", of_type(type_, "nope", ERROR)))
    cases.append(("expiring with error", of_type("token.expiring", "refresh_failing",
                                                 {"code": "refresh_failed"})))
    cases.append(("revoked without error", of_type("token.revoked", "expired")))
    cases.append(("recovered with error", of_type("token.recovered", "refreshed", ERROR)))
    for key in BASE:
        cases.append((f"no {key}", variant((key,), DELETE)))
    for key in BASE["data"]:
        cases.append((f"no data.{key}", variant(("data", key), DELETE)))
    cases += [(f"{'.'.join(path)}={value!r}", variant(path, value)) for path, value in [
        (("extra",), 1), (("specversion",), "0.3"), (("source",), "tokend2"),
        (("datacontenttype",), "text/plain"), (("id",), "evt_" + "0" * 31),
        (("id",), "evt_" + "A" * 32), (("id",), 7), (("id",), "evt-" + "0" * 32),
        (("type",), "token.gone"), (("subject",), ACCOUNT.upper()), (("subject",), "x"),
        (("subject",), 1), (("time",), "2025-01-02T03:04:05"),
        (("time",), "2025-01-02T03:04:05+00:00"), (("time",), "2025-01-02T03:04:05.1234567891Z"),
        (("time",), "2025-01-02T03:04:05.1Z"), (("time",), "2025-01-02T03:04:05Z"),
        (("time",), "2025-01-02"), (("data",), []), (("data",), "x"), (("data",), None),
        (("data", "extra"), "x"), (("data", "access_token"), "secret"),
        (("data", "platform"), "Li"), (("data", "platform"), "1x"), (("data", "platform"), "a_b9"),
        (("data", "platform"), "x" * 32), (("data", "platform"), "x" * 33),
        (("data", "platform"), 3), (("data", "external_id"), ""),
        (("data", "external_id"), "e" * 512), (("data", "external_id"), "e" * 513),
        (("data", "external_id"), "é" * 512), (("data", "external_id"), 42),
        (("data", "token_version"), 0), (("data", "token_version"), -1),
        (("data", "token_version"), "3"), (("data", "token_version"), 1.5),
        (("data", "token_version"), True), (("data", "token_version"), 2 ** 62),
        (("data", "expires_at"), "soon"), (("data", "expires_at"), None),
        (("data", "reason"), ""), (("data", "reason"), 5), (("data", "error"), "x"),
        (("data", "error"), {}), (("data", "error"), {"code": "X"}),
        (("data", "error"), {"code": "a" * 64}), (("data", "error"), {"code": "a" * 65}),
        (("data", "error"), {"code": "a.b_c"}), (("data", "error"), {"code": "a", "x": 1}),
        (("data", "error"), {"code": "a", "upstream_code": ""}),
        (("data", "error"), {"code": "a", "upstream_code": "u" * 128}),
        (("data", "error"), {"code": "a", "upstream_code": "u" * 129}),
        (("data", "error"), {"code": "a", "upstream_code": 190}),
        (("data", "error"), {"code": "a", "message": "m" * 1024}),
        (("data", "error"), {"code": "a", "message": "ü" * 1024}),
        (("data", "error"), {"code": "a", "message": "m" * 1025}),
        (("data", "error"), {"code": "a", "message": ""}),
    ]]
    return cases


# Valid by the schema, refused by tokend on purpose.
STRICTER = [
    ("account_id is not the subject",
     variant(("data", "account_id"), "00000000-0000-0000-0000-000000000000")),
    ("token_version 3.0", variant(("data", "token_version"), 3.0)),
]


def tokend_verdicts(events):
    text = "".join(json.dumps(e) + "\n" for e in events)
    run = subprocess.run([TOKENCTL, "events", "check"], input=text, capture_output=True,
                         text=True, timeout=30, env=daemon_env())
    lines = run.stdout.splitlines()
    assert len(lines) == len(events), run.stdout + run.stderr
    return [line == "ok" for line in lines], lines


class SchemaAndTokendAgree(unittest.TestCase):
    def test_same_verdict_on_the_corpus(self):
        cases = corpus()
        verdicts, lines = tokend_verdicts([e for _, e in cases])
        valid_count = 0
        for (name, event), tokend_ok, line in zip(cases, verdicts, lines):
            schema_ok = VALIDATOR.is_valid(event)
            valid_count += schema_ok
            self.assertEqual(tokend_ok, schema_ok,
                             f"{name}: schema says {schema_ok}, tokend says {line}")
        self.assertGreaterEqual(valid_count, 15)  # the corpus has both kinds
        self.assertGreaterEqual(len(cases) - valid_count, 60)

    def test_tokend_stricter_only_where_listed(self):
        verdicts, _ = tokend_verdicts([e for _, e in STRICTER])
        for (name, event), tokend_ok in zip(STRICTER, verdicts):
            self.assertTrue(VALIDATOR.is_valid(event), name)
            self.assertFalse(tokend_ok, name)

    def test_the_examples_in_the_docs_are_valid(self):
        with open(os.path.join(SOURCE, "docs", "events.md")) as f:
            blocks = re.findall(r"```json\n(.*?)```", f.read(), re.S)
        examples = [json.loads(b) for b in blocks if '"specversion"' in b]
        self.assertGreaterEqual(len(examples), 5)
        verdicts, lines = tokend_verdicts(examples)
        for example, ok, line in zip(examples, verdicts, lines):
            self.assertTrue(VALIDATOR.is_valid(example), example)
            self.assertTrue(ok, f"{line}: {example}")
        self.assertEqual({e["type"] for e in examples},
                         {"token.expiring", "token.revoked", "token.recovered"})

    def test_check_exit_status(self):
        run = subprocess.run([TOKENCTL, "events", "check"], input=json.dumps(BASE) + "\n",
                             capture_output=True, text=True, env=daemon_env())
        self.assertEqual((run.returncode, run.stdout), (0, "ok\n"))
        run = subprocess.run([TOKENCTL, "events", "check"], input="{\n", capture_output=True,
                             text=True, env=daemon_env())
        self.assertEqual(run.returncode, 1)
        self.assertTrue(run.stdout.startswith("invalid: not JSON"), run.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
