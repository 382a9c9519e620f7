"""The documented event contract (docs/events/cart-events.schema.json) is
what the service emits.

Starts the real bin/cart-service with its default (dev) log publisher,
performs every kind of mutation plus rejected requests, reads the
{"msg":"event","event":{...}} lines from stdout and checks:

- each event validates against the JSON Schema (jsonschema, draft 2020-12);
- exactly one event per committed mutation, none for rejected requests
  (422, 412, 404, 400, idempotent replays, a clear with nothing to clear);
- every field matches the HTTP response of its mutation (cartId, version,
  updatedAt, quantities, price);
- cartVersion goes up by exactly 1 per user (also across a clear, which
  starts a new cartId), and events appear in cartVersion order;
- the schema rejects tampered events, so these tests can fail.

Needs python3-jsonschema (Debian) and a built bin/cart-service.

    /usr/bin/python3 -m unittest tests/aws/test_event_schema.py
"""

import copy
import datetime
import json
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "e2e"))

import harness  # noqa: E402

try:
    import jsonschema
except ImportError:  # pragma: no cover - the bootstrap installs it
    raise ImportError("test_event_schema needs python3-jsonschema "
                      "(apt-get install -y python3-jsonschema; see tools/bootstrap.sh)")

SCHEMA_PATH = os.path.join(REPO_ROOT, "docs", "events", "cart-events.schema.json")
EVENT_TYPES = ("CartItemAdded", "CartItemQuantityChanged", "CartItemRemoved", "CartCleared")
EVENT_WAIT_SECONDS = 5.0     # the relay publishes asynchronously
SETTLE_SECONDS = 0.4         # extra wait before asserting that nothing more came


def load_schema():
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return json.load(f)


def make_validator(schema=None):
    schema = schema or load_schema()
    cls = jsonschema.Draft202012Validator
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def schema_errors(validator, event):
    """All error messages; for a known eventType also the errors of that
    type's own definition (oneOf alone only says 'not valid under any')."""
    errors = ["%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(root)", e.message)
              for e in validator.iter_errors(event)]
    if errors and isinstance(event, dict) and event.get("eventType") in EVENT_TYPES:
        sub = validator.evolve(schema={"$ref": "#/$defs/" + event["eventType"]})
        errors += ["  %s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(root)",
                                 e.message)
                   for e in sub.iter_errors(event)]
    return errors


def parse_time(text):
    """RFC 3339 with a real calendar date (the pattern alone allows Feb 31)."""
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


class SchemaSelfTest(unittest.TestCase):
    """The schema is valid, its examples pass, and tampering fails."""

    @classmethod
    def setUpClass(cls):
        cls.schema = load_schema()
        cls.validator = make_validator(cls.schema)
        cls.examples = {name: cls.schema["$defs"][name]["examples"][0] for name in EVENT_TYPES}

    def assertValid(self, event):
        errors = schema_errors(self.validator, event)
        self.assertEqual(errors, [], json.dumps(event))

    def assertInvalid(self, event, why):
        self.assertFalse(self.validator.is_valid(event),
                         "schema accepted a tampered event (%s): %s" % (why, json.dumps(event)))

    def test_examples_are_valid(self):
        self.assertEqual(self.schema["$defs"]["eventType"]["enum"], list(EVENT_TYPES))
        for name, example in self.examples.items():
            with self.subTest(name):
                self.assertEqual(example["eventType"], name)
                self.assertValid(example)

    def test_tampered_events_are_rejected(self):
        item = self.examples["CartItemAdded"]
        cleared = self.examples["CartCleared"]
        for event in (item, cleared):
            for field in list(event):
                bad = copy.deepcopy(event)
                del bad[field]
                self.assertInvalid(bad, "missing %s" % field)
        cases = [
            ("extra field", dict(item, extra=1)),
            ("extra field in unitPrice", dict(item, unitPrice={"amount": 1, "currency": "EUR",
                                                               "x": 1})),
            ("cartVersion as string", dict(item, cartVersion="1")),
            ("cartVersion 0", dict(item, cartVersion=0)),
            ("cartVersion float", dict(item, cartVersion=1.5)),
            ("schemaVersion 2", dict(item, schemaVersion=2)),
            ("unknown eventType", dict(item, eventType="CartItemPurged")),
            ("eventId not a UUID", dict(item, eventId="not-a-uuid")),
            ("eventId upper case", dict(item, eventId=item["eventId"].upper())),
            ("cartId null", dict(item, cartId=None)),
            ("occurredAt with offset", dict(item, occurredAt="2026-11-25T13:56:02.815+01:00")),
            ("occurredAt without ms", dict(item, occurredAt="2026-11-25T13:56:02Z")),
            ("empty userId", dict(item, userId="")),
            ("userId with a space", dict(item, userId="a b")),
            ("quantity negative", dict(item, quantityBefore=-1)),
            ("quantity as string", dict(item, quantityAfter="2")),
            ("added with quantityAfter 0", dict(item, quantityAfter=0)),
            ("lower-case currency", dict(item, unitPrice={"amount": 1, "currency": "eur"})),
            ("amount float", dict(item, unitPrice={"amount": 1.5, "currency": "EUR"})),
            ("negative amount", dict(item, unitPrice={"amount": -1, "currency": "EUR"})),
            ("removed with quantityAfter 1", dict(self.examples["CartItemRemoved"],
                                                  quantityAfter=1)),
            ("changed to 0", dict(self.examples["CartItemQuantityChanged"], quantityAfter=0)),
            ("cleared with item fields", dict(cleared, itemId="sku-1")),
            ("item event with itemCountBefore", dict(item, itemCountBefore=1)),
            ("cleared typed as item event", dict(cleared, eventType="CartItemAdded")),
            ("item event typed as cleared", dict(item, eventType="CartCleared")),
            ("not an object", [item]),
        ]
        for why, bad in cases:
            with self.subTest(why):
                self.assertInvalid(bad, why)


