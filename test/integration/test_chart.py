#!/usr/bin/python3
"""test_chart.py -- the chart agent through the wire (PROTOCOL.md §3, §4, §11.8, §14, §15):
exact OHLCV bars from scripted ticks, bar frames per requested interval, snapshots and the seam
between snapshot and live frames, snapshots filled from Redis, history paging, idempotent bar
recording by several gateways (and scripts/import-bars), resume after a reconnect.

Ticks carry explicit "ts" (epoch ms) so every expected bar is exact. Expected frames come from
literal values for the hand-written sequences, and from Model -- a direct transcription of §14
(not of the C code) -- for the longer ones."""

import csv
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import compact, interval_ms, is_tick, is_type, scaled, wait_for  # noqa: E402

# 2024-11-22T00:00:00Z: aligned to every default interval (1s .. 1d)
T0 = 1732233600000
T = T0 + 10 * 3600000  # 10:00 UTC, a minute (and hour) boundary
DEFAULT_INTERVALS = ["1s", "1m", "5m", "15m", "1h", "1d"]
IMPORT_BARS = os.path.join(harness.REPO_ROOT, "scripts", "import-bars")
LATE_METRIC = "chartgate_bars_late_ignored_total"


def tk(price, ts, volume=None, **extra):
    d = {"last_price": price, "ts": ts}
    if volume is not None:
        d["volume"] = volume
    d.update(extra)
    return d


def bar(t, o, h, l, c, v):
    return {"t": t, "o": o, "h": h, "l": l, "c": c, "v": v}


def arr(b):
    return [b["t"], b["o"], b["h"], b["l"], b["c"], b["v"]]


def bar_frame(instrument, interval, seq, b, final):
    return {"type": "bar", "instrument": instrument, "interval": interval, "seq": seq,
            "bar": {k: b[k] for k in "tohlcv"}, "final": final}


def by_interval(frames):
    out = {}
    for f in frames:
        out.setdefault(f["interval"], []).append(f)
    return out


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ---------------------------------------------------------------------------------------------
# reference model of §14


class Series:
    """One interval: the forming bar and up to depth completed bars (each with the seq of the
    tick that last changed it -- closing it included)."""

    def __init__(self, ms, depth):
        self.ms, self.depth = ms, depth
        self.done = []
        self.forming = None
        self.forming_ts = None

    def tick(self, ts, p, v, seq):
        """[(bar copy, final)] for this tick, or None when it is older than every bar held."""
        t = ts - ts % self.ms
        f = self.forming
        if f is not None and t == f["t"]:
            late = ts < self.forming_ts  # same bucket, older than its newest tick: not the close
            f["h"], f["l"] = max(f["h"], p), min(f["l"], p)
            if not late:
                f["c"], self.forming_ts = p, ts
            f["v"] += v
            f["seq"] = seq
            return [(dict(f), False)]
        if f is None or t > f["t"]:
            ev = []
            if f is not None:
                f["seq"] = seq  # closing is a change: a resume after it replays the final bar
                self.done = (self.done + [f])[-self.depth:]
                ev.append((dict(f), True))
            self.forming = {"t": t, "o": p, "h": p, "l": p, "c": p, "v": v, "seq": seq}
            self.forming_ts = ts
            ev.append((dict(self.forming), False))
            return ev
        for b in self.done:
            if b["t"] == t:  # a late tick corrects the completed bar it belongs to
                b["h"], b["l"] = max(b["h"], p), min(b["l"], p)
                b["v"] += v
                b["seq"] = seq
                return [(dict(b), True)]
        return None

    def held(self):
        return self.done + ([self.forming] if self.forming else [])


class Model:
    """The bars of one instrument, as §14 defines them."""

    def __init__(self, instrument, intervals, depth=300, cumulative=False):
        self.instrument = instrument
        self.intervals = list(intervals)
        self.depth = depth
        self.series = {iv: Series(interval_ms(iv), depth) for iv in self.intervals}
        self.cumulative = cumulative
        self.total = None
        self.total_ts = None
        self.seq = 0
        self.last = None
        self.ignored = 0  # (tick, interval) pairs older than every bar held

    def _volume(self, v, ts):
        if not self.cumulative:
            return v
        if self.total is None:
            d = 0
        elif ts < self.total_ts:
            return 0
        else:
            d = v - self.total if v >= self.total else v
        self.total, self.total_ts = v, ts
        return d

    def tick(self, data, arrival_ms=None):
        """Apply the next tick; returns its bar frames (configured interval order)."""
        self.seq += 1
        self.last = data
        p = data.get("last_price")
        if not _num(p):
            return []
        v = data.get("volume") if _num(data.get("volume")) else 0
        ts = data.get("ts")
        if not (_num(ts) and 0 < ts < 1e15):
            ts = arrival_ms
        v = self._volume(v, ts)
        frames = []
        for iv in self.intervals:
            ev = self.series[iv].tick(ts, p, v, self.seq)
            if ev is None:
                self.ignored += 1
                continue
            frames += [bar_frame(self.instrument, iv, self.seq, b, fin) for b, fin in ev]
        return frames

    def snapshot_bars(self, intervals):
        return {iv: [arr(b) for b in self.series[iv].held()][-self.depth:] for iv in intervals}

    def completed(self, iv):
        return [arr(b) for b in self.series[iv].done]

    def bars_since(self, iv, since):
        """What a resume replays for iv: the bars held that were updated after since."""
        s = self.series[iv]
        return [bar_frame(self.instrument, iv, b["seq"], b, b is not s.forming)
                for b in s.held() if b["seq"] > since]


def apply_bars(state, frames):
    """A chart's view: {interval: {t: [t,o,h,l,c,v]}} updated by bar frames."""
    for f in frames:
        b = f["bar"]
        state.setdefault(f["interval"], {})[b["t"]] = arr(b)
    return state


# ---------------------------------------------------------------------------------------------


class ChartCase(harness.GatewayTestCase):

    def sub(self, c, names, intervals=None, **kw):
        reply = c.subscribe(names, intervals=intervals, **kw)
        return reply, [c.snapshots[n] for n in dict.fromkeys(names)
                       if not (reply.get("recovered") or {}).get(n)]

    def feed(self, instrument, data, seq, clients):
        """Publish one tick; for each client read up to that tick plus a ping barrier, so every
        frame the tick caused is in. Asserts exactly that one tick and nothing but bar frames of
        the instrument; returns [bar frames] per client, in arrival order."""
        self.publish("md:" + instrument, data)
        out = []
        for c in clients:
            frames = c.recv_until(lambda f: f.get("type") == "tick"
                                  and f.get("instrument") == instrument and f.get("seq") == seq,
                                  what="tick %s #%d" % (instrument, seq))
            frames += c.barrier()
            ticks = [f for f in frames if f["type"] == "tick"]
            self.assertEqual(ticks, [{"type": "tick", "instrument": instrument, "seq": seq,
                                      "data": data}], "%s: ticks around #%d" % (c.name, seq))
            bars = [f for f in frames if f["type"] == "bar"]
            self.assertEqual([f for f in frames if f["type"] not in ("tick", "bar")], [],
                             "%s: unexpected frames" % c.name)
            for f in bars:
                self.assertEqual((f["instrument"], f["seq"]), (instrument, seq), f)
            out.append(bars)
        return out

    def assert_bars(self, got, expected, what):
        """Same bar frames per interval, in order (the order across intervals is free)."""
        self.assertEqual(by_interval(got), by_interval(expected), what)

    def late_ignored(self, gw=None):
        return self.metrics(gw).value(LATE_METRIC)


