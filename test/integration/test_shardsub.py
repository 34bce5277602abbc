#!/usr/bin/python3
"""test_shardsub.py -- gateway/shardsub.c (Redis 7 sharded pub/sub) against real redis-servers,
through test/integration/shardsub_driver (commands on stdin, one line per hook on stdout).

Single node: SSUBSCRIBE and SPUBLISH (small, 1 MiB and binary messages), SUNSUBSCRIBE stops
delivery, a name resolved, AUTH (password, ACL user) accepted and refused, no AUTH on a server
that wants it, the server killed (down) and restarted (the driver reconnects and subscribes
again), the server stopped by SIGSTOP (down "ping unanswered"), close from inside a hook.
Fakes on a plain socket, where only a fake can do it: a server that accepts and never answers
(connect timeout) and one that sends a broken reply (protocol error).
A two-node cluster: SSUBSCRIBE of a channel whose slot is on the other node is refused with
MOVED, and CLUSTER DELSLOTS of a subscribed channel's slot makes Redis send the sunsubscribe
we did not ask for (lost). The driver runs to the end of its input and checks uv_loop_close;
any sanitizer report on its stderr fails the test."""

import hashlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

TEST_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(TEST_DIR)), "scripts", "lib"))
import localstack  # noqa: E402
from localstack import SANITIZER_RE, RedisServer, scaled, stop_proc, track, wait_for  # noqa: E402

DRIVER = os.environ.get("CG_SHARDSUB_DRIVER", "")
ADMIN_PW = "adm1n-Pw"


def fnv(b):
    h = 1469598103934665603
    for c in b:
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def message_line(ch, payload):
    return "message %s %d %s %s" % (ch, len(payload), fnv(payload), payload[:32].hex())


