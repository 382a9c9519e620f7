"""The transactional outbox on DynamoDB, end to end (issue 4, ADR 8).

Events are recorded in the cart's own conditional write and published by
the relay afterwards, so: a process killed with -9 before it published
loses nothing (the next start publishes), every committed mutation gives
exactly one event, a rejected one none, and each cart's events come out in
cartVersion order.
"""
import signal
import time

from awsbase import AwsServiceTestCase, Server, service_env


def events_of(server, user):
    return [d["event"] for d in server.log_lines()
            if isinstance(d, dict) and d.get("msg") == "event"
            and d.get("event", {}).get("userId") == user]


class OutboxTests(AwsServiceTestCase):
    start_server = False

    def start(self, relay):
        env = service_env(self.stack, EVENTS_RELAY_ENABLED=str(relay).lower(),
                          EVENTS_PUBLISHER="log")
        srv = Server(env=env).start()
        self.addCleanup(srv.cleanup)
        return srv

    def wait_events(self, srv, user, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            evs = events_of(srv, user)
            if len(evs) >= n:
                time.sleep(0.3)        # and no more than n arrive
                return events_of(srv, user)
            time.sleep(0.05)
        return events_of(srv, user)

    def add(self, srv, user, item, q=1, **hdr):
        return srv.request("POST", "/v1/cart/%s/items" % user,
                           {"itemId": item, "quantity": q,
                            "unitPrice": {"amount": 100, "currency": "EUR"}},
                           headers=hdr)

    def test_kill_9_before_publish_then_restart_publishes(self):
        user = self.user("ob-kill")
        first = self.start(relay=False)      # commits, never publishes
        self.assertEqual(self.add(first, user, "a").status, 201)
        self.assertEqual(self.add(first, user, "a").status, 200)
        first.send_signal(signal.SIGKILL)
        first.wait_exit(5)
        self.assertEqual(events_of(first, user), [])
        second = self.start(relay=True)
        try:
            evs = self.wait_events(second, user, 2)
        finally:
            second.stop()
        self.assertEqual([e["cartVersion"] for e in evs], [1, 2], evs)
        self.assertEqual([e["quantityAfter"] for e in evs], [1, 2])
        self.assertEqual(len({e["eventId"] for e in evs}), 2)

    def test_one_event_per_commit_none_for_rejected_in_order(self):
        user = self.user("ob-once")
        srv = self.start(relay=True)
        try:
            self.assertEqual(self.add(srv, user, "a", **{"Idempotency-Key": "k1"}).status, 201)
            # an idempotent replay, a 422, a stale If-Match and a 404 write nothing
            self.assertEqual(self.add(srv, user, "a", **{"Idempotency-Key": "k1"}).status, 201)
            self.assertEqual(self.add(srv, user, "b", q=100000).status, 422)
            self.assertEqual(srv.request("PATCH", "/v1/cart/%s/items/a" % user,
                                         {"quantity": 5},
                                         headers={"If-Match": '"7"'}).status, 412)
            self.assertEqual(srv.request("DELETE", "/v1/cart/%s/items/zz" % user).status, 404)
            self.assertEqual(srv.request("PATCH", "/v1/cart/%s/items/a" % user,
                                         {"quantity": 3}).status, 200)
            self.assertEqual(srv.request("DELETE", "/v1/cart/%s/items/a" % user).status, 200)
            self.assertEqual(self.add(srv, user, "c").status, 201)
            self.assertEqual(srv.request("DELETE", "/v1/cart/%s" % user).status, 204)
            evs = self.wait_events(srv, user, 5)
        finally:
            srv.stop()
        self.assertEqual([e["eventType"] for e in evs],
                         ["CartItemAdded", "CartItemQuantityChanged",
                          "CartItemRemoved", "CartItemAdded", "CartCleared"], evs)
        self.assertEqual([e["cartVersion"] for e in evs], [1, 2, 3, 4, 5])
        # the outbox is empty again: nothing is republished on a new start
        again = self.start(relay=True)
        try:
            time.sleep(1.0)
            self.assertEqual(events_of(again, user), [])
        finally:
            again.stop()
