#!/usr/bin/python3
"""test_overlays.py -- chart overlays end to end (PROTOCOL.md §17): operations applied by the
chartgate_overlay Redis function (FCALL, as a backend does, or an inbox envelope with a chart
target), live overlay frames to the subscriptions that asked, the overlays in a late
subscriber's snapshot, per-user overlays kept from other users, two gateways on one Redis
agreeing, a gateway restarted mid-session serving the same overlays, every bound, and bad
operations dropped and counted without harm.

Expected state comes from Model, a transcription of §17's rules (not of the Lua)."""

import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import compact, scaled, wait_for  # noqa: E402

import redis  # noqa: E402

INST = "rb2501"
T = 1732269600000  # a minute boundary
M = 60000
DROPPED = "chartgate_payloads_dropped_total"


def key(inst=INST):
    return "overlays:{%s}" % inst


def is_overlay(inst=INST, op=None):
    return lambda f: (f.get("type") == "overlay" and f.get("instrument") == inst
                      and (op is None or f["op"]["op"] == op))


class Model:
    """§17: set replaces, append upserts by t (time order, newest MAX_POINTS kept), remove
    drops; overlays are keyed by (name, user)."""

    def __init__(self, max_points=1000):
        self.max_points = max_points
        self.overlays = {}

    def apply(self, op):
        k = (op["overlay"], op.get("user"))
        if op["op"] == "remove":
            self.overlays.pop(k, None)
        elif op["op"] == "set":
            o = {m: v for m, v in op.items() if m != "op"}
            if o["kind"] != "level":
                o["points"] = self._merge([], o.get("points", []))
            self.overlays[k] = o
        else:
            o = self.overlays[k]
            o["points"] = self._merge(o["points"], op["points"])

    def _merge(self, have, new):
        by_t = {self._t(p): p for p in have}
        for p in new:
            by_t[self._t(p)] = p
        pts = [by_t[t] for t in sorted(by_t)]
        return pts[-self.max_points:]

    @staticmethod
    def _t(p):
        return p["t"] if isinstance(p, dict) else p[0]

    def visible(self, user):
        return sorted((o for (n, u), o in self.overlays.items() if u is None or u == user),
                      key=lambda o: (o["overlay"], o.get("user") or ""))


def norm(overlays):
    return sorted(overlays, key=lambda o: (o["overlay"], o.get("user") or ""))


class OverlayCase(harness.GatewayTestCase):

    def apply(self, op, inst=INST, model=None):
        """FCALL chartgate_overlay, as a backend does; returns the version."""
        v = self.r.fcall("chartgate_overlay", 1, key(inst), inst, compact(op))
        if model is not None:
            model.apply(op)
        return v

    def refused(self, op, inst=INST, text=None):
        with self.assertRaises(redis.ResponseError) as cm:
            self.r.fcall("chartgate_overlay", 1, key(inst), inst,
                         op if isinstance(op, str) else compact(op))
        self.assertIn("overlay:", str(cm.exception))
        if text:
            self.assertIn(text, str(cm.exception))
        return str(cm.exception)

    def viewer(self, user="u1", gw=None, overlays=True, intervals=("1m",)):
        c = self.connect(user_id=user, gw=gw)
        c.subscribe([INST], intervals=list(intervals), overlays=overlays)
        return c

    def snapshot_overlays(self, user="u1", gw=None):
        c = self.viewer(user, gw)
        return norm(c.snapshots[INST]["overlays"])

    def wait_functions(self):
        wait_for(lambda: self.r.execute_command("FUNCTION", "LIST", "LIBRARYNAME",
                                                "chartgate_overlays"),
                 scaled(10), "the gateway to load the overlay functions")

    def ops_of(self, frames):
        return [f["op"] for f in frames if f.get("type") == "overlay"]


