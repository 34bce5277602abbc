#!/usr/bin/python3
"""test_streams.py -- shared seq numbers (PROTOCOL.md §19): ticks published with FCALL
chartgate_publish carry Redis's seq in every gateway process, so a client resumes on any process
(from the ring, or from the instrument's stream when the ring is short), a restarted gateway's
snapshot has the last tick and the forming bars, ticks missed while the pub/sub link was down are
filled from the stream in order, and plain PUBLISH keeps its per-process numbering."""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import compact, is_tick, scaled, wait_for  # noqa: E402

EPOCH_KEY = "chartgate:epoch"


class StreamCase(harness.GatewayTestCase):

    def start_gateway(self, *args, **kw):
        gw = super().start_gateway(*args, **kw)
        # The function is loaded and the epoch read when the command link comes up.
        wait_for(lambda: self.r.execute_command("FUNCTION", "LIST", "LIBRARYNAME", "chartgate_md")
                 and self.r.get(EPOCH_KEY), scaled(10), "chartgate_md loaded, epoch set")
        return gw

    def fpub(self, instrument, data):
        """FCALL chartgate_publish: returns the seq Redis gave the tick."""
        return self.r.execute_command("FCALL", "chartgate_publish", 1, "md:" + instrument,
                                      compact(data))

    def shared_epoch(self):
        v = self.r.get(EPOCH_KEY)
        return v.decode() if isinstance(v, bytes) else v

    def sub(self, c, names, since=None, intervals=None, epoch=None, shared_epoch=None):
        """subscribe with the raw fields: returns (subscribed, snapshots by instrument)."""
        req = {"action": "subscribe", "instruments": names, "id": c.next_id()}
        if intervals:
            req["intervals"] = intervals
        if since is not None:
            req["since"] = since
        if epoch:
            req["epoch"] = epoch
        if shared_epoch:
            req["shared_epoch"] = shared_epoch
        reply = c.request(req)
        self.assertEqual(reply["type"], "subscribed", reply)
        recovered = reply.get("recovered") or {}
        snaps = {s["instrument"]: s for s in c.take_snapshots(
            [n for n in names if not recovered.get(n)], intervals or [])}
        return reply, snaps

    def ticks(self, c, instrument, n, timeout=None):
        got = c.collect(is_tick(instrument), n, timeout, "%d ticks of %s" % (n, instrument))
        return [f["seq"] for f in got], got

    def wait_subscribed_upstream(self, instrument, n=1):
        self.wait_numsub("md:" + instrument, n)


