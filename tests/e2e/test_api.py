"""Every route's happy path and the exact shape of what it returns."""

import datetime
import os
import re
import time
import unittest

import harness
from harness import TIME_RE, UUID_RE, new_user

CART_KEYS = {"cartId", "userId", "items", "itemCount", "subtotal", "version",
             "createdAt", "updatedAt", "expiresAt"}
ITEM_KEYS = {"itemId", "quantity", "unitPrice", "lineTotal", "name",
             "attributes", "addedAt", "updatedAt"}


def parse_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")



def whole_seconds(t):
    """t rounded down to the second."""
    return t.replace(microsecond=0)

class CartShape:
    """Assertions on the cart body."""

    def assertCart(self, r, user, version, status=200):
        self.assertEqual(r.status, status, r)
        self.assertTrue(r.header("content-type", "").startswith(
            "application/json"), r)
        c = r.body
        self.assertIsInstance(c, dict, r)
        self.assertEqual(set(c), CART_KEYS, c)
        self.assertEqual(c["userId"], user)
        self.assertEqual(c["version"], version, c)
        self.assertEqual(r.header("etag"), '"%d"' % version, r.headers)
        self.assertIsInstance(c["items"], list)
        total_q = 0
        amount = 0
        for it in c["items"]:
            self.assertEqual(set(it), ITEM_KEYS, it)
            self.assertIsInstance(it["quantity"], int)
            self.assertEqual(set(it["unitPrice"]), {"amount", "currency"})
            self.assertEqual(it["lineTotal"],
                             {"amount": it["quantity"] * it["unitPrice"]["amount"],
                              "currency": it["unitPrice"]["currency"]}, it)
            self.assertRegex(it["addedAt"], TIME_RE)
            self.assertRegex(it["updatedAt"], TIME_RE)
            self.assertLessEqual(parse_time(it["addedAt"]),
                                 parse_time(it["updatedAt"]))
            total_q += it["quantity"]
            amount += it["lineTotal"]["amount"]
        self.assertEqual(c["itemCount"], total_q, c)
        self.assertEqual(c["subtotal"]["amount"], amount, c)
        self.assertEqual(set(c["subtotal"]), {"amount", "currency"})
        if c["items"]:
            self.assertEqual(c["subtotal"]["currency"],
                             c["items"][0]["unitPrice"]["currency"])
        else:
            self.assertEqual(c["subtotal"], {"amount": 0, "currency": None}, c)
        if c["cartId"] is not None:
            self.assertRegex(c["cartId"], UUID_RE)
            for k in ("createdAt", "updatedAt", "expiresAt"):
                self.assertRegex(c[k], TIME_RE, c)
            self.assertLessEqual(parse_time(c["createdAt"]),
                                 parse_time(c["updatedAt"]))
        return c


