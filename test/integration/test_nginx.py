#!/usr/bin/python3
"""test_nginx.py -- two gateways behind nginx, as scripts/nginx/run lays them out (issue 5).

Each test starts a real redis-server, then `scripts/nginx/run -n 2 --redis URL --port P
--gateway-port B --gateway BIN [-- FLAGS]` (two chartgate processes on 127.0.0.1:B and B+1,
nginx on 127.0.0.1:P) and talks to nginx the way a browser behind it would, and to each gateway's
own port for /metrics. At the end the script gets SIGTERM by PID; it must exit 0 (every gateway
exited 0) and leave none of its gateway or nginx processes behind.

Checked through nginx: handshake statuses (401 without or with an unknown session, 101 with one)
and the plain HTTP paths; sockets spread over both gateways (their /metrics); one PUBLISH of a
tick, a user message and an inbox envelope reaching every socket on both gateways; WebSocket
pings crossing the proxy both ways (a client that answers stays open past --idle-timeout-s, one
that does not is closed); per-address limits counted against the real client address (X-Real-IP
from the trusted nginx; clients bind 127.0.0.2 / 127.0.0.3), which the client cannot spoof.
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

import harness
from harness import (WSClient, RawWS, free_port, http_get, is_message, is_tick,
                     raw_upgrade, scaled, wait_for, ws_accept)

RUN = os.path.join(harness.REPO_ROOT, "scripts", "nginx", "run")
NGATEWAYS = 2


def _pid_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a zombie waiting for its parent counts as gone
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _children(pid):
    """PIDs whose parent is pid (nginx's workers)."""
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(name))
    return kids