class SharedSeqTest(StreamCase):

    def test_seq_and_shared_epoch(self):
        self.start_gateway()
        c = self.connect()
        reply, snaps = self.sub(c, ["ss1"])
        self.assertEqual(reply["shared_epoch"], self.shared_epoch())
        self.assertRegex(reply["shared_epoch"], "^[0-9a-f]{16}$")
        self.assertNotEqual(reply["shared_epoch"], reply["epoch"])
        self.wait_subscribed_upstream("ss1")
        # Redis numbers them; another instrument's counter is its own.
        self.assertEqual(self.fpub("other", {"last_price": 1}), 1)
        seqs = [self.fpub("ss1", {"last_price": 100 + i}) for i in range(5)]
        self.assertEqual(seqs, [1, 2, 3, 4, 5])
        got, frames = self.ticks(c, "ss1", 5)
        self.assertEqual(got, seqs)
        self.assertEqual([f["data"]["last_price"] for f in frames], [100, 101, 102, 103, 104])

    def test_second_gateway_same_epoch_and_seq(self):
        a = self.start_gateway()
        b = self.start_gateway()
        ca, cb = self.connect(gw=a, name="on-a"), self.connect(gw=b, name="on-b")
        ra, _ = self.sub(ca, ["ss2"])
        rb, _ = self.sub(cb, ["ss2"])
        self.assertEqual(ra["shared_epoch"], rb["shared_epoch"])
        self.assertNotEqual(ra["epoch"], rb["epoch"])
        self.wait_subscribed_upstream("ss2", 2)
        for i in range(3):
            self.fpub("ss2", {"last_price": i})
        self.assertEqual(self.ticks(ca, "ss2", 3)[0], [1, 2, 3])
        self.assertEqual(self.ticks(cb, "ss2", 3)[0], [1, 2, 3])

    def test_bad_seq_header_dropped(self):
        self.start_gateway()
        c = self.connect()
        self.sub(c, ["ss3"])
        self.wait_subscribed_upstream("ss3")
        before = self.metrics().value("chartgate_payloads_dropped_total", reason="bad_seq")
        for bad in ("#", "#12", "#x {}", "#0 {}", "#99999999999999999999999 {}", "# 1 {}"):
            self.publish("md:ss3", bad)
        self.fpub("ss3", {"last_price": 7})
        self.assertEqual(self.ticks(c, "ss3", 1)[0], [1])
        m = self.metrics()
        self.assertEqual(m.value("chartgate_payloads_dropped_total", reason="bad_seq") - before, 6)
        # A shared tick whose body is not an object is dropped like a plain one.
        self.publish("md:ss3", "#2 [1]")
        self.fpub("ss3", {"last_price": 8})
        seqs, frames = self.ticks(c, "ss3", 1)
        self.assertEqual((seqs, frames[0]["data"]), ([2], {"last_price": 8}))
        c.barrier()

    def test_plain_publish_unchanged(self):
        self.start_gateway()
        watcher = self.connect(name="watcher")  # keeps pl1 subscribed upstream
        self.sub(watcher, ["pl1"])
        c = self.connect()
        reply, _ = self.sub(c, ["pl1"])
        self.wait_subscribed_upstream("pl1")
        for i in range(3):
            self.publish("md:pl1", {"last_price": i})
        self.assertEqual(self.ticks(c, "pl1", 3)[0], [1, 2, 3])
        c.close()
        # A plain instrument resumes on its own process with the process epoch, as before.
        for i in range(2):
            self.publish("md:pl1", {"last_price": 10 + i})
        c2 = self.connect(name="again")
        r2, _ = self.sub(c2, ["pl1"], since={"pl1": 3}, epoch=reply["epoch"],
                         shared_epoch=reply["shared_epoch"])
        self.assertEqual(r2["recovered"], {"pl1": True})
        self.assertEqual(self.ticks(c2, "pl1", 2)[0], [4, 5])
        # The shared epoch alone says nothing about a process's own numbering.
        c3 = self.connect(name="shared-only")
        r3, snaps = self.sub(c3, ["pl1"], since={"pl1": 3}, shared_epoch=reply["shared_epoch"])
        self.assertEqual(r3["recovered"], {"pl1": False})
        self.assertEqual(snaps["pl1"]["seq"], 5)