LINE = {"op": "set", "overlay": "ma20", "kind": "line", "interval": "1m",
        "style": {"color": "#2962FF", "lineWidth": 2, "title": "MA20"},
        "points": [[T, 3850.5], [T + M, 3851.25]]}
HIST = {"op": "set", "overlay": "macd", "kind": "histogram", "interval": "1m",
        "style": {"pane": "below"}, "points": [[T, 1.5], [T + M, -0.5, "#ef5350"]]}
MARKS = {"op": "set", "overlay": "signals", "kind": "markers", "interval": "1m",
         "points": [{"t": T, "position": "below", "shape": "arrowUp", "color": "#26a69a",
                     "text": "buy"}]}
LEVEL = {"op": "set", "overlay": "stop", "kind": "level", "price": 3800, "color": "#f00",
         "title": "stop", "style": {"lineStyle": 2}}


class TestOverlays(OverlayCase):

    def test_each_kind_live_then_in_a_late_snapshot(self):
        self.start_gateway()
        self.wait_functions()
        model = Model()
        a = self.viewer("u1")
        self.assertEqual(a.snapshots[INST]["overlays"], [])
        plain = self.viewer("u1", overlays=False)  # did not ask: never sees one
        self.wait_channel_ready("chart:" + INST)
        versions = [self.apply(op, model=model) for op in (LINE, HIST, MARKS, LEVEL)]
        append = {"op": "append", "overlay": "ma20", "points": [[T + M, 3852], [T + 2 * M, 3853]]}
        versions.append(self.apply(append, model=model))
        versions.append(self.apply({"op": "append", "overlay": "signals", "points": [
            {"t": T + 2 * M, "position": "above", "shape": "arrowDown", "text": "sell"}]},
            model=model))
        self.assertEqual(versions, list(range(1, 7)))
        frames = a.collect(is_overlay(), 6)
        ops = self.ops_of(frames)
        self.assertEqual([o["v"] for o in ops], versions)
        self.assertEqual([o["op"] for o in ops], ["set"] * 4 + ["append"] * 2)
        self.assertEqual(ops[0]["points"], LINE["points"])
        self.assertEqual(ops[1]["points"], HIST["points"])
        self.assertEqual(ops[3]["price"], 3800)
        self.assertNotIn("points", ops[3])
        self.assertEqual(ops[4]["points"], append["points"])
        # A late subscriber sees the same picture: the appended point replaced t+1m.
        snap = self.snapshot_overlays("u2")
        self.assertEqual(snap, model.visible("u2"))
        ma = [o for o in snap if o["overlay"] == "ma20"][0]
        self.assertEqual(ma["points"], [[T, 3850.5], [T + M, 3852], [T + 2 * M, 3853]])
        self.assertEqual(ma["style"], LINE["style"])
        # remove: the frame, then gone from snapshots; removing again changes nothing
        v = self.apply({"op": "remove", "overlay": "ma20"}, model=model)
        self.assertEqual(a.recv_until(is_overlay(op="remove"))[-1]["op"],
                         {"op": "remove", "overlay": "ma20", "v": v})
        self.assertEqual(self.apply({"op": "remove", "overlay": "ma20"}), v)
        self.assertEqual(self.snapshot_overlays("u3"), model.visible("u3"))
        self.assertNotIn("ma20", [o["overlay"] for o in model.visible("u3")])
        self.assert_nothing_for(plain, "overlay frame")
        self.assert_nothing_for(a, "frame")

    def test_inbox_chart_target(self):
        self.start_gateway()
        self.wait_functions()
        a = self.viewer("u1")
        self.wait_channel_ready("chart:" + INST)
        self.rpush_inbox({"chart": INST, "data": LINE})
        f = a.recv_until(is_overlay(op="set"))[-1]
        self.assertEqual(f["op"]["points"], LINE["points"])
        self.wait_metric("chartgate_overlay_applied_total", lambda v: v == 1)
        self.assertEqual(int(self.r.hget(key(), "~v")), 1)

    def test_user_overlay_reaches_only_that_user(self):
        self.start_gateway()
        self.wait_functions()
        model = Model()
        u1a, u1b, u2 = self.viewer("u1"), self.viewer("u1"), self.viewer("u2")
        self.wait_channel_ready("chart:" + INST)
        mine = dict(LEVEL, overlay="entry", user="u1", price=3842.5, title="my entry")
        self.apply(mine, model=model)
        self.apply(dict(LINE, user="u1"), model=model)  # same name as a shared one: separate
        self.apply(LINE, model=model)
        for c in (u1a, u1b):
            ops = self.ops_of(c.collect(is_overlay(), 3))
            self.assertEqual([(o["overlay"], o.get("user")) for o in ops],
                             [("entry", "u1"), ("ma20", "u1"), ("ma20", None)])
        ops = self.ops_of(u2.collect(is_overlay(), 1))
        self.assertEqual([(o["overlay"], o.get("user")) for o in ops], [("ma20", None)])
        self.assert_nothing_for(u2, "overlay frame")
        self.assertEqual(self.snapshot_overlays("u1"), model.visible("u1"))
        self.assertEqual(len(model.visible("u1")), 3)
        self.assertEqual(self.snapshot_overlays("u2"), model.visible("u2"))
        self.assertEqual([o["overlay"] for o in model.visible("u2")], ["ma20"])
        # removing u1's ma20 leaves the shared one
        self.apply({"op": "remove", "overlay": "ma20", "user": "u1"}, model=model)
        u1a.recv_until(is_overlay(op="remove"))
        self.assert_nothing_for(u2, "overlay frame")
        self.assertEqual(self.snapshot_overlays("u1"), model.visible("u1"))

    def test_two_gateways_on_one_redis_agree(self):
        gw1 = self.start_gateway()
        gw2 = self.start_gateway()
        self.wait_functions()
        a, b = self.viewer("u1", gw=gw1), self.viewer("u2", gw=gw2)
        self.wait_numsub("chart:" + INST, 2)
        model = Model()
        ops = [LINE, HIST, {"op": "append", "overlay": "ma20", "points": [[T + 2 * M, 1.0]]},
               {"op": "append", "overlay": "ma20", "points": [[T + 2 * M, 2.0]]},
               {"op": "remove", "overlay": "macd"}, MARKS]
        for i, op in enumerate(ops):
            if i % 2:
                self.rpush_inbox({"chart": INST, "data": op})  # popped by one of the two
                model.apply(op)
                wait_for(lambda: self.r.llen(self.inbox_key) == 0, scaled(10), "inbox drained")
                wait_for(lambda: int(self.r.hget(key(), "~v") or 0) == i + 1, scaled(10),
                         "op %d applied" % i)
            else:
                self.apply(op, model=model)
        fa, fb = a.collect(is_overlay(), len(ops)), b.collect(is_overlay(), len(ops))
        self.assertEqual(self.ops_of(fa), self.ops_of(fb))
        self.assertEqual([o["v"] for o in self.ops_of(fa)], list(range(1, len(ops) + 1)))
        # applied once each: no gateway wrote the state a second time
        self.assertEqual(int(self.r.hget(key(), "~v")), len(ops))
        self.assertEqual(self.snapshot_overlays("u3", gw=gw1), model.visible("u3"))
        self.assertEqual(self.snapshot_overlays("u3", gw=gw2), model.visible("u3"))

    def test_gateway_restarted_mid_session_serves_the_same_overlays(self):
        gw1 = self.start_gateway()
        self.wait_functions()
        model = Model()
        a = self.viewer("u1", gw=gw1)
        self.wait_channel_ready("chart:" + INST)
        for op in (LINE, dict(LEVEL, user="u1"), MARKS):
            self.apply(op, model=model)
        a.collect(is_overlay(), 3)
        a.close()
        gw1.stop()
        # operations go on while no gateway runs: Redis holds the state
        self.apply({"op": "append", "overlay": "ma20", "points": [[T + 5 * M, 3860]]},
                   model=model)
        gw2 = self.start_gateway()
        self.assertEqual(self.snapshot_overlays("u1", gw=gw2), model.visible("u1"))
        self.assertEqual(len(model.visible("u1")), 3)
        self.assertEqual(self.snapshot_overlays("u2", gw=gw2), model.visible("u2"))

    def test_resume_brings_a_sync(self):
        self.start_gateway()
        self.wait_functions()
        model = Model()
        self.viewer("u2")  # keeps the instrument's chart state: resumable
        a = self.viewer("u1")
        self.wait_channel_ready("chart:" + INST)
        self.publish("md:" + INST, {"last_price": 1, "ts": T})
        seq = a.recv_until(harness.is_tick(INST))[-1]["seq"]
        self.apply(LINE, model=model)
        a.recv_until(is_overlay())
        a.close()
        self.apply(HIST, model=model)  # missed while away
        b = self.connect(user_id="u1")
        b.subscribe([INST], intervals=["1m"], overlays=True, since={INST: seq})
        f = b.recv_until(is_overlay(op="sync"))[-1]
        self.assertEqual(f["op"]["v"], 2)
        self.assertEqual(norm(f["op"]["overlays"]), model.visible("u1"))


    def test_redis_restart_brings_a_sync(self):
        """Operations may be lost while the pub/sub link is down: every viewer is sent the
        state whole (sync) when the links are back, and live frames carry on."""
        self.start_gateway()
        self.wait_functions()
        model = Model()
        a = self.viewer("u1")
        self.wait_channel_ready("chart:" + INST)
        self.apply(LINE, model=model)
        self.apply(dict(LEVEL, user="u1"), model=model)
        a.collect(is_overlay(), 2)
        self.kill_redis(save=True)
        self.restart_redis()
        f = a.recv_until(is_overlay(op="sync"), timeout=scaled(20))[-1]
        self.assertEqual(f["op"]["v"], 2)
        self.assertEqual(norm(f["op"]["overlays"]), model.visible("u1"))
        self.wait_functions()
        self.wait_channel_ready("chart:" + INST)
        v = self.apply({"op": "append", "overlay": "ma20", "points": [[T + 9 * M, 1]]},
                       model=model)
        self.assertEqual(a.recv_until(is_overlay(op="append"))[-1]["op"]["v"], v)
        self.wait_metric("chartgate_overlay_syncs_total", lambda x: x >= 1)


