"""The EventBridge publisher end to end (issue 4, ADR 8), DynamoDB backend.

Each class runs its own AwsStack with dynalite AND the PutEvents stand-in
(tests/aws/eventbridge_server.py) behind its own SigV4 proxy (service
"events"), a table made by `bin/cart-service migrate`, and bin/cart-service
with STORAGE_BACKEND=dynamodb, EVENTS_PUBLISHER=eventbridge,
EVENTBRIDGE_ENDPOINT=<events proxy> and EVENTBRIDGE_BUS_NAME=<a bus the
stand-in accepts>. What was published is read back from the stand-in
(GET /__control/events, /__control/stats).

Note: a stored entry's "eventId" is the stand-in's own EventId; the cart
event's id is detail.eventId, and that is what duplicates are counted by.

What is proven:
- one entry per committed mutation (add, merge, patch, patch 0, delete
  item, clear) with the right Source/DetailType/EventBusName/Detail, Detail
  valid against docs/events/cart-events.schema.json, none for rejected
  requests (422, 412, 404, 400, idempotent replay, clear of nothing);
- per-cart order by cartVersion in what the stand-in received, also for
  parallel writes to one cart and across a clear;
- publishing resumes after an outage (every PutEvents call failing) while
  the writes themselves keep succeeding; an unanswered call that was
  applied is redelivered with the same eventId and content;
- a partial failure resends only the failed entry; an entry failing on
  every attempt leaves the events pending and they are delivered later;
- an entry the bus refuses for good (per-entry MalformedDetail) is parked
  after EVENTS_MAX_ATTEMPTS passes (a DLQ# item, a warn line, the relay's
  `parked` counter) and the cart's later events are delivered;
- kill -9 between write and publish: the next process publishes all 25+
  events, never more than 10 entries per PutEvents call;
- Source, bus and endpoint selection (EVENTBRIDGE_SOURCE,
  AWS_ENDPOINT_URL_EVENTBRIDGE, AWS_ENDPOINT_URL, ENV_NAME default).

Run: /usr/bin/python3 -m unittest discover -s tests/e2e_aws -p test_eventbridge.py
"""

import json
import os
import signal
import sys
import threading
import time

from awsbase import REPO_ROOT, AwsServiceTestCase, service_env
import awsbase
import harness

sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "aws"))
from test_event_schema import SCHEMA_PATH, make_validator, schema_errors  # noqa: E402

BUS = "cart-bus"
OTHER_BUS = "cart-bus-2"
DEFAULT_SOURCE = "cart-service"
EVENT_WAIT_SECONDS = 10.0   # the relay publishes asynchronously
SETTLE_SECONDS = 0.5        # wait this long more before asserting "no more came"
# "within a few seconds" after the bus comes back: the relay's backoff (1 s)
# plus, should the events breaker have opened during the outage,
# CIRCUIT_BREAKER_OPEN_SECONDS (5), plus slack
RECOVERY_SECONDS = 8.0

# Variables of the publisher that neither harness nor awsbase strip from
# the inherited environment: only what a test gives the service counts.
_EB_VARS = ("EVENTBRIDGE_ENDPOINT", "AWS_ENDPOINT_URL_EVENTBRIDGE", "EVENTBRIDGE_SOURCE",
            "EVENTS_RELAY_ENABLED", "EVENTBRIDGE_ENABLED", "EVENTS_PUBLISHER",
            "EVENTBRIDGE_BUS_NAME", "AWS_MAX_ATTEMPTS", "EVENTS_MAX_ATTEMPTS")

_VALIDATOR = None


def validator():
    global _VALIDATOR
    if _VALIDATOR is None:
        _VALIDATOR = make_validator()
    return _VALIDATOR


class Server(awsbase.Server):
    def _env(self):
        env = super()._env()
        for k in _EB_VARS:
            if k not in self.env_overrides:
                env.pop(k, None)
        # None in the overrides means "unset"
        for k, v in self.env_overrides.items():
            if v is None:
                env.pop(k, None)
        return env


def dedupe(entries):
    """First occurrence of every detail.eventId, in received order."""
    seen, out = set(), []
    for e in entries:
        eid = e["detail"].get("eventId")
        if eid not in seen:
            seen.add(eid)
            out.append(e)
    return out


def copies(entries):
    """{detail.eventId: how many times it was accepted}."""
    n = {}
    for e in entries:
        n[e["detail"].get("eventId")] = n.get(e["detail"].get("eventId"), 0) + 1
    return n


