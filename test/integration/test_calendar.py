#!/usr/bin/python3
"""test_calendar.py -- bars that follow the exchange's trading calendar (PROTOCOL.md §18),
through the real gateway and Redis: a recorded day of CTP-style ticks over night and day
sessions (test/integration/fixtures) gives exactly the checked-in 1m/1h/1d bars, live frames,
recorded bars and scripts/import-bars agree; a quiet instrument's bar closes on time with no
later tick; a bad sessions file stops the gateway at start-up with one line.

The expected bars were produced by scripts/import-bars --ticks (Python, scripts/lib/cgcalendar.py)
and checked by hand where the calendar matters (the 1h and 1d starts below)."""

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import scaled, wait_for  # noqa: E402

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
TICKS = os.path.join(FIX, "rb2501-20241119.jsonl")
EXPECTED = os.path.join(FIX, "rb2501-20241119.expected.json")
SESSIONS = os.path.join(harness.REPO_ROOT, "scripts", "sessions", "cn-futures.json")
IMPORT_BARS = os.path.join(harness.REPO_ROOT, "scripts", "import-bars")
CST = 8 * 3600000  # Asia/Shanghai: UTC+8, no daylight saving


def cst(y, mo, d, h, mi):
    import datetime
    return int(datetime.datetime(y, mo, d, h, mi, tzinfo=datetime.timezone.utc)
               .timestamp() * 1000) - CST


def load_ticks():
    with open(TICKS) as f:
        return [json.loads(line) for line in f if line.strip()]


