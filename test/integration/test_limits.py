#!/usr/bin/python3
"""test_limits.py -- inbound limits: bad frames get an error frame (id echoed) and the
connection lives on; binary -> 1003; oversized -> 1009; 200 subscriptions; rate limit."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import is_type  # noqa: E402


class LimitsTest(harness.GatewayTestCase):

    def error_for(self, c, obj_or_text, code, id=None):
        """Send a (deliberately bad) request; assert the error frame; return it."""
        c.send(obj_or_text, validate=False)
        err = c.recv_until(is_type("error"), what="error %s" % code)[-1]
        self.assertEqual(err["code"], code, "request %r" % (obj_or_text,))
        if id is None:
            self.assertNotIn("id", err)
        else:
            self.assertEqual(err.get("id"), id, "error must echo the request id")
            self.assertIs(type(err.get("id")), type(id))
        self.assertTrue(err["message"], "error frames carry a human message")
        return err

    def assert_alive(self, c):
        self.assertEqual(c.request({"action": "ping", "id": "alive"}),
                         {"type": "pong", "id": "alive"})

    def test_bad_json_keeps_connection(self):
        self.start_gateway()
        c = self.connect()
        for text in ("{not json", "", "   ", '{"action":"ping"', "nul", '{"action": "ping"} x'):
            with self.subTest(text=text):
                self.error_for(c, text, "bad_json")
        self.assert_alive(c)
        self.wait_metric("chartgate_client_errors_total", lambda v: v >= 6, code="bad_json")

    def test_non_object_json(self):
        self.start_gateway()
        c = self.connect()
        for text in ("[1,2]", '"ping"', "42", "null"):
            with self.subTest(text=text):
                c.send(text)
                err = c.recv_until(is_type("error"))[-1]
                self.assertIn(err["code"], ("bad_request", "bad_json"))
        self.assert_alive(c)

    def test_unknown_action(self):
        self.start_gateway()
        c = self.connect()
        self.error_for(c, {"action": "dance", "id": 5}, "unknown_action", 5)
        self.error_for(c, {"action": "SUBSCRIBE", "instruments": ["rb2501"], "id": "u"},
                       "unknown_action", "u")
        self.error_for(c, {"action": "dance"}, "unknown_action")
        self.assert_alive(c)

    def test_bad_types(self):
        self.start_gateway()
        c = self.connect()
        cases = [
            {"action": "subscribe", "id": 1},
            {"action": "subscribe", "instruments": "rb2501", "id": 2},
            {"action": "subscribe", "instruments": [], "id": 3},
            {"action": "subscribe", "instruments": [5], "id": 4},
            {"action": "subscribe", "instruments": ["rb2501", None], "id": 5},
            {"action": "unsubscribe", "instruments": None, "id": 6},
            {"action": "unsubscribe", "instruments": {"rb2501": 1}, "id": 7},
            {"action": "search", "id": 8},
            {"action": "search", "pattern": 7, "id": 9},
            {"action": "subscribe", "instruments": ["rb2501"], "id": 10.5},
            {"action": "ping", "id": "x" * 65},
            {"action": "ping", "id": [1]},
            {"action": "ping", "id": None},
        ]
        for req in cases:
            with self.subTest(req=req):
                rid = req.get("id")
                readable = isinstance(rid, int) or (isinstance(rid, str) and len(rid) <= 64)
                self.error_for(c, req, "bad_request", rid if readable else None)
        # a request without an action
        c.send({"id": 20}, validate=False)
        err = c.recv_until(is_type("error"))[-1]
        self.assertIn(err["code"], ("bad_request", "unknown_action"))
        self.assertEqual(err.get("id"), 20)
        self.assertEqual(self.metrics().value("chartgate_subscriptions"), 0,
                         "nothing subscribed by bad requests")
        self.assert_alive(c)

    def test_invalid_instrument(self):
        self.start_gateway()
        c = self.connect()
        bad_names = ["x" * 33, "rb 2501", "rb/2501", "rb2501\n", "", "rb*", "ру2501", "md:rb2501"]
        for i, name in enumerate(bad_names):
            with self.subTest(name=name):
                self.error_for(c, {"action": "subscribe", "instruments": [name], "id": i},
                               "invalid_instrument", i)
        # atomic: one bad name spoils the whole request
        self.error_for(c, {"action": "subscribe", "instruments": ["rb2501", "bad name"],
                           "id": "atomic"}, "invalid_instrument", "atomic")
        self.assertEqual(c.barrier(), [])
        self.assertEqual(self.metrics().value("chartgate_subscriptions"), 0)
        self.assertEqual(self.numsub("md:rb2501"), 0)
        self.error_for(c, {"action": "unsubscribe", "instruments": ["bad/name"], "id": 99},
                       "invalid_instrument", 99)
        # the longest legal name and every legal character class work
        ok = ["y" * 32, "A.b_c-9"]
        self.assertEqual(sorted(c.subscribe(ok)["instruments"]), sorted(ok))
        self.assert_alive(c)

    def test_too_many_subscriptions(self):
        self.start_gateway()  # --max-subscriptions defaults to 200
        c = self.connect()
        names = ["i%04d" % i for i in range(200)]
        for k in range(0, 200, 50):
            self.assertEqual(len(c.subscribe(names[k:k + 50])["instruments"]), 50)
        self.wait_metric("chartgate_subscriptions", lambda v: v == 200)
        self.error_for(c, {"action": "subscribe", "instruments": ["extra1"], "id": 201},
                       "too_many_subscriptions", 201)
        # atomic: a request that would cross the limit changes nothing
        self.error_for(c, {"action": "subscribe", "instruments": ["i0000", "extra2"],
                           "id": "t"}, "too_many_subscriptions", "t")
        # re-subscribing what is already there does not count again
        self.assertEqual(c.subscribe(["i0000", "i0199"], id=202)["id"], 202)
        self.assertEqual(self.metrics().value("chartgate_subscriptions"), 200)
        self.assertEqual(self.numsub("md:extra1"), 0)
        self.assertEqual(self.numsub("md:extra2"), 0)
        c.unsubscribe(["i0007"])
        c.subscribe(["extra1"])
        self.wait_metric("chartgate_subscriptions", lambda v: v == 200)
        # the limit is per socket
        other = self.connect(name="second socket")
        other.subscribe(["i0000", "extra3"])
        self.assert_alive(c)

    def test_binary_frame_closes_1003(self):
        self.start_gateway()
        c = self.connect()
        c.send_binary(b'{"action":"ping","id":1}')
        code, _ = c.expect_close()
        self.assertEqual(code, 1003)

    def test_oversized_frame_closes_1009(self):
        self.start_gateway()
        c = self.connect()
        # exactly at the limit (64 KiB): an ordinary bad frame, connection alive
        self.error_for(c, "x" * (64 * 1024), "bad_json")
        self.assert_alive(c)
        c.send("x" * (64 * 1024 + 1))
        code, _ = c.expect_close()
        self.assertEqual(code, 1009)

    def test_rate_limit(self):
        self.start_gateway("--rate-limit", "20", "--rate-burst", "40")
        calm = self.connect(name="calm")
        # within the burst: all answered
        for i in range(30):
            calm.send({"action": "ping", "id": i})
        pongs = calm.collect(is_type("pong"), 30)
        self.assertEqual([p["id"] for p in pongs], list(range(30)))
        self.assertNotIn("error", [f["type"] for f in calm.history])

        abuser = self.connect(name="abuser")
        sent = set()
        i = 0
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            try:
                for _ in range(25):
                    abuser.send({"action": "ping", "id": i})
                    sent.add(i)
                    i += 1
            except (OSError, harness.websocket.WebSocketException):
                break  # the gateway closed on us: read what it said below
            try:
                while abuser.recv_frames(timeout=0.02):
                    pass
            except harness.ClosedError:
                break
            time.sleep(0.02)  # ~1000 messages/s: 50 times the limit
        if abuser.close_code is None and not abuser.eof:
            try:
                abuser.expect_close(timeout=3)
            except AssertionError:
                pass
        errors = [f for f in abuser.history if f.get("type") == "error"]
        self.assertTrue(errors, "no error frame before the close (%d pings sent)" % len(sent))
        self.assertEqual(errors[0]["code"], "rate_limited")
        if "id" in errors[0]:
            self.assertIn(errors[0]["id"], sent)
        npong = sum(1 for f in abuser.history if f.get("type") == "pong")
        self.assertLessEqual(npong, 40 + 20 * 9, "far more pongs than the rate allows")
        self.assertEqual(abuser.close_code, 1008,
                         "sustained abuse must be closed with 1008 (eof without close frame: %s,"
                         " %d pings sent)" % (abuser.eof, len(sent)))
        # the calm client was never affected
        self.assertEqual(calm.request({"action": "ping", "id": "calm"}),
                         {"type": "pong", "id": "calm"})

    def test_ping_and_idle_timeout(self):
        gw = self.start_gateway("--ping-s", "1", "--idle-timeout-s", "3")
        # a browser: answers pings (the client does so while reading), never sends a message
        browser = self.connect(name="browser")
        reader = harness.Reader(browser)  # reading is what answers the pings
        reader.start()
        self.addCleanup(reader.stop)
        # a dead peer: completes the handshake, then never answers anything
        up = harness.raw_upgrade(gw.port, cookie="sessionid=%s" % self.make_session("u2"),
                                 keep_open=True)
        self.assertEqual(up.status, 101)
        dead = harness.RawWS(up)
        self.addCleanup(dead.close)
        t0 = time.monotonic()
        events, how = dead.read_events(timeout=8)
        pings = [t - t0 for t, op, _ in events if op == 0x9]
        self.assertTrue(pings, "no WebSocket ping within %.1fs" % (time.monotonic() - t0))
        self.assertLess(pings[0], 2.5, "first ping too late")
        self.assertIn(how, ("close", "eof", "reset"), "silent peer not closed within 8 s")
        took = time.monotonic() - t0
        self.assertGreater(took, 2.0, "closed before --idle-timeout-s")
        # the browser that answered the pings is still there
        while time.monotonic() - t0 < 4.5 and reader.error is None:
            time.sleep(0.1)
        reader.stop()
        self.assertIsNone(reader.error, "the browser answering pings was closed")
        self.assertEqual(reader.frames, [])
        self.assertEqual(browser.request({"action": "ping", "id": "x"}),
                         {"type": "pong", "id": "x"})

    def test_client_messages_count_as_alive(self):
        """§9: the idle timeout is "no message, no pong" -- a client that talks but never
        answers WebSocket pings (lws alone counts only pongs) is not cut off."""
        gw = self.start_gateway("--ping-s", "1", "--idle-timeout-s", "3")
        up = harness.raw_upgrade(gw.port, cookie="sessionid=%s" % self.make_session("u1"),
                                 keep_open=True)
        self.assertEqual(up.status, 101)
        ws = harness.RawWS(up)
        self.addCleanup(ws.close)
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 5:  # beyond the 3 s idle timeout, pinging by message
            n += 1
            ws.send_json({"action": "ping", "id": n})
            ws.recv_frames_until(lambda f, n=n: f == {"type": "pong", "id": n}, timeout=2)
            time.sleep(0.5)
        # and once it goes quiet, it is closed
        events, how = ws.read_events(timeout=8)
        self.assertIn(how, ("close", "eof", "reset"), "quiet peer not closed")


if __name__ == "__main__":
    harness.main()
