#!/usr/bin/python3
"""test_http.py -- the plain HTTP side (/healthz, /metrics, static files) and the process
(SIGTERM/SIGINT shutdown, --config, bad settings -> one line + exit 2, --help)."""

import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_for  # noqa: E402

METRIC_NAMES = [
    "chartgate_connections", "chartgate_users", "chartgate_subscriptions",
    "chartgate_instruments", "chartgate_frames_out_total", "chartgate_bytes_out_total",
    "chartgate_ws_messages_out_total", "chartgate_frames_conflated_total",
    "chartgate_slow_disconnects_total", "chartgate_handshakes_total",
    "chartgate_handshake_rejections_total", "chartgate_redis_up",
    "chartgate_redis_reconnects_total", "chartgate_published_total",
    "chartgate_payloads_dropped_total", "chartgate_sessions_revoked_total",
    "chartgate_client_errors_total",
]


class HttpTest(harness.GatewayTestCase):

    def test_healthz(self):
        gw = self.start_gateway()
        status, headers, body = gw.get("/healthz")
        self.assertEqual(status, 200)
        self.assertIn("json", headers.get("content-type", ""))
        doc = json.loads(body)
        self.assertEqual(doc["status"], "ok")
        for link in ("pubsub", "command", "inbox"):
            self.assertIs(doc["redis"][link], True, link)
        self.assertIs(type(doc["connections"]), int)
        self.assertEqual(doc["connections"], 0)
        self.assertIsInstance(doc["uptime_s"], (int, float))
        self.assertGreaterEqual(doc["uptime_s"], 0)
        self.connect(user_id="u1")
        self.connect(user_id="u2")
        wait_for(lambda: gw.healthz()[1]["connections"] == 2, 3, "healthz connections == 2")

    def test_metrics(self):
        gw = self.start_gateway()
        status, headers, body = gw.get("/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers.get("content-type", "").startswith("text/plain"),
                        headers.get("content-type"))
        m = harness.Metrics.parse(body.decode("utf-8"))
        missing = [n for n in METRIC_NAMES if n not in m.names()]
        self.assertEqual(missing, [], "metrics missing from /metrics")
        for link in ("pubsub", "command", "inbox", "session"):
            self.assertTrue(m.has("chartgate_redis_up", link=link), "redis_up{link=%s}" % link)
        for link in ("pubsub", "command", "inbox"):
            self.assertEqual(m.value("chartgate_redis_up", link=link), 1, link)
        # gauges follow what happens
        a = self.connect(user_id="u1")
        b = self.connect(user_id="u1")
        c = self.connect(user_id="u2")
        a.subscribe(["rb2501", "au2412"])
        b.subscribe(["rb2501"])
        c.barrier()
        m = gw.metrics()
        self.assertEqual(m.value("chartgate_connections"), 3)
        self.assertEqual(m.value("chartgate_users"), 2)
        self.assertEqual(m.value("chartgate_subscriptions"), 3)
        self.assertEqual(m.value("chartgate_instruments"), 2)
        c.close()
        self.wait_metric("chartgate_connections", lambda v: v == 2)
        self.wait_metric("chartgate_users", lambda v: v == 1)

    def test_static_files(self):
        gw = self.start_gateway()
        index = os.path.join(harness.REPO_ROOT, "web", "dist", "index.html")
        self.assertTrue(os.path.isfile(index),
                        "web/dist/index.html is missing: scripts/setup builds the web client")
        with open(index, "rb") as f:
            want = f.read()
        for path in ("/", "/index.html", "/app.js", "/style.css"):
            if path.endswith((".js", ".css")):
                with open(os.path.join(harness.REPO_ROOT, "web", "dist", path[1:]), "rb") as f:
                    want = f.read()
            with self.subTest(path=path):
                status, headers, body = gw.get(path)
                self.assertEqual(status, 200)
                ctype = {".js": "text/javascript", ".css": "text/css"}.get(
                    os.path.splitext(path)[1], "text/html")
                self.assertTrue(headers.get("content-type", "").startswith(ctype),
                                (path, headers.get("content-type")))
                self.assertEqual(body, want)
        self.assertEqual(gw.get("/no-such-file.txt")[0], 404)
        # nothing outside the web root
        secret = os.path.join(harness.REPO_ROOT, "test", "integration", "harness.py")
        with open(secret, "rb") as f:
            secret_body = f.read()
        for path in ("/../test/integration/harness.py", "/%2e%2e/test/integration/harness.py",
                     "/..%2ftest/integration/harness.py"):
            with self.subTest(path=path):
                try:
                    status, _, body = gw.get(path)
                except (OSError, http.client.HTTPException):
                    continue  # connection refused/dropped is fine
                self.assertFalse(status == 200 and body == secret_body,
                                 "%s served a file outside the web root" % path)

    def test_sigterm_closes_every_socket_with_1001(self):
        gw = self.start_gateway()
        clients = [self.connect(user_id="u%d" % (i % 2), name="c%d" % i) for i in range(3)]
        clients[0].subscribe(["rb2501"])
        clients[1].subscribe(["rb2501", "au2412"])
        for c in clients:
            c.barrier()
        t0 = time.monotonic()
        gw.signal(signal.SIGTERM)
        for c in clients:
            code, _ = c.expect_close(timeout=5)
            self.assertEqual(code, 1001, c.name)
        rc = gw.wait_exit(max(0.1, 5 - (time.monotonic() - t0)))
        self.assertIsNotNone(rc, "still running 5 s after SIGTERM")
        self.assertEqual(rc, 0)
        gw.stop()  # only checks the log for sanitizer reports now

    def test_sigint_exits_0(self):
        gw = self.start_gateway()
        c = self.connect()
        gw.signal(signal.SIGINT)
        self.assertEqual(c.expect_close(timeout=5)[0], 1001)
        self.assertEqual(gw.wait_exit(5), 0)
        gw.stop()

    def run_gateway(self, *args, timeout=5):
        """Run the binary to completion (killed by PID after timeout): (rc, stdout, stderr)."""
        cmd = [harness.gateway_binary()] + list(args)
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired as e:
            self.fail("%s still running after %ds (stderr: %r)" % (cmd, timeout, e.stderr))
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8",
                                                                                    "replace")

    def assert_bad_setting(self, args, *names):
        base = ["--listen", "127.0.0.1:%d" % harness.free_port(), "--redis", self.redis.url]
        rc, out, err = self.run_gateway(*(base + list(args)))
        lines = [ln for ln in err.splitlines() if ln.strip()]
        self.assertEqual(rc, 2, "args %s: exit %s, stderr %r" % (args, rc, err[-500:]))
        self.assertEqual(len(lines), 1, "args %s: want exactly one stderr line, got %r"
                         % (args, lines[:10]))
        self.assertTrue(lines[0].startswith("chartgate: "), lines[0])
        for name in names:
            self.assertTrue(name in lines[0] or name.replace("-", "_") in lines[0],
                            "the line should name %r: %r" % (name, lines[0]))

    def test_bad_flags_exit_2(self):
        cases = [
            (["--queue-max-frames", "abc"], "queue-max-frames"),
            (["--queue-max-frames", "12abc"], "queue-max-frames"),
            (["--queue-max-frames", "-5"], "queue-max-frames"),
            (["--rate-limit", ""], "rate-limit"),
            (["--no-such-flag", "1"], "no-such-flag"),
            (["--redis", "http://127.0.0.1:6379"], "redis"),
            (["--redis", "redis://127.0.0.1:notaport"], "redis"),
            (["--listen", "nonsense"], "listen"),
            (["--listen", "127.0.0.1:99999"], "listen"),
            (["--log-level", "loud"], "log-level"),
            (["--session-check-s", "1.5x"], "session-check-s"),
            (["--idle-timeout-s"], "idle-timeout-s"),
        ]
        for args, name in cases:
            with self.subTest(args=args):
                self.assert_bad_setting(args, name)

    def write_config(self, text):
        fd, path = tempfile.mkstemp(prefix="cg-config-", suffix=".json", dir=self.logdir)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    def test_bad_config_exit_2(self):
        cases = [
            ('{"queue_max_frames": "abc"}', "queue_max_frames"),
            ('{"queue_max_frames": -1}', "queue_max_frames"),
            ('{"no_such_key": 1}', "no_such_key"),
            ('{"listen": 8080}', "listen"),
            ('{"queue_max_frames": 10,', None),  # not JSON
            ('["listen", "127.0.0.1:1"]', None),  # not an object
        ]
        for text, key in cases:
            with self.subTest(config=text):
                path = self.write_config(text)
                names = [path] + ([key] if key else [])
                self.assert_bad_setting(["--config", path], *names)
        missing = os.path.join(self.logdir, "does-not-exist.json")
        self.assert_bad_setting(["--config", missing], missing)

    def test_config_file_and_flag_precedence(self):
        path = self.write_config(json.dumps({
            "listen": "127.0.0.1:%d" % harness.free_port(),  # overridden by --listen
            "session_prefix": "sess:",
            "session_check_s": 1,
        }))
        # the harness passes --listen 127.0.0.1:<gw.port>, which must win over the file
        gw = harness.Gateway(self.redis.url, ["--config", path], logdir=self.logdir, name="cfg")
        self.addCleanup(self._finish_gateway, gw)
        gw.start()
        sid = secrets.token_urlsafe(20)
        self.r.set("sess:" + sid, json.dumps({"user_id": "u1"}))
        self.r.set("session:" + sid + "x", json.dumps({"user_id": "u1"}))
        self.assertEqual(self.upgrade_status(sid, gw=gw), 101)
        self.assertEqual(self.upgrade_status(sid + "x", gw=gw), 401)
        c = harness.WSClient(gw.port, cookie="sessionid=" + sid)
        self.addCleanup(c.close)
        self.r.delete("sess:" + sid)
        self.assertEqual(c.expect_close(timeout=3), (4001, "session ended"))

    def test_help(self):
        rc, out, err = self.run_gateway("--help")
        self.assertEqual(rc, 0, err)
        text = out + err
        for flag in ("--listen", "--redis", "--config", "--origin"):
            self.assertIn(flag, text)


if __name__ == "__main__":
    harness.main()
