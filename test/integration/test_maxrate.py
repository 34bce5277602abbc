#!/usr/bin/python3
"""test_maxrate.py -- a subscription's max_rate (PROTOCOL.md §3, §7 "Maximum rate").

A real gateway and Redis; a backend publishes bursts faster than the rate. What is checked, at
the client (so with the loopback's and the machine's jitter on top of the gateway's timer):
- two ticks of a paced instrument arrive at least about 1/max_rate apart, never more than
  max_rate + 1 in any second, each at most about 1/max_rate older than its publish;
- the last tick of a burst always arrives; seq still increases and shows what was skipped;
- the socket's other subscriptions, and other sockets, get every tick;
- forming bars are paced too;
- re-subscribing without max_rate gives every tick again;
- bad values get a bad_request error and the connection lives on.
"""

import threading
import time

import harness
from harness import scaled

RATE = 5  # frames per second: 200 ms apart
GAP = 1.0 / RATE
# The gateway keeps 200 ms between its writes; the client sees that through scheduling jitter
# on a loaded 2-core machine, in both directions.
SLACK = scaled(0.08)


class MaxRate(harness.GatewayTestCase):

    def burst(self, channels, n, every):
        """Publish n ticks on each channel, every `every` s, from a thread; each tick carries its
        index and publish time (CLOCK_MONOTONIC, shared with this process)."""
        def run():
            for i in range(n):
                for ch in channels:
                    self.publish(ch, {"last_price": 100.0 + i, "volume": i, "i": i,
                                      "at": time.monotonic()})
                time.sleep(every)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def receive(self, c, until, timeout):
        """(arrival time, frame) of every frame until until(frame) held or timeout passed."""
        out = []
        deadline = time.monotonic() + timeout
        done = False
        while not done and time.monotonic() < deadline:
            frames = c.recv_frames(timeout=max(0.01, deadline - time.monotonic()))
            now = time.monotonic()
            for f in frames:
                out.append((now, f))
                done = done or until(f)
        return out

    def check_paced(self, arrivals, what):
        times = [t for t, _ in arrivals]
        for a, b in zip(times, times[1:]):
            self.assertGreaterEqual(b - a, GAP - SLACK,
                                    "%s: two frames %.0f ms apart, max_rate %d" %
                                    (what, (b - a) * 1000, RATE))
        for k, t in enumerate(times):
            in_window = sum(1 for u in times[k:] if u < t + 1.0)
            self.assertLessEqual(in_window, RATE + 1, "%s: %d frames within a second from %.3f"
                                 % (what, in_window, t))

    def test_paced_latest_and_last(self):
        self.start_gateway()
        c = self.connect(user_id="u1")
        other = self.connect(user_id="u2")
        c.subscribe(["rb2501"], id=1)  # every tick of this one
        # The paced ones: a request with max_rate (the harness checks the reply and snapshots).
        c.send({"action": "subscribe", "instruments": ["au2412"], "intervals": ["1m"],
                "max_rate": RATE, "id": 2})
        reply = c.recv_until(lambda f: f.get("id") == 2)[-1]
        self.assertEqual(reply["type"], "subscribed")
        c.take_snapshots(["au2412"], ["1m"])
        other.subscribe(["au2412"], id=3)
        self.wait_channel_ready("md:au2412")
        self.wait_channel_ready("md:rb2501")

        n, every = 150, 0.01  # about 1.5 s of 100 ticks/s on each instrument
        started = time.monotonic()
        pub = self.burst(["md:au2412", "md:rb2501"], n, every)
        last_au = lambda f: f.get("type") == "tick" and f["instrument"] == "au2412" and \
            f["data"]["i"] == n - 1
        got = self.receive(c, last_au, scaled(10))
        pub.join()
        ended = time.monotonic()
        ticks = [(t, f) for t, f in got if f.get("type") == "tick" and
                 f["instrument"] == "au2412"]
        self.assertTrue(ticks and ticks[-1][1]["data"]["i"] == n - 1,
                        "the last tick of the burst never arrived: %s"
                        % [f["data"]["i"] for _, f in ticks])
        # It came within one interval of being published (plus jitter).
        self.assertLessEqual(ticks[-1][0] - ticks[-1][1]["data"]["at"], GAP + SLACK * 3)
        self.check_paced(ticks, "au2412 ticks")
        # Each one is the latest there was when it went out: never older than 1/max_rate.
        for t, f in ticks:
            self.assertLessEqual(t - f["data"]["at"], GAP + SLACK * 3,
                                 "tick %d arrived %.0f ms after it was published"
                                 % (f["data"]["i"], (t - f["data"]["at"]) * 1000))
        seqs = [f["seq"] for _, f in ticks]
        self.assertEqual(seqs, sorted(set(seqs)), "seq must strictly increase")
        self.assertGreater(seqs[-1] - seqs[0] + 1, len(seqs), "seq gaps show what was skipped")
        # The burst lasted about 1.5 s: about 1.5 * RATE frames, at least a few.
        self.assertGreaterEqual(len(ticks), 3)
        self.assertLessEqual(len(ticks), (ended - started) * RATE + 2)
        # Forming bars of the paced subscription are paced the same way.
        bars = [(t, f) for t, f in got if f.get("type") == "bar" and not f["final"]]
        self.assertTrue(bars, "no forming bar frame")
        self.check_paced(bars, "au2412 1m forming bars")
        # The socket's unpaced subscription got every tick.
        is_rb = harness.is_tick("rb2501")
        rb = [f for _, f in got if is_rb(f)]
        if not rb or rb[-1]["data"]["i"] != n - 1:
            rb += [f for f in c.recv_until(lambda f: is_rb(f) and f["data"]["i"] == n - 1)
                   if is_rb(f)]
        self.assertEqual([f["data"]["i"] for f in rb], list(range(n)))
        # Another socket on the same instrument, without max_rate, got every tick.
        other_ticks = [f for f in other.recv_until(last_au) if f.get("type") == "tick"]
        self.assertEqual([f["data"]["i"] for f in other_ticks], list(range(n)))
        self.assertGreater(self.metrics().value("chartgate_frames_paced_total"), 0)

    def test_resubscribe_unpaced(self):
        self.start_gateway()
        c = self.connect()
        c.send({"action": "subscribe", "instruments": ["cu2503"], "max_rate": 1, "id": 1})
        c.recv_until(lambda f: f.get("type") == "snapshot")
        self.wait_channel_ready("md:cu2503")
        self.burst(["md:cu2503"], 5, 0).join()
        first = c.recv_until(harness.is_tick("cu2503"))[-1]
        self.assertEqual(first["data"]["i"], 0)  # the first goes at once
        # The rest is held: the latest of them comes a second later.
        c.subscribe(["cu2503"], id=2)  # without max_rate: every tick from now on
        self.burst(["md:cu2503"], 20, 0).join()
        ticks = c.collect(harness.is_tick("cu2503"), 20)
        self.assertEqual([f["data"]["i"] for f in ticks], list(range(20)))
        # What was held for the old setting is dropped (the snapshot made it old news).
        self.assert_nothing_for(c, "tick")

    def test_bad_values(self):
        self.start_gateway()
        c = self.connect()
        for i, bad in enumerate([0, -1, 0.05, 1001, "2", None, True, [2]]):
            err = c.request({"action": "subscribe", "instruments": ["rb2501"], "max_rate": bad,
                             "id": 10 + i}, validate=False)
            self.assertEqual(err["type"], "error", bad)
            self.assertEqual(err["code"], "bad_request", bad)
            self.assertIn("max_rate", err["message"])
        # Nothing was subscribed, and the connection lives on.
        self.assertEqual(c.request({"action": "ping", "id": 99})["type"], "pong")
        c.subscribe(["rb2501"], id=100)


if __name__ == "__main__":
    harness.main()