class EventBridgeCase(AwsServiceTestCase):
    stack_kwargs = {"eventbridge": True, "event_buses": [BUS, OTHER_BUS]}
    relay = True
    extra_env = {}

    @classmethod
    def eb_env(cls, relay=None, **extra):
        env = service_env(cls.stack)
        env.update({
            "EVENTS_RELAY_ENABLED": str(cls.relay if relay is None else relay).lower(),
            "EVENTS_PUBLISHER": "eventbridge",
            "EVENTBRIDGE_ENDPOINT": cls.stack.events_endpoint,
            "EVENTBRIDGE_BUS_NAME": BUS,
        })
        env.update(cls.extra_env)
        env.update({k: (None if v is None else str(v)) for k, v in extra.items()})
        return env

    @classmethod
    def start_service(cls, creds=None, **extra):
        return Server(env=cls.eb_env(**extra)).start()

    def start(self, relay=True, **extra):
        srv = Server(env=self.eb_env(relay=relay, **extra)).start()
        self.addCleanup(srv.cleanup)
        self.addCleanup(self._stop_quietly, srv)
        return srv

    @staticmethod
    def _stop_quietly(srv):
        if srv.proc is not None and srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()

    # -- the stand-in ----------------------------------------------------------

    def entries(self, user=None):
        evs = self.stack.events()
        for e in evs:
            self.assertIsInstance(e.get("detail"), dict, e)
        if user is None:
            return evs
        return [e for e in evs if e["detail"].get("userId") == user]

    def wait_entries(self, user, n, timeout=EVENT_WAIT_SECONDS, settle=SETTLE_SECONDS):
        """Entries of user once n distinct eventIds arrived (or the timeout
        passed), plus whatever else arrives within settle seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(dedupe(self.entries(user))) >= n:
                break
            time.sleep(0.05)
        time.sleep(settle)
        return self.entries(user)

    def assertNoSignatureRejections(self):
        st = self.stack.events_proxy_stats()
        self.assertEqual(st["rejected"], {}, "events proxy rejected calls: %s" % json.dumps(st))

    def assertEnvelope(self, e, source=DEFAULT_SOURCE, bus=BUS):
        d = e["detail"]
        self.assertEqual(e["source"], source, e)
        self.assertEqual(e["bus"], bus, e)
        self.assertEqual(e["detailType"], d.get("eventType"), e)
        errors = schema_errors(validator(), d)
        self.assertEqual(errors, [], "Detail does not match %s:\n%s\n%s"
                         % (SCHEMA_PATH, json.dumps(d), "\n".join(errors)))

    def assertVersionsInOrder(self, entries, user, want):
        got = [e["detail"]["cartVersion"] for e in dedupe(entries)
               if e["detail"]["userId"] == user]
        self.assertEqual(got, want, "cartVersions of %s in received order (deduped)" % user)

    def where(self, srv=None):
        out = "stand-in stats: %s\nevents proxy stats: %s" % (
            json.dumps(self.stack.events_stats()), json.dumps(self.stack.events_proxy_stats()))
        if srv is not None:
            out += "\n" + srv.logs()
        return out

    # -- requests --------------------------------------------------------------

    @staticmethod
    def add_on(srv, user, item, q=1, amount=100, headers=None):
        return srv.request("POST", "/v1/cart/%s/items" % user,
                           {"itemId": item, "quantity": q,
                            "unitPrice": {"amount": amount, "currency": "EUR"}},
                           headers=headers)


# ---------------------------------------------------------------------------
class EventBridgeContractTests(EventBridgeCase):
    """One class server with the relay on."""

    def test_one_entry_per_committed_mutation_none_for_rejected(self):
        srv = self.server
        u = self.user("eb-once")
        items = "/v1/cart/%s/items" % u
        eur = lambda amount: {"amount": amount, "currency": "EUR"}  # noqa: E731
        expected = []

        def item_event(r, status, etype, item, before, after, price):
            self.assertEqual(r.status, status, r)
            c = r.body
            expected.append({"eventType": etype, "userId": u, "cartId": c["cartId"],
                             "cartVersion": c["version"], "occurredAt": c["updatedAt"],
                             "itemId": item, "quantityBefore": before,
                             "quantityAfter": after, "unitPrice": price})

        # add (new line), add (merge, with an Idempotency-Key)
        item_event(self.add_on(srv, u, "sku-1", 2, 1999), 201, "CartItemAdded",
                   "sku-1", 0, 2, eur(1999))
        cart_a = expected[0]["cartId"]
        key = {"Idempotency-Key": "merge-" + u}
        item_event(self.add_on(srv, u, "sku-1", 3, 1999, headers=key), 200,
                   "CartItemAdded", "sku-1", 2, 5, eur(1999))

        # rejected / no-op requests: none may produce an entry
        r = self.add_on(srv, u, "sku-1", 3, 1999, headers=key)          # replay
        self.assertEqual((r.status, r.header("Idempotent-Replayed")), (200, "true"), r)
        r = self.add_on(srv, u, "sku-1", 4, 1999, headers=key)          # key reused
        self.assertEqual(r.status, 422, r)
        r = self.add_on(srv, u, "sku-1", 100000, 1999)                   # quantity range
        self.assertEqual(r.status, 422, r)
        r = srv.request("PATCH", items + "/sku-1", {"quantity": 4},
                        headers={"If-Match": '"1"'})                     # stale If-Match
        self.assertEqual(r.status, 412, r)
        r = srv.request("PATCH", items + "/sku-404", {"quantity": 4})    # no such line
        self.assertEqual(r.status, 404, r)
        nf = {"Idempotency-Key": "nf-" + u}
        r = srv.request("DELETE", items + "/sku-404", headers=nf)
        self.assertEqual(r.status, 404, r)
        r = srv.request("DELETE", items + "/sku-404", headers=nf)        # replayed 404
        self.assertEqual((r.status, r.header("Idempotent-Replayed")), (404, "true"), r)
        r = srv.request("PATCH", items + "/sku-1", {"quantity": 4, "extra": 1})
        self.assertEqual(r.status, 400, r)
        never = self.user("eb-never")
        r = srv.request("DELETE", "/v1/cart/%s" % never)                 # nothing to clear
        self.assertEqual(r.status, 204, r)

        # add a second line, patch, patch 0, delete item, clear
        item_event(self.add_on(srv, u, "sku-9", 1, 100), 201, "CartItemAdded",
                   "sku-9", 0, 1, eur(100))
        item_event(srv.request("PATCH", items + "/sku-1", {"quantity": 4},
                               headers={"If-Match": '"3"'}), 200,
                   "CartItemQuantityChanged", "sku-1", 5, 4, eur(1999))
        item_event(srv.request("PATCH", items + "/sku-9", {"quantity": 0}), 200,
                   "CartItemRemoved", "sku-9", 1, 0, eur(100))
        item_event(self.add_on(srv, u, "sku-2", 3, 250), 201, "CartItemAdded",
                   "sku-2", 0, 3, eur(250))
        item_event(srv.request("DELETE", items + "/sku-2"), 200, "CartItemRemoved",
                   "sku-2", 3, 0, eur(250))
        r = srv.request("DELETE", "/v1/cart/%s" % u)
        self.assertEqual(r.status, 204, r)
        after = srv.request("GET", "/v1/cart/%s" % u).body
        expected.append({"eventType": "CartCleared", "userId": u, "cartId": cart_a,
                         "cartVersion": after["version"], "itemCountBefore": 4})
        r = srv.request("DELETE", "/v1/cart/%s" % u)                     # already cleared
        self.assertEqual(r.status, 204, r)
        # the first add after a clear: new cartId, the version goes on
        item_event(self.add_on(srv, u, "sku-1", 1, 1999), 201, "CartItemAdded",
                   "sku-1", 0, 1, eur(1999))
        self.assertNotEqual(expected[-1]["cartId"], cart_a)

        got = self.wait_entries(u, len(expected))
        self.assertEqual(len(got), len(expected),
                         "want exactly one entry per committed mutation (%d), got %d:\n%s\n%s"
                         % (len(expected), len(got), "\n".join(json.dumps(e) for e in got),
                            self.where()))
        self.assertEqual(self.entries(never), [])
        self.assertEqual(len(copies(got)), len(got), "duplicate detail.eventId without faults")
        for e, want in zip(got, expected):
            self.assertEnvelope(e)
            self.assertEqual({k: e["detail"].get(k) for k in want}, want, json.dumps(e))
            self.assertEqual(e["detail"]["schemaVersion"], 1)
        self.assertEqual([e["detail"]["cartVersion"] for e in got],
                         list(range(1, len(expected) + 1)))
        st = self.stack.events_stats()
        self.assertEqual(st["rejected"], {}, self.where())
        self.assertEqual(st["entries_failed"], 0, self.where())
        self.assertNoSignatureRejections()

    def test_entry_carries_the_trace_header_of_its_request(self):
        """TraceHeader (an envelope member, not in Detail) is the X-Ray
        header of the request that made the change: the caller's Root, its
        Parent (X-Ray is off here, so no segment of ours sits between) and
        decision; a request without one gets a new root, the one returned
        in its X-Amzn-Trace-Id."""
        srv = self.server
        u = self.user("eb-trace")
        root = "1-%08x-%s" % (int(time.time()), os.urandom(12).hex())
        given = "Root=%s;Parent=53995c3f42cd8ad8;Sampled=1" % root
        r = self.add_on(srv, u, "sku-1", headers={"X-Amzn-Trace-Id": given})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.header("X-Amzn-Trace-Id"), "Root=%s;Sampled=1" % root)
        r = self.add_on(srv, u, "sku-2")
        self.assertEqual(r.status, 201, r)
        generated = r.header("X-Amzn-Trace-Id")
        self.assertRegex(generated, r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Sampled=0$")
        got = dedupe(self.wait_entries(u, 2))
        self.assertEqual([e["detail"]["itemId"] for e in got], ["sku-1", "sku-2"],
                         self.where())
        self.assertEqual(got[0]["traceHeader"], given, got[0])
        self.assertEqual(got[1]["traceHeader"], generated, got[1])
        for e in got:
            self.assertEnvelope(e)   # the Detail document is unchanged
            self.assertNotIn("traceHeader", e["detail"])

    def test_per_cart_order_by_cart_version(self):
        srv = self.server
        # (a) parallel adds to one cart: commit order is not request order
        hot = self.user("eb-hot")
        n_hot = 12
        statuses = []
        lock = threading.Lock()

        def add_one(i):
            r = self.add_on(srv, hot, "sku-%d" % (i % 3), 1)
            with lock:
                statuses.append(r.status)
        threads = [threading.Thread(target=add_one, args=(i,)) for i in range(n_hot)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(len(statuses), n_hot)
        self.assertTrue(all(s in (200, 201) for s in statuses), statuses)

        # (b) several users written concurrently, each sequentially, with a clear
        users = [self.user("eb-ord%d" % i) for i in range(3)]
        errors = []

        def script(u):
            try:
                path = "/v1/cart/%s" % u
                for step in (lambda: self.add_on(srv, u, "a", 1),
                             lambda: self.add_on(srv, u, "b", 2),
                             lambda: self.add_on(srv, u, "a", 1),
                             lambda: srv.request("PATCH", path + "/items/b", {"quantity": 5}),
                             lambda: srv.request("DELETE", path + "/items/a"),
                             lambda: srv.request("DELETE", path),
                             lambda: self.add_on(srv, u, "c", 1),
                             lambda: srv.request("PATCH", path + "/items/c", {"quantity": 0})):
                    r = step()
                    if r.status not in (200, 201, 204):
                        errors.append((u, r))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append((u, exc))
        threads = [threading.Thread(target=script, args=(u,)) for u in users]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])

        self.wait_entries(hot, n_hot)
        for u in users:
            self.wait_entries(u, 8, settle=0)
        time.sleep(SETTLE_SECONDS)
        everything = self.entries()
        self.assertVersionsInOrder(everything, hot, list(range(1, n_hot + 1)))
        for u in users:
            self.assertVersionsInOrder(everything, u, list(range(1, 9)))
            mine = dedupe([e for e in everything if e["detail"]["userId"] == u])
            self.assertEqual([e["detail"]["eventType"] for e in mine],
                             ["CartItemAdded", "CartItemAdded", "CartItemAdded",
                              "CartItemQuantityChanged", "CartItemRemoved", "CartCleared",
                              "CartItemAdded", "CartItemRemoved"])
            per_cart = {}
            for e in mine:
                per_cart.setdefault(e["detail"]["cartId"], []).append(e["detail"]["cartVersion"])
            self.assertEqual(sorted(per_cart.values()), [[1, 2, 3, 4, 5, 6], [7, 8]], per_cart)
        # the hot cart: quantities add up in version order
        mine = dedupe(self.entries(hot))
        totals = {}
        for e in mine:
            d = e["detail"]
            self.assertEqual(d["quantityBefore"], totals.get(d["itemId"], 0), d)
            totals[d["itemId"]] = d["quantityAfter"]
        self.assertEqual(sum(totals.values()), n_hot)
        for e in everything:
            self.assertEnvelope(e)
        self.assertNoSignatureRejections()


# ---------------------------------------------------------------------------
class EventBridgeOutageTests(EventBridgeCase):
    """One class server with the relay on; the bus fails whole calls."""

    extra_env = {"AWS_MAX_ATTEMPTS": "3"}

    def setUp(self):
        super().setUp()
        self.stack.events_reset()

    def wait_calls(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.stack.events_stats()
            if st["calls"] >= n:
                return st
            time.sleep(0.05)
        return self.stack.events_stats()

    def test_publishing_resumes_after_the_bus_comes_back(self):
        srv = self.server
        u = self.user("eb-down")
        self.stack.events_fault("fail_call", count=-1)
        r1 = self.add_on(srv, u, "a", 1)
        self.assertEqual(r1.status, 201, r1)
        # the relay tries (and fails) at least one full round of attempts ...
        st = self.wait_calls(3)
        self.assertGreaterEqual(st["calls"], 3, self.where(srv))
        # ... and writes keep succeeding while publishing fails, also after
        # the relay has kept failing for a while (a breaker or retry quota
        # shared with DynamoDB must not turn an events outage into 503s)
        r2 = self.add_on(srv, u, "a", 2)
        self.assertEqual(r2.status, 200, r2)
        time.sleep(2.0)
        r3 = self.add_on(srv, u, "b", 1)
        self.assertEqual(r3.status, 201, r3)
        time.sleep(0.5)
        st = self.stack.events_stats()
        self.assertEqual(self.entries(), [], "published during the outage")
        self.assertEqual(st["entries_accepted"], 0, st)
        self.assertGreaterEqual(st["rejected"].get("InternalException", 0), 3, st)
        self.assertEqual(set(st["rejected"]), {"InternalException"}, st)
        self.assertEqual(self.get_cart(u)["version"], 3)

        self.stack.events_reset()          # the bus is back (faults cleared)
        t0 = time.monotonic()
        got = self.wait_entries(u, 3, timeout=RECOVERY_SECONDS, settle=0)
        took = time.monotonic() - t0
        time.sleep(SETTLE_SECONDS)
        got = self.entries(u)
        self.assertEqual(len(dedupe(got)), 3,
                         "after the bus came back, %d of 3 events arrived within %.1fs\n%s"
                         % (len(dedupe(got)), RECOVERY_SECONDS, self.where(srv)))
        self.assertEqual(len(got), 3, "nothing was accepted during the outage, so no "
                         "duplicates: %s" % json.dumps(got))
        self.assertVersionsInOrder(got, u, [1, 2, 3])
        want = [(r1.body["version"], "a", 0, 1), (r2.body["version"], "a", 1, 3),
                (r3.body["version"], "b", 0, 1)]
        self.assertEqual([(e["detail"]["cartVersion"], e["detail"]["itemId"],
                           e["detail"]["quantityBefore"], e["detail"]["quantityAfter"])
                          for e in got], want)
        for e in got:
            self.assertEnvelope(e)
        self.assertLess(took, RECOVERY_SECONDS)
        self.assertNoSignatureRejections()

    def test_throttled_and_dropped_calls_are_retried(self):
        srv = self.server
        u = self.user("eb-throttle")
        self.stack.events_fault("throttle", count=1)
        self.stack.events_fault("drop", count=1)
        r = self.add_on(srv, u, "a", 1)
        self.assertEqual(r.status, 201, r)
        got = self.wait_entries(u, 1)
        self.assertEqual(len(got), 1, self.where(srv))
        st = self.stack.events_stats()
        self.assertEqual(st["faults_served"], 2, st)
        self.assertEqual(st["calls"], 3, "throttle, drop, then the accepted call: %s" % st)
        self.assertEnvelope(got[0])

    def test_unanswered_applied_call_is_redelivered_with_the_same_event(self):
        # the bus stores the entry but the connection closes unanswered: the
        # service cannot know, publishes again (at least once), and the copy
        # carries the same eventId and content
        srv = self.server
        u = self.user("eb-dup")
        self.stack.events_fault("hang", count=1, seconds=0.2, then="apply_close")
        r = self.add_on(srv, u, "a", 1)
        self.assertEqual(r.status, 201, r)
        deadline = time.monotonic() + EVENT_WAIT_SECONDS
        while time.monotonic() < deadline and len(self.entries(u)) < 2:
            time.sleep(0.05)
        time.sleep(SETTLE_SECONDS)
        got = self.entries(u)
        self.assertEqual(len(got), 2, "the applied-but-unanswered entry, then its "
                         "redelivery: %s\n%s" % (json.dumps(got), self.where(srv)))
        self.assertEqual(got[0]["detail"], got[1]["detail"])
        self.assertEqual((got[0]["source"], got[0]["detailType"], got[0]["bus"]),
                         (got[1]["source"], got[1]["detailType"], got[1]["bus"]))
        self.assertEnvelope(got[0])


# ---------------------------------------------------------------------------
class EventBridgePartialFailureTests(EventBridgeCase):
    """Events are written by a process with the relay off, the fault is
    queued, then a relay process publishes them in one batch."""

    start_server = False
    extra_env = {"AWS_MAX_ATTEMPTS": "3"}

    def setUp(self):
        super().setUp()
        self.stack.events_reset()

    def write_pending(self, user, n):
        w = self.start(relay=False)
        for i in range(n):
            r = self.add_on(w, user, "sku-%d" % i, 1)
            self.assertEqual(r.status, 201, r)
        w.stop()
        self.assertEqual(self.stack.events_stats()["calls"], 0, "relay off published")
        return w

    def test_partial_failure_resends_only_the_failed_entry(self):
        u = self.user("eb-part")
        self.write_pending(u, 5)
        self.stack.events_fault("fail_entries", count=1,
                                match={"detail.userId": u, "detail.cartVersion": 3})
        srv = self.start(relay=True)
        got = self.wait_entries(u, 5)
        st = self.stack.events_stats()
        self.assertEqual(len(dedupe(got)), 5, self.where(srv))
        self.assertEqual(copies(got), {e["detail"]["eventId"]: 1 for e in got},
                         "an entry was sent again although it had been accepted:\n%s\n%s"
                         % ("\n".join(json.dumps(e) for e in got), self.where()))
        self.assertEqual(st["entries_failed"], 1, st)
        self.assertEqual(st["batch_sizes"], [5, 1],
                         "one call with the 5 pending events, then only the failed one: %s"
                         % json.dumps(st))
        first = [e["detail"]["cartVersion"] for e in got if e["call"] == 1]
        resent = [e["detail"]["cartVersion"] for e in got if e["call"] == 2]
        self.assertEqual(first, [1, 2, 4, 5])
        self.assertEqual(resent, [3])
        for e in got:
            self.assertEnvelope(e)
        srv.stop()

    def test_entry_failing_every_attempt_stays_pending_and_arrives_later(self):
        u = self.user("eb-part3")
        self.write_pending(u, 5)
        # fails on all AWS_MAX_ATTEMPTS=3 attempts of the first relay pass
        self.stack.events_fault("fail_entries", count=3, error_code="ThrottlingException",
                                match={"detail.userId": u, "detail.cartVersion": 3})
        srv = self.start(relay=True)
        deadline = time.monotonic() + EVENT_WAIT_SECONDS
        while time.monotonic() < deadline:
            if 3 in [e["detail"]["cartVersion"] for e in self.entries(u)]:
                break
            time.sleep(0.05)
        time.sleep(SETTLE_SECONDS)
        got = self.entries(u)
        st = self.stack.events_stats()
        self.assertEqual(len(dedupe(got)), 5, self.where(srv))
        self.assertEqual(st["entries_failed"], 3, st)
        # within the first pass: the batch, then only the failed entry, AWS_MAX_ATTEMPTS in all
        self.assertEqual(st["batch_sizes"][:3], [5, 1, 1], json.dumps(st))
        n = copies(got)
        v3 = [e["detail"]["eventId"] for e in got if e["detail"]["cartVersion"] == 3][0]
        self.assertEqual(n[v3], 1, n)
        # the others: accepted in the first pass and maybe again in the
        # relay's later pass (at least once), never more
        for e in dedupe(got):
            self.assertIn(n[e["detail"]["eventId"]], (1, 2), n)
        for e in got:
            self.assertEnvelope(e)
        self.assertNoSignatureRejections()
        srv.stop()

    def test_entry_refused_permanently_is_parked_and_later_events_flow(self):
        """Issue 8, permanent failures: the bus refuses one entry for good
        (ErrorCode MalformedDetail, as PutEvents answers per entry).  After
        EVENTS_MAX_ATTEMPTS relay passes it is parked in the cart's
        partition (SK DLQ#<eventId>), with a warn line and the relay's
        `parked` counter, and the cart's later events go out."""
        u = self.user("eb-park")
        self.write_pending(u, 5)
        self.stack.events_fault("fail_entries", count=-1, error_code="MalformedDetail",
                                error_message="Detail is malformed.",
                                match={"detail.userId": u, "detail.cartVersion": 3})
        srv = self.start(relay=True, EVENTS_MAX_ATTEMPTS=3)
        deadline = time.monotonic() + EVENT_WAIT_SECONDS
        while time.monotonic() < deadline:
            if {4, 5} <= {e["detail"]["cartVersion"] for e in self.entries(u)}:
                break
            time.sleep(0.05)
        time.sleep(SETTLE_SECONDS)
        got = dedupe(self.entries(u))
        self.assertEqual([e["detail"]["cartVersion"] for e in got], [1, 2, 4, 5],
                         "v3 refused for good must not stall v4, v5:\n" + self.where(srv))
        # v4, v5 went out with v3 in each pass but were not acked behind
        # it; once v3 is parked they are acked, so the copies stop
        for eid, k in copies(self.entries(u)).items():
            self.assertLessEqual(k, 4, "resent forever:\n" + self.where(srv))
        st = self.stack.events_stats()
        # one refusal per relay pass, EVENTS_MAX_ATTEMPTS of them; a
        # permanent refusal is not resent within the publisher's call
        self.assertEqual(st["entries_failed"], 3, json.dumps(st))

        rec = srv.wait_log(lambda r: r.get("msg") == "event parked", timeout=3.0)
        self.assertIsNotNone(rec, "no 'event parked' log line\n" + srv.logs())
        self.assertEqual(rec["level"], "warn", rec)
        self.assertEqual(rec["userId"], u, rec)
        self.assertEqual(rec["cartVersion"], 3, rec)
        self.assertEqual(rec["errorCode"], "MalformedDetail", rec)
        self.assertEqual(rec["attempts"], 3, rec)
        self.assertRegex(rec["eventId"], r"^[0-9a-f-]{36}$", rec)

        r = srv.request("GET", "/ready")
        events = {c["name"]: c for c in r.body["checks"]}["events"]
        self.assertEqual(events.get("parked"), 1, r.body)

        # the dead-letter item: the event, why, when, and a 14-day TTL
        ddb = self.stack.client()
        self.addCleanup(ddb.close)
        item = ddb.get_item(TableName=awsbase.TABLE, ConsistentRead=True,
                            Key={"PK": {"S": "CART#" + u},
                                 "SK": {"S": "DLQ#" + rec["eventId"]}}).get("Item")
        self.assertIsNotNone(item, "no DLQ#%s item for %s" % (rec["eventId"], u))
        self.assertEqual(item["reason"]["S"], "MalformedDetail", item)
        self.assertEqual(item["event"]["M"]["v"]["N"], "3", item)
        self.assertEqual(item["event"]["M"]["id"]["S"], rec["eventId"], item)
        parked_at = int(item["parkedAt"]["N"])
        self.assertLess(abs(parked_at / 1000 - time.time()), 60, item)
        self.assertEqual(int(item["expiresAt"]["N"]), parked_at // 1000 + 14 * 86400, item)
        # the acks of v4, v5 wait up to EVENTS_ACK_DELAY_MS (1 s on DynamoDB)
        deadline = time.monotonic() + 3.0
        while True:
            cart = ddb.get_item(TableName=awsbase.TABLE, ConsistentRead=True,
                                Key={"PK": {"S": "CART#" + u}, "SK": {"S": "CART"}})["Item"]
            if "obPending" not in cart or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertNotIn("obPending", cart, "the outbox drained: out of the index")
        self.assertEqual(len(cart.get("outbox", {"L": []})["L"]), 0, cart)

        srv.stop()
        stats = [x for x in srv.log_lines() if isinstance(x, dict) and x.get("msg") == "stats"]
        self.assertTrue(stats, "no stats line at shutdown\n" + srv.logs())
        self.assertEqual(stats[-1]["stats"]["relay"]["parked"], 1, stats[-1])

    def test_whole_call_refused_for_good_parks_the_head_transient_never(self):
        """A whole PutEvents call refused with a 4xx that the entries cause
        (ValidationException) counts as a refusal for good of its entries;
        500s, throttling and configuration errors (AccessDeniedException: a
        task role without events:PutEvents) never park anything."""
        u = self.user("eb-park-call")
        self.write_pending(u, 2)
        self.stack.events_fault("fail_call", count=4)   # 500: for now
        self.stack.events_fault("throttle", count=4)
        self.stack.events_fault("fail_call", count=4, status=400,
                                error_type="AccessDeniedException",
                                message="not authorized to perform: events:PutEvents")
        srv = self.start(relay=True, EVENTS_MAX_ATTEMPTS=2)
        got = self.wait_entries(u, 2, timeout=RECOVERY_SECONDS + EVENT_WAIT_SECONDS)
        self.assertEqual([e["detail"]["cartVersion"] for e in dedupe(got)], [1, 2],
                         self.where(srv))
        self.assertIsNone(srv.wait_log(lambda r: r.get("msg") == "event parked",
                                       timeout=0.1), srv.logs())
        srv.stop()

        u = self.user("eb-park-call2")
        self.stack.events_reset()
        self.write_pending(u, 2)
        self.stack.events_fault("fail_call", count=2, status=400,
                                error_type="ValidationException",
                                message="1 validation error detected")
        srv = self.start(relay=True, EVENTS_MAX_ATTEMPTS=2)
        got = self.wait_entries(u, 1)
        self.assertEqual([e["detail"]["cartVersion"] for e in dedupe(got)], [2],
                         "v1 parked after 2 refused calls, then v2 delivered\n"
                         + self.where(srv))
        rec = srv.wait_log(lambda r: r.get("msg") == "event parked", timeout=3.0)
        self.assertIsNotNone(rec, srv.logs())
        self.assertEqual((rec["userId"], rec["cartVersion"], rec["errorCode"]),
                         (u, 1, "ValidationException"), rec)
        srv.stop()


# ---------------------------------------------------------------------------
class EventBridgeBatchAndCrashTests(EventBridgeCase):
    """kill -9 between write and publish; batches of at most 10 entries."""

    start_server = False
    extra_env = {"MAX_CART_LINES": "50"}

    def setUp(self):
        super().setUp()
        self.stack.events_reset()

    def test_kill_9_before_publish_then_restart_publishes_in_batches_of_10(self):
        big, small = self.user("eb-big"), self.user("eb-small")
        first = self.start(relay=False)
        expected = {}
        for i in range(25):
            r = self.add_on(first, big, "sku-%02d" % i, 1 + i % 3)
            self.assertEqual(r.status, 201, r)
            expected[(big, r.body["version"])] = ("sku-%02d" % i, 1 + i % 3)
        for i, q in enumerate((1, 2, 3)):
            r = self.add_on(first, small, "x", q)
            self.assertIn(r.status, (200, 201), r)
        r = first.request("DELETE", "/v1/cart/%s" % small)
        self.assertEqual(r.status, 204, r)
        first.send_signal(signal.SIGKILL)
        self.assertEqual(first.wait_exit(5), -signal.SIGKILL)
        self.assertEqual(self.stack.events_stats()["calls"], 0,
                         "a process with EVENTS_RELAY_ENABLED=false published")

        second = self.start(relay=True)
        self.wait_entries(big, 25, settle=0)
        self.wait_entries(small, 4)
        everything = self.entries()
        st = self.stack.events_stats()
        got_big = [e for e in everything if e["detail"]["userId"] == big]
        got_small = [e for e in everything if e["detail"]["userId"] == small]
        self.assertEqual(len(dedupe(got_big)), 25, self.where(second))
        self.assertEqual(len(dedupe(got_small)), 4, self.where(second))
        self.assertEqual(len(everything), 29, "no fault, so no duplicates: %s" % json.dumps(st))
        self.assertLessEqual(st["max_batch_entries"], 10, json.dumps(st))
        self.assertTrue(all(1 <= b <= 10 for b in st["batch_sizes"]), st)
        # 29 entries need at least 3 calls; the relay may pack both carts'
        # entries into one call, so 3 is the floor, not 4
        self.assertGreaterEqual(len(st["batch_sizes"]), 3, st)
        self.assertEqual(sum(st["batch_sizes"]), 29, st)
        self.assertLessEqual(st["max_batch_bytes"], 256 * 1024, st)
        self.assertEqual(st["rejected"], {}, st)
        self.assertEqual(st["entries_failed"], 0, st)
        self.assertVersionsInOrder(everything, big, list(range(1, 26)))
        self.assertVersionsInOrder(everything, small, [1, 2, 3, 4])
        for e in got_big:
            d = e["detail"]
            self.assertEqual((d["itemId"], d["quantityAfter"]),
                             expected[(big, d["cartVersion"])], d)
        self.assertEqual([e["detail"]["eventType"] for e in got_small],
                         ["CartItemAdded"] * 3 + ["CartCleared"])
        for e in everything:
            self.assertEnvelope(e)
        self.assertNoSignatureRejections()
        second.stop()
        # acknowledged: a new relay process publishes nothing again
        calls = self.stack.events_stats()["calls"]
        third = self.start(relay=True)
        time.sleep(1.0)
        self.assertEqual(self.stack.events_stats()["calls"], calls, "republished after ack")
        third.stop()


# ---------------------------------------------------------------------------
class EventBridgeConfigTests(EventBridgeCase):
    """Source, bus, endpoint and publisher selection. One process at a time,
    each drains its own events before it stops."""

    start_server = False

    def setUp(self):
        super().setUp()
        self.stack.events_reset()

    def dead_endpoint(self):
        return "http://127.0.0.1:%d" % harness.free_port()

    def one_event_through(self, source=DEFAULT_SOURCE, bus=BUS, **env):
        u = self.user("eb-cfg")
        srv = self.start(relay=True, **env)
        r = self.add_on(srv, u, "a", 1)
        self.assertEqual(r.status, 201, r)
        got = self.wait_entries(u, 1)
        self.assertEqual(len(got), 1, "env %s\n%s" % (env, self.where(srv)))
        self.assertEnvelope(got[0], source=source, bus=bus)
        srv.stop()

    def test_source_and_bus_are_configurable(self):
        self.one_event_through(source="com.example.cart", bus=OTHER_BUS,
                               EVENTBRIDGE_SOURCE="com.example.cart",
                               EVENTBRIDGE_BUS_NAME=OTHER_BUS)

    def test_endpoint_precedence(self):
        ep = self.stack.events_endpoint
        with self.subTest("EVENTBRIDGE_ENDPOINT first"):
            self.one_event_through(EVENTBRIDGE_ENDPOINT=ep,
                                   AWS_ENDPOINT_URL_EVENTBRIDGE=self.dead_endpoint(),
                                   AWS_ENDPOINT_URL=self.dead_endpoint())
        with self.subTest("then AWS_ENDPOINT_URL_EVENTBRIDGE"):
            self.one_event_through(EVENTBRIDGE_ENDPOINT=None,
                                   AWS_ENDPOINT_URL_EVENTBRIDGE=ep,
                                   AWS_ENDPOINT_URL=self.dead_endpoint())
        with self.subTest("then AWS_ENDPOINT_URL"):
            self.one_event_through(EVENTBRIDGE_ENDPOINT=None, AWS_ENDPOINT_URL=ep)

    def test_eventbridge_is_the_default_outside_dev(self):
        # Outside dev authentication is on by default; this test is about
        # the publisher, so it switches auth off explicitly.
        self.one_event_through(EVENTS_PUBLISHER=None, ENV_NAME="staging",
                               AUTH_ENABLED="false")


if __name__ == "__main__":
    import unittest
    unittest.main()