class BarsTest(ChartCase):

    def test_exact_ohlcv_1s_1m(self):
        """Boundaries, closing, gaps, late ticks (held / not held), price-less ticks."""
        self.start_gateway("--intervals", "1s,1m")
        c = self.connect(name="chart")
        plain = self.connect(name="no-intervals")
        _, (snap,) = self.sub(c, ["ag2501"], ["1s", "1m"])
        self.assertEqual(snap, {"type": "snapshot", "instrument": "ag2501", "seq": 0,
                                "last": None, "bars": {"1s": [], "1m": []}})
        self.sub(plain, ["ag2501"])
        self.wait_channel_ready("md:ag2501")
        n = [0]

        def step(data, expect):
            n[0] += 1
            got, got_plain = self.feed("ag2501", data, n[0], [c, plain])
            want = [bar_frame("ag2501", iv, n[0], bar(*b), fin) for iv, b, fin in expect]
            self.assert_bars(got, want, "bars of tick #%d %s" % (n[0], compact(data)))
            self.assertEqual(got_plain, [], "bar frames to a socket that asked for none")

        # ts exactly at a 1s and 1m boundary opens both bars
        step(tk(100, T, 1), [("1s", (T, 100, 100, 100, 100, 1), False),
                             ("1m", (T, 100, 100, 100, 100, 1), False)])
        # last ms of the first second: same bars
        step(tk(102, T + 999, 2), [("1s", (T, 100, 102, 100, 102, 3), False),
                                   ("1m", (T, 100, 102, 100, 102, 3), False)])
        # exactly the next second: the 1s bar closes (final once), a new one forms
        step(tk(99, T + 1000, 1), [("1s", (T, 100, 102, 100, 102, 3), True),
                                   ("1s", (T + 1000, 99, 99, 99, 99, 1), False),
                                   ("1m", (T, 100, 102, 99, 99, 4), False)])
        step(tk(101.5, T + 1500, 5), [("1s", (T + 1000, 99, 101.5, 99, 101.5, 6), False),
                                      ("1m", (T, 100, 102, 99, 101.5, 9), False)])
        # a gap: nothing for T+2000 and T+3000
        step(tk(103, T + 4200, 1), [("1s", (T + 1000, 99, 101.5, 99, 101.5, 6), True),
                                    ("1s", (T + 4000, 103, 103, 103, 103, 1), False),
                                    ("1m", (T, 100, 103, 99, 103, 10), False)])
        # late tick: corrects the completed 1s bar (final again, new low/volume, same close);
        # in 1m it is an older tick of the forming bar: low/volume change, the close does not
        step(tk(98, T + 1200, 2), [("1s", (T + 1000, 99, 101.5, 98, 101.5, 8), True),
                                   ("1m", (T, 100, 103, 98, 103, 12), False)])
        # late into the oldest held 1s bar: new high, close unchanged
        step(tk(104, T + 10, 1), [("1s", (T, 100, 104, 100, 102, 4), True),
                                  ("1m", (T, 100, 104, 98, 103, 13), False)])
        # the next minute exactly: both close
        step(tk(104.25, T + 60000, 1), [("1s", (T + 4000, 103, 103, 103, 103, 1), True),
                                        ("1s", (T + 60000, 104.25, 104.25, 104.25, 104.25, 1),
                                         False),
                                        ("1m", (T, 100, 104, 98, 103, 13), True),
                                        ("1m", (T + 60000, 104.25, 104.25, 104.25, 104.25, 1),
                                         False)])
        # older than everything held, in both intervals: ignored, counted (once per interval,
        # the metric counts tick-interval updates), still relayed as a tick
        base = self.late_ignored()
        step(tk(50, T - 1, 100), [])
        self.assertEqual(self.late_ignored() - base, 2)
        # late: its 1s bucket (T+2000) had no bar (nothing held to correct: ignored, counted);
        # its minute is held: corrected
        step(tk(97, T + 2500, 1), [("1m", (T, 100, 104, 97, 103, 14), True)])
        self.assertEqual(self.late_ignored() - base, 3)
        # no numeric price: relayed as a tick, no bar, its volume counts nowhere
        step({"last_price": "n/a", "volume": 7, "ts": T + 60500}, [])
        step({"bid": 1, "volume": 3, "ts": T + 60600}, [])
        step({"last_price": None, "volume": 3, "ts": T + 60650}, [])
        step(tk(105, T + 60700, 2), [("1s", (T + 60000, 104.25, 105, 104.25, 105, 3), False),
                                     ("1m", (T + 60000, 104.25, 105, 104.25, 105, 3), False)])
        # a new viewer gets all of it in its snapshot, forming bars last
        late = self.connect(name="late-viewer")
        _, (snap,) = self.sub(late, ["ag2501"], ["1s", "1m"])
        self.assertEqual(snap, {
            "type": "snapshot", "instrument": "ag2501", "seq": n[0],
            "last": tk(105, T + 60700, 2),
            "bars": {"1s": [[T, 100, 104, 100, 102, 4], [T + 1000, 99, 101.5, 98, 101.5, 8],
                            [T + 4000, 103, 103, 103, 103, 1],
                            [T + 60000, 104.25, 105, 104.25, 105, 3]],
                     "1m": [[T, 100, 104, 97, 103, 14], [T + 60000, 104.25, 105, 104.25, 105, 3]]}})
        self.assert_nothing_for(late)

    def test_default_intervals_against_model(self):
        """The default interval set, ticks on every boundary up to a UTC day, late ticks."""
        self.start_gateway()
        c = self.connect(name="all-six")
        day = self.connect(name="1d-only")
        _, (snap,) = self.sub(c, ["IF2501"], DEFAULT_INTERVALS)
        self.assertEqual(snap["bars"], {iv: [] for iv in DEFAULT_INTERVALS})
        self.sub(day, ["IF2501"], ["1d"])
        self.wait_channel_ready("md:IF2501")
        m = Model("IF2501", DEFAULT_INTERVALS)
        ts_list = [T0 - 1, T0, T0 + 1, T0 + 999, T0 + 1000, T0 + 59999, T0 + 60000,
                   T0 + 299999, T0 + 300000, T0 + 899999, T0 + 900000, T0 + 3599999,
                   T0 + 3600000, T0 + 500, T0 + 86399999, T0 + 86400000, T0 + 30000,
                   T0 + 86400000 + 1000, T0 - 86400000 - 5]
        base = self.late_ignored()
        for i, ts in enumerate(ts_list):
            data = tk(4000 + (i * 37) % 23 - 11.5, ts, (i % 4) + 0.5)
            want = m.tick(data)
            got, got_day = self.feed("IF2501", data, m.seq, [c, day])
            self.assert_bars(got, want, "tick #%d ts=T0%+d" % (m.seq, ts - T0))
            self.assert_bars(got_day, [f for f in want if f["interval"] == "1d"],
                             "1d-only socket, tick #%d" % m.seq)
        # T0+30000 has no 1s bar to correct (1); the last tick is older than every bar (6)
        self.assertEqual(m.ignored, 7, "test premise")
        self.assertEqual(self.late_ignored() - base, m.ignored)
        viewer = self.connect(name="viewer")
        _, (snap,) = self.sub(viewer, ["IF2501"], DEFAULT_INTERVALS)
        self.assertEqual((snap["seq"], snap["last"]), (m.seq, m.last))
        self.assertEqual(snap["bars"], m.snapshot_bars(DEFAULT_INTERVALS))
        self.assertEqual(len(snap["bars"]["1d"]), 3, "UTC days T0-1d, T0, T0+1d")

    def test_arrival_time_when_ts_missing(self):
        self.start_gateway("--intervals", "1s,1m")
        c = self.connect()
        self.sub(c, ["nt1"], ["1s"])
        self.wait_channel_ready("md:nt1")
        for seq, data in ((1, {"last_price": 7, "volume": 1}),
                          (2, {"last_price": 8, "volume": 1, "ts": "not a number"})):
            before = int(time.time() * 1000)
            (bars,) = self.feed("nt1", data, seq, [c])
            after = int(time.time() * 1000)
            self.assertTrue(bars, "a tick without ts still makes a bar")
            t = bars[-1]["bar"]["t"]
            self.assertTrue(before - before % 1000 <= t <= after - after % 1000,
                            "bar t %d is not the arrival second (%d..%d)" % (t, before, after))

    def test_cumulative_volume(self):
        self.start_gateway("--intervals", "1s,1m", "--cumulative-volume", "rb,au")
        c = self.connect()
        self.sub(c, ["rb2501", "cu2501", "au2412"], ["1s", "1m"])
        for name in ("rb2501", "cu2501", "au2412"):
            self.wait_channel_ready("md:" + name)
        totals = [(T, 1000), (T + 100, 1004), (T + 200, 1004), (T + 1100, 1010),
                  (T + 1200, 3), (T + 1300, 5)]
        for seq, (ts, total) in enumerate(totals, 1):
            for name in ("rb2501", "cu2501"):
                self.feed(name, tk(3500 + seq, ts, total), seq, [c])
        # au (another cumulative prefix): first total counts 0, +2, then a new session at 1
        for seq, (ts, total) in enumerate([(T, 500), (T + 10, 502), (T + 20, 1)], 1):
            self.feed("au2412", tk(600, ts, total), seq, [c])
        viewer = self.connect(name="viewer")
        _, snaps = self.sub(viewer, ["rb2501", "cu2501", "au2412"], ["1s", "1m"])
        rb, cu, au = (s["bars"] for s in snaps)
        # running totals: 0 (first) + 4 + 0 | + 6 + 3 (new session: the total itself) + 2
        self.assertEqual([b[5] for b in rb["1s"]], [4, 11])
        self.assertEqual([b[5] for b in rb["1m"]], [15])
        # per tick for names outside --cumulative-volume
        self.assertEqual([b[5] for b in cu["1s"]], [3008, 1018])
        self.assertEqual([b[5] for b in cu["1m"]], [4026])
        self.assertEqual([b[5] for b in au["1m"]], [3])
        self.assertEqual(rb["1m"], [[T, 3501, 3506, 3501, 3506, 15]])