class TestOverlayBounds(OverlayCase):

    def test_every_bound(self):
        self.start_gateway("--overlay-max", "3", "--overlay-points", "10")
        self.wait_functions()
        model = Model(max_points=10)
        a = self.viewer("u1")
        self.wait_channel_ready("chart:" + INST)
        for name in ("a", "b", "c"):
            self.apply(dict(LINE, overlay=name, points=[]), model=model)
        self.refused(dict(LINE, overlay="d"), text="3 overlays")
        self.apply(dict(LINE, overlay="c", points=[[T, 1]]), model=model)  # replacing is fine
        self.apply({"op": "remove", "overlay": "c"}, model=model)
        v9 = self.apply(dict(LINE, overlay="d", user="u9", points=[]), model=model)  # room again
        # points: at most 10 per operation; an overlay keeps its newest 10
        self.refused(dict(LINE, overlay="a", points=[[T + i * M, i] for i in range(11)]),
                     text="more than 10 points")
        for k in range(3):
            self.apply({"op": "append", "overlay": "a",
                        "points": [[T + (k * 5 + i) * M, k * 5 + i] for i in range(5)]},
                       model=model)
        got = [o for o in self.snapshot_overlays("u2") if o["overlay"] == "a"][0]
        self.assertEqual(got["points"], [[T + i * M, i] for i in range(5, 15)])
        self.assertEqual(self.r.zcard(key() + ":p:a"), 10)
        # sizes
        self.refused(dict(MARKS, overlay="a", points=[dict(MARKS["points"][0], text="x" * 65)]),
                     text="at most 64 bytes")
        self.refused(dict(LINE, overlay="b", style={"k%d" % i: i for i in range(17)}),
                     text="more than 16 members")
        self.refused(dict(LINE, overlay="b", style={"title": "x" * 65}), text="style")
        self.refused(dict(LINE, overlay="b", style={c * 30: "x" * 60 for c in "abcdef"}),
                     text="longer than 512 bytes")
        self.refused(dict(LEVEL, overlay="b", title="t" * 65), text="title")
        self.refused(dict(LEVEL, overlay="b", color="#" + "f" * 40), text="colour")
        self.refused(dict(LINE, overlay="x" * 65), text='"overlay"')
        self.refused(dict(LINE, overlay="b", user="u" * 129), text='"user"')
        self.refused(compact(dict(LINE, overlay="b", pad="x" * 262144)), text="longer than")
        self.assertEqual(self.snapshot_overlays("u2"), model.visible("u2"))
        self.assertEqual(self.snapshot_overlays("u9"), model.visible("u9"))
        # what was applied was published, each once, in version order (u9's to u9 only);
        # nothing refused was
        v = int(self.r.hget(key(), "~v"))
        ops = self.ops_of(a.collect(is_overlay(), v - 1))
        self.assertEqual([o["v"] for o in ops], [i for i in range(1, v + 1) if i != v9])
        self.assertEqual([f for f in a.barrier() if f.get("type") == "overlay"], [])


    def test_overlays_too_large_for_the_queue_are_left_out(self):
        self.start_gateway("--queue-max-bytes", "8192")
        self.wait_functions()
        self.apply(dict(LINE, points=[[T + i * M, 3850.125 + i] for i in range(400)]))
        c = self.connect(user_id="u1")
        reply = c.request({"action": "subscribe", "instruments": [INST], "overlays": True,
                           "id": 4})
        self.assertEqual(reply["type"], "subscribed")
        snap = c.take_snapshots([INST])[0]
        self.assertNotIn("overlays", snap)  # left out, the socket stays open
        self.wait_metric("chartgate_overlay_oversize_total", lambda v: v >= 1)
        self.assertEqual(c.request({"action": "ping", "id": 5})["type"], "pong")
        # live operations still come
        self.wait_channel_ready("chart:" + INST)
        self.apply({"op": "append", "overlay": "ma20", "points": [[T + 500 * M, 1]]})
        c.recv_until(is_overlay(op="append"))


