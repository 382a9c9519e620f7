"""Idempotency-Key: replay, reuse conflicts, what is and is not stored."""

import os
import unittest
import uuid

import harness
from harness import new_user


def key():
    return "k-" + uuid.uuid4().hex


def item(iid="sku-1", q=1, amount=100, cur="EUR"):
    return {"itemId": iid, "quantity": q,
            "unitPrice": {"amount": amount, "currency": cur}}


class IdempotencyTest(harness.ServerTestCase):

    def post(self, u, body, k, **hdrs):
        h = {"Idempotency-Key": k}
        h.update(hdrs)
        return self.request("POST", "/v1/cart/%s/items" % u, body, headers=h)

    def assertReplay(self, first, again):
        self.assertEqual(again.status, first.status, again)
        self.assertEqual(again.header("idempotent-replayed"), "true",
                         again.headers)
        self.assertEqual(again.header("content-type"),
                         first.header("content-type"))
        if first.status < 400:
            self.assertEqual(again.body, first.body)
            return
        # A replayed problem is the stored one, except that its requestId
        # is the replay's own (the X-Request-Id its log line carries).
        self.assertEqual(again.body["requestId"], again.header("x-request-id"),
                         again)
        self.assertNotEqual(again.body["requestId"], first.body["requestId"])
        self.assertEqual(dict(again.body, requestId=None),
                         dict(first.body, requestId=None))

    def assertNotReplay(self, r):
        self.assertNotEqual((r.header("idempotent-replayed") or "").lower(),
                            "true", r.headers)

    def test_post_replay(self):
        u, k = new_user(), key()
        first = self.post(u, item(q=2), k)
        self.assertEqual(first.status, 201, first)
        self.assertNotReplay(first)
        for _ in range(3):
            again = self.post(u, item(q=2), k)
            self.assertReplay(first, again)
        c = self.get_cart(u)
        self.assertEqual(c["version"], 1)
        self.assertEqual(c["items"][0]["quantity"], 2)

    def test_replay_returns_stored_body_even_after_later_changes(self):
        u, k = new_user(), key()
        first = self.post(u, item(q=2), k)
        self.assertEqual(first.status, 201, first)
        r = self.add(u, "sku-1", 5, 100)        # a different, keyless write
        self.assertEqual(r.status, 200)
        again = self.post(u, item(q=2), k)
        self.assertReplay(first, again)
        self.assertEqual(again.body["items"][0]["quantity"], 2)
        c = self.get_cart(u)
        self.assertEqual((c["version"], c["items"][0]["quantity"]), (2, 7))

    def test_patch_and_delete_item_replay(self):
        u = new_user()
        self.add(u, "a", 1, 100)
        self.add(u, "b", 1, 100)
        k1, k2 = key(), key()
        p1 = self.request("PATCH", "/v1/cart/%s/items/a" % u, {"quantity": 4},
                          headers={"Idempotency-Key": k1})
        self.assertEqual(p1.status, 200, p1)
        p2 = self.request("PATCH", "/v1/cart/%s/items/a" % u, {"quantity": 4},
                          headers={"Idempotency-Key": k1})
        self.assertReplay(p1, p2)
        d1 = self.request("DELETE", "/v1/cart/%s/items/b" % u,
                          headers={"Idempotency-Key": k2})
        self.assertEqual(d1.status, 200, d1)
        # b is back; a replayed delete must not remove it again
        self.add(u, "b", 1, 100)
        d2 = self.request("DELETE", "/v1/cart/%s/items/b" % u,
                          headers={"Idempotency-Key": k2})
        self.assertReplay(d1, d2)
        c = self.get_cart(u)
        self.assertEqual([i["itemId"] for i in c["items"]], ["a", "b"])
        self.assertEqual(c["version"], 5)

    def test_delete_cart_replay_does_not_clear_again(self):
        u, k = new_user(), key()
        self.add(u, "a", 1, 100)
        d1 = self.request("DELETE", "/v1/cart/" + u,
                          headers={"Idempotency-Key": k})
        self.assertEqual(d1.status, 204, d1)
        self.add(u, "new", 1, 100)
        d2 = self.request("DELETE", "/v1/cart/" + u,
                          headers={"Idempotency-Key": k})
        self.assertEqual(d2.status, 204, d2)
        self.assertEqual(d2.header("idempotent-replayed"), "true", d2.headers)
        self.assertEqual(d2.raw, b"")
        c = self.get_cart(u)
        self.assertEqual([i["itemId"] for i in c["items"]], ["new"])
        self.assertEqual(c["version"], 3)

    def test_same_key_different_request_422(self):
        u, k = new_user(), key()
        first = self.post(u, item(q=1), k)
        self.assertEqual(first.status, 201)
        before = self.get_cart(u)
        cases = (
            ("POST", "/v1/cart/%s/items" % u, item(q=2)),               # body
            ("POST", "/v1/cart/%s/items" % u, item(iid="other")),       # body
            ("PATCH", "/v1/cart/%s/items/sku-1" % u, {"quantity": 1}),  # method
            ("DELETE", "/v1/cart/%s/items/sku-1" % u, None),            # method
            ("DELETE", "/v1/cart/" + u, None),                          # path
        )
        for method, path, body in cases:
            with self.subTest(method=method, body=body):
                r = self.request(method, path, body,
                                 headers={"Idempotency-Key": k})
                self.assertProblem(r, 422, "cart.idempotency_key_reused")
                self.assertEqual(self.get_cart(u), before)
        # the original request still replays
        self.assertReplay(first, self.post(u, item(q=1), k))

    def test_same_key_different_item_path_422(self):
        u, k = new_user(), key()
        self.add(u, "a", 1, 100)
        self.add(u, "b", 1, 100)
        r = self.request("PATCH", "/v1/cart/%s/items/a" % u, {"quantity": 3},
                         headers={"Idempotency-Key": k})
        self.assertEqual(r.status, 200)
        r = self.request("PATCH", "/v1/cart/%s/items/b" % u, {"quantity": 3},
                         headers={"Idempotency-Key": k})
        self.assertProblem(r, 422, "cart.idempotency_key_reused")
        self.assertEqual(self.get_cart(u)["items"][1]["quantity"], 1)

    def test_malformed_keys_400(self):
        u = new_user()
        self.add(u, "a", 1, 100)
        before = self.get_cart(u)
        # (leading/trailing blanks are not part of an HTTP field value, so
        # only inner ones can be tested)
        for k in ("", "k" * 256, "a b", b"caf\xc3\xa9"):
            with self.subTest(key=k):
                r = self.post(u, item(iid="a"), k)
                self.assertProblem(r, 400, "cart.invalid_idempotency_key")
                self.assertEqual(self.get_cart(u), before)
        # Control characters make the header itself malformed HTTP: the
        # server's HTTP layer refuses the request before routing, still as
        # a 400 problem, and nothing is stored.
        for k in ("tab\there", "bell\x07", "del\x7f"):
            with self.subTest(key=k):
                r = self.post(u, item(iid="a"), k)
                self.assertProblem(r, 400)
                self.assertIn(r.body["code"], ("cart.invalid_idempotency_key",
                                                   "cart.invalid_request"))
                self.assertEqual(self.get_cart(u), before)
        # 255 printable characters are fine, and so is the full range
        r = self.post(u, item(iid="a"), "k" * 255)
        self.assertEqual(r.status, 200, r)
        r = self.post(u, item(iid="a"),
                      "".join(chr(c) for c in range(0x21, 0x7F)))
        self.assertEqual(r.status, 200, r)

    def test_404_outcome_is_stored_and_replayed(self):
        u, k = new_user(), key()
        first = self.request("PATCH", "/v1/cart/%s/items/late" % u,
                             {"quantity": 3}, headers={"Idempotency-Key": k})
        self.assertProblem(first, 404, "cart.item_not_found")
        self.add(u, "late", 1, 100)
        again = self.request("PATCH", "/v1/cart/%s/items/late" % u,
                             {"quantity": 3}, headers={"Idempotency-Key": k})
        self.assertReplay(first, again)
        c = self.get_cart(u)
        self.assertEqual((c["version"], c["items"][0]["quantity"]), (1, 1))

    def test_422_outcome_is_stored_and_replayed(self):
        u, k = new_user(), key()
        first = self.post(u, item(q=0), k)
        self.assertProblem(first, 422, "cart.quantity_out_of_range")
        again = self.post(u, item(q=0), k)
        self.assertReplay(first, again)
        self.assertEqual(self.get_cart(u)["version"], 0)

    def test_412_outcome_is_not_stored(self):
        u, k = new_user(), key()
        self.add(u, "a", 1, 100)
        r = self.post(u, item(iid="b"), k, **{"If-Match": '"7"'})
        self.assertProblem(r, 412, "cart.version_mismatch")
        r = self.post(u, item(iid="b"), k, **{"If-Match": '"1"'})
        self.assertEqual(r.status, 201, r)
        self.assertNotReplay(r)
        self.assertEqual(self.get_cart(u)["version"], 2)
        # and now that outcome is the stored one
        self.assertReplay(r, self.post(u, item(iid="b"), k,
                                       **{"If-Match": '"1"'}))

    def test_400_and_415_outcomes_are_not_stored(self):
        u, k = new_user(), key()
        r = self.post(u, {"itemId": "a", "quantity": "1",
                          "unitPrice": {"amount": 1, "currency": "EUR"}}, k)
        self.assertProblem(r, 400, "cart.invalid_field")
        r = self.request("POST", "/v1/cart/%s/items" % u, item(iid="a"),
                         headers={"Idempotency-Key": k},
                         content_type="text/plain")
        self.assertProblem(r, 415, "cart.unsupported_media_type")
        r = self.post(u, item(iid="a"), k, **{"If-Match": "bogus"})
        self.assertProblem(r, 400, "cart.invalid_if_match")
        r = self.post(u, item(iid="a"), k)
        self.assertEqual(r.status, 201, r)
        self.assertNotReplay(r)

    def test_413_outcome_is_not_stored(self):
        u, k = new_user(), key()
        big = item(iid="a")
        big["name"] = "x" * 20000
        r = self.post(u, big, k)
        self.assertProblem(r, 413, "cart.payload_too_large")
        r = self.post(u, item(iid="a"), k)
        self.assertEqual(r.status, 201, r)
        self.assertNotReplay(r)

    def test_keys_are_per_user(self):
        u1, u2, k = new_user(), new_user(), key()
        r1 = self.post(u1, item(q=1), k)
        self.assertEqual(r1.status, 201)
        r2 = self.post(u2, item(q=1), k)
        self.assertEqual(r2.status, 201, r2)
        self.assertNotReplay(r2)
        self.assertEqual(r2.body["userId"], u2)
        self.assertNotEqual(r2.body["cartId"], r1.body["cartId"])
        # a different request under the same key is fine for another user
        r3 = self.request("DELETE", "/v1/cart/%s/items/sku-1" % new_user(),
                          headers={"Idempotency-Key": k})
        self.assertProblem(r3, 404, "cart.item_not_found")

    def test_get_ignores_idempotency_key(self):
        u, k = new_user(), key()
        r = self.request("GET", "/v1/cart/" + u, headers={"Idempotency-Key": k})
        self.assertEqual(r.status, 200, r)
        r = self.post(u, item(), k)
        self.assertEqual(r.status, 201, r)
        self.assertNotReplay(r)

    def test_in_flight_repeat_409(self):
        # A repeat while the first request still runs -> 409
        # cart.idempotency_in_flight.  Over HTTP the first request finishes
        # in well under a millisecond against the memory store, so the window
        # cannot be hit reliably from here; the core unit tests cover it with
        # a repository that holds the first request.
        self.skipTest("in-flight window not reachable over HTTP; covered by "
                      "unit tests")