class IntervalRoutingTest(ChartCase):

    def test_bar_frames_only_for_requested_intervals(self):
        self.start_gateway("--intervals", "1s,1m,5m")
        a = self.connect(name="a-1s")
        b = self.connect(name="b-1m5m")
        c = self.connect(name="c-none")
        d = self.connect(name="d-all")
        e = self.connect(name="e-other-instrument")
        self.sub(a, ["rb2501"], ["1s"])
        self.sub(b, ["rb2501"], ["5m", "1m"])
        self.sub(c, ["rb2501"], [])
        _, (snap,) = self.sub(d, ["rb2501"], ["1s", "1m", "5m"])
        self.assertEqual(snap["bars"], {"1s": [], "1m": [], "5m": []})
        self.sub(e, ["au2412"], ["1s"])
        self.wait_channel_ready("md:rb2501")
        m = Model("rb2501", ["1s", "1m", "5m"])
        clients = [(a, {"1s"}), (b, {"1m", "5m"}), (c, set()), (d, {"1s", "1m", "5m"})]

        def step(data):
            want = m.tick(data)
            got = self.feed("rb2501", data, m.seq, [x for x, _ in clients])
            for (x, ivs), bars in zip(clients, got):
                self.assert_bars(bars, [f for f in want if f["interval"] in ivs],
                                 "%s, tick #%d" % (x.name, m.seq))
        step(tk(10, T, 1))
        step(tk(11, T + 1000, 1))
        self.assert_nothing_for(e, "bar of an instrument it did not subscribe")
        # re-subscribing replaces the interval set (and sends a snapshot of the new set)
        reply, (snap,) = self.sub(a, ["rb2501"], ["5m"])
        self.assertEqual(reply["intervals"], ["5m"])
        self.assertEqual(snap["bars"], m.snapshot_bars(["5m"]))
        reply, (snap,) = self.sub(b, ["rb2501"])
        self.assertEqual((reply["intervals"], snap["bars"]), ([], {}))
        clients = [(a, {"5m"}), (b, set()), (c, set()), (d, {"1s", "1m", "5m"})]
        step(tk(12, T + 2000, 2))
        # a request naming an unconfigured interval (or a bad type) fails and changes nothing
        for i, bad in enumerate((["1h"], ["2m"], ["1m", "bogus"], "1m", [1], [None], {"1m": 1})):
            err = a.request({"action": "subscribe", "instruments": ["rb2501"], "intervals": bad,
                             "id": 100 + i}, validate=False)
            self.assertEqual((err["type"], err["code"], err["id"]),
                             ("error", "bad_request", 100 + i), "intervals=%r" % (bad,))
        self.assertEqual(a.barrier(), [])
        step(tk(13, T + 60000, 1))
        # the set belongs to the instruments named: d re-subscribing au2412 leaves rb2501 alone
        self.sub(d, ["au2412"], ["1m"])
        step(tk(14, T + 61000, 1))
        # one request, several instruments: the set applies to each
        self.sub(c, ["rb2501", "au2412"], ["1m"])
        clients[2] = (c, {"1m"})
        step(tk(15, T + 120000, 1))
        self.assert_nothing_for(e)