class CalendarTest(harness.GatewayTestCase):

    def recorded(self, key):
        return [json.loads(m) for m in self.r.zrange(key, 0, -1)]

    def test_recorded_day(self):
        """A CTP day (night 21:00-23:00, breaks, closing ticks, off-session ticks) published
        live: recorded bars, bar frames and scripts/import-bars all equal the fixture."""
        with open(EXPECTED) as f:
            want = json.load(f)
        # the calendar, checked by hand: hour bars from each session's open, cut at breaks;
        # the Tuesday bar labelled Tuesday 00:00 Shanghai, holding Monday night
        self.assertEqual([b[0] for b in want["1h"]],
                         [cst(2024, 11, 18, 21, 0), cst(2024, 11, 18, 22, 0),
                          cst(2024, 11, 19, 9, 0), cst(2024, 11, 19, 10, 0),
                          cst(2024, 11, 19, 10, 30), cst(2024, 11, 19, 13, 30),
                          cst(2024, 11, 19, 14, 30), cst(2024, 11, 19, 21, 0)])
        self.assertEqual([b[0] for b in want["1d"]],
                         [cst(2024, 11, 19, 0, 0), cst(2024, 11, 20, 0, 0)])
        ticks = load_ticks()
        self.assertEqual(want["1d"][0][1], ticks[0]["last_price"], "the auction tick opens")
        self.start_gateway("--record-bars", "--sessions", SESSIONS, "--timezone", "Asia/Shanghai",
                           "--intervals", "1m,1h,1d", "--cumulative-volume", "rb",
                           "--bar-close-grace-ms", "4000")
        c = self.connect(name="viewer")
        c.epoch_aligned = False
        c.subscribe(["rb2501"], intervals=["1h", "1d"])
        self.wait_channel_ready("md:rb2501")
        for t in ticks:
            self.publish("md:rb2501", t)
        # every bar closes: the last ones by the timer, a grace after their last tick
        for iv in ("1m", "1h", "1d"):
            key = "bars:rb2501:" + iv
            wait_for(lambda: self.r.zcard(key) >= len(want[iv]) or None, scaled(30),
                     "%d recorded %s bars (have %d)" % (len(want[iv]), iv, self.r.zcard(key)))
        time.sleep(0.5)  # nothing more may come
        for iv in ("1m", "1h", "1d"):
            self.assertEqual(self.recorded("bars:rb2501:" + iv), want[iv], "recorded " + iv)
        m = self.metrics()
        self.assertEqual(m.value("chartgate_bars_off_session_total"), 4)
        self.assertGreaterEqual(m.value("chartgate_bars_timer_closed_total"), 3)
        # the viewer saw every 1h/1d bar final, as recorded
        frames = c.recv_until(lambda f: f.get("type") == "bar" and f.get("final")
                              and f["interval"] == "1d" and f["bar"]["t"] == want["1d"][-1][0],
                              what="the last 1d bar, final")
        frames += c.barrier()
        final = {}
        for f in frames:
            if f.get("type") == "bar" and f["final"]:
                b = f["bar"]
                final.setdefault(f["interval"], {})[b["t"]] = [b[k] for k in "tohlcv"]
        for iv in ("1h", "1d"):
            self.assertEqual([final[iv][t] for t in sorted(final[iv])], want[iv], "final " + iv)
        # a new viewer's snapshot holds the same bars
        v = self.connect(name="late-viewer")
        v.epoch_aligned = False
        v.subscribe(["rb2501"], intervals=["1h", "1d"])
        self.assertEqual(v.snapshots["rb2501"]["bars"], {"1h": want["1h"], "1d": want["1d"]})
        self.assertEqual(v.snapshots["rb2501"]["tz"], "Asia/Shanghai")
        # offline, scripts/import-bars builds the same bars from the same ticks
        with tempfile.TemporaryDirectory() as out:
            r = subprocess.run([IMPORT_BARS, "--ticks", TICKS, "--instrument", "rb2501",
                                "--intervals", "1m,1h,1d", "--sessions", SESSIONS,
                                "--timezone", "Asia/Shanghai", "--cumulative-volume",
                                "--out", out], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            for iv in ("1m", "1h", "1d"):
                with open(os.path.join(out, "rb2501_%s.csv" % iv)) as f:
                    rows = [line.strip().split(",") for line in f][1:]
                self.assertEqual([[int(x[0])] + [json.loads(y) for y in x[1:]] for x in rows],
                                 want[iv], "import-bars --ticks " + iv)
            # and importing them under the calendar accepts every bar; a bar that is not a
            # bucket start of the calendar is refused, naming the file
            r = subprocess.run([IMPORT_BARS, "--redis", self.redis.url, "--prefix", "imp:",
                                "--sessions", SESSIONS, "--timezone", "Asia/Shanghai"]
                               + [os.path.join(out, "rb2501_%s.csv" % iv)
                                  for iv in ("1m", "1h", "1d")],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(self.recorded("imp:rb2501:1h"), want["1h"])
            bad = os.path.join(out, "rb2501_1h.csv")
            with open(bad, "a") as f:
                f.write("%d,1,1,1,1,1\n" % cst(2024, 11, 19, 12, 0))  # lunch break
            r = subprocess.run([IMPORT_BARS, "--redis", self.redis.url, "--prefix", "bad:",
                                "--sessions", SESSIONS, "--timezone", "Asia/Shanghai", bad],
                               capture_output=True, text=True, timeout=60)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(bad, r.stderr)
            self.assertEqual(self.r.exists("bad:rb2501:1h"), 0)

    def test_quiet_bar_closes_on_time(self):
        """One tick and silence: the bar is final at its end plus the grace, and recorded."""
        grace = 300
        self.start_gateway("--record-bars", "--timezone", "Asia/Shanghai", "--intervals", "1s,1m",
                           "--bar-close-grace-ms", str(grace))
        c = self.connect(name="viewer")
        c.subscribe(["QUIET1"], intervals=["1s"])
        self.wait_channel_ready("md:QUIET1")
        now = int(time.time() * 1000)
        self.publish("md:QUIET1", {"last_price": 10.5, "volume": 2, "ts": now})
        t = now - now % 1000
        f = c.recv_until(lambda f: f.get("type") == "bar" and f.get("final"),
                         what="the 1s bar, final, with no later tick")[-1]
        closed_at = time.time() * 1000
        self.assertEqual(f["bar"], {"t": t, "o": 10.5, "h": 10.5, "l": 10.5, "c": 10.5, "v": 2})
        self.assertGreaterEqual(closed_at, t + 1000 + grace - 50, "closed before its end + grace")
        wait_for(lambda: self.r.zcard("bars:QUIET1:1s") == 1 or None, scaled(10),
                 "the timer-closed bar recorded")
        self.assertEqual(self.recorded("bars:QUIET1:1s"), [[t, 10.5, 10.5, 10.5, 10.5, 2]])
        # the minute bar closes at its own end: not yet
        self.assertEqual(self.r.zcard("bars:QUIET1:1m"), 0)
        self.assertEqual(self.metrics().value("chartgate_bars_timer_closed_total"), 1)

    def test_shipped_file_matches_schema(self):
        """scripts/sessions/cn-futures.json: valid for the schema and for the gateway."""
        r = subprocess.run(["/usr/bin/python3", os.path.join(harness.REPO_ROOT, "proto",
                                                             "validate.py"),
                            "sessions", SESSIONS], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        gw = self.start_gateway("--sessions", SESSIONS, "--timezone", "Asia/Shanghai")
        self.assertIsNotNone(gw.port)

    def test_bad_sessions_file(self):
        """A bad file stops the gateway at start-up with one line naming file and position."""
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write('{"calendars": [{"instruments": ["rb*"],\n "day": [["09:00", "25:00"]]}]}')
            path = f.name
        self.addCleanup(os.unlink, path)
        p = subprocess.run([harness.gateway_binary(), "--listen", "127.0.0.1:1", "--sessions",
                            path], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stderr.strip().count("\n"), 0, p.stderr)
        self.assertIn(path, p.stderr)
        self.assertIn("calendars[0].day[0]", p.stderr)


if __name__ == "__main__":
    harness.main()