class ApiTest(CartShape, harness.ServerTestCase):

    # -- GET ---------------------------------------------------------------

    def test_get_unknown_user_is_empty_cart_version_0(self):
        u = new_user()
        r = self.request("GET", "/v1/cart/" + u)
        c = self.assertCart(r, u, 0)
        self.assertEqual(c, {"cartId": None, "userId": u, "items": [],
                             "itemCount": 0,
                             "subtotal": {"amount": 0, "currency": None},
                             "version": 0, "createdAt": None,
                             "updatedAt": None, "expiresAt": None})
        # Reading stored nothing: still version 0.
        self.assertEqual(self.get_cart(u)["version"], 0)

    # -- POST --------------------------------------------------------------

    def test_add_new_line_is_201_with_full_shape(self):
        u = new_user()
        before = datetime.datetime.utcnow().replace(microsecond=0)
        r = self.add(u, "sku-1", 2, 1999, "EUR", name="Blue mug",
                     attributes={"color": "blue", "size": "L"})
        c = self.assertCart(r, u, 1, status=201)
        self.assertRegex(c["cartId"], UUID_RE)
        self.assertEqual(len(c["items"]), 1)
        it = c["items"][0]
        self.assertEqual(it["itemId"], "sku-1")
        self.assertEqual(it["quantity"], 2)
        self.assertEqual(it["unitPrice"], {"amount": 1999, "currency": "EUR"})
        self.assertEqual(it["lineTotal"], {"amount": 3998, "currency": "EUR"})
        self.assertEqual(it["name"], "Blue mug")
        self.assertEqual(it["attributes"], {"color": "blue", "size": "L"})
        self.assertEqual(c["itemCount"], 2)
        self.assertEqual(c["subtotal"], {"amount": 3998, "currency": "EUR"})
        created = parse_time(c["createdAt"])
        self.assertGreaterEqual(created, before)
        self.assertLess(created - before, datetime.timedelta(seconds=30))
        self.assertEqual(c["createdAt"], c["updatedAt"])
        self.assertEqual(it["addedAt"], c["createdAt"])
        # expiresAt = updatedAt + CART_TTL_DAYS (default 30), in whole
        # seconds (the resolution of DynamoDB's TTL attribute)
        self.assertEqual(parse_time(c["expiresAt"]),
                         whole_seconds(parse_time(c["updatedAt"]) +
                                       datetime.timedelta(days=30)))
        # GET returns the same state.
        g = self.request("GET", "/v1/cart/" + u)
        self.assertCart(g, u, 1)
        self.assertEqual(g.body, c)

    def test_add_without_optional_fields(self):
        u = new_user()
        c = self.assertCart(self.add(u, "plain", 1, 0, "USD"), u, 1, 201)
        it = c["items"][0]
        self.assertIsNone(it["name"])
        self.assertIn(it["attributes"], (None, {}))
        self.assertEqual(it["unitPrice"], {"amount": 0, "currency": "USD"})
        # explicit nulls are accepted too
        c = self.assertCart(self.add(u, "plain2", 1, 5, "USD", name=None,
                                     attributes=None), u, 2, 201)
        self.assertIsNone(c["items"][1]["name"])

    def test_add_existing_line_is_200_sums_and_latest_price_wins(self):
        u = new_user()
        c1 = self.add(u, "sku-1", 2, 1000, "EUR", name="old",
                      attributes={"a": "1"}).body
        time.sleep(0.01)
        r = self.add(u, "sku-1", 3, 1500, "EUR", name="new",
                     attributes={"b": "2"})
        c = self.assertCart(r, u, 2, status=200)
        self.assertEqual(c["cartId"], c1["cartId"])
        self.assertEqual(len(c["items"]), 1)
        it = c["items"][0]
        self.assertEqual(it["quantity"], 5)
        self.assertEqual(it["unitPrice"], {"amount": 1500, "currency": "EUR"})
        self.assertEqual(it["lineTotal"], {"amount": 7500, "currency": "EUR"})
        self.assertEqual(it["name"], "new")
        self.assertEqual(it["attributes"], {"b": "2"})
        self.assertEqual(it["addedAt"], c1["items"][0]["addedAt"])
        self.assertGreater(parse_time(it["updatedAt"]),
                           parse_time(it["addedAt"]))
        self.assertEqual(c["createdAt"], c1["createdAt"])
        self.assertGreater(parse_time(c["updatedAt"]),
                           parse_time(c1["updatedAt"]))
        self.assertEqual(c["subtotal"], {"amount": 7500, "currency": "EUR"})
        self.assertEqual(c["itemCount"], 5)

    def test_items_keep_insertion_order_and_totals(self):
        u = new_user()
        ids = ["zeta", "alpha", "mid", "Beta", "0-first"]
        for n, i in enumerate(ids, 1):
            r = self.add(u, i, n, 100 * n, "EUR")
            self.assertCart(r, u, n, 201)
        # re-adding an early line keeps its position
        r = self.add(u, "alpha", 1, 200, "EUR")
        c = self.assertCart(r, u, 6, 200)
        self.assertEqual([it["itemId"] for it in c["items"]], ids)
        self.assertEqual(c["itemCount"], 1 + 2 + 3 + 4 + 5 + 1)
        self.assertEqual(c["subtotal"]["amount"],
                         100 * 1 + 3 * 200 + 300 * 3 + 400 * 4 + 500 * 5)

    def test_max_values_accepted(self):
        u = new_user()
        c = self.assertCart(self.add(u, "big", 999, 10 ** 12, "JPY"), u, 1, 201)
        self.assertEqual(c["items"][0]["lineTotal"]["amount"], 999 * 10 ** 12)
        self.assertEqual(c["subtotal"], {"amount": 999 * 10 ** 12,
                                         "currency": "JPY"})

    # -- PATCH -------------------------------------------------------------

    def test_patch_sets_quantity(self):
        u = new_user()
        c0 = self.add(u, "a", 2, 300).body
        self.add_ok(u, "b", 1, 100)
        r = self.request("PATCH", "/v1/cart/%s/items/a" % u, {"quantity": 7})
        c = self.assertCart(r, u, 3)
        self.assertEqual([(i["itemId"], i["quantity"]) for i in c["items"]],
                         [("a", 7), ("b", 1)])
        self.assertEqual(c["items"][0]["lineTotal"]["amount"], 2100)
        self.assertEqual(c["itemCount"], 8)
        self.assertEqual(c["subtotal"], {"amount": 2200, "currency": "EUR"})
        self.assertEqual(c["cartId"], c0["cartId"])
        self.assertEqual(self.get_cart(u), c)

    def test_patch_zero_removes_line(self):
        u = new_user()
        self.add_ok(u, "a", 2, 300)
        self.add_ok(u, "b", 1, 100)
        r = self.request("PATCH", "/v1/cart/%s/items/a" % u, {"quantity": 0})
        c = self.assertCart(r, u, 3)
        self.assertEqual([i["itemId"] for i in c["items"]], ["b"])
        self.assertEqual(c["subtotal"], {"amount": 100, "currency": "EUR"})

    def test_patch_unknown_item_404(self):
        u = new_user()
        r = self.request("PATCH", "/v1/cart/%s/items/nope" % u, {"quantity": 1},
                         headers={"X-Request-Id": "rid-404"})
        p = self.assertProblem(r, 404, "cart.item_not_found")
        self.assertEqual(p.get("instance"), "/v1/cart/%s/items/nope" % u, p)
        self.assertEqual(p.get("requestId"), "rid-404", p)
        self.assertTrue(p["type"].startswith("https://"), p)
        self.add_ok(u, "a")
        r = self.request("PATCH", "/v1/cart/%s/items/nope" % u, {"quantity": 1})
        self.assertProblem(r, 404, "cart.item_not_found")
        self.assertEqual(self.get_cart(u)["version"], 1)

    # -- DELETE item -------------------------------------------------------

    def test_delete_item(self):
        u = new_user()
        self.add_ok(u, "a", 1, 100)
        self.add_ok(u, "b", 2, 100)
        self.add_ok(u, "c", 3, 100)
        r = self.request("DELETE", "/v1/cart/%s/items/b" % u)
        c = self.assertCart(r, u, 4)
        self.assertEqual([i["itemId"] for i in c["items"]], ["a", "c"])
        self.assertEqual(c["itemCount"], 4)
        r = self.request("DELETE", "/v1/cart/%s/items/b" % u)
        self.assertProblem(r, 404, "cart.item_not_found")
        self.assertEqual(self.get_cart(u)["version"], 4)

    def test_delete_ignores_a_body(self):
        u = new_user()
        self.add_ok(u, "a")
        self.add_ok(u, "b")
        r = self.request("DELETE", "/v1/cart/%s/items/a" % u, b"whatever",
                         content_type="text/plain")
        c = self.assertCart(r, u, 3)
        self.assertEqual([i["itemId"] for i in c["items"]], ["b"])
        r = self.request("DELETE", "/v1/cart/" + u, {"x": 1})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.get_cart(u)["items"], [])

    def test_removing_last_line_keeps_cart_and_frees_currency(self):
        u = new_user()
        c1 = self.add(u, "a", 1, 100, "EUR").body
        r = self.request("DELETE", "/v1/cart/%s/items/a" % u)
        c = self.assertCart(r, u, 2)
        self.assertEqual(c["items"], [])
        self.assertEqual(c["subtotal"], {"amount": 0, "currency": None})
        self.assertEqual(c["itemCount"], 0)
        # With no lines the cart holds no currency any more.
        r = self.add(u, "b", 1, 100, "USD")
        c = self.assertCart(r, u, 3, 201)
        self.assertEqual(c["subtotal"], {"amount": 100, "currency": "USD"})
        self.assertEqual(c["cartId"], c1["cartId"])

    # -- DELETE cart -------------------------------------------------------

    def test_delete_cart_204_then_new_cart_id_and_version_continues(self):
        u = new_user()
        c1 = self.add(u, "a", 1, 100).body
        self.add_ok(u, "b", 1, 100)
        r = self.request("DELETE", "/v1/cart/" + u)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.raw, b"")
        g = self.request("GET", "/v1/cart/" + u)
        c = self.assertCart(g, u, 3)
        self.assertIsNone(c["cartId"])
        self.assertEqual(c["items"], [])
        self.assertIsNone(c["createdAt"])
        self.assertIsNone(c["expiresAt"])
        # (the contract leaves updatedAt of a cleared cart open: null or the
        # time of the clear)
        if c["updatedAt"] is not None:
            self.assertRegex(c["updatedAt"], TIME_RE)
        self.assertEqual(c["subtotal"], {"amount": 0, "currency": None})
        # A second clear finds no cart: 204, nothing written.
        r = self.request("DELETE", "/v1/cart/" + u)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.get_cart(u)["version"], 3)
        # The next add starts a new cart.
        r = self.add(u, "c", 1, 100, "USD")
        c = self.assertCart(r, u, 4, 201)
        self.assertNotEqual(c["cartId"], c1["cartId"])
        self.assertEqual([i["itemId"] for i in c["items"]], ["c"])
        self.assertGreaterEqual(parse_time(c["createdAt"]),
                                parse_time(c1["createdAt"]))

    def test_delete_cart_without_cart_is_204_and_writes_nothing(self):
        u = new_user()
        r = self.request("DELETE", "/v1/cart/" + u)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.raw, b"")
        self.assertEqual(self.get_cart(u)["version"], 0)

    def test_users_are_isolated(self):
        u1, u2 = new_user(), new_user()
        self.add_ok(u1, "a", 1, 100)
        self.assertEqual(self.get_cart(u2)["items"], [])
        self.add_ok(u2, "a", 5, 100)
        self.assertEqual(self.get_cart(u1)["items"][0]["quantity"], 1)
        self.request("DELETE", "/v1/cart/" + u2)
        self.assertEqual(len(self.get_cart(u1)["items"]), 1)

    # -- ids ---------------------------------------------------------------

    def test_percent_encoded_ids_are_decoded(self):
        u = "user-%s@example.com" % new_user()
        enc = u.replace("@", "%40")
        r = self.add(enc, "a:b", 1, 100)
        c = self.assertCart(r, u, 1, 201)
        self.assertEqual(c["userId"], u)
        # the same cart under the raw spelling
        self.assertEqual(self.get_cart(u)["cartId"], c["cartId"])
        r = self.request("PATCH", "/v1/cart/%s/items/a%%3Ab" % enc,
                         {"quantity": 2})
        self.assertCart(r, u, 2)
        r = self.request("DELETE", "/v1/cart/%s/items/a%%3ab" % u)
        c = self.assertCart(r, u, 3)
        self.assertEqual(c["items"], [])

    def test_all_allowed_id_characters(self):
        u = "Az09._:@-" + new_user()
        item = "Az09._:@-item"
        c = self.assertCart(self.add(u, item, 1, 1), u, 1, 201)
        self.assertEqual(c["items"][0]["itemId"], item)
        self.assertCart(self.request("DELETE", "/v1/cart/%s/items/%s"
                                     % (u, item)), u, 2)

    def test_id_of_128_chars_accepted(self):
        u = new_user()
        u += "x" * (128 - len(u))
        self.assertEqual(len(u), 128)
        item = "i" * 128
        c = self.assertCart(self.add(u, item, 1, 1), u, 1, 201)
        self.assertEqual(c["items"][0]["itemId"], item)

    def test_encoded_slash_in_id_is_400(self):
        for path in ("/v1/cart/a%2Fb", "/v1/cart/a%2fb"):
            self.assertProblem(self.request("GET", path), 400,
                               "cart.invalid_id")
        u = new_user()
        self.add_ok(u, "a")
        r = self.request("DELETE", "/v1/cart/%s/items/a%%2Fb" % u)
        self.assertProblem(r, 400, "cart.invalid_id")
        self.assertEqual(self.get_cart(u)["version"], 1)

    # -- health/ready ------------------------------------------------------

    def test_health(self):
        r = self.request("GET", "/health")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("content-type", "").startswith(
            "application/json"), r)
        self.assertEqual(r.body, {"status": "ok"})

    def test_ready(self):
        r = self.request("GET", "/ready")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("content-type", "").startswith(
            "application/json"), r)
        self.assertEqual(r.body.get("status"), "ok", r)
        checks = r.body.get("checks")
        self.assertIsInstance(checks, list, r)
        names = {c.get("name"): c.get("status") for c in checks}
        self.assertEqual(names.get("repository"), "ok", r)
        self.assertEqual(names.get("shutdown"), "ok", r)
        for c in checks:
            self.assertEqual(c.get("status"), "ok", c)

    # -- routing -----------------------------------------------------------

    def test_unknown_routes_404(self):
        for method, path in (("GET", "/"), ("GET", "/nope"),
                             ("GET", "/v1/cart"), ("GET", "/v1/carts/u1"),
                             ("GET", "/v2/cart/u1"),
                             ("GET", "/v1/cart/u1/other"),
                             ("POST", "/v1/cart/u1/items/a/b"),
                             ("GET", "/healthz"), ("DELETE", "/nope")):
            with self.subTest(method=method, path=path):
                r = self.request(method, path)
                self.assertProblem(r, 404, "cart.not_found")
                self.assertTrue(r.header("x-request-id"), r)

    def test_wrong_method_405_with_allow(self):
        u = new_user()
        cases = (
            ("PUT", "/v1/cart/" + u, {"GET", "DELETE"}),
            ("POST", "/v1/cart/" + u, {"GET", "DELETE"}),
            ("PATCH", "/v1/cart/" + u, {"GET", "DELETE"}),
            ("GET", "/v1/cart/%s/items" % u, {"POST"}),
            ("DELETE", "/v1/cart/%s/items" % u, {"POST"}),
            ("GET", "/v1/cart/%s/items/a" % u, {"PATCH", "DELETE"}),
            ("POST", "/v1/cart/%s/items/a" % u, {"PATCH", "DELETE"}),
            ("PUT", "/v1/cart/%s/items/a" % u, {"PATCH", "DELETE"}),
            ("POST", "/health", {"GET"}),
            ("DELETE", "/ready", {"GET"}),
        )
        for method, path, allow in cases:
            with self.subTest(method=method, path=path):
                r = self.request(method, path)
                self.assertProblem(r, 405, "cart.method_not_allowed")
                got = {m.strip().upper()
                       for m in r.header("allow", "").split(",") if m.strip()}
                self.assertEqual(got - {"HEAD", "OPTIONS"}, allow, r.headers)
        self.assertEqual(self.get_cart(u)["version"], 0)

    def test_success_responses_carry_request_id_and_json(self):
        u = new_user()
        r = self.add(u)
        self.assertTrue(r.header("x-request-id"))
        self.assertTrue(r.header("content-type").startswith("application/json"))