class TestBadOperations(OverlayCase):

    def test_bad_operations_are_refused_dropped_and_counted(self):
        self.start_gateway()
        self.wait_functions()
        model = Model()
        a = self.viewer("u1")
        self.wait_channel_ready("chart:" + INST)
        self.apply(LINE, model=model)
        a.recv_until(is_overlay())
        bad = [
            "not json", "[1,2]", {"op": "move", "overlay": "x"}, {"op": "set", "overlay": "x"},
            {"op": "set", "overlay": "x", "kind": "line"},  # no interval
            {"op": "set", "overlay": "x", "kind": "line", "interval": "7m", "points": []},
            dict(LINE, points=[[T]]), dict(LINE, points=[[T, "1"]]), dict(LINE, points=[[-1, 1]]),
            dict(LINE, points=[[T + 0.5, 1]]), dict(LINE, points={"t": 1}),
            dict(HIST, points=[[T, 1, 5]]), dict(MARKS, points=[[T, 1]]),
            dict(MARKS, points=[{"t": T, "position": "left", "shape": "circle"}]),
            dict(MARKS, points=[{"t": T, "position": "above", "shape": "star"}]),
            dict(LEVEL, points=[]), dict(LEVEL, price="high"), dict(LINE, user=""),
            {"op": "append", "overlay": "nothing", "points": [[T, 1]]},
            {"op": "append", "overlay": "ma20", "points": []},
            {"op": "append", "overlay": "ma20"}, dict(LINE, style=[1, 2]),
            dict(LINE, overlay="a b"), dict(LINE, overlay=""),
        ]
        for op in bad:
            self.refused(op)
        self.apply(LEVEL, model=model)
        a.recv_until(is_overlay(op="set"))
        self.refused({"op": "append", "overlay": "stop", "points": [[T, 1]]}, text="level")
        # the key must be the instrument's; an invalid instrument is refused
        with self.assertRaises(redis.ResponseError):
            self.r.fcall("chartgate_overlay", 1, "overlays:{other}", INST, compact(LINE))
        with self.assertRaises(redis.ResponseError):
            self.r.fcall("chartgate_overlay", 1, "overlays:{a b}", "a b", compact(LINE))
        # Through the inbox: refused by Redis, counted by the gateway that popped it.
        for op in bad[2:6]:
            self.rpush_inbox({"chart": INST, "data": op})
        self.rpush_inbox({"chart": "bad name!", "data": LINE})
        self.wait_metric(DROPPED, lambda v: v == 4, reason="bad_overlay")
        self.wait_metric(DROPPED, lambda v: v >= 1, reason="no_target")
        # Published straight on the channel without going through Redis's function: dropped.
        before = self.metrics().value(DROPPED, reason="bad_json") or 0
        self.publish("chart:" + INST, compact(dict(LINE, overlay="raw")))
        self.publish("chart:" + INST, compact({"op": "set", "overlay": "raw", "v": "1"}))
        self.publish("chart:" + INST, compact({"op": "set", "overlay": "raw", "v": 9,
                                                 "user": 5}))
        self.publish("chart:" + INST, "{nope")
        self.publish("chart:" + INST, "[]")
        self.wait_metric(DROPPED, lambda v: v == 8, reason="bad_overlay")
        self.wait_metric(DROPPED, lambda v: v == before + 1, reason="bad_json")
        # nothing reached the viewer, the state is what the good operations made, and the
        # gateway goes on serving
        self.assertEqual([f for f in a.barrier() if f.get("type") == "overlay"], [])
        self.assertEqual(self.snapshot_overlays("u2"), model.visible("u2"))
        self.assertEqual(int(self.r.hget(key(), "~v")), 2)