class ResumeAnywhereTest(StreamCase):

    def test_replies_keep_order_while_a_subscribe_waits(self):
        """A subscribe that waits for Redis (a first subscriber warms the instrument up, a
        resume reads the stream) is answered before the messages sent after it."""
        self.start_gateway("--resume-ring", "2")
        for i in range(20):
            self.fpub("ow1", {"last_price": i})
        c = self.connect()
        c.send_together([
            {"action": "subscribe", "instruments": ["ow1"], "id": "s1"},
            {"action": "ping", "id": "p1"},
            {"action": "subscribe", "instruments": ["ow1"], "id": "s2", "since": {"ow1": 3},
             "shared_epoch": self.shared_epoch()},
            {"action": "ping", "id": "p2"},
            {"action": "unsubscribe", "instruments": ["ow1"], "id": "u1"},
            {"action": "ping", "id": "p3"},
        ])
        frames = c.recv_until(lambda f: f.get("id") == "p3", timeout=scaled(10))
        order = [(f["type"], f.get("id")) for f in frames if f.get("id")]
        self.assertEqual(order, [("subscribed", "s1"), ("pong", "p1"), ("subscribed", "s2"),
                                 ("pong", "p2"), ("unsubscribed", "u1"), ("pong", "p3")])
        snap = [f for f in frames if f["type"] == "snapshot"]
        self.assertEqual(len(snap), 1)
        self.assertEqual((snap[0]["seq"], snap[0]["last"]), (20, {"last_price": 19}))
        ticks = [f["seq"] for f in frames if f["type"] == "tick"]
        self.assertEqual(ticks, list(range(4, 21)), "s2 resumed from the stream")

    def test_resume_on_another_gateway_from_ring(self):
        a = self.start_gateway()
        b = self.start_gateway()
        ca = self.connect(gw=a, name="on-a")
        ra, _ = self.sub(ca, ["ra1"])
        self.wait_subscribed_upstream("ra1")
        for i in range(3):
            self.fpub("ra1", {"last_price": i})
        self.assertEqual(self.ticks(ca, "ra1", 3)[0], [1, 2, 3])
        ca.close()
        for i in range(3, 8):
            self.fpub("ra1", {"last_price": i})
        # b never saw ra1: its first subscriber warms it up from the stream, then resumes.
        cb = self.connect(gw=b, name="on-b")
        rb, snaps = self.sub(cb, ["ra1"], since={"ra1": 3}, epoch=ra["epoch"],
                             shared_epoch=ra["shared_epoch"])
        self.assertEqual(rb["recovered"], {"ra1": True}, rb)
        self.assertEqual(snaps, {})
        seqs, frames = self.ticks(cb, "ra1", 5)
        self.assertEqual(seqs, [4, 5, 6, 7, 8])
        self.assertEqual([f["data"]["last_price"] for f in frames], [3, 4, 5, 6, 7])
        self.wait_subscribed_upstream("ra1")
        self.fpub("ra1", {"last_price": 99})
        self.assertEqual(self.ticks(cb, "ra1", 1)[0], [9])
        cb.barrier()
        self.assertEqual([f for f in cb.pending if f.get("type") == "tick"], [],
                         "nothing twice")

    def test_resume_from_stream_when_ring_is_short(self):
        a = self.start_gateway("--resume-ring", "4")
        c0 = self.connect(gw=a, name="watcher")
        self.sub(c0, ["rs1"])
        self.wait_subscribed_upstream("rs1")
        for i in range(30):
            self.fpub("rs1", {"last_price": i})
        self.ticks(c0, "rs1", 30)
        m0 = self.metrics(a).value("chartgate_stream_resumes_total")
        c1 = self.connect(gw=a, name="resumer")
        r1, snaps = self.sub(c1, ["rs1"], since={"rs1": 10}, shared_epoch=self.shared_epoch())
        self.assertEqual(r1["recovered"], {"rs1": True})
        seqs, frames = self.ticks(c1, "rs1", 20)
        self.assertEqual(seqs, list(range(11, 31)))
        self.assertEqual(self.metrics(a).value("chartgate_stream_resumes_total") - m0, 1)
        # live after the replay, once
        self.fpub("rs1", {"last_price": 1000})
        self.assertEqual(self.ticks(c1, "rs1", 1)[0], [31])
        # the wrong shared epoch, or a range the stream no longer holds: a snapshot
        c2 = self.connect(gw=a, name="wrong-epoch")
        r2, snaps = self.sub(c2, ["rs1"], since={"rs1": 10}, shared_epoch="0" * 16)
        self.assertEqual(r2["recovered"], {"rs1": False})
        self.assertEqual(snaps["rs1"]["seq"], 31)
        self.r.execute_command("XTRIM", "{md:rs1}:stream", "MAXLEN", 5)
        c3 = self.connect(gw=a, name="trimmed")
        r3, snaps = self.sub(c3, ["rs1"], since={"rs1": 10}, shared_epoch=self.shared_epoch())
        self.assertEqual(r3["recovered"], {"rs1": False})
        self.assertEqual(snaps["rs1"]["seq"], 31)
        # since ahead of Redis's counter: not this numbering
        c4 = self.connect(gw=a, name="ahead")
        r4, _ = self.sub(c4, ["rs1"], since={"rs1": 500}, shared_epoch=self.shared_epoch())
        self.assertEqual(r4["recovered"], {"rs1": False})

    def test_restarted_gateway_snapshot_has_last_and_forming_bar(self):
        a = self.start_gateway("--intervals", "1m,1h")
        c = self.connect(gw=a)
        self.sub(c, ["rr1"])
        self.wait_subscribed_upstream("rr1")
        now = int(time.time() * 1000)
        minute = now - now % 60000
        prices = [50.0, 53.5, 49.0, 51.25]
        for i, p in enumerate(prices):
            self.fpub("rr1", {"last_price": p, "volume": 2, "ts": minute + 10 + i})
        self.ticks(c, "rr1", len(prices))
        c.close()
        a.stop()
        b = self.start_gateway("--intervals", "1m,1h")
        c2 = self.connect(gw=b, name="after-restart")
        _, snaps = self.sub(c2, ["rr1"], intervals=["1m"])
        s = snaps["rr1"]
        self.assertEqual(s["seq"], 4)
        self.assertEqual(s["last"]["last_price"], 51.25)
        bars = s["bars"]["1m"]
        self.assertEqual(bars[-1], [minute, 50.0, 53.5, 49.0, 51.25, 8], s)
        # and it goes on live with the next seq
        self.wait_subscribed_upstream("rr1")
        self.fpub("rr1", {"last_price": 52, "volume": 1, "ts": minute + 20})
        self.assertEqual(self.ticks(c2, "rr1", 1)[0], [5])

    def test_restarted_gateway_rebuilds_calendar_bars(self):
        """With a trading calendar (a zone 5:30 off UTC: hours start at :30 UTC), the bars a
        restarted gateway rebuilds from the stream follow the same buckets as live ones."""
        args = ("--timezone", "Asia/Kolkata", "--intervals", "1m,1h")
        a = self.start_gateway(*args)
        c = self.connect(gw=a)
        c.epoch_aligned = False  # calendar buckets
        self.sub(c, ["rc1"], intervals=["1h"])
        self.wait_subscribed_upstream("rc1")
        now = int(time.time() * 1000)
        prices = [10.0, 12.5, 9.5, 11.0]
        for i, p in enumerate(prices):
            self.fpub("rc1", {"last_price": p, "volume": 1, "ts": now + i})
        self.ticks(c, "rc1", len(prices))
        live = [f for f in c.barrier() if f.get("type") == "bar"]
        c.close()
        a.stop()
        off = 5 * 3600000 + 1800000
        hour = (now + off) // 3600000 * 3600000 - off
        b = self.start_gateway(*args)
        c2 = self.connect(gw=b, name="after-restart")
        c2.epoch_aligned = False
        _, snaps = self.sub(c2, ["rc1"], intervals=["1h"])
        bars = {x[0]: x for x in snaps["rc1"]["bars"]["1h"]}
        self.assertIn(hour, bars, "the 1h bucket starts at the local hour: %s" % snaps["rc1"])
        self.assertEqual(bars[hour][1:], [10.0, 12.5, 9.5, 11.0, 4])
        if live:  # what the first gateway sent live for the same bucket
            self.assertEqual(live[-1]["bar"]["t"], hour)

    def test_gap_filled_after_pubsub_link_loss(self):
        self.start_gateway()
        c = self.connect()
        self.sub(c, ["gf1"])
        self.wait_subscribed_upstream("gf1")
        for i in range(5):
            self.fpub("gf1", {"last_price": i})
        self.assertEqual(self.ticks(c, "gf1", 5)[0], [1, 2, 3, 4, 5])
        # The pub/sub link drops; ticks published meanwhile are only in the stream.
        self.r.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        for i in range(5, 25):
            self.fpub("gf1", {"last_price": i})
        self.wait_subscribed_upstream("gf1")
        for i in range(25, 30):
            self.fpub("gf1", {"last_price": i})
        seqs, frames = self.ticks(c, "gf1", 25, timeout=scaled(15))
        self.assertEqual(seqs, list(range(6, 31)), "every seq once, in order")
        self.assertEqual([f["data"]["last_price"] for f in frames], list(range(5, 30)))
        m = self.metrics()
        self.assertGreaterEqual(m.value("chartgate_stream_catchups_total"), 1)
        self.assertEqual(m.value("chartgate_ticks_missed_total"), 0)