class PatchSameQuantityTest(CartShape, harness.ServerTestCase):
    # The log publisher's lines are the events this test reads.
    server_env = {"EVENTS_PUBLISHER": "log"}

    def user_events(self, user):
        return [rec["event"] for rec in self.server.log_lines()
                if isinstance(rec, dict) and rec.get("msg") == "event"
                and rec["event"]["userId"] == user]

    def test_patch_to_same_quantity_changes_nothing(self):
        u = new_user()
        c1 = self.assertCart(self.add(u, "a", 2, 300), u, 1, 201)
        time.sleep(0.01)
        r = self.request("PATCH", "/v1/cart/%s/items/a" % u, {"quantity": 2})
        c = self.assertCart(r, u, 1)      # 200, ETag "1": no version bump
        self.assertEqual(c, c1)           # not even updatedAt moves
        self.assertEqual(self.get_cart(u), c1)
        # A real change right after gets version 2 and the only other event.
        self.assertCart(self.request("PATCH", "/v1/cart/%s/items/a" % u,
                                     {"quantity": 5}), u, 2)
        self.assertIsNotNone(self.server.wait_log(
            lambda rec: rec.get("msg") == "event" and
            rec["event"]["userId"] == u and rec["event"]["cartVersion"] == 2),
            self.server.logs())
        evs = self.user_events(u)
        self.assertEqual([(e["eventType"], e["cartVersion"]) for e in evs],
                         [("CartItemAdded", 1),
                          ("CartItemQuantityChanged", 2)], evs)
        self.assertEqual((evs[1]["quantityBefore"], evs[1]["quantityAfter"]),
                         (2, 5), evs)