def _port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Stack:
    """One scripts/nginx/run process: nginx on self.port, gateways on self.gw_ports."""

    def __init__(self, redis_url, gateway_args, logdir, n=NGATEWAYS):
        self.n = n
        self.redis_url = redis_url
        self.gateway_args = list(gateway_args)
        self.logdir = logdir
        self.port = free_port()
        while True:  # n consecutive free ports, none of them nginx's
            base = free_port()
            ports = [base + i for i in range(n)]
            if self.port not in ports and all(_port_free(p) for p in ports):
                break
        self.gw_ports = ports
        self.stderr_path = os.path.join(logdir, "nginx-run.stderr")
        self.proc = None
        self.gw_pids = []
        self.nginx_pid = None
        self.workers = []
        self.ready_line = None

    def cmdline(self):
        cmd = [RUN, "-n", str(self.n), "--redis", self.redis_url, "--port", str(self.port),
               "--gateway-port", str(self.gw_ports[0]), "--gateway", harness.gateway_binary(),
               "--log-dir", self.logdir]
        if self.gateway_args:
            cmd += ["--"] + self.gateway_args
        return cmd

    def start(self, timeout=None):
        timeout = timeout or scaled(40)
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(self.cmdline(), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=err)
        harness.track(self.proc)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("scripts/nginx/run printed no ready line within %.0fs\n%s"
                                     % (timeout, self.logs()))
            r, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.5))
            if r:
                line = self.proc.stdout.readline().decode("utf-8", "replace")
                if not line:
                    self.proc.wait(5)
                    raise AssertionError("scripts/nginx/run exited with %s before ready\n%s"
                                         % (self.proc.returncode, self.logs()))
                break
        self.ready_line = line.rstrip("\n")
        fields = dict(kv.split("=", 1) for kv in self.ready_line.split()[1:])
        if not self.ready_line.startswith("ready ") or set(fields) != {
                "url", "redis", "gateways", "nginx"}:
            raise AssertionError("unexpected ready line %r" % self.ready_line)
        if fields["url"] != "ws://127.0.0.1:%d/ws" % self.port:
            raise AssertionError("ready line names %s, not nginx's port %d"
                                 % (fields["url"], self.port))
        if fields["redis"] != self.redis_url:
            raise AssertionError("ready line names redis %s, not %s"
                                 % (fields["redis"], self.redis_url))
        self.gw_pids = [int(p) for p in fields["gateways"].split(",")]
        self.nginx_pid = int(fields["nginx"])
        if len(self.gw_pids) != self.n:
            raise AssertionError("ready line lists %d gateways: %r"
                                 % (len(self.gw_pids), self.ready_line))
        self.workers = _children(self.nginx_pid)
        if not self.workers:
            raise AssertionError("nginx (pid %d) has no worker processes" % self.nginx_pid)
        return self

    def pids(self):
        return self.gw_pids + [self.nginx_pid] + self.workers

    def stop(self, timeout=None):
        """SIGTERM the script by PID: it must exit 0 within timeout and take every gateway and
        nginx process with it."""
        if self.proc is None:
            return
        timeout = timeout or scaled(20)
        rc, in_time = harness.stop_proc(self.proc, signal.SIGTERM, timeout)
        if not in_time:
            for pid in self.pids():  # do not leave them behind for the next test
                if not _pid_gone(pid):
                    os.kill(pid, signal.SIGKILL)
            raise AssertionError("scripts/nginx/run still running %.0fs after SIGTERM\n%s"
                                 % (timeout, self.logs()))
        stray = []
        try:
            wait_for(lambda: all(_pid_gone(p) for p in self.pids()), scaled(5),
                     "the gateways and nginx to be gone")
        except AssertionError:
            stray = [p for p in self.pids() if not _pid_gone(p)]
            for pid in stray:
                os.kill(pid, signal.SIGKILL)
        if stray:
            raise AssertionError("processes left behind after SIGTERM: %s\n%s"
                                 % (stray, self.logs()))
        if rc != 0:
            raise AssertionError("scripts/nginx/run exited with %s after SIGTERM\n%s"
                                 % (rc, self.logs()))
        for p in self.gw_ports:
            text = _read(self.gateway_log(p))
            m = harness.SANITIZER_RE.search(text)
            if m:
                raise AssertionError("sanitizer report in gateway log:\n%s"
                                     % text[max(0, m.start() - 200):m.start() + 4000])

    def gateway_log(self, port):
        return os.path.join(self.logdir, "gateway-%d.log" % port)

    def logs(self):
        parts = ["--- scripts/nginx/run stderr:\n" + harness.tail(self.stderr_path)]
        for p in self.gw_ports:
            parts.append("--- gateway :%d:\n%s" % (p, harness.tail(self.gateway_log(p), 15)))
        parts.append("--- nginx:\n" + harness.tail(os.path.join(self.logdir, "nginx-error.log"),
                                                   15))
        return "\n".join(parts)

    def metrics(self, port):
        """/metrics of one gateway, on its own port (not through nginx)."""
        status, _, body = http_get(port, "/metrics")
        if status != 200:
            raise AssertionError("/metrics of :%d answered %d" % (port, status))
        return harness.Metrics.parse(body.decode("utf-8"))

    def total(self, name, **labels):
        """The metric summed over the gateways, and per gateway."""
        per = [self.metrics(p).value(name, **labels) for p in self.gw_ports]
        return sum(per), per


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def upgrade_from(src, port, cookie, extra_headers=None):
    """raw_upgrade from the local address src (127.0.0.x): what nginx sees as $remote_addr.
    Returns an Upgrade whose sock stays open on 101."""
    return harness.raw_upgrade(port, cookie=cookie, extra_headers=extra_headers,
                               keep_open=True, source=src)


