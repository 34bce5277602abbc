#!/usr/bin/python3
"""test_slow.py -- slow clients: a client that stops reading is cut off (1008, counted) without
delaying anyone else or growing memory; a client that reads slowly gets conflated ticks (gaps in
seq) but always the latest one, and every message frame; bursts go out batched."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Reader, is_tick, is_type, wait_for  # noqa: E402

PAD = "x" * 1000  # ~1 KB payloads


def kernel_buffer_bytes():
    """The most a TCP connection on loopback can hold in socket buffers (send + receive)."""
    def last(path, default):
        try:
            with open(path) as f:
                return int(f.read().split()[-1])
        except (OSError, ValueError, IndexError):
            return default
    wmem = max(last("/proc/sys/net/ipv4/tcp_wmem", 4 << 20), last("/proc/sys/net/core/wmem_max", 0))
    return wmem + 256 * 1024


def sanitizer_env(extra):
    """Keep ASan's quarantine small so RSS measures the gateway, not the sanitizer."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    return {"ASAN_OPTIONS": (opts + ":" if opts else "") + extra}


class SlowClientTest(harness.GatewayTestCase):

    def check_ticks(self, ticks, what):
        """seq strictly increasing, and consistent with the publish counter data.n: every
        published tick takes the next seq, so seq - n is the same for all."""
        self.assertTrue(ticks, "%s received no ticks" % what)
        seqs = [t["seq"] for t in ticks]
        self.assertEqual(seqs, sorted(set(seqs)), "%s: seq not strictly increasing" % what)
        offsets = {t["seq"] - t["data"]["n"] for t in ticks}
        self.assertEqual(len(offsets), 1, "%s: seq does not follow the publish order (%s)"
                         % (what, sorted(offsets)[:5]))

    def test_stalled_client_is_cut_off_others_keep_going(self):
        gw = self.start_gateway("--queue-max-frames", "256", "--queue-max-bytes", "262144",
                                "--queue-conflate-frames", "64",
                                env=sanitizer_env("quarantine_size_mb=16"))
        fast = self.connect(user_id="fast", name="fast")
        fast.subscribe(["X1"])
        # the stalled client: handshake by hand, subscribe, read the reply, then never read
        sid = self.make_session("slow")
        up = harness.raw_upgrade(gw.port, cookie="sessionid=%s" % sid, keep_open=True,
                                 rcvbuf=4096)
        self.assertEqual(up.status, 101)
        slow = harness.RawWS(up)
        self.addCleanup(slow.close)
        slow.send_json({"action": "subscribe", "instruments": ["X1"], "id": 1})
        slow.recv_frames_until(is_type("subscribed", id=1))
        self.wait_channel_ready("md:X1")
        self.wait_channel_ready("user:slow")
        self.wait_metric("chartgate_connections", lambda v: v == 2)

        reader = Reader(fast)
        reader.start()
        self.addCleanup(reader.stop)
        base_rss = gw.rss_kb()
        before = self.metrics().value("chartgate_slow_disconnects_total")

        n = 0
        sent = 0
        limit = 16 * kernel_buffer_bytes()
        deadline = time.monotonic() + 30
        t_cut = None
        while t_cut is None:
            pipe = self.r.pipeline(transaction=False)
            for j in range(200):
                pipe.publish("user:slow", '{"m":%d,"pad":"%s"}' % (sent, PAD))
                sent += 1
                if j % 10 == 0:
                    pipe.publish("md:X1", '{"n":%d,"pad":"%s"}' % (n, PAD))
                    n += 1
            pipe.execute()
            if self.metrics().value("chartgate_slow_disconnects_total") > before:
                t_cut = time.monotonic()
            elif sent * 1000 > limit or time.monotonic() > deadline:
                self.fail("stalled client not disconnected after %d KB of messages" % sent)
        self.assertIsNone(reader.error, "fast client failed during the flood: %r" % reader.error)

        # the stalled socket gets closed (EOF or reset once its buffered bytes are read)
        how, nbytes = slow.drain_until_closed(timeout=10)
        self.assertIn(how, ("eof", "reset"))
        if slow.close_code is not None:
            self.assertEqual(slow.close_code, 1008)
        self.wait_metric("chartgate_connections", lambda v: v == 1)

        # the fast client kept receiving during the flood, and gets the last tick
        self.publish("md:X1", '{"n":%d,"pad":"%s"}' % (n, PAD))
        last = n
        wait_for(lambda: any(f.get("type") == "tick" and f["data"]["n"] == last
                             for _, f in reader.frames[-50:]), 10,
                 "the fast client to get the last tick")
        reader.stop()
        self.assertIsNone(reader.error, "fast client failed: %r" % reader.error)
        ticks = [f for _, f in reader.frames if f.get("type") == "tick"]
        self.check_ticks(ticks, "fast client")
        early = [t for t, f in reader.frames if f.get("type") == "tick" and t < t_cut]
        self.assertGreater(len(early), 0, "fast client got no tick while the other one stalled")
        self.assertEqual(fast.request({"action": "ping", "id": "p"}), {"type": "pong", "id": "p"})

        # nothing left behind: memory back near where it was
        rss = gw.rss_kb()
        self.assertLess(rss, base_rss + 50 * 1024,
                        "gateway RSS grew from %d KB to %d KB" % (base_rss, rss))

    def test_slow_reader_gets_conflated_ticks_and_every_message(self):
        self.start_gateway("--queue-max-frames", "64", "--queue-conflate-frames", "8",
                           env=sanitizer_env("quarantine_size_mb=16"))
        c = self.connect(user_id="u1", rcvbuf=4096, name="slow reader")
        c.subscribe(["Y1"])
        self.wait_channel_ready("md:Y1")
        self.wait_channel_ready("user:u1")
        total = max(6000, 2 * kernel_buffer_bytes() // 1000)
        msgs = 0
        pipe = self.r.pipeline(transaction=False)
        # the client does not read while the flood goes on
        for n in range(total):
            pipe.publish("md:Y1", '{"n":%d,"pad":"%s"}' % (n, PAD))
            if n % (total // 20) == 7 and msgs < 20:
                pipe.publish("user:u1", '{"k":%d}' % msgs)
                msgs += 1
            if n % 500 == 499:
                pipe.execute()
        pipe.execute()
        self.wait_metric("chartgate_frames_conflated_total", lambda v: v > 0)
        frames = c.recv_until(lambda f: f.get("type") == "tick" and f["data"]["n"] == total - 1,
                              timeout=20, what="the last tick (n=%d)" % (total - 1))
        frames += c.barrier()
        ticks = [f for f in frames if f.get("type") == "tick"]
        self.check_ticks(ticks, "slow reader")
        self.assertLess(len(ticks), total, "no tick was conflated")
        seqs = [t["seq"] for t in ticks]
        self.assertTrue(any(b - a > 1 for a, b in zip(seqs, seqs[1:])), "no gap in seq")
        self.assertEqual(ticks[-1]["seq"] - ticks[0]["seq"],
                         ticks[-1]["data"]["n"] - ticks[0]["data"]["n"])
        messages = [f["data"]["k"] for f in frames if f.get("type") == "message"]
        self.assertEqual(messages, list(range(msgs)), "message frames must never be conflated")
        self.assertEqual(self.metrics().value("chartgate_slow_disconnects_total"), 0)
        self.assertEqual(c.request({"action": "ping", "id": 1}), {"type": "pong", "id": 1})

    def test_burst_is_batched(self):
        self.start_gateway("--batch-max-bytes", "4096")
        c = self.connect(user_id="u1")
        c.keep_raw = True
        c.subscribe(["Z1"])
        self.wait_channel_ready("user:u1")
        self.wait_channel_ready("md:Z1")
        m0 = self.metrics()
        pipe = self.r.pipeline(transaction=False)
        for i in range(300):
            pipe.publish("user:u1", '{"i":%d,"pad":"%s"}' % (i, "p" * 150))
        for i in range(20):
            pipe.publish("md:Z%d" % (1 + i % 2), '{"n":%d}' % i)
        pipe.execute()
        got = c.collect(is_type("message"), 300)
        self.assertEqual([m["data"]["i"] for m in got], list(range(300)))
        ticks = c.collect(is_tick("Z1"), 1)
        self.assertTrue(ticks)
        c.barrier()
        self.assertLess(len(c.messages), 200, "300 frames sent as %d WebSocket messages: no "
                        "batching" % len(c.messages))
        for raw in c.raw_messages:
            nframes = raw.count(b"\n") + 1
            if nframes > 1:
                self.assertLessEqual(len(raw), 4096, "batched message over --batch-max-bytes")
            for line in raw.split(b"\n"):
                self.assertNotIn(b" ", line, "frames are encoded compactly: %r" % line[:200])
        m1 = self.metrics()
        frames_out = m1.value("chartgate_frames_out_total") - m0.value("chartgate_frames_out_total")
        msgs_out = (m1.value("chartgate_ws_messages_out_total")
                    - m0.value("chartgate_ws_messages_out_total"))
        self.assertGreaterEqual(frames_out, 300)
        self.assertLess(msgs_out, frames_out)
        self.assertGreater(m1.value("chartgate_bytes_out_total"),
                           m0.value("chartgate_bytes_out_total") + 300 * 150)


if __name__ == "__main__":
    harness.main()