class RedisFaultTest(StreamCase):

    def test_redis_killed_and_restarted_no_dup_no_gap(self):
        self.start_gateway()
        c = self.connect()
        self.sub(c, ["rf1"])
        self.wait_subscribed_upstream("rf1")
        for i in range(10):
            self.fpub("rf1", {"last_price": i})
        self.assertEqual(self.ticks(c, "rf1", 10)[0], list(range(1, 11)))
        epoch = self.shared_epoch()
        self.kill_redis(save=True)  # SAVE, then SIGKILL: nothing acknowledged is lost
        self.restart_redis()
        self.wait_subscribed_upstream("rf1")
        self.assertEqual(self.shared_epoch(), epoch)
        for i in range(10, 20):
            self.fpub("rf1", {"last_price": i})
        seqs, frames = self.ticks(c, "rf1", 10, timeout=scaled(15))
        self.assertEqual(seqs, list(range(11, 21)))
        c.barrier()
        self.assertEqual([f for f in c.pending if f.get("type") == "tick"], [], "nothing twice")

    def test_redis_back_with_older_data(self):
        """Redis restarts from a snapshot older than its last writes: its counter is behind the
        gateway's. The gateway follows Redis's numbering instead of skipping those seqs."""
        self.start_gateway()
        c = self.connect()
        self.sub(c, ["rf2"])
        self.wait_subscribed_upstream("rf2")
        for i in range(5):
            self.fpub("rf2", {"last_price": i})
        self.r.save()
        for i in range(5, 10):
            self.fpub("rf2", {"last_price": i})
        self.assertEqual(self.ticks(c, "rf2", 10)[0], list(range(1, 11)))
        self.kill_redis(save=False)  # dump.rdb holds seq 5
        self.restart_redis()
        self.wait_subscribed_upstream("rf2")
        wait_for(lambda: "shared seq went back" in self.gw.log_text(), scaled(10),
                 "the gateway to notice")
        self.fpub("rf2", {"last_price": 100})
        seqs, frames = self.ticks(c, "rf2", 1, timeout=scaled(15))
        self.assertEqual((seqs, frames[0]["data"]["last_price"]), ([6], 100))

    def test_redis_back_empty_new_epoch(self):
        self.start_gateway("--session-check-s", "3600")  # the sessions go with the data
        c = self.connect()
        r1, _ = self.sub(c, ["rf3"])
        self.wait_subscribed_upstream("rf3")
        for i in range(4):
            self.fpub("rf3", {"last_price": i})
        self.ticks(c, "rf3", 4)
        self.kill_redis(save=False)
        dump = os.path.join(self.redis.dir, "dump.rdb")
        if os.path.exists(dump):
            os.remove(dump)  # Redis comes back empty
        self.restart_redis()
        self.wait_subscribed_upstream("rf3")
        wait_for(lambda: self.r.get(EPOCH_KEY), scaled(10), "a new epoch")
        self.assertNotEqual(self.shared_epoch(), r1["shared_epoch"])
        wait_for(lambda: self.r.execute_command("FUNCTION", "LIST", "LIBRARYNAME",
                                                "chartgate_md"), scaled(10), "function reloaded")
        self.fpub("rf3", {"last_price": 50})
        seqs, _ = self.ticks(c, "rf3", 1, timeout=scaled(15))
        self.assertEqual(seqs, [1])
        c2 = self.connect(name="late")
        r2, _ = self.sub(c2, ["rf3"], since={"rf3": 4}, shared_epoch=r1["shared_epoch"])
        self.assertEqual(r2["recovered"], {"rf3": False})
        self.assertEqual(r2["shared_epoch"], self.shared_epoch())