class SnapshotTest(ChartCase):

    def test_never_ticked_and_depth(self):
        self.start_gateway("--intervals", "1s,1m", "--bars-depth", "3")
        c = self.connect()
        _, (snap,) = self.sub(c, ["zz9"], ["1s", "1m"])
        self.assertEqual(snap, {"type": "snapshot", "instrument": "zz9", "seq": 0, "last": None,
                                "bars": {"1s": [], "1m": []}})
        self.wait_channel_ready("md:zz9")
        m = Model("zz9", ["1s", "1m"], depth=3)
        for i in range(6):
            data = tk(20 + i, T + 1000 * i + 5, 1)
            self.assert_bars(self.feed("zz9", data, m.seq + 1, [c])[0], m.tick(data),
                             "tick #%d" % m.seq)
        other = self.connect(name="other")
        _, (snap,) = self.sub(other, ["zz9"], ["1s", "1m"])
        self.assertEqual(snap["seq"], 6)
        self.assertEqual(snap["last"], tk(25, T + 5005, 1))
        # at most --bars-depth per interval, newest, the forming bar last
        self.assertEqual(snap["bars"]["1s"], [[T + 3000, 23, 23, 23, 23, 1],
                                              [T + 4000, 24, 24, 24, 24, 1],
                                              [T + 5000, 25, 25, 25, 25, 1]])
        self.assertEqual(snap["bars"]["1m"], [[T, 20, 25, 20, 25, 6]])
        self.assertEqual(snap["bars"], m.snapshot_bars(["1s", "1m"]))

    def fill_setup(self):
        """--bars-depth 2: "full" holds 3 bars (a snapshot needs nothing from Redis), "empty"
        holds none (its snapshot waits for a Redis read)."""
        self.start_gateway("--intervals", "1s,1m", "--bars-depth", "2")
        a = self.connect(name="a")
        self.sub(a, ["full"], ["1s"])
        self.wait_channel_ready("md:full")
        for i in range(3):
            self.feed("full", tk(1 + i, T + 1000 * i, 1), i + 1, [a])
        return self.connect(name="c")

    @staticmethod
    def collect(c, want):
        """Frames until every (type, id-or-instrument) in want has arrived (in any order),
        then a barrier: replies that wait for Redis come when Redis answers."""
        frames, left = [], set(want)

        def got(f):
            left.discard((f["type"], f.get("id", f.get("instrument"))))
            return not left
        frames += c.recv_until(got, what="all of %s" % sorted(want))
        return frames + c.barrier()

    @staticmethod
    def kinds(frames):
        return [(f["type"], f.get("id", f.get("instrument"))) for f in frames]

    def test_snapshots_after_subscribed(self):
        """§7: after `subscribed`, one snapshot per instrument; one that waits for a Redis fill
        may come after one that did not (clients match snapshots by instrument)."""
        c = self.fill_setup()
        c.send_together([{"action": "subscribe", "instruments": ["empty", "full"],
                          "intervals": ["1s"], "id": 1}])
        frames = self.collect(c, {("subscribed", 1), ("snapshot", "empty"),
                                  ("snapshot", "full")})
        kinds = self.kinds(frames)
        self.assertEqual(kinds[0], ("subscribed", 1))
        self.assertEqual(sorted(kinds[1:]), [("snapshot", "empty"), ("snapshot", "full")])

    def test_filled_snapshot_may_follow_later_replies(self):
        """§7: a snapshot waiting for its Redis fill may come after the reply to a later
        request, but never before `subscribed`, and it is the only snapshot."""
        c = self.fill_setup()
        c.send_together([{"action": "subscribe", "instruments": ["empty"], "intervals": ["1s"],
                          "id": 1},
                         {"action": "ping", "id": 2}])
        frames = self.collect(c, {("subscribed", 1), ("pong", 2), ("snapshot", "empty")})
        kinds = self.kinds(frames)
        self.assertEqual(kinds[0], ("subscribed", 1))
        self.assertEqual(sorted(kinds[1:]), [("pong", 2), ("snapshot", "empty")])

    def test_resubscribe_while_snapshot_pending(self):
        """§3: subscribing again while the first snapshot still waits for its Redis fill: that
        one snapshot serves both requests (it is built when the fill arrives)."""
        c = self.fill_setup()
        c.send_together([{"action": "subscribe", "instruments": ["empty"], "intervals": ["1s"],
                          "id": rid} for rid in (1, 2)])
        frames = self.collect(c, {("subscribed", 1), ("subscribed", 2), ("snapshot", "empty")})
        kinds = self.kinds(frames)
        self.assertEqual([k for k in kinds if k[0] == "subscribed"],
                         [("subscribed", 1), ("subscribed", 2)])
        self.assertEqual([k for k in kinds if k[0] == "snapshot"], [("snapshot", "empty")])
        self.assertLess(kinds.index(("subscribed", 1)), kinds.index(("snapshot", "empty")))

    def test_seam_under_a_continuous_stream(self):
        """Subscribing mid-stream: snapshot seq S, then live ticks S+1, S+2 ... with no gap and
        no duplicate; the snapshot's bars are those of ticks 1..S, and its bars plus the bar
        frames that follow give exactly the bars of the whole stream. At three points of the
        stream two sockets subscribe while ticks keep coming: one with intervals (its snapshot
        waits for a Redis fill) and one without (snapshot at once)."""
        total, checkpoints = 1000, (200, 450, 700)
        # no conflation in this test: every socket must get every frame
        self.start_gateway("--intervals", "1s,1m", "--queue-max-frames", "16384",
                           "--queue-max-bytes", "16777216", "--queue-conflate-frames", "8192")
        a = self.connect(name="a")
        self.sub(a, ["sm1"], ["1s", "1m"])
        self.wait_channel_ready("md:sm1")
        pairs = [(self.connect(name="bars@%d" % cp), self.connect(name="ticks@%d" % cp))
                 for cp in checkpoints]
        data = [tk(100 + (i * 7) % 13 - 6 + (i % 2) * 0.5, T + 250 * i + (i * 31) % 200,
                   1 + i % 5) for i in range(total)]
        reached = {cp: threading.Event() for cp in checkpoints}
        go = {cp: threading.Event() for cp in checkpoints}
        errors = []

        def publisher():
            r = self.redis.client()
            try:
                for i, d in enumerate(data):
                    if i in reached:
                        reached[i].set()
                        if not go[i].wait(scaled(10)):
                            raise AssertionError("publisher: no go at %d" % i)
                    r.publish("md:sm1", compact(d))
                    if i % 4 == 0:
                        time.sleep(0.001)  # spread the stream out (pacing, not a wait)
            except Exception as e:  # reported below
                errors.append(e)
            finally:
                r.close()
        th = threading.Thread(target=publisher, daemon=True)
        th.start()
        self.addCleanup(th.join, 10)
        for cp, (b, c) in zip(checkpoints, pairs):
            self.assertTrue(reached[cp].wait(scaled(10)), "publisher stuck before %d" % cp)
            go[cp].set()  # the stream goes on while the two subscribe
            b.send({"action": "subscribe", "instruments": ["sm1"], "intervals": ["1s", "1m"],
                    "id": "b"})
            c.send({"action": "subscribe", "instruments": ["sm1"], "id": "c"})
        # the model's bars at every seq
        m = Model("sm1", ["1s", "1m"])
        at = {}
        for d in data:
            m.tick(d)
            at[m.seq] = m.snapshot_bars(["1s", "1m"])
        final_state = {iv: {b_[0]: b_ for b_ in bars} for iv, bars in at[total].items()}
        for cl, rid, ivs in [(b, "b", ["1s", "1m"]) for b, _ in pairs] + \
                            [(c, "c", []) for _, c in pairs]:
            frames = cl.recv_until(lambda f: f.get("type") == "tick" and f["seq"] == total,
                                   timeout=scaled(15))
            frames += cl.barrier()  # the bar frames of the last tick follow its tick frame
            self.assertEqual(frames[0], {"type": "subscribed", "id": rid,
                                         "instruments": ["sm1"], "intervals": ivs,
                                         "epoch": frames[0].get("epoch"),
                                         "shared_epoch": frames[0].get("shared_epoch")})
            self.assertRegex(frames[0]["epoch"], "^[0-9a-f]{16}$")
            snap = frames[1]
            harness.check_snapshot(snap, "sm1", ivs)
            S = snap["seq"]
            self.assertTrue(1 <= S < total, "%s subscribed mid-stream: S=%d" % (cl.name, S))
            self.assertEqual(snap["last"], data[S - 1], "last is the data of tick S")
            self.assertEqual(snap["bars"], {iv: at[S][iv] for iv in ivs},
                             "%s: the snapshot's bars are those of ticks 1..S" % cl.name)
            rest = frames[2:]
            ticks = [f for f in rest if f["type"] == "tick"]
            self.assertEqual([t["seq"] for t in ticks], list(range(S + 1, total + 1)),
                             "%s: live ticks after the snapshot" % cl.name)
            self.assertEqual([t["data"] for t in ticks], data[S:])
            bars = [f for f in rest if f["type"] == "bar"]
            self.assertEqual([f for f in rest if f["type"] not in ("tick", "bar")], [])
            self.assertTrue(all(f["seq"] > S for f in bars), "a bar frame with seq <= S")
            state = {iv: {b_[0]: b_ for b_ in bars_} for iv, bars_ in snap["bars"].items()}
            apply_bars(state, bars)
            self.assertEqual(state, {iv: final_state[iv] for iv in ivs},
                             "%s: snapshot + bar frames != the bars of the stream" % cl.name)
        th.join(scaled(10))
        self.assertEqual(errors, [])
        # a saw everything from tick 1 (no conflation here)
        a_frames = a.recv_until(lambda f: f.get("type") == "tick" and f["seq"] == total,
                                timeout=scaled(15))
        self.assertEqual([f["seq"] for f in a_frames if f["type"] == "tick"],
                         list(range(1, total + 1)))

    def test_snapshot_filled_from_redis(self):
        self.start_gateway("--intervals", "1s,1m", "--bars-depth", "10")
        seeded = [[T - 60000 * k, 50 + k, 60 + k, 40 + k, 55 + k, k] for k in range(20, 0, -1)]
        bogus = [[T, 1, 1, 1, 1, 1], [T + 60000, 2, 2, 2, 2, 2]]  # memory will hold these t
        for b_ in seeded + bogus:
            self.r.zadd("bars:fx1:1m", {compact(b_): b_[0]})
        fx2 = [[T - 60000 * k, 7, 8, 6, 7.5, 1] for k in range(15, 0, -1)]
        for b_ in fx2:
            self.r.zadd("bars:fx2:1m", {compact(b_): b_[0]})
        a = self.connect(name="a")
        # memory empty: the newest 10 recorded bars, oldest first
        _, (snap,) = self.sub(a, ["fx1"], ["1s", "1m"])
        self.assertEqual((snap["seq"], snap["last"]), (0, None))
        self.assertEqual(snap["bars"], {"1s": [], "1m": (seeded + bogus)[-10:]})
        self.wait_channel_ready("md:fx1")
        for seq, (p, ts) in enumerate(((10, T + 5), (11, T + 60005), (12, T + 120005)), 1):
            self.feed("fx1", tk(p, ts, 1), seq, [a])
        # memory holds 3 bars (2 completed + forming): 7 older ones from Redis, never those
        # at or after memory's oldest t
        b = self.connect(name="b")
        _, (s1, s2) = self.sub(b, ["fx1", "fx2"], ["1m", "1s"])
        self.assertEqual(s1["seq"], 3)
        self.assertEqual(s1["bars"]["1m"], seeded[-7:] + [[T, 10, 10, 10, 10, 1],
                                                          [T + 60000, 11, 11, 11, 11, 1],
                                                          [T + 120000, 12, 12, 12, 12, 1]])
        self.assertEqual(s1["bars"]["1s"], [[T, 10, 10, 10, 10, 1], [T + 60000, 11, 11, 11, 11, 1],
                                            [T + 120000, 12, 12, 12, 12, 1]])
        # never ticked here, but recorded: seq 0, last null, the newest --bars-depth bars
        self.assertEqual((s2["seq"], s2["last"]), (0, None))
        self.assertEqual(s2["bars"], {"1m": fx2[-10:], "1s": []})