if __name__ == "__main__":
    unittest.main()


class IdempotencyBoundTest(harness.ServerTestCase):
    server_env = {"IDEMPOTENCY_MAX_RECORDS": "16"}

    post = IdempotencyTest.post
    assertReplay = IdempotencyTest.assertReplay
    assertNotReplay = IdempotencyTest.assertNotReplay

    def test_records_per_user_are_bounded_oldest_first(self):
        # Both stores bound a user's records (ADR 3): the memory store at
        # 256, DynamoDB at IDEMPOTENCY_MAX_RECORDS (16 here: each keyed
        # write is four requests through the stand-ins). Past the bound --
        # changes and 404 outcomes -- the newest replay, the oldest is
        # forgotten (its retry runs again), nothing failed.
        u = new_user()
        self.add(u, "mug", 1, 100)
        keys = []
        total = 24 if os.environ.get("E2E_BACKEND") == "dynamodb" else 260
        for n in range(total):
            k = "bound-%03d-%s" % (n, u)
            path = "/v1/cart/%s/items/%s" % (u, "mug" if n % 3 else "gone")
            r = self.request("PATCH", path, {"quantity": 2 + n % 4},
                             headers={"Idempotency-Key": k})
            self.assertEqual(r.status, 200 if n % 3 else 404, "write %d: %r" % (n, r))
            keys.append((k, path, r))
        k, path, first = keys[-1]
        self.assertReplay(first, self.request("PATCH", path, {"quantity": 2 + (total - 1) % 4},
                                              headers={"Idempotency-Key": k}))
        k, path, first = keys[1]
        again = self.request("PATCH", path, {"quantity": 3},
                             headers={"Idempotency-Key": k})
        self.assertEqual(again.status, 200, again)
        self.assertNotReplay(again)
        self.assertGreater(again.body["version"], first.body["version"])