class EmittedEventsTest(unittest.TestCase):
    """Every event the running service emits matches the schema and its mutation."""

    @classmethod
    def setUpClass(cls):
        cls.validator = make_validator()
        cls.server = harness.Server().start()   # default config: dev, log publisher

    @classmethod
    def tearDownClass(cls):
        srv, cls.server = cls.server, None
        if srv is not None:
            srv.stop()
            srv.cleanup()

    # --- helpers --------------------------------------------------------
    def req(self, method, path, body=None, headers=None):
        return self.server.request(method, path, body, headers=headers)

    def event_lines(self):
        """(raw line, parsed record) for every msg=event line on stdout."""
        out = []
        for line in self.server.stdout().splitlines():
            if '"msg":"event"' not in line:
                continue
            rec = harness.parse_json(line.encode())   # duplicate keys are errors
            out.append((line, rec))
        return out

    def wait_events(self, want):
        deadline = time.monotonic() + EVENT_WAIT_SECONDS
        while True:
            lines = self.event_lines()
            if len(lines) >= want or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        time.sleep(SETTLE_SECONDS)     # anything extra would show up now
        return self.event_lines()

    def expect_item(self, r, status, etype, item, before, after, price):
        self.assertEqual(r.status, status, r)
        cart = r.body
        return {"eventType": etype, "userId": cart["userId"], "cartId": cart["cartId"],
                "cartVersion": cart["version"], "occurredAt": cart["updatedAt"],
                "itemId": item, "quantityBefore": before, "quantityAfter": after,
                "unitPrice": price}

    def assertRejected(self, r, status, code=None):
        self.assertEqual(r.status, status, r)
        if code is not None:
            self.assertEqual(r.body.get("code"), code, r)

    # --- the test ---------------------------------------------------------
    def test_events_match_schema_and_mutations(self):
        u = harness.new_user("ev")
        items = "/v1/cart/%s/items" % u
        eur = lambda amount: {"amount": amount, "currency": "EUR"}  # noqa: E731
        add = lambda item, q, amount, **kw: self.req(  # noqa: E731
            "POST", items, {"itemId": item, "quantity": q, "unitPrice": eur(amount)}, **kw)
        expected = []

        # add, new line
        r = add("sku-1", 2, 1999)
        expected.append(self.expect_item(r, 201, "CartItemAdded", "sku-1", 0, 2, eur(1999)))
        cart_a = r.body["cartId"]
        # add, merged into the line (idempotent request)
        key = {"Idempotency-Key": "merge-" + u}
        r = add("sku-1", 3, 1999, headers=key)
        expected.append(self.expect_item(r, 200, "CartItemAdded", "sku-1", 2, 5, eur(1999)))

        # rejected / no-op requests: none of these may emit an event
        r = add("sku-1", 3, 1999, headers=key)                      # replay
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Idempotent-Replayed"), "true", r)
        r = add("sku-1", 4, 1999, headers=key)                      # key reused
        self.assertRejected(r, 422, "cart.idempotency_key_reused")
        r = add("sku-9", 1, 100)                                    # committed
        expected.append(self.expect_item(r, 201, "CartItemAdded", "sku-9", 0, 1, eur(100)))
        r = self.req("POST", items, {"itemId": "sku-8", "quantity": 1,
                                     "unitPrice": {"amount": 5, "currency": "USD"}})
        self.assertRejected(r, 422)                                 # currency mix
        r = add("sku-1", 100000, 1999)
        self.assertRejected(r, 422)                                 # quantity range
        r = self.req("PATCH", items + "/sku-1", {"quantity": 4}, headers={"If-Match": '"1"'})
        self.assertRejected(r, 412, "cart.version_mismatch")       # stale If-Match
        r = self.req("PATCH", items + "/sku-404", {"quantity": 4})
        self.assertRejected(r, 404)                                 # no such line
        nf_key = {"Idempotency-Key": "nf-" + u}
        r = self.req("DELETE", items + "/sku-404", headers=nf_key)
        self.assertRejected(r, 404)
        r = self.req("DELETE", items + "/sku-404", headers=nf_key)  # replayed 404
        self.assertRejected(r, 404)
        self.assertEqual(r.header("Idempotent-Replayed"), "true", r)
        r = self.req("PATCH", items + "/sku-1", {"quantity": 4, "extra": 1})
        self.assertRejected(r, 400)                                 # unknown field
        r = self.req("DELETE", "/v1/cart/%s" % harness.new_user("never"))
        self.assertEqual(r.status, 204, r)                          # nothing to clear

        # patch quantity (with a current If-Match)
        r = self.req("PATCH", items + "/sku-1", {"quantity": 4}, headers={"If-Match": '"3"'})
        expected.append(self.expect_item(r, 200, "CartItemQuantityChanged", "sku-1", 5, 4,
                                         eur(1999)))
        # patch to 0 removes the line
        r = self.req("PATCH", items + "/sku-9", {"quantity": 0})
        expected.append(self.expect_item(r, 200, "CartItemRemoved", "sku-9", 1, 0, eur(100)))
        # add two lines, delete one
        r = add("sku-2", 3, 250)
        expected.append(self.expect_item(r, 201, "CartItemAdded", "sku-2", 0, 3, eur(250)))
        r = add("sku-3", 1, 50)
        expected.append(self.expect_item(r, 201, "CartItemAdded", "sku-3", 0, 1, eur(50)))
        r = self.req("DELETE", items + "/sku-2")
        expected.append(self.expect_item(r, 200, "CartItemRemoved", "sku-2", 3, 0, eur(250)))
        # clear (sku-1 x4 + sku-3 x1 left)
        r = self.req("DELETE", "/v1/cart/%s" % u)
        self.assertEqual(r.status, 204, r)
        after = self.req("GET", "/v1/cart/%s" % u).body
        self.assertIsNone(after["cartId"], after)
        # (GET shows updatedAt null after a clear, so occurredAt is checked
        # against its neighbours below)
        expected.append({"eventType": "CartCleared", "userId": u, "cartId": cart_a,
                         "cartVersion": after["version"], "itemCountBefore": 5})
        r = self.req("DELETE", "/v1/cart/%s" % u)                  # already cleared
        self.assertEqual(r.status, 204, r)
        # the first add after a clear starts a new cart; the version goes on
        r = add("sku-1", 1, 1999)
        expected.append(self.expect_item(r, 201, "CartItemAdded", "sku-1", 0, 1, eur(1999)))
        self.assertNotEqual(r.body["cartId"], cart_a)

        lines = self.wait_events(len(expected))
        events = [rec["event"] for _, rec in lines]
        self.assertEqual(len(events), len(expected),
                         "want exactly one event per committed mutation (%d), got %d:\n%s"
                         % (len(expected), len(events),
                            "\n".join(json.dumps(e) for e in events)))

        # the log line around the event
        for raw, rec in lines:
            # beside the event: the X-Ray trace header of its request
            self.assertEqual(sorted(rec), ["event", "level", "msg", "time", "trace_header"], raw)
            self.assertRegex(rec["trace_header"],
                             r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24}(;Parent=[0-9a-f]{16})?;Sampled=[01]$")
            self.assertEqual((rec["level"], rec["msg"]), ("info", "event"), raw)
            self.assertEqual(rec["time"], rec["event"]["occurredAt"], raw)

        # every event validates
        for ev in events:
            errors = schema_errors(self.validator, ev)
            self.assertEqual(errors, [], "event does not match %s:\n%s\n%s"
                             % (SCHEMA_PATH, json.dumps(ev), "\n".join(errors)))
            parse_time(ev["occurredAt"])

        # each event matches its mutation, in order
        self.assertEqual(len({e["eventId"] for e in events}), len(events), "duplicate eventId")
        for ev, want in zip(events, expected):
            got = {k: ev.get(k) for k in want}
            self.assertEqual(got, want, json.dumps(ev))
            self.assertEqual(ev["schemaVersion"], 1)
        times = [parse_time(e["occurredAt"]) for e in events]
        self.assertEqual(times, sorted(times), "occurredAt goes back")

        # versions: +1 per user (across the clear), strictly increasing per cart
        versions = [e["cartVersion"] for e in events]
        self.assertEqual(versions, list(range(1, len(events) + 1)), versions)
        per_cart = {}
        for e in events:
            per_cart.setdefault(e["cartId"], []).append(e["cartVersion"])
        self.assertEqual(len(per_cart), 2, per_cart)
        for cart_id, vs in per_cart.items():
            self.assertEqual(vs, list(range(vs[0], vs[0] + len(vs))), (cart_id, vs))

        # the contract can fail: the schema rejects tampered real events
        for ev in (events[0], events[-2]):
            for tamper, bad in (
                    ("missing cartVersion", {k: v for k, v in ev.items() if k != "cartVersion"}),
                    ("cartVersion as string", dict(ev, cartVersion=str(ev["cartVersion"]))),
                    ("extra field", dict(ev, source="cart-service"))):
                with self.subTest(tamper=tamper, type=ev["eventType"]):
                    self.assertFalse(self.validator.is_valid(bad), tamper)


if __name__ == "__main__":
    unittest.main()