class HistoryTest(ChartCase):

    def hist(self, c, validate=True, **req):
        req = dict({"action": "history", "id": c.next_id()}, **req)
        return c.request(req, validate=validate)

    def test_paging_limits_and_errors(self):
        self.start_gateway("--intervals", "1s,1m", "--history-max", "700")
        seeded = [[T - 60000 * k, 100 + k % 7, 110 + k % 7, 90 + k % 7, 105 + k % 7, k % 11]
                  for k in range(1200, 0, -1)]
        pipe = self.r.pipeline(transaction=False)
        for b_ in seeded:
            pipe.zadd("bars:hs1:1m", {compact(b_): b_[0]})
        pipe.execute()
        c = self.connect(instruments=["hs*", "rb*"])
        # page back from the newest, 500 at a time
        pages, before = [], None
        while True:
            req = {"instrument": "hs1", "interval": "1m", "limit": 500}
            if before is not None:
                req["before"] = before
            h = self.hist(c, **req)
            self.assertEqual((h["type"], h["instrument"], h["interval"]),
                             ("history", "hs1", "1m"))
            harness.check_bar_list(h["bars"], "1m", "history page")
            if before is not None:
                self.assertTrue(all(b_[0] < before for b_ in h["bars"]), "t >= before")
            if not h["bars"]:
                break
            self.assertLessEqual(len(h["bars"]), 500)
            pages.append(h["bars"])
            before = h["bars"][0][0]
            self.assertLess(len(pages), 10, "paging does not end")
        self.assertEqual([len(p) for p in pages], [500, 500, 200])
        self.assertEqual([b_ for p in reversed(pages) for b_ in p], seeded,
                         "pages are oldest first, strictly older, no overlap, nothing missed")
        # before = the t of a bar: strictly older
        h = self.hist(c, instrument="hs1", interval="1m", before=seeded[100][0], limit=3)
        self.assertEqual(h["bars"], seeded[97:100])
        # limit above --history-max is capped (not an error); default limit 500
        self.assertEqual(self.hist(c, instrument="hs1", interval="1m", limit=1000)["bars"],
                         seeded[-700:])
        self.assertEqual(self.hist(c, instrument="hs1", interval="1m")["bars"], seeded[-500:])
        h = self.hist(c, instrument="hs1", interval="1m", limit=5000, validate=False)
        self.assertEqual(len(h["bars"]), 700)
        # nothing recorded: empty, not an error
        for inst, iv in (("hs2", "1m"), ("hs1", "1s")):
            h = self.hist(c, instrument=inst, interval=iv, id="e-" + inst + iv)
            self.assertEqual(h, {"type": "history", "id": "e-" + inst + iv, "instrument": inst,
                                 "interval": iv, "bars": []})
        # errors, id echoed
        bad = [({"instrument": "hs1", "interval": "1m", "limit": 0}, "bad_request"),
               ({"instrument": "hs1", "interval": "1m", "limit": -5}, "bad_request"),
               ({"instrument": "hs1", "interval": "1m", "limit": "10"}, "bad_request"),
               ({"instrument": "hs1", "interval": "1m", "limit": 1.5}, "bad_request"),
               ({"instrument": "hs1", "interval": "1m", "before": "x"}, "bad_request"),
               ({"instrument": "hs1", "interval": "1m", "before": 1.5}, "bad_request"),
               ({"instrument": "hs1", "interval": "5m"}, "bad_request"),
               ({"instrument": "hs1", "interval": "1x"}, "bad_request"),
               ({"instrument": "hs1", "interval": 1}, "bad_request"),
               ({"instrument": "hs1"}, "bad_request"),
               ({"interval": "1m"}, "bad_request"),
               ({"instrument": 5, "interval": "1m"}, "bad_request"),
               ({"instrument": "bad name", "interval": "1m"}, "invalid_instrument"),
               ({"instrument": "au2412", "interval": "1m"}, "forbidden"),
               ({"instrument": "au2412", "interval": "1m", "before": T}, "forbidden")]
        for i, (req, code) in enumerate(bad):
            err = self.hist(c, validate=False, id=500 + i, **req)
            self.assertEqual((err["type"], err.get("code"), err.get("id")),
                             ("error", code, 500 + i), "history %s" % compact(req))
        self.assertEqual(c.request({"action": "ping", "id": "alive"}),
                         {"type": "pong", "id": "alive"})

    def test_history_merges_memory_bars(self):
        self.start_gateway("--intervals", "1s,1m")
        seeded = [[T - 60000 * k, 10, 11, 9, 10, 1] for k in range(5, 0, -1)]
        for b_ in seeded + [[T, 99, 99, 99, 99, 99]]:  # memory will hold t=T: memory wins
            self.r.zadd("bars:hm1:1m", {compact(b_): b_[0]})
        c = self.connect()
        self.sub(c, ["hm1"])  # no intervals: the chart is kept all the same
        self.wait_channel_ready("md:hm1")
        for seq, (p, ts) in enumerate(((1, T + 5), (2, T + 60005), (3, T + 120005)), 1):
            self.feed("hm1", tk(p, ts, 1), seq, [c])
        memory = [[T, 1, 1, 1, 1, 1], [T + 60000, 2, 2, 2, 2, 1]]
        h = c.request({"action": "history", "instrument": "hm1", "interval": "1m",
                       "before": T + 120000, "limit": 10, "id": 1})
        self.assertEqual(h["bars"], seeded + memory,
                         "recorded bars, then memory's completed bars not recorded yet")
        h = c.request({"action": "history", "instrument": "hm1", "interval": "1m",
                       "before": T + 120000, "limit": 3, "id": 2})
        self.assertEqual(h["bars"], seeded[-1:] + memory, "limit counts the merged bars")
        h = c.request({"action": "history", "instrument": "hm1", "interval": "1m",
                       "before": T + 60000, "limit": 2, "id": 3})
        self.assertEqual(h["bars"], seeded[-1:] + memory[:1])

    def test_history_reply_matched_by_id(self):
        """§7: a history reply waits for Redis, so a later reply may overtake it; both come,
        each with its id."""
        self.start_gateway("--intervals", "1m")
        for k in range(1, 50):
            b_ = [T - 60000 * k, 1, 1, 1, 1, 1]
            self.r.zadd("bars:ho1:1m", {compact(b_): b_[0]})
        c = self.connect()
        c.send_together([{"action": "history", "instrument": "ho1", "interval": "1m", "id": 1},
                         {"action": "ping", "id": 2}])
        frames = SnapshotTest.collect(c, {("history", 1), ("pong", 2)})
        self.assertEqual(sorted((f["type"], f.get("id")) for f in frames),
                         [("history", 1), ("pong", 2)])
        (h,) = [f for f in frames if f["type"] == "history"]
        self.assertEqual(len(h["bars"]), 49)