class DurableRedisFaultTest(StreamCase):
    """Redis with an AOF synced at every write: a SIGKILL loses nothing it acknowledged."""

    redis_extra = ("--appendonly", "yes", "--appendfsync", "always")

    def test_readers_that_keep_up_see_every_seq_once_across_redis_kills(self):
        # The ticks of an outage come as one burst per instrument: above --queue-conflate-frames
        # that is back-pressure like any other (conflated, a seq gap, PROTOCOL.md §7), so the
        # threshold is raised to check that the gateway itself loses nothing.
        self.start_gateway("--queue-conflate-frames", "1024")
        names = ["dk%d" % i for i in range(4)]
        readers = []
        for k in range(3):
            c = self.connect(name="reader%d" % k)
            self.sub(c, names)
            readers.append(c)
        for n in names:
            self.wait_subscribed_upstream(n)
        stop = threading.Event()
        published = {n: 0 for n in names}
        errors = []

        def publisher():
            r = self.redis.client()
            k = 0
            while not stop.is_set():
                n = names[k % len(names)]
                try:
                    published[n] = r.execute_command(
                        "FCALL", "chartgate_publish", 1, "md:" + n,
                        compact({"last_price": 100 + k % 7, "k": k}))
                    k += 1
                except Exception as e:  # Redis down: try the same tick again
                    errors.append(type(e).__name__)
                    time.sleep(0.02)
                    try:
                        r = self.redis.client()
                    except Exception:
                        pass
                time.sleep(0.002)

        got = {c.name: {n: [] for n in names} for c in readers}
        rthreads = [harness.Reader(c) for c in readers]
        for t in rthreads:
            t.start()
        pub = threading.Thread(target=publisher, daemon=True)
        pub.start()
        try:
            for _ in range(2):
                time.sleep(1.5)
                self.kill_redis(save=False)  # the AOF has every acknowledged tick
                time.sleep(0.5)
                self.redis.restart()
            time.sleep(1.5)
        finally:
            stop.set()
            pub.join(10)
        self.assertTrue(errors, "test premise: some publishes met a dead Redis")
        # every reader reaches the last seq of every instrument
        self.r = self.redis.client()
        self.addCleanup(self.r.close)
        last = {n: int(self.r.get("{md:%s}:seq" % n) or 0) for n in names}
        deadline = time.monotonic() + scaled(20)
        while time.monotonic() < deadline:
            for c, t in zip(readers, rthreads):
                for _, f in t.frames:
                    pass
            done = all(
                max([f["seq"] for _, f in t.frames
                     if f.get("type") == "tick" and f["instrument"] == n] or [0]) >= last[n]
                for t in rthreads for n in names)
            if done:
                break
            time.sleep(0.1)
        for c, t in zip(readers, rthreads):
            t.stop()
            self.assertIsNone(t.error, c.name)
            for n in names:
                seqs = [f["seq"] for _, f in t.frames
                        if f.get("type") == "tick" and f["instrument"] == n]
                self.assertEqual(seqs, list(range(1, last[n] + 1)),
                                 "%s %s: every seq once, in order (missing %s, repeated %s)" % (
                                     c.name, n, sorted(set(range(1, last[n] + 1)) - set(seqs)),
                                     sorted({s for s in seqs if seqs.count(s) > 1})))
        self.assertGreater(min(last.values()), 50, "test premise: ticks flowed")
        m = self.metrics()
        self.assertEqual(m.value("chartgate_frames_conflated_total"), 0)
        self.assertEqual(m.value("chartgate_ticks_missed_total"), 0)
        self.assertGreaterEqual(m.value("chartgate_stream_catchups_total"), 2)


if __name__ == "__main__":
    harness.main()