class NginxTest(harness.GatewayTestCase):

    def start_stack(self, *gateway_args, n=NGATEWAYS):
        stack = Stack(self.redis.url, gateway_args, self.logdir, n=n)
        self.addCleanup(self._finish_stack, stack)
        stack.start()
        return stack

    def _finish_stack(self, stack):
        try:
            stack.stop()
        finally:
            if self._failed():
                sys.stderr.write("\n%s\n" % stack.logs())

    def ws(self, stack, sid, name):
        c = WSClient(stack.port, cookie="sessionid=%s" % sid, name=name)
        self.addCleanup(c.close)
        return c

    def test_handshake_and_http_through_nginx(self):
        stack = self.start_stack()
        self.assertEqual(raw_upgrade(stack.port).status, 401, "no cookie")
        self.assertEqual(raw_upgrade(stack.port, cookie="sessionid=nosuchsession").status, 401,
                         "unknown session")
        sid = self.make_session("u1")
        up = raw_upgrade(stack.port, cookie="sessionid=%s" % sid, keep_open=True)
        self.addCleanup(lambda: up.sock and up.sock.close())
        self.assertEqual(up.status, 101)
        self.assertEqual(up.headers.get("sec-websocket-accept"), ws_accept(up.key))
        self.assertEqual(up.headers.get("upgrade", "").lower(), "websocket")

        status, _, body = http_get(stack.port, "/healthz")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["status"], "ok")
        status, _, body = http_get(stack.port, "/session", {"Cookie": "sessionid=%s" % sid})
        self.assertEqual((status, json.loads(body)), (200, {"user_id": "u1"}))
        self.assertEqual(http_get(stack.port, "/session")[0], 401)
        status, _, body = http_get(stack.port, "/metrics")
        self.assertEqual(status, 200)
        self.assertIn("chartgate_connections", harness.Metrics.parse(body.decode()).names())

    def test_sockets_spread_and_fan_out_on_both_gateways(self):
        stack = self.start_stack()
        n = 8
        sid = self.make_session("u1")
        clients = [self.ws(stack, sid, "c%d" % i) for i in range(n)]

        # least_conn over two gateways: both get some; every socket is on one of them.
        def spread():
            total, per = stack.total("chartgate_connections")
            return total == n and all(v > 0 for v in per) and per
        per = wait_for(spread, scaled(5), "%d connections spread over both gateways" % n)
        self.assertEqual(sum(per), n, per)
        handshakes, per_hs = stack.total("chartgate_handshakes_total")
        self.assertTrue(all(v > 0 for v in per_hs), per_hs)

        # One PUBLISH reaches every socket: each gateway subscribes md:rb2501 once upstream.
        for c in clients:
            c.subscribe(["rb2501"])
        self.wait_numsub("md:rb2501", NGATEWAYS)
        self.publish("md:rb2501", {"last_price": 3650, "volume": 1, "n": 1})
        for c in clients:
            tick = c.recv_until(is_tick("rb2501"), what="the tick")[-1]
            self.assertEqual(tick["data"]["n"], 1, c.name)

        # user:u1 reaches the user's sockets on both gateways, by PUBLISH and through the inbox
        # (popped by one gateway, republished, delivered by both).
        self.wait_numsub("user:u1", NGATEWAYS)
        self.publish("user:u1", {"text": "hello"})
        for c in clients:
            msg = c.recv_until(is_message("user"), what="the user message")[-1]
            self.assertEqual(msg["data"], {"text": "hello"}, c.name)
        self.rpush_inbox({"user": "u1", "data": {"text": "queued"}})
        for c in clients:
            msg = c.recv_until(is_message("user"), what="the inbox message")[-1]
            self.assertEqual(msg["data"], {"text": "queued"}, c.name)
        for c in clients:
            self.assert_nothing_for(c)

    def test_resume_on_the_other_gateway(self):
        """A client leaves one gateway, ticks go on (published with chartgate_publish), and its
        reconnect reaches the other gateway through nginx: recovered, the missed ticks once and
        in order, then live (PROTOCOL.md §19). No stickiness needed."""
        stack = self.start_stack()
        wait_for(lambda: self.r.get("chartgate:epoch"), scaled(10), "the shared epoch")
        sid = self.make_session("u1")

        def where():
            """Sockets per gateway (their own /metrics)."""
            return [self.metrics_port(stack, p) for p in stack.gw_ports]

        c1 = self.ws(stack, sid, "first")
        reply = c1.request({"action": "subscribe", "instruments": ["rn1"], "id": 1})
        self.assertIn("shared_epoch", reply)
        c1.take_snapshots(["rn1"])
        per = wait_for(lambda: (lambda v: sum(v) == 1 and v)(where()), scaled(5), "c1 placed")
        first = per.index(1)
        self.wait_numsub("md:rn1", 1)
        fpub = lambda i: self.r.execute_command(  # noqa: E731
            "FCALL", "chartgate_publish", 1, "md:rn1", json.dumps({"last_price": i}))
        for i in range(3):
            fpub(i)
        got = c1.collect(is_tick("rn1"), 3, what="3 ticks")
        self.assertEqual([f["seq"] for f in got], [1, 2, 3])
        c1.close()
        wait_for(lambda: sum(where()) == 0 or None, scaled(5), "c1 gone")
        for i in range(3, 8):
            fpub(i)
        # Hold a socket on the first gateway, so that least_conn sends the reconnect elsewhere.
        ballast = []
        while True:
            b = self.ws(stack, sid, "ballast%d" % len(ballast))
            ballast.append(b)
            per = wait_for(lambda: (lambda v: sum(v) == len(ballast) and v)(where()), scaled(5),
                           "ballast placed")
            if per[first] > per[1 - first]:
                break
            self.assertLess(len(ballast), 6, "least_conn never used gateway %d" % first)
        before = where()
        c2 = self.ws(stack, sid, "resumed")
        wait_for(lambda: sum(where()) == sum(before) + 1 or None, scaled(5), "c2 placed")
        after = where()
        self.assertNotEqual(after[first], before[first] + 1, "c2 went to the same gateway")
        r2 = c2.request({"action": "subscribe", "instruments": ["rn1"], "id": 2,
                         "since": {"rn1": 3}, "epoch": reply["epoch"],
                         "shared_epoch": reply["shared_epoch"]})
        self.assertEqual(r2["recovered"], {"rn1": True}, r2)
        self.assertNotEqual(r2["epoch"], reply["epoch"], "another process")
        got = c2.collect(is_tick("rn1"), 5, what="the 5 missed ticks")
        self.assertEqual([f["seq"] for f in got], [4, 5, 6, 7, 8])
        self.assertEqual([f["data"]["last_price"] for f in got], [3, 4, 5, 6, 7])
        self.wait_numsub("md:rn1", 1)
        fpub(8)
        got = c2.collect(is_tick("rn1"), 1, what="the live tick")
        self.assertEqual(got[0]["seq"], 9)
        self.assert_nothing_for(c2)

    def metrics_port(self, stack, port):
        return stack.metrics(port).value("chartgate_connections")

    def test_one_gateway_with_workers_behind_nginx(self):
        # The layout for every core: one gateway per machine with --workers, nginx in front.
        stack = self.start_stack("--workers", "2", "--max-conns-per-ip", "6", n=1)
        port = stack.gw_ports[0]
        wait_for(lambda: json.loads(http_get(port, "/healthz")[2])["workers_alive"] == 2,
                 scaled(10), "two workers")
        clients = [self.ws(stack, self.make_session("u1"), "c%d" % i) for i in range(6)]
        for c in clients:
            c.subscribe(["rb2501"])
        workers = json.loads(http_get(port, "/healthz")[2])["workers"]
        self.assertEqual(sum(w["connections"] for w in workers), 6, workers)
        self.publish("md:rb2501", {"last_price": 3650, "volume": 1, "n": 7})
        for c in clients:
            tick = c.recv_until(is_tick("rb2501"), what="the tick")[-1]
            self.assertEqual(tick["data"]["n"], 7, c.name)
        # Through nginx every client has the same TCP peer; X-Real-IP names the client, and the
        # per-address limit counts it over both workers.
        for _ in range(6):
            self.assertEqual(raw_upgrade(stack.port,
                                         cookie="sessionid=%s" % self.make_session("u1")).status,
                             429)
        self.assertEqual(stack.metrics(port).value("chartgate_connections"), 6)

    def test_pings_cross_the_proxy(self):
        stack = self.start_stack("--ping-s", "1", "--idle-timeout-s", "3")
        answering = self.ws(stack, self.make_session("u1"), "answering")
        up = raw_upgrade(stack.port, cookie="sessionid=%s" % self.make_session("u2"),
                         keep_open=True)
        self.assertEqual(up.status, 101)
        silent = RawWS(up)  # reads, never answers a ping
        self.addCleanup(silent.close)

        # The silent one sees the gateway's pings through nginx, then is closed for idling;
        # meanwhile the other one reads (and so answers pings) on its own thread.
        reader = harness.Reader(answering)
        reader.start()
        events, how = silent.read_events(scaled(10))
        pings = [e for e in events if e[1] == 0x9]
        self.assertTrue(pings, "no WebSocket ping came through nginx: %r" % events)
        self.assertIn(how, ("eof", "close", "reset"),
                      "a client that answers no ping was not closed after --idle-timeout-s 3")

        # The answering one (WSClient pongs every ping while reading) outlives it, well past
        # the idle timeout, and still works.
        time.sleep(max(0.0, 5 - (time.monotonic() - events[0][0])) if events else 5)
        reader.stop()
        self.assertIsNone(reader.error, "the answering client's reader failed")
        self.assertEqual(reader.frames, [], "unexpected frames on the answering client")
        answering.subscribe(["au2412"])
        self.wait_channel_ready("md:au2412")
        self.publish("md:au2412", {"last_price": 600})
        answering.recv_until(is_tick("au2412"), what="a tick after idling with pongs")
        self.assertEqual(stack.total("chartgate_connections")[0], 1)

    def test_limits_count_the_real_client_address(self):
        # One socket per address per gateway: behind nginx every TCP peer is 127.0.0.1, so only
        # X-Real-IP from the trusted proxy can tell the clients apart.
        stack = self.start_stack("--max-conns-per-ip", "1")
        held, statuses = [], []
        while len(held) < NGATEWAYS:
            self.assertLess(len(statuses), 10, "127.0.0.2 never got a socket on each gateway: %s"
                            % statuses)
            up = upgrade_from("127.0.0.2", stack.port, "sessionid=%s" % self.make_session("a"))
            statuses.append(up.status)
            self.assertIn(up.status, (101, 429), statuses)
            if up.status == 101:
                held.append(up)
                self.addCleanup(up.sock.close)
        # now both gateways hold one socket of 127.0.0.2: it gets 429 wherever nginx sends it,
        # also when it claims to be someone else (nginx overwrites X-Real-IP, and appends the
        # real address to X-Forwarded-For)
        spoof = {"X-Real-IP": "10.1.2.3", "X-Forwarded-For": "10.1.2.3"}
        for headers in ({}, spoof, {}, spoof):
            up = upgrade_from("127.0.0.2", stack.port, "sessionid=%s" % self.make_session("a"),
                              extra_headers=headers)
            self.assertEqual(up.status, 429, "127.0.0.2 over its limit, headers %s" % headers)
        # another client address is not held back by the first one's sockets
        for src in ("127.0.0.3", "127.0.0.4"):
            up = upgrade_from(src, stack.port, "sessionid=%s" % self.make_session("b"))
            self.assertEqual(up.status, 101, "%s through nginx" % src)
            self.addCleanup(up.sock.close)
        rejected, _ = stack.total("chartgate_handshake_rejections_total", reason="ip_limit")
        self.assertEqual(rejected, statuses.count(429) + 4)


if __name__ == "__main__":
    harness.main()
