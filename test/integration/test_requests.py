#!/usr/bin/python3
"""test_requests.py -- the request rules of PROTOCOL.md §3/§6/§8 end to end: the order of the
checks (the request's shape, then its names, then the counts), the 1,024 names per request, the
epoch in either case, search patterns counted in characters, and list/search paging with
"after" and "more" (10,000 names per instruments frame)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import is_tick, wait_for  # noqa: E402

PAGE = 10000  # PROTOCOL.md §8: names in one instruments frame (CG_REQUEST_LIST_PAGE)


class RequestsTest(harness.GatewayTestCase):

    def error(self, c, req, code):
        """Send a deliberately bad request (it carries an id); assert the error; return it."""
        err = c.request(req, validate=False)
        self.assertEqual((err["type"], err.get("code"), err.get("id")), ("error", code, req["id"]),
                         "%s -> %s" % (harness.compact(req)[:200], err))
        return err

    def all_pages(self, c, req):
        """Every page of a list/search request, following "after"; returns (names, sizes)."""
        got, sizes = [], []
        while True:
            r = self.listed(c, dict(req, id=c.next_id()))
            sizes.append(len(r["instruments"]))
            got += r["instruments"]
            if not r.get("more"):
                return got, sizes
            self.assertEqual(len(r["instruments"]), PAGE, "a page with more is full")
            self.assertLess(len(sizes), 10, "paging does not end")
            req = dict(req, after=r["instruments"][-1])

    def listed(self, c, req):
        """A list/search request's instruments frame, checked for order and page size."""
        r = c.request(req)
        self.assertEqual(r["type"], "instruments", r)
        names = r["instruments"]
        self.assertEqual(names, sorted(set(names), key=lambda s: s.encode()), "sorted, unique")
        self.assertLessEqual(len(names), PAGE)
        self.assertIn(r.get("more", None), (True, None), "more is true or absent")
        if req.get("after"):
            self.assertTrue(all(n.encode() > req["after"].encode() for n in names),
                            "every name > after")
        return r

    def test_check_order(self):
        """§3: shape and types (bad_request) before names (invalid_instrument) before the
        1,024 names per request (too_many_subscriptions); nothing changes on any of them."""
        self.start_gateway()
        c = self.connect()
        many = ["i%04d" % i for i in range(1025)]
        bad = [
            ({"action": "subscribe", "instruments": ["a b"], "intervals": ["7x"]}, "bad_request"),
            ({"action": "subscribe", "instruments": ["a b"], "since": {"a b": -1}},
             "bad_request"),
            ({"action": "subscribe", "instruments": ["a b"], "epoch": "nope"}, "bad_request"),
            ({"action": "subscribe", "instruments": many, "intervals": ["7x"]}, "bad_request"),
            ({"action": "subscribe", "instruments": many + [5]}, "bad_request"),
            ({"action": "subscribe", "instruments": many + ["a b"]}, "invalid_instrument"),
            ({"action": "subscribe", "instruments": many, "intervals": ["1m"]},
             "too_many_subscriptions"),
            ({"action": "unsubscribe", "instruments": many + ["rb*"]}, "invalid_instrument"),
            ({"action": "unsubscribe", "instruments": many}, "too_many_subscriptions"),
            ({"action": "history", "instrument": "a b", "interval": "7x"}, "bad_request"),
            ({"action": "history", "instrument": "a b", "interval": "1m", "limit": 0},
             "bad_request"),
            ({"action": "history", "instrument": "a b", "interval": "1m"}, "invalid_instrument"),
        ]
        for i, (req, code) in enumerate(bad):
            with self.subTest(i=i, code=code):
                self.error(c, dict(req, id=100 + i), code)
        # exactly 1,024 names is fine (with the default --max-subscriptions = 200 the socket
        # limit refuses it, after the allowlist: the per-request count is not what answers)
        err = self.error(c, {"action": "subscribe", "instruments": many[:1024], "id": 7},
                         "too_many_subscriptions")
        self.assertIn("200", err["message"])
        self.assertEqual(self.metrics().value("chartgate_subscriptions"), 0)
        self.assertEqual(c.request({"action": "ping", "id": "alive"}),
                         {"type": "pong", "id": "alive"})

    def test_more_than_1024_names_with_a_forbidden_one(self):
        """§3 check 3 (1,024 names) comes before check 4 (the allowlist)."""
        self.start_gateway("--max-subscriptions", "5000")
        c = self.connect(instruments=["i*"])
        names = ["i%04d" % i for i in range(1024)]
        self.error(c, {"action": "subscribe", "instruments": names + ["x1"], "id": 1},
                   "too_many_subscriptions")
        self.error(c, {"action": "subscribe", "instruments": names[:1023] + ["x1"], "id": 2},
                   "forbidden")

    def test_epoch_in_either_case(self):
        """§3/§15: the epoch is 16 hex digits in either case; upper-cased, it still resumes."""
        self.start_gateway()
        keeper = self.connect(name="keeper")
        keeper.subscribe(["ep1"])
        self.wait_channel_ready("md:ep1")
        for k in range(1, 4):
            self.publish("md:ep1", {"last_price": k})
            self.assertEqual(keeper.recv_until(is_tick("ep1"))[-1]["seq"], k)
        mine = harness.WSClient.epochs[self.gw.port]
        for epoch, ok in ((mine.upper(), True), (mine[:8].upper() + mine[8:], True),
                          ("0123456789ABCDEF" if mine != "0123456789abcdef"
                           else "FEDCBA9876543210", False)):
            with self.subTest(epoch=epoch):
                c = self.connect(name="resume-%s" % epoch)
                reply = c.subscribe(["ep1"], since={"ep1": 1}, epoch=epoch)
                self.assertEqual(reply["epoch"], mine, "the gateway sends its own, lowercase")
                self.assertEqual(reply["recovered"], {"ep1": ok})
                if ok:
                    self.assertEqual([f["seq"] for f in c.collect(is_tick("ep1"), 2)], [2, 3])
        c = self.connect(name="bad-epoch")
        for bad in ("%s0" % mine, mine[:15], mine[:15] + "g", 12):
            self.error(c, {"action": "subscribe", "instruments": ["ep1"], "since": {"ep1": 1},
                           "epoch": bad, "id": "e"}, "bad_request")

    def test_search_pattern_counts_characters(self):
        """§3: pattern is at most 32 characters (code points), not bytes."""
        self.r.sadd("md:instruments", "rb2501", "au2412")
        self.start_gateway()
        c = self.connect()
        for pattern in ("螺纹钢" * 3 + "螺纹",   # 11 characters, 33 bytes
                        "螺" * 32,             # 96 bytes
                        "📈" * 32,             # 128 bytes
                        "rb" + "é" * 30):
            with self.subTest(n=len(pattern)):
                self.assertEqual(self.listed(c, {"action": "search", "pattern": pattern,
                                                 "id": c.next_id()})["instruments"], [])
        self.assertEqual(self.listed(c, {"action": "search", "pattern": "RB",
                                         "id": c.next_id()})["instruments"], ["rb2501"])
        for pattern in ("螺" * 33, "x" * 33):
            self.error(c, {"action": "search", "pattern": pattern, "id": "p"}, "bad_request")

    def test_list_and_search_pages(self):
        """§3 list/search: sorted in byte order, 10,000 names per frame, "more":true while
        others follow, the next page from "after"; the allowlist applies to every page."""
        names = ["a%05d" % i for i in range(2 * PAGE + 500)] + ["B1", "b1", "Z9", "_x", "-y"]
        pipe = self.r.pipeline(transaction=False)
        for k in range(0, len(names), 1000):
            pipe.sadd("md:instruments", *names[k:k + 1000])
        pipe.execute()
        self.start_gateway()
        everything = sorted(names, key=lambda s: s.encode())
        c = self.connect()
        got, sizes = self.all_pages(c, {"action": "list"})
        self.assertEqual(got, everything)
        self.assertEqual(sizes, [PAGE, PAGE, len(everything) - 2 * PAGE])
        # after need not be a name: it is compared in byte order
        r = self.listed(c, {"action": "list", "after": "a20495", "id": "tail"})
        self.assertEqual(r["instruments"], ["a20496", "a20497", "a20498", "a20499", "b1"])
        self.assertNotIn("more", r)
        r = self.listed(c, {"action": "list", "after": "a", "id": "a"})
        self.assertEqual(r["instruments"][:2], ["a00000", "a00001"])
        self.assertIs(r.get("more"), True)
        self.assertEqual(self.listed(c, {"action": "list", "after": "zzz", "id": "z"}),
                         {"type": "instruments", "id": "z", "instruments": []})
        # search pages the same way, over its matches only
        got, sizes = self.all_pages(c, {"action": "search", "pattern": "0"})
        want = [n for n in everything if "0" in n]
        self.assertEqual(got, want)
        self.assertEqual(sizes, [PAGE, len(want) - PAGE])
        # exactly 10,000 matches (a10000..a19999): one full page, and no more
        r = self.listed(c, {"action": "search", "pattern": "A1", "id": "s1"})
        self.assertEqual(r["instruments"], ["a%05d" % i for i in range(PAGE, 2 * PAGE)])
        self.assertNotIn("more", r)
        r = self.listed(c, {"action": "search", "pattern": "A1", "after": "a19998", "id": "s2"})
        self.assertEqual(r, {"type": "instruments", "id": "s2", "instruments": ["a19999"]})
        self.assertEqual(self.listed(c, {"action": "search", "pattern": "b", "after": "B1",
                                         "id": "s3"})["instruments"], ["b1"])
        # the allowlist filters before paging: a small allowed set is one page
        few = self.connect(instruments=["a0000?", "b*"], name="few")
        r = self.listed(few, {"action": "list", "id": "f"})
        self.assertEqual(r["instruments"], ["a%05d" % i for i in range(10)] + ["b1"])
        self.assertNotIn("more", r)
        # bad after: bad_request, id echoed
        for bad in (5, None, ["a"], "x" * 33, "螺" * 11):
            self.error(c, {"action": "list", "after": bad, "id": "bad"}, "bad_request")
            self.error(c, {"action": "search", "pattern": "", "after": bad, "id": "bad"},
                       "bad_request")

    def test_names_seen_on_the_wire_are_paged_too(self):
        """Instruments known from ticks join the same sorted pages."""
        self.r.sadd("md:instruments", "m2", "m4")
        self.start_gateway()
        c = self.connect()
        c.subscribe(["m3"])
        self.wait_channel_ready("md:m3")
        self.publish("md:m3", {"last_price": 1})
        c.recv_until(is_tick("m3"))
        wait_for(lambda: self.listed(c, {"action": "list", "id": c.next_id()})["instruments"]
                 == ["m2", "m3", "m4"], 3, "list shows m3")
        self.assertEqual(self.listed(c, {"action": "list", "after": "m2", "id": "w"}),
                         {"type": "instruments", "id": "w", "instruments": ["m3", "m4"]})


if __name__ == "__main__":
    harness.main()
