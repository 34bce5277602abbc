#!/usr/bin/python3
"""test_tornado_ref.py -- the benchmark's tornado reference (scripts/bench/tornado-ref) speaks the
protocol subset the load client uses: 401 before the upgrade, subscribe/snapshot/tick with seq,
refcounted upstream SUBSCRIBE, unsubscribe, errors, /metrics, and a clean exit on SIGTERM.

Each test gets a private redis-server (harness.GatewayTestCase) and its own tornado-ref process,
stopped by PID in the cleanups. Frames are schema-checked by harness.WSClient. --gateway is
accepted (meson passes it to every integration test) and not used.
"""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_for  # noqa: E402

TORNADO_REF = os.path.join(harness.REPO_ROOT, "scripts", "bench", "tornado-ref")
TICK = {"last_price": 1, "pub_us": 123}


class TornadoRef:
    """One tornado-ref process on a free loopback port; duck-types the parts of
    harness.Gateway that GatewayTestCase uses (port, metrics)."""

    def __init__(self, redis_url, logdir):
        self.port = harness.free_port()
        self.log = os.path.join(logdir, "tornado-ref-%d.log" % self.port)
        self.argv = [TORNADO_REF, "--listen", "127.0.0.1:%d" % self.port, "--redis", redis_url]
        self.proc = None

    def start(self):
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=logf)
        deadline = time.monotonic() + harness.scaled(10)
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("tornado-ref exited with %s:\n%s"
                                     % (self.proc.returncode, self.log_text()))
            try:
                status, _, body = harness.http_get(self.port, "/healthz", timeout=1)
                if status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("tornado-ref /healthz not 200:\n%s" % self.log_text())
            time.sleep(0.05)

    def stop(self, timeout=5.0):
        """SIGTERM by PID (SIGKILL after timeout); returns the exit status."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def log_text(self):
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def metrics(self):
        status, _, body = harness.http_get(self.port, "/metrics")
        if status != 200:
            raise AssertionError("/metrics answered %d" % status)
        return harness.Metrics.parse(body.decode("utf-8"))


class TornadoRefTest(harness.GatewayTestCase):

    def setUp(self):
        super().setUp()
        self.gw = TornadoRef(self.redis.url, self.logdir)
        self.addCleanup(self.gw.stop)
        self.gw.start()

    def tick_sub(self, client, name, id=1):
        """Subscribe client to name and wait until Redis has the upstream SUBSCRIBE."""
        reply = client.subscribe([name], id=id)
        self.wait_numsub("md:" + name, 1)
        return reply

    def test_handshake(self):
        self.assertEqual(self.upgrade_status(cookie=None), 401)
        self.assertEqual(self.upgrade_status(cookie="theme=dark; xsessionid=abc"), 401)
        self.assertEqual(self.upgrade_status(cookie="sessionid=bad!id"), 401)
        self.assertEqual(self.upgrade_status("no-such-session"), 401)
        for raw in ('{"user_id": ""}', '["u1"]', "{user_id: u1",
                    '{"user_id": "u1", "exp": "tomorrow"}',
                    '{"user_id": "u1", "instruments": "rb*"}'):
            with self.subTest(raw=raw):
                self.assertEqual(self.upgrade_status(self.make_session(raw=raw)), 401)
        self.assertEqual(self.upgrade_status(self.make_session(exp=int(time.time()) - 5)), 401)
        sid = self.make_session(exp=int(time.time()) + 600)
        self.assertEqual(self.upgrade_status(sid, origin="http://anything.example"), 101)
        self.assertEqual(self.upgrade_status(sid, path="/other"), 404)
        self.assertEqual(harness.http_get(self.gw.port, "/healthz")[::2], (200, b"ok"))
        self.assertRegex(self.gw.log_text(),
                         r"(?m)^tornado-ref: listening on 127\.0\.0\.1:%d$" % self.gw.port)

    def test_subscribe_snapshot_tick(self):
        c = self.connect()
        c.keep_raw = True
        reply = self.tick_sub(c, "rb2501", id=7)
        self.assertRegex(reply.pop("epoch"), r"^[0-9a-f]{16}$")
        self.assertEqual(reply, {"type": "subscribed", "id": 7, "instruments": ["rb2501"],
                                 "intervals": []})
        self.assertEqual(c.snapshots["rb2501"], {"type": "snapshot", "instrument": "rb2501",
                                                 "seq": 0, "last": None, "bars": {}})
        self.publish("md:rb2501", '{"last_price":1,  "pub_us":123}')
        tick = c.recv_until(harness.is_tick("rb2501"))[-1]
        self.assertEqual(tick, {"type": "tick", "instrument": "rb2501", "seq": 1, "data": TICK})
        self.assertEqual(c.raw_messages[-1], harness.compact(tick).encode(),
                         "one compact frame per WebSocket message")
        self.publish("md:rb2501", {"last_price": 2})
        self.assertEqual(c.recv_until(harness.is_tick("rb2501"))[-1]["seq"], 2)

        # a later subscriber's snapshot carries the last tick and its seq
        c2 = self.connect(name="second")
        c2.subscribe(["rb2501"], id="s")
        self.assertEqual(c2.snapshots["rb2501"]["seq"], 2)
        self.assertEqual(c2.snapshots["rb2501"]["last"], {"last_price": 2})
        # no id in the request: none in the reply
        c2.send({"action": "subscribe", "instruments": ["au2412"]})
        reply = c2.recv_until(harness.is_type("subscribed"))[-1]
        self.assertEqual(reply["instruments"], ["au2412"])
        self.assertNotIn("id", reply)
        c2.take_snapshots(["au2412"])
        c2.send({"action": "ping"})
        self.assertEqual(c2.recv_until(harness.is_type("pong"))[-1], {"type": "pong"})

    def test_fanout_and_unsubscribe(self):
        c1, c2 = self.connect(name="c1"), self.connect(name="c2")
        self.tick_sub(c1, "rb2501")
        self.tick_sub(c2, "rb2501")
        self.assertEqual(self.numsub("md:rb2501"), 1, "one upstream SUBSCRIBE per instrument")
        self.publish("md:rb2501", TICK)
        for c in (c1, c2):
            tick = c.recv_until(harness.is_tick("rb2501"))[-1]
            self.assertEqual(tick, {"type": "tick", "instrument": "rb2501", "seq": 1,
                                    "data": TICK})

        self.assertEqual(c1.unsubscribe(["rb2501"], id=3),
                         {"type": "unsubscribed", "id": 3, "instruments": ["rb2501"]})
        self.publish("md:rb2501", {"last_price": 5})
        self.assertEqual(c2.recv_until(harness.is_tick("rb2501"))[-1]["seq"], 2)
        self.assert_nothing_for(c1, "tick after unsubscribe")
        self.assertEqual(self.numsub("md:rb2501"), 1)

        c2.close()  # the last local subscriber leaves by closing: upstream UNSUBSCRIBE
        self.wait_numsub("md:rb2501", 0)
        self.tick_sub(c1, "rb2501", id=4)  # and back again on the same pub/sub connection
        self.publish("md:rb2501", {"last_price": 6})
        tick = c1.recv_until(harness.is_tick("rb2501"))[-1]
        self.assertEqual((tick["seq"], tick["data"]), (3, {"last_price": 6}))

    def test_errors_keep_the_connection(self):
        c = self.connect(instruments=["rb*"])
        c.send("{not json")
        err = c.recv_until(harness.is_type("error"))[-1]
        self.assertEqual(err["code"], "bad_json")
        self.assertNotIn("id", err)
        self.assertEqual(c.request({"action": "ping", "id": 5}), {"type": "pong", "id": 5})
        cases = [
            ({"action": "dance", "id": 1}, "unknown_action"),
            ({"action": "subscribe", "instruments": "rb2501", "id": 2}, "bad_request"),
            ({"action": "subscribe", "instruments": [], "id": 3}, "bad_request"),
            ({"action": "subscribe", "instruments": ["rb 2501"], "id": 4}, "invalid_instrument"),
            ({"action": "unsubscribe", "instruments": ["x" * 33], "id": 5}, "invalid_instrument"),
            ({"action": "subscribe", "instruments": ["rb2501", "au2412"], "id": 6}, "forbidden"),
        ]
        for req, code in cases:
            with self.subTest(req=req):
                err = c.request(req, validate=False)
                self.assertEqual((err["type"], err["code"]), ("error", code))
        self.assertEqual(self.numsub("md:rb2501"), 0, "a refused subscribe changes nothing")
        self.tick_sub(c, "rb2501", id=7)  # allowed by "rb*"

        # payloads that are not JSON objects are dropped, counted, and take no seq
        self.publish("md:rb2501", "not json")
        self.publish("md:rb2501", "[1,2]")
        self.publish("md:rb2501", TICK)
        tick = c.recv_until(harness.is_tick("rb2501"))[-1]
        self.assertEqual((tick["seq"], tick["data"]), (1, TICK))
        m = self.gw.metrics()
        self.assertEqual((m.value("dropped_total"), m.value("published_total")), (2, 1))

    def test_metrics(self):
        c1, c2 = self.connect(name="c1"), self.connect(name="c2")
        self.tick_sub(c1, "rb2501")
        c2.subscribe(["rb2501"])
        m = self.gw.metrics()
        self.assertEqual(m.value("connections"), 2)
        self.assertEqual(m.value("published_total"), 0)
        out0 = m.value("frames_out_total")
        self.assertEqual(out0, 4, "two subscribed replies and two snapshots")
        for i in range(3):
            self.publish("md:rb2501", {"last_price": i})
        c1.collect(harness.is_tick("rb2501"), 3)
        c2.collect(harness.is_tick("rb2501"), 3)
        m = self.gw.metrics()
        self.assertEqual(m.value("published_total"), 3)
        self.assertEqual(m.value("frames_out_total"), out0 + 6)
        c1.close()
        wait_for(lambda: self.gw.metrics().value("connections") == 1, harness.scaled(5),
                 "connections to drop to 1")

    def test_sigterm_exits_0(self):
        c = self.connect()
        self.tick_sub(c, "rb2501")
        t0 = time.monotonic()
        os.kill(self.gw.proc.pid, signal.SIGTERM)
        self.assertEqual(c.expect_close(), (1001, "going away"))
        self.assertEqual(self.gw.proc.wait(5), 0, self.gw.log_text())
        self.assertLess(time.monotonic() - t0, 5)
        self.assertFalse(re.search(r"Traceback|ERROR", self.gw.log_text()), self.gw.log_text())


if __name__ == "__main__":
    harness.main()