class RecordTest(ChartCase):

    def test_two_recording_gateways_one_copy(self):
        args = ("--record-bars", "--intervals", "1s,1m", "--history-depth", "5")
        g1 = self.start_gateway(*args)
        g2 = self.start_gateway(*args)
        # both listen on md:* (PUBLISH counts pattern receivers too)
        wait_for(lambda: self.publish("md:probe", {"probe": 1}) >= 2, scaled(5),
                 "both gateways to PSUBSCRIBE md:*")
        m = Model("rec1", ["1s", "1m"])
        finals = 0
        seq_ts = [T + 5, T + 300, T + 1000, T + 2100, T + 2999, T + 3000, T + 5500, T + 6000,
                  T + 7000, T + 8000, T + 9000, T + 60000, T + 61000, T + 61500]
        for i, ts in enumerate(seq_ts):
            d = tk(200 + (i * 5) % 9 + 0.25 * (i % 3), ts, i + 1)
            finals += sum(f["final"] for f in m.tick(d))
            self.publish("md:rec1", d)
        # a late tick correcting a recorded 1s bar (and the recorded minute)
        d = tk(1, T + 8500, 100)
        finals += sum(f["final"] for f in m.tick(d))
        self.publish("md:rec1", d)
        for g in (g1, g2):
            self.wait_metric("chartgate_bars_recorded_total", lambda v: v >= finals, gw=g)
        for g in (g1, g2):
            self.assertEqual(self.metrics(g).value("chartgate_bars_recorded_total"), finals)
        for iv in ("1s", "1m"):
            key = "bars:rec1:%s" % iv
            rows = self.r.zrange(key, 0, -1, withscores=True)
            want = m.completed(iv)[-5:]
            self.assertEqual([json.loads(mem) for mem, _ in rows], want,
                             "%s: the newest --history-depth completed bars, once each" % key)
            for mem, score in rows:
                self.assertEqual(self.r.zcount(key, score, score), 1, "%s t=%d" % (key, score))
                self.assertEqual(json.loads(mem)[0], int(score))
                self.assertEqual(mem, compact(json.loads(mem)), "member is compact JSON")
        self.assertGreater(len(m.completed("1s")), 5, "test premise: more than --history-depth")
        self.assertIn(T + 8000, [b_[0] for b_ in m.completed("1s")[-5:] if b_[3] == 1],
                      "test premise: the late tick corrected a recorded bar")
        # the forming bars are not recorded
        self.assertEqual(self.r.zcount("bars:rec1:1m", T + 60000, T + 60000), 0)
        self.assertEqual(self.r.zcount("bars:rec1:1s", T + 61000, T + 61000), 0)
        # history: what was recorded, merged with the completed bars the gateway holds
        c = self.connect(gw=g2)
        h = c.request({"action": "history", "instrument": "rec1", "interval": "1s",
                       "before": T + 61000, "id": 1})
        self.assertEqual(h["bars"], m.completed("1s"))

    def test_import_bars(self):
        if not os.access(IMPORT_BARS, os.X_OK):
            self.skipTest("scripts/import-bars is missing (or not executable): %s" % IMPORT_BARS)
        path = os.path.join(self.logdir, "bars.csv")

        def write(rows):
            with open(path, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["t", "o", "h", "l", "c", "v"])
                w.writerows(rows)

        def run(inst, *extra):
            return subprocess.run([IMPORT_BARS, "--redis", self.redis.url, "--instrument", inst,
                                   "--interval", "1m"] + list(extra) + [path],
                                  capture_output=True, text=True, timeout=scaled(30))
        rows = [[T + 60000 * k, "3850.0", "3852.5", "3849", "3851", 135 + k] for k in range(5)]
        write(rows)
        p = run("ib1")
        self.assertEqual(p.returncode, 0, p.stderr)
        got = self.r.zrange("bars:ib1:1m", 0, -1, withscores=True)
        self.assertEqual(got, [("[%d,3850,3852.5,3849,3851,%d]" % (T + 60000 * k, 135 + k),
                                float(T + 60000 * k)) for k in range(5)])
        # again, and with one bar changed: one member per t
        self.assertEqual(run("ib1").returncode, 0)
        rows[2][4] = "3860"
        write(rows)
        self.assertEqual(run("ib1").returncode, 0)
        got = self.r.zrange("bars:ib1:1m", 0, -1)
        self.assertEqual(len(got), 5)
        self.assertEqual(json.loads(got[2]), [T + 120000, 3850, 3852.5, 3849, 3860, 137])
        # --depth trims to the newest
        self.assertEqual(run("ib1", "--depth", "3").returncode, 0)
        self.assertEqual([json.loads(x)[0] for x in self.r.zrange("bars:ib1:1m", 0, -1)],
                         [T + 120000, T + 180000, T + 240000])
        # a malformed line: non-zero exit naming the line, nothing written
        write([[T, 1, 2, 0.5, 1.5, 3], [T + 60000, 1, "x", 0.5, 1.5, 3]])
        p = run("ib2")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(":3", p.stderr)
        self.assertEqual(self.r.exists("bars:ib2:1m"), 0)
        # the same layout as a recording gateway: its bar and the imported one are one member
        g = self.start_gateway("--record-bars", "--intervals", "1m")
        self.wait_channel_ready("md:ib3")
        for d in (tk(3850, T + 1, 135), tk(3852.5, T + 2, 1), tk(3849, T + 3, 1),
                  tk(3851, T + 4, 1), tk(3900, T + 60000, 1)):
            self.publish("md:ib3", d)
        self.wait_metric("chartgate_bars_recorded_total", lambda v: v >= 1, gw=g)
        (recorded,) = self.r.zrange("bars:ib3:1m", 0, -1)
        write([[T, 3850, 3852.5, 3849, 3851, 138]])
        self.assertEqual(run("ib3").returncode, 0)
        self.assertEqual(self.r.zrange("bars:ib3:1m", 0, -1), [recorded],
                         "import writes the member exactly as the gateway does")
        # and history serves imported bars
        c = self.connect()
        h = c.request({"action": "history", "instrument": "ib1", "interval": "1m", "id": 1})
        self.assertEqual(h["bars"], [[T + 120000, 3850, 3852.5, 3849, 3860, 137],
                                     [T + 180000, 3850, 3852.5, 3849, 3851, 138],
                                     [T + 240000, 3850, 3852.5, 3849, 3851, 139]])


