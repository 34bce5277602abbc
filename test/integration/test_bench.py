#!/usr/bin/python3
"""test_bench.py -- the benchmark's own tools, end to end, on a small load (scripts/bench/run --quick).

The benchmark is not a test (its figures depend on the machine), but its tools must keep
working and keep counting right: this runs every scenario with tiny loads against real
processes (redis-server, chartgate, nginx via scripts/nginx/run, the tornado reference) and
checks what the report says -- every step connected every socket, every published tick that
should arrive arrived exactly once, latencies are plausible, handshakes were all 101, and
BENCHMARKS.md and the plot were written. A counting bug in cg-load or cg-publish, or a
scenario that silently measured nothing, fails here.

Run: /usr/bin/python3 test/integration/test_bench.py --build BUILD_DIR
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build")


class BenchQuick(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cg-bench-test-")
        cls.out = os.path.join(cls.tmp, "BENCHMARKS.md")
        cls.res = os.path.join(cls.tmp, "results")
        run = subprocess.run(
            ["/usr/bin/python3", os.path.join(ROOT, "scripts", "bench", "run"), "--quick",
             "--build", BUILD, "--out", cls.out, "--results", cls.res],
            capture_output=True, text=True, timeout=600)
        sys.stderr.write(run.stderr[-6000:])
        cls.rc = run.returncode
        cls.results = None
        path = os.path.join(cls.res, "results.json")
        if os.path.exists(path):
            with open(path) as f:
                cls.results = json.load(f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def steps(self, *keys):
        out = []
        for k in keys:
            self.assertIn(k, self.results, "scenario %s missing from results" % k)
            self.assertTrue(self.results[k], "scenario %s has no steps" % k)
            out += self.results[k]
        return out

    def test_run_succeeded(self):
        self.assertEqual(self.rc, 0)
        self.assertIsNotNone(self.results)
        with open(self.out) as f:
            md = f.read()
        for heading in ("## Goals", "Fan-out", "Tornado reference", "Behind nginx", "## Scale",
                        "## Handshakes"):
            self.assertIn(heading, md)
        self.assertTrue(os.path.getsize(os.path.join(self.res, "latency.png")) > 1000)

    def test_fanout_steps_count_exactly(self):
        for s in self.steps("fanout", "fanout_zipf", "bursty", "bursty_wide", "tornado",
                            "tornado_bursty", "nginx1", "nginx2", "nginx1_bursty",
                            "nginx2_bursty", "overlay", "overlay_ticks"):
            with self.subTest(step=s["label"]):
                self.assertGreater(s["conns"], 0)
                self.assertEqual(s["connect_failed"], 0)
                self.assertGreater(s["published"], 0)
                self.assertGreater(s["expected"], 0)
                # A light load: every frame arrives, none twice, none conflated.
                self.assertEqual(s["delivered"], s["expected"])
                self.assertEqual(s["missing"], 0)
                self.assertEqual(s["conflated"], 0)
                self.assertEqual(s["latency_us"]["count"], s["delivered"])
                self.assertGreater(s["latency_us"]["p50"], 0)
                self.assertLess(s["latency_us"]["p99"], 1_000_000)  # sanity, not a speed check
                self.assertTrue(s["server_cpu"])  # figures per process (10 ms ticks: may be 0)

    def test_bursty_batches_frames(self):
        # Every socket holds all 100 instruments and they tick together: many frames share a
        # WebSocket message on chartgate, one frame per message on tornado.
        for s in self.results["bursty"]:
            self.assertGreater(s["frames_per_msg"], 5, s["label"])
        for s in self.results["tornado_bursty"]:
            self.assertAlmostEqual(s["frames_per_msg"], 1.0, delta=0.01)

    def test_nginx_spreads_over_gateways(self):
        for s in self.results["nginx2"]:
            self.assertIn("nginx", s["server_cpu"])
            self.assertIn("chartgate", s["server_cpu"])

    def test_scale_reports_memory(self):
        for s in self.steps("scale"):
            self.assertGreater(s["conns"], 0)
            self.assertGreater(s["rss_mb"], 0)
            self.assertGreater(s["kb_per_conn"], 0)

    def test_bad_options_fail_at_start(self):
        # One line saying what and where, exit 2, before touching Redis or a socket.
        load = os.path.join(BUILD, "scripts", "cg-load")
        pub = os.path.join(BUILD, "scripts", "cg-publish")
        for argv, flag in (
                ([load, "--url", "ws://127.0.0.1:1/ws", "--redis", "redis://127.0.0.1:1",
                  "--conns", "nan"], "--conns"),
                ([load, "--url", "ws://10.0.0.1:80/ws", "--redis", "redis://127.0.0.1:1"],
                 "loopback"),
                ([pub, "--rate", "nan", "--duration", "1"], "--rate"),
                ([pub, "--rate", "10", "--duration", "1e999"], "--duration")):
            with self.subTest(argv=argv[1:]):
                r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertIn(flag, r.stderr)

    def test_publish_fn_counts(self):
        # Function vs PUBLISH (issue #14): 2 loads x 2 subscriber counts x 2 modes; the one
        # subscriber got every tick once, the streams stayed capped near their length.
        cells = self.steps("publish_fn")
        self.assertEqual(sorted((c["mode"], c["subs"], c["rate"] is None) for c in cells),
                         sorted((m, s, sat) for m in ("publish", "fcall") for s in (0, 1)
                                for sat in (False, True)))
        for c in cells:
            for run in c["runs"]:
                with self.subTest(mode=c["mode"], subs=c["subs"], rate=c["rate"]):
                    self.assertGreater(run["published"], 0)
                    self.assertGreater(run["redis_us_per_tick"], 0)
                    if c["subs"]:
                        self.assertEqual(run["received"], run["published"])
                    self.assertEqual(run["receivers"],
                                     run["published"] if c["mode"] == "publish" and c["subs"]
                                     else 0)
                    if c["mode"] == "fcall":
                        ln = self.results["publish_fn_meta"]["stream_len"]
                        self.assertGreaterEqual(run["stream_len_bn0"], ln)
                        self.assertLess(run["stream_len_bn0"], ln + 100)  # one stream node
        with open(self.out) as f:
            self.assertIn("vs plain `PUBLISH`", f.read())

    def test_workers_scenario(self):
        # --workers 1 and 2 on one port: every handshake a 101, every frame delivered once.
        ws = self.results["workers"]
        self.assertEqual([w["workers"] for w in ws], [1, 2])
        for w in ws:
            with self.subTest(workers=w["workers"]):
                h = w["handshakes"]
                self.assertGreater(h["ok"], 100)
                self.assertEqual(set(h["status"]), {"101"})
                self.assertTrue(w["fanout"])
                for s in w["fanout"]:
                    self.assertEqual(s["connect_failed"], 0)
                    self.assertGreater(s["expected"], 0)
                    self.assertEqual(s["delivered"], s["expected"])
                    self.assertEqual(s["missing"], 0)
        with open(self.out) as f:
            self.assertIn("`--workers 1` vs `--workers 2`", f.read())

    def test_handshakes(self):
        hs = self.results["handshake"]
        alone = [h for h in hs if "per_s" in h]
        self.assertEqual(len(alone), 2)
        for h in alone:
            self.assertGreater(h["ok"], 100)
            self.assertEqual(set(h["status"]), {"101"})
            self.assertGreater(h["per_s"], 0)
        churn = [h["step"] for h in hs if "step" in h and "churn" in h["step"]]
        self.assertEqual(len(churn), 1)
        self.assertGreater(churn[0]["churn"]["handshakes"], 0)
        self.assertEqual(churn[0]["delivered"], churn[0]["expected"])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=BUILD)
    ap.add_argument("--gateway")  # meson passes it to every integration test; unused here
    a, rest = ap.parse_known_args()
    BUILD = a.build
    unittest.main(argv=[sys.argv[0]] + rest)