class RelayKickTest(CartShape, harness.ServerTestCase):
    # The relay polls an idle outbox every 5 s (CART_RELAY_IDLE_POLL_MS);
    # a commit wakes it (after the answer is out, app_stage_relay_kick).
    server_env = {"EVENTS_PUBLISHER": "log"}

    def test_each_commit_wakes_the_relay(self):
        # Three commits in a row, each event out within a second: without
        # the wake-up at most one could be (the first poll may be near);
        # the next poll is 5 s after it.
        u = new_user()
        for v, item in enumerate(("a", "b", "c"), 1):
            self.assertCart(self.add(u, item, 1, 100), u, v, 201)
            t0 = time.monotonic()
            rec = self.server.wait_log(
                lambda rec: rec.get("msg") == "event" and
                rec["event"]["userId"] == u and rec["event"]["cartVersion"] == v,
                timeout=4.0)
            self.assertIsNotNone(rec, self.server.logs())
            self.assertLess(time.monotonic() - t0, 1.0, "event %d" % v)


class TtlConfigTest(CartShape, harness.ServerTestCase):
    server_env = {"CART_TTL_DAYS": "1"}

    def test_expires_at_is_whole_seconds_in_api_and_spec(self):
        # Stores expire in whole seconds (DynamoDB's TTL attribute is epoch
        # seconds), so expiresAt keeps the RFC 3339 shape with .000 always.
        u = new_user()
        for r in (self.add(u, "a", 1, 1), self.request("GET", "/v1/cart/" + u)):
            self.assertRegex(r.body["expiresAt"],
                             r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$", r)
        with open(os.path.join(harness.REPO_ROOT, "docs", "swagger.yaml")) as f:
            spec = f.read()
        examples = re.findall(r"expiresAt: '([^']*)'", spec)
        self.assertTrue(examples)
        for e in examples:
            self.assertTrue(e.endswith(".000Z"), "spec example expiresAt " + e)
        prop = spec[spec.index("        expiresAt:\n"):]
        prop = prop[:prop.index("    CartItem:")]
        self.assertIn("whole seconds", prop)

    def test_cart_ttl_days_drives_expires_at(self):
        u = new_user()
        c = self.assertCart(self.add(u, "a", 1, 1), u, 1, 201)
        self.assertEqual(parse_time(c["expiresAt"]),
                         whole_seconds(parse_time(c["updatedAt"]) +
                                       datetime.timedelta(days=1)))
        # every change pushes expiry out again (seconds resolution)
        time.sleep(1.0)
        c2 = self.assertCart(self.add(u, "a", 1, 1), u, 2, 200)
        self.assertEqual(parse_time(c2["expiresAt"]),
                         whole_seconds(parse_time(c2["updatedAt"]) +
                                       datetime.timedelta(days=1)))
        self.assertGreater(parse_time(c2["expiresAt"]),
                           parse_time(c["expiresAt"]))


if __name__ == "__main__":
    unittest.main()