INDICATORS = os.path.join(harness.REPO_ROOT, "scripts", "services", "indicators")


class TestIndicatorsService(OverlayCase):
    """scripts/services/indicators against recorded bars and live ticks: what it publishes is
    checked against the indicators computed here, straight from their definitions."""

    def start_service(self, *extra):
        logf = os.path.join(self.logdir, "indicators.log")
        with open(logf, "ab") as out:
            proc = harness.track(subprocess.Popen(
                ["/usr/bin/python3", INDICATORS, "--redis", self.redis.url, "--intervals", "1m",
                 "--update-ms", "50"] + list(extra),
                stdin=subprocess.DEVNULL, stdout=out, stderr=out))

        def stop():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                rc, _ = harness.stop_proc(proc, 0, 10)
                self.assertEqual(rc, 0, harness.tail(logf))
        self.addCleanup(stop)
        wait_for(lambda: proc.poll() is not None or "started" in open(logf).read(), scaled(10),
                 "the indicators service to start")
        self.assertIsNone(proc.poll(), harness.tail(logf))
        return proc, logf

    def test_lines_and_crossovers_from_bars_and_ticks(self):
        self.start_gateway()
        self.wait_functions()
        # 80 completed 1m bars: falling for 60, then rising: MA20 crosses MA60 upward once
        closes = [100.0 - i * 0.5 for i in range(60)] + [70.0 + i * 3 for i in range(20)]
        t0 = T - 80 * M
        for i, c in enumerate(closes):
            self.r.zadd("bars:%s:1m" % INST,
                        {compact([t0 + i * M, c, c + 1, c - 1, c, 10]): t0 + i * M})
        a = self.viewer("u1")
        self.wait_channel_ready("chart:" + INST)
        self.start_service()
        wait_for(lambda: self.r.pubsub_numpat() >= 1, scaled(10),
                 "the service's md:* subscription")
        self.publish("md:" + INST, {"last_price": 130.0, "volume": 5, "ts": T + 1000})
        sets = {f["op"]["overlay"]: f["op"] for f in a.collect(is_overlay(op="set"), 6,
                                                                 timeout=scaled(15))}
        self.assertEqual(sorted(sets), ["bb_lower.1m", "bb_upper.1m", "cross.1m", "ma20.1m",
                                        "ma60.1m", "vwap.1m"])
        allc = closes + [130.0]
        ts = [t0 + i * M for i in range(80)] + [T]

        def ma(n, i):
            return sum(allc[i - n + 1:i + 1]) / n
        ma20 = dict((t, v) for t, v in sets["ma20.1m"]["points"])
        self.assertEqual(sorted(ma20), ts[19:])
        for i in range(19, 81):
            self.assertAlmostEqual(ma20[ts[i]], ma(20, i), places=6)
        ma60 = dict((t, v) for t, v in sets["ma60.1m"]["points"])
        self.assertEqual(sorted(ma60), ts[59:])
        for i in range(59, 81):
            self.assertAlmostEqual(ma60[ts[i]], ma(60, i), places=6)
        up = dict((t, v) for t, v in sets["bb_upper.1m"]["points"])
        lo = dict((t, v) for t, v in sets["bb_lower.1m"]["points"])
        for i in (19, 50, 80):
            m = ma(20, i)
            sd = (sum((c - m) ** 2 for c in allc[i - 19:i + 1]) / 20) ** 0.5
            self.assertAlmostEqual(up[ts[i]], m + 2 * sd, places=6)
            self.assertAlmostEqual(lo[ts[i]], m - 2 * sd, places=6)
        # the crossover: the first completed bar where MA20 > MA60 after being <=
        want = [ts[i] for i in range(60, 80)
                if ma(20, i - 1) <= ma(60, i - 1) and ma(20, i) > ma(60, i)]
        self.assertEqual(len(want), 1)
        marks = sets["cross.1m"]["points"]
        self.assertEqual([(m["t"], m["shape"], m["position"]) for m in marks],
                         [(want[0], "arrowUp", "below")])
        self.assertEqual(sets["ma20.1m"]["style"]["title"], "MA20")
        # VWAP of the UTC day on the typical price: (h + l + c) / 3 = c here; the forming bar
        # has the tick's volume (per-tick volume: no --cumulative-volume)
        vw = dict((t, v) for t, v in sets["vwap.1m"]["points"])
        vols = [10] * 80 + [5]
        self.assertAlmostEqual(vw[T], sum(c * v for c, v in zip(allc, vols)) / sum(vols),
                               places=6)
        # the forming bar moves: an append with its new values
        self.publish("md:" + INST, {"last_price": 140.0, "volume": 5, "ts": T + 2000})
        f = a.recv_until(lambda f: is_overlay(op="append")(f)
                         and f["op"]["overlay"] == "ma20.1m", timeout=scaled(10))[-1]
        allc[-1] = 140.0
        self.assertEqual(f["op"]["points"][-1][0], T)
        self.assertAlmostEqual(f["op"]["points"][-1][1], ma(20, 80), places=6)
        # a late viewer sees the same picture
        snap = {o["overlay"]: o for o in self.snapshot_overlays("u2")}
        self.assertAlmostEqual(dict(map(tuple, snap["ma20.1m"]["points"]))[T], ma(20, 80),
                               places=6)


if __name__ == "__main__":
    harness.main()