class ResumeTest(ChartCase):

    def start_stream(self, name, *gw_args):
        """Gateway, a keeper socket A subscribed to name (keeps it active) and a Model."""
        self.start_gateway("--intervals", "1s,1m", *gw_args)
        keeper = self.connect(user_id="keeper", name="A")
        self.sub(keeper, [name])
        self.wait_channel_ready("md:" + name)
        return keeper, Model(name, ["1s", "1m"])

    def push(self, keeper, m, n):
        """Publish n more ticks (each a new 1s bucket every other tick) and wait until the
        gateway relayed them (the keeper saw the last)."""
        for _ in range(n):
            i = m.seq
            d = tk(300 + (i * 3) % 7, T + 500 * i + 7, 1 + i % 3)
            m.tick(d)
            self.publish("md:" + m.instrument, d)
        keeper.recv_until(lambda f: f.get("type") == "tick" and f["seq"] == m.seq)

    def test_recovered_replays_missed_ticks_and_bars(self):
        keeper, m = self.start_stream("rs1")
        sid = self.make_session("u1")
        b = self.connect(sid=sid, name="B")
        self.sub(b, ["rs1"], ["1s", "1m"])
        self.push(keeper, m, 5)
        k = b.recv_until(lambda f: f.get("type") == "tick" and f["seq"] == 5)[-1]["seq"]
        b.close()
        self.push(keeper, m, 4)
        n = m.seq
        resumes = self.metrics().value("chartgate_resumes_total")
        b2 = self.connect(sid=sid, name="B-again")
        reply, snaps = self.sub(b2, ["rs1"], ["1s", "1m"], since={"rs1": k})
        self.assertEqual(reply["recovered"], {"rs1": True})
        self.assertEqual(snaps, [])
        frames = b2.barrier()
        ticks = [f for f in frames if f["type"] == "tick"]
        self.assertEqual([t["seq"] for t in ticks], list(range(k + 1, n + 1)))
        self.assertEqual(frames[:len(ticks)], ticks, "the missed ticks come first, in order")
        want = m.bars_since("1s", k) + m.bars_since("1m", k)
        self.assertTrue(want, "test premise: bars changed after since")
        self.assert_bars(frames[len(ticks):], want, "bars replayed after since")
        self.assertEqual(self.metrics().value("chartgate_resumes_total"), resumes + 1)
        # and live frames continue right after
        d = tk(1, T + 500 * n + 7, 1)
        want = m.tick(d)
        (got,) = self.feed("rs1", d, n + 1, [b2])
        self.assert_bars(got, want, "live bars after the resume")
        # since == current seq: recovered, nothing to replay
        b3 = self.connect(sid=sid, name="B-current")
        reply, snaps = self.sub(b3, ["rs1"], since={"rs1": m.seq})
        self.assertEqual((reply["recovered"], snaps), ({"rs1": True}, []))
        self.assertEqual(b3.barrier(), [])

    def test_ring_boundaries(self):
        keeper, m = self.start_stream("rs2", "--resume-ring", "4")
        self.push(keeper, m, 10)  # the ring holds ticks 7..10
        cases = [(6, True), (7, True), (10, True), (5, False), (2, False), (0, False),
                 (11, False), (10 ** 9, False)]
        for since, ok in cases:
            c = self.connect(name="since-%d" % since)
            reply, snaps = self.sub(c, ["rs2"], ["1s"], since={"rs2": since})
            self.assertEqual(reply["recovered"], {"rs2": ok}, "since %d" % since)
            frames = c.barrier()
            if ok:
                self.assertEqual(snaps, [])
                self.assertEqual([f["seq"] for f in frames if f["type"] == "tick"],
                                 list(range(since + 1, 11)), "since %d" % since)
                self.assert_bars([f for f in frames if f["type"] == "bar"],
                                 m.bars_since("1s", since), "since %d" % since)
            else:
                (snap,) = snaps
                self.assertEqual((snap["seq"], snap["last"]), (10, m.last), "since %d" % since)
                self.assertEqual(snap["bars"], m.snapshot_bars(["1s"]))
                self.assertEqual(frames, [], "since %d: only the snapshot" % since)
        # several instruments, request order; names in since but not in instruments ignored
        c = self.connect(name="mixed")
        reply, snaps = self.sub(c, ["rs2", "other"], ["1s"],
                                since={"rs2": 8, "other": 0, "absent": 3})
        self.assertEqual(reply["recovered"], {"rs2": True, "other": False})
        self.assertEqual([(s["instrument"], s["seq"]) for s in snaps], [("other", 0)])
        ticks = [f["seq"] for f in c.history if f.get("type") == "tick"]
        self.assertEqual(ticks, [9, 10])
        order = [f["type"] for f in c.history if f.get("type") in ("tick", "snapshot")]
        self.assertEqual(order, ["tick", "tick", "snapshot"], "instruments in request order")
        # bad since
        for i, bad in enumerate(({"rs2": -1}, {"rs2": "3"}, {"rs2": 1.5}, [3], 3)):
            err = c.request({"action": "subscribe", "instruments": ["rs2"], "since": bad,
                             "id": 40 + i}, validate=False)
            self.assertEqual((err["type"], err["code"], err["id"]),
                             ("error", "bad_request", 40 + i), "since=%r" % (bad,))

    def test_since_needs_this_process_epoch(self):
        """§15: seq numbers are per process; since with another epoch, or none, recovers
        nothing (a restarted gateway, or another process behind the balancer, must not replay
        its own unrelated seq range as if it were the client's)."""
        keeper, m = self.start_stream("ep1")
        self.push(keeper, m, 6)
        mine = harness.WSClient.epochs[self.gw.port]
        for epoch, ok in ((mine, True), ("0123456789abcdef", False), (None, False)):
            c = self.connect(name="epoch-%s" % epoch)
            reply, snaps = self.sub(c, ["ep1"], ["1s"], since={"ep1": 4}, epoch=epoch)
            self.assertEqual(reply["epoch"], mine)
            self.assertEqual(reply["recovered"], {"ep1": ok}, "epoch %s" % epoch)
            self.assertEqual(len(snaps), 0 if ok else 1, "epoch %s" % epoch)
        c = self.connect(name="bad-epoch")
        err = c.request({"action": "subscribe", "instruments": ["ep1"], "since": {"ep1": 4},
                         "epoch": "XYZ", "id": 9}, validate=False)
        self.assertEqual((err["type"], err["code"], err["id"]), ("error", "bad_request", 9))

    def test_upstream_gap_is_not_recovered(self):
        """The only subscriber leaves (the gateway stops listening) and comes back: what was
        published meanwhile never reached this process, so since cannot be recovered."""
        self.start_gateway("--intervals", "1s")
        sid = self.make_session("u1")
        b = self.connect(sid=sid, name="B")
        self.sub(b, ["gp1"], ["1s"])
        self.wait_channel_ready("md:gp1")
        for i in range(3):
            self.publish("md:gp1", tk(10 + i, T + 1000 * i, 1))
        k = b.recv_until(lambda f: f.get("type") == "tick" and f["seq"] == 3)[-1]["seq"]
        b.close()
        self.wait_numsub("md:gp1", 0)
        self.assertEqual(self.publish("md:gp1", tk(20, T + 5000, 1)), 0,
                         "test premise: nobody receives this tick")
        b2 = self.connect(sid=sid, name="B-again")
        reply, (snap,) = self.sub(b2, ["gp1"], ["1s"], since={"gp1": k})
        self.assertEqual(reply["recovered"], {"gp1": False})
        self.wait_channel_ready("md:gp1")
        self.publish("md:gp1", tk(21, T + 6000, 1))
        tick = b2.recv_until(is_tick("gp1"))[-1]
        self.assertEqual(tick["seq"], snap["seq"] + 1, "live ticks continue above the snapshot")


if __name__ == "__main__":
    harness.main()