class Driver:
    """The driver process: send() a command line, expect() output lines."""

    def __init__(self):
        self.proc = track(subprocess.Popen([DRIVER], stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        self.lines = queue.Queue()
        self.seen = []
        self.err = b""
        threading.Thread(target=self._read, daemon=True).start()
        self.err_reader = threading.Thread(target=self._read_err, daemon=True)
        self.err_reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    def _read_err(self):
        self.err = self.proc.stderr.read()

    def send(self, line, ok=True):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        cmd = line.split(" ")[0]
        if ok is not None:
            self.expect(("ok " if ok else "fail ") + cmd)

    def expect(self, want, timeout=5.0, skip=lambda l: False):
        """The next line that is not skipped must be want (a string, or a predicate); returns it."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0))
            except queue.Empty:
                raise AssertionError("driver: no line within %.1fs waiting for %r; seen: %r" % (
                    timeout, want, self.seen[-10:]))
            if line is None:
                raise AssertionError("driver exited waiting for %r; seen %r; stderr: %s" % (
                    want, self.seen[-10:], self.err.decode(errors="replace")[-2000:]))
            self.seen.append(line)
            if skip(line):
                continue
            if (want(line) if callable(want) else line == want):
                return line
            raise AssertionError("driver: got %r, wanted %r" % (line, want))

    def quiet(self, seconds):
        """Nothing is printed within seconds."""
        try:
            line = self.lines.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError("driver: unexpected line %r" % line)

    def finish(self):
        """End of input: the driver closes, checks uv_loop_close and exits 0."""
        self.proc.stdin.close()
        self.expect("exit", skip=lambda l: l.startswith(("message", "down", "up")))
        rc, _ = stop_proc(self.proc, 0, scaled(10))
        self.err_reader.join(scaled(5))
        err = self.err.decode(errors="replace")
        assert rc == 0 and not SANITIZER_RE.search(err), "driver rc %s, stderr:\n%s" % (rc, err)


class Case(unittest.TestCase):
    def redis(self, **kw):
        rs = RedisServer(**kw).start()
        self.addCleanup(rs.cleanup)
        return rs

    def driver(self):
        d = Driver()
        self.addCleanup(lambda: stop_proc(d.proc, signal.SIGKILL))
        return d

    def spublish(self, rs, ch, payload):
        import redis
        c = redis.Redis(host="127.0.0.1", port=rs.port, password=rs.password, socket_timeout=5)
        try:
            return c.execute_command("SPUBLISH", ch, payload)
        finally:
            c.close()

    def up_with(self, rs, chans, host="127.0.0.1", auth=""):
        d = self.driver()
        d.send("connect %s %d%s" % (host, rs.port, auth))
        d.expect("up")
        for ch in chans:
            d.send("sub " + ch)
            d.expect("subscribed " + ch)
        return d


class SingleNode(Case):
    def test_subscribe_receive_unsubscribe(self):
        rs = self.redis()
        d = self.up_with(rs, ["md:a", "md:b"], host="localhost")  # resolved, not numeric
        big = hashlib.sha256(b"seed").digest() * (1024 * 1024 // 32)  # 1 MiB, every byte value
        binary = bytes(range(256)) + b"\r\n*3\r\n$7\r\nmessage\r\n\x00"
        for ch, payload in (("md:a", b"hello"), ("md:b", big), ("md:a", binary), ("md:b", b"")):
            self.assertEqual(self.spublish(rs, ch, payload), 1)
            d.expect(message_line(ch, payload))
        d.send("unsub md:a")
        wait_for(lambda: self.spublish(rs, "md:a", b"gone") == 0, msg="md:a unsubscribed")
        self.spublish(rs, "md:b", b"still")
        d.expect(message_line("md:b", b"still"))  # and nothing for md:a before it
        # Pings keep an idle link up (every 2 s, answered ["pong", ""] in subscribed mode).
        d.quiet(scaled(4.5))
        self.spublish(rs, "md:b", b"after pings")
        d.expect(message_line("md:b", b"after pings"))
        d.finish()

    def test_not_up(self):
        d = self.driver()
        d.send("sub md:a", ok=False)  # idle
        d.send("connect 127.0.0.1 0", ok=False)  # port 0
        d.send("connect no-such-host.invalid 1")  # resolution fails: down, not an error now
        d.expect(lambda l: l.startswith("down resolve: "), timeout=10)
        d.finish()

    def test_connect_refused(self):
        port = localstack.free_port()
        d = self.driver()
        d.send("connect 127.0.0.1 %d" % port)
        d.expect("down connect: connection refused")
        d.finish()

    def test_auth(self):
        rs = self.redis(password=ADMIN_PW)
        c = rs.client()
        c.execute_command("ACL", "SETUSER", "gw", "on", ">gw-pw", "~*", "&*", "+@all")
        c.close()
        d = self.up_with(rs, ["md:a"], auth=" " + ADMIN_PW)
        self.spublish(rs, "md:a", b"x")
        d.expect(message_line("md:a", b"x"))
        d.finish()
        d = self.up_with(rs, ["md:a"], auth=" gw gw-pw")  # an ACL user
        d.finish()
        d = self.driver()
        d.send("connect 127.0.0.1 %d wrong" % rs.port)
        d.expect(lambda l: l.startswith("down AUTH refused: WRONGPASS"))
        d.send("connect 127.0.0.1 %d gw wrong" % rs.port)  # idle again after down
        d.expect(lambda l: l.startswith("down AUTH refused: WRONGPASS"))
        d.send("connect 127.0.0.1 %d" % rs.port)  # no AUTH: the handshake PING says NOAUTH
        d.expect(lambda l: l.startswith("down PING refused: NOAUTH"))
        d.finish()

    def test_killed_and_restarted(self):
        rs = self.redis()
        d = self.driver()
        d.send("reconnect on")
        d.send("connect 127.0.0.1 %d" % rs.port)
        d.expect("up")
        d.send("sub md:a")
        d.expect("subscribed md:a")
        d.send("sub md:b")
        d.expect("subscribed md:b")
        stop_proc(rs.proc, signal.SIGKILL)
        d.expect(lambda l: l in ("down connection closed by Redis",
                                 "down read: connection reset by peer"))
        d.expect("ok reconnect")
        d.expect("down connect: connection refused")  # retried every 200 ms while it is away
        rs.start()
        d.expect("up", timeout=10, skip=lambda l: l in ("ok reconnect",
                                                        "down connect: connection refused"))
        d.expect(lambda l: l in ("subscribed md:a", "subscribed md:b"))
        d.expect(lambda l: l in ("subscribed md:a", "subscribed md:b"))
        self.spublish(rs, "md:b", b"back")
        d.expect(message_line("md:b", b"back"))
        d.finish()

    def test_ping_unanswered(self):
        rs = self.redis()
        d = self.up_with(rs, ["md:a"])
        os.kill(rs.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            # PING 2 s after the last answer, down 5 s after the PING: within 7 s.
            d.expect("down ping unanswered", timeout=12)
            self.assertGreater(time.monotonic() - t0, 4.5)
        finally:
            os.kill(rs.pid, signal.SIGCONT)
        d.finish()

    def test_ipv6(self):
        rs = self.redis(extra=["--bind", "127.0.0.1 ::1"])
        d = self.up_with(rs, ["md:a"], host="::1")
        self.spublish(rs, "md:a", b"six")
        d.expect(message_line("md:a", b"six"))
        d.finish()

    def test_output_bound(self):
        """Redis stopped: subscriptions pile up in the output until the 64 MiB bound, then the
        call fails and the link goes down from the loop with the reason."""
        rs = self.redis()
        d = self.up_with(rs, [])
        os.kill(rs.pid, signal.SIGSTOP)
        try:
            d.send("flood 1000 100000", ok=None)  # 100 MB of SSUBSCRIBE
            line = d.expect(lambda l: l.startswith("fail flood at "))
            self.assertGreater(int(line.split()[-1]), 500)  # not before ~64 MiB queued
            d.expect("down output bound passed: over 64 MiB not taken by Redis")
            d.send("sub md:a", ok=False)  # idle now (the driver still wants md:a)
        finally:
            os.kill(rs.pid, signal.SIGCONT)
        d.send("connect 127.0.0.1 %d" % rs.port)  # and reusable
        d.expect("up")
        d.expect("subscribed md:a")
        d.finish()

    def test_close_inside_hook(self):
        rs = self.redis()
        d = self.up_with(rs, ["md:a"])
        d.send("closein 2")
        for p in (b"1", b"2"):
            self.spublish(rs, "md:a", p)
        d.expect(message_line("md:a", b"1"))
        d.expect(message_line("md:a", b"2"))
        d.expect("ok closed in hook")
        self.spublish(rs, "md:a", b"3")
        d.send("sub md:a", ok=False)
        d.quiet(0.3)
        d.finish()


class Fakes(Case):
    """A TCP server that answers the handshake as the test says."""

    def fake(self, answer):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        self.addCleanup(srv.close)

        def serve():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            self.addCleanup(conn.close)
            conn.recv(4096)
            if answer:
                conn.sendall(answer)

        threading.Thread(target=serve, daemon=True).start()
        return srv.getsockname()[1]

    def test_connect_timeout(self):
        port = self.fake(b"")  # accepts, never answers the PING
        d = self.driver()
        t0 = time.monotonic()
        d.send("connect 127.0.0.1 %d" % port)
        d.expect("down connect timeout", timeout=8)
        self.assertGreater(time.monotonic() - t0, 2.5)
        d.finish()

    def test_protocol_error(self):
        port = self.fake(b"+PONG\r\n*3\r\n$8\r\nsmessage\r\n$1\r\na\r\n%broken\r\n")
        d = self.driver()
        d.send("connect 127.0.0.1 %d" % port)
        d.expect("up")
        d.expect(lambda l: l.startswith("down protocol error: "))
        d.finish()

    def test_confirmation_out_of_order(self):
        port = self.fake(b"+PONG\r\n*3\r\n$10\r\nssubscribe\r\n$1\r\nz\r\n:1\r\n")
        d = self.driver()
        d.send("connect 127.0.0.1 %d" % port)
        d.expect("up")
        d.expect("down protocol error: ssubscribe confirmation out of order")
        d.finish()


class Cluster(Case):
    """Two masters on loopback: A owns slots 0-8191, B 8192-16383."""

    def node(self):
        # The bus port given: the default (port + 10000) fails for a free port over 55535.
        bus = localstack.free_port()
        rs = RedisServer(extra=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                "--cluster-require-full-coverage", "no", "--cluster-port",
                                str(bus)])
        rs.bus_port = bus
        rs.start()
        self.addCleanup(rs.cleanup)
        return rs

    def test_moved_and_lost(self):
        a, b = self.node(), self.node()
        ca, cb = a.client(), b.client()
        self.addCleanup(ca.close)
        self.addCleanup(cb.close)
        ca.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 8191)
        cb.execute_command("CLUSTER", "ADDSLOTSRANGE", 8192, 16383)
        ca.execute_command("CLUSTER", "MEET", "127.0.0.1", b.port, b.bus_port)

        def knows_b_slots():
            return any(s[0] == 8192 for s in ca.execute_command("CLUSTER", "SLOTS"))
        wait_for(knows_b_slots, timeout=scaled(10), msg="A learns B's slots")
        on_a = [ch for ch in ("md:%d" % i for i in range(100))
                if ca.execute_command("CLUSTER", "KEYSLOT", ch) < 8192][:2]
        on_b = next(ch for ch in ("md:%d" % i for i in range(100))
                    if ca.execute_command("CLUSTER", "KEYSLOT", ch) >= 8192)
        d = self.up_with(a, on_a)
        slot_b = ca.execute_command("CLUSTER", "KEYSLOT", on_b)
        d.send("sub " + on_b)
        d.expect("refused %s MOVED %d 127.0.0.1:%d" % (on_b, slot_b, b.port))
        self.spublish(a, on_a[0], b"here")
        d.expect(message_line(on_a[0], b"here"))
        # The slot of on_a[0] leaves A: Redis sends the sunsubscribe we did not ask for.
        ca.execute_command("CLUSTER", "DELSLOTS", ca.execute_command("CLUSTER", "KEYSLOT",
                                                                     on_a[0]))
        d.expect("lost " + on_a[0])
        # The other channel, and the link, are unaffected; our own SUNSUBSCRIBE is not "lost".
        self.spublish(a, on_a[1], b"still")
        d.expect(message_line(on_a[1], b"still"))
        d.send("unsub " + on_a[1])
        d.quiet(0.3)
        d.finish()


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--driver" in args:
        i = args.index("--driver")
        DRIVER = os.path.abspath(args[i + 1])
        del args[i:i + 2]
    if not DRIVER or not os.access(DRIVER, os.X_OK):
        sys.stderr.write("test_shardsub: pass --driver PATH (build/test/integration/"
                         "shardsub_driver)\n")
        sys.exit(1)
    prog = unittest.main(argv=[sys.argv[0]] + args, exit=False,
                         testRunner=unittest.TextTestRunner(verbosity=2))
    sys.exit(0 if prog.result.wasSuccessful() else 1)
