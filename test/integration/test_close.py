#!/usr/bin/python3
"""test_close.py -- a close frame reaches the client intact (issue 10, item 13).

A slow consumer is closed (1008 "slow consumer") while its socket is full, so the close frame
waits behind megabytes of data. libwebsockets 4.1 builds that frame late, at the socket's next
POLLOUT, from the buffer it also stashes ping payloads in: a client ping or lws's own keepalive
ping (--ping-s) arriving in the meantime overwrote its first bytes (codes such as 15409, reasons
"...onsumer"), and a close started while lws held part of a write sent no close frame at all.

Each round: a client stops reading and is flooded until the gateway cuts it off, then pings with
a payload of its own and stays silent past the gateway's keepalive ping, then reads everything.
It must find exactly one close frame, 1008 "slow consumer", and after answering it the
connection must end. Small messages (the queue overflows while lws holds nothing back) and
messages bigger than a socket buffer (lws holds the rest of one when the close starts)
alternate; over TLS and plain TCP. Every round runs; the failure lists all that went wrong."""

import base64
import http.client
import os
import secrets
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_for  # noqa: E402

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA
ROUNDS = 4
# (message size, messages per Redis round trip), alternating
FLOODS = ((1000, 4), (6000000, 1))
PING_PAYLOAD = b"\xde\xadPINGPING-not-a-close-reason"
GATEWAY_ARGS = ("--queue-max-frames", "64", "--queue-max-bytes", "8388608",
                "--max-payload-bytes", "8388608", "--queue-conflate-frames", "16",
                "--ping-s", "1", "--idle-timeout-s", "30")


def make_cert(d):
    cert, key = os.path.join(d, "close.pem"), os.path.join(d, "close.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=close",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return cert, key


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_upgrade(port, cookie, rcvbuf, timeout=5.0):
    """A WebSocket upgrade by hand over TLS: (socket, bytes read past the response head)."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.settimeout(timeout)
    raw.connect(("127.0.0.1", port))
    sock = client_ctx().wrap_socket(raw)
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    sock.sendall(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                  "Cookie: %s\r\n\r\n" % (port, key, cookie)).encode("latin-1"))
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError("TLS upgrade: closed before the response head: %r" % buf)
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    if b" 101 " not in head.split(b"\r\n", 1)[0] or harness.ws_accept(key).encode() not in head:
        raise AssertionError("TLS upgrade refused: %r" % head[:200])
    return sock, rest


class Frames:
    """Server frames off a socket, read only when asked (the client that stopped reading)."""

    def __init__(self, sock, rest):
        self.sock, self.buf = sock, bytearray(rest)

    def send(self, opcode, payload):
        self.sock.settimeout(5)
        self.sock.sendall(harness.encode_ws_frame(opcode, payload))

    def read(self, until, timeout):
        """Frames (opcode, payload) up to the first one until() holds for ('frame'), or to the
        end of the connection ('eof' / 'reset') or of timeout ('timeout')."""
        deadline = time.monotonic() + timeout
        frames = []
        while True:
            f = harness.take_ws_frame(self.buf)
            if f:
                frames.append(f)
                if until(f):
                    return frames, "frame"
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return frames, "timeout"
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 16)
            except (ConnectionResetError, ssl.SSLError):
                return frames, "reset"
            except socket.timeout:
                continue
            if not chunk:
                return frames, "eof"
            self.buf += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def close_payload(payload):
    return (struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None), payload[2:]


class CloseFrameTest(harness.GatewayTestCase):
    tls = False

    def metrics(self, gw=None):
        gw = gw or self.gw
        if not self.tls:
            return gw.metrics()
        c = http.client.HTTPSConnection("127.0.0.1", gw.port, timeout=5, context=client_ctx())
        try:
            c.request("GET", "/metrics")
            return harness.Metrics.parse(c.getresponse().read().decode("utf-8"))
        finally:
            c.close()

    def connect_raw(self, port, user):
        sid = self.make_session(user)
        if self.tls:
            sock, rest = tls_upgrade(port, "sessionid=" + sid, rcvbuf=4096)
        else:
            up = harness.raw_upgrade(port, cookie="sessionid=" + sid, keep_open=True,
                                     rcvbuf=4096)
            self.assertEqual(up.status, 101)
            sock, rest = up.sock, up.rest
        ws = Frames(sock, rest)
        self.addCleanup(ws.close)
        return ws

    def stalled_round(self, port, n, size, batch):
        """One client cut off while stalled; returns what went wrong (None: nothing)."""
        user = "close%d" % n
        ws = self.connect_raw(port, user)
        ws.send(OP_TEXT, harness.compact({"action": "subscribe", "instruments": ["C1"], "id": 1}))
        _, how = ws.read(lambda f: f[0] == OP_TEXT and b'"subscribed"' in f[1],
                         harness.scaled(5))
        self.assertEqual(how, "frame", "round %d: no subscribed reply" % n)
        self.wait_channel_ready("user:" + user)

        # stop reading; publish in paced batches well under the queue bound, so that the queue
        # overflows only once the socket is full: the close frame then has to wait
        pad = "x" * size
        before = self.metrics().value("chartgate_slow_disconnects_total")
        sent, deadline = 0, time.monotonic() + harness.scaled(20)
        while self.metrics().value("chartgate_slow_disconnects_total") == before:
            self.assertLess(time.monotonic(), deadline, "round %d: client never cut off" % n)
            for _ in range(max(1, 65536 // (size * batch))):
                pipe = self.r.pipeline(transaction=False)
                for _ in range(batch):
                    pipe.publish("user:" + user, '{"m":%d,"pad":"%s"}' % (sent, pad))
                    sent += 1
                pipe.execute()
                time.sleep(0.001)
        # the close is under way: a ping with a payload of its own, then silence past the
        # gateway's keepalive ping (--ping-s 1); either used to land in the close frame
        t_cut = time.monotonic()
        ws.send(OP_PING, PING_PAYLOAD)
        time.sleep(max(0.0, t_cut + 1.6 - time.monotonic()))

        what = "round %d (%d-byte messages)" % (n, size)
        frames, how = ws.read(lambda f: f[0] == OP_CLOSE, harness.scaled(10))
        if how != "frame":
            return "%s: no close frame, the connection ended (%s) after %d bytes of data" % (
                what, how, sum(len(p) for _, p in frames))
        got = close_payload(frames[-1][1])
        if got != (1008, b"slow consumer"):
            return "%s: close frame %r, not (1008, b'slow consumer')" % (what, got)
        # answer it: the gateway ends the connection, with nothing more than control frames
        try:
            ws.send(OP_CLOSE, struct.pack("!H", 1008))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        rest, how = ws.read(lambda f: f[0] not in (OP_PING, OP_PONG), harness.scaled(10))
        ws.close()
        if how not in ("eof", "reset"):
            return "%s: after the close handshake %s (frames: %r)" % (
                what, how, [(op, p[:40]) for op, p in rest])
        return None

    def run_rounds(self):
        args = GATEWAY_ARGS
        if self.tls:
            cert, key = make_cert(tempfile.mkdtemp(prefix="cg-close-"))
            args += ("--tls-cert", cert, "--tls-key", key)
        gw = self.start_gateway(*args, wait=None if self.tls else "healthy")
        if self.tls:
            wait_for(self._https_ok, harness.scaled(10), "https /metrics")
        problems = [self.stalled_round(gw.port, n, *FLOODS[n % len(FLOODS)])
                    for n in range(ROUNDS)]
        problems = [p for p in problems if p]
        if problems:
            self.fail("\n  ".join(["close frames went wrong:"] + problems))
        wait_for(lambda: self.metrics().value("chartgate_connections") == 0, harness.scaled(10),
                 "every connection gone")

    def _https_ok(self):
        try:
            return self.metrics() is not None
        except OSError:
            return False

    def test_close_frame_intact_over_tls(self):
        self.tls = True
        self.run_rounds()

    def test_close_frame_intact_over_tcp(self):
        self.run_rounds()


if __name__ == "__main__":
    harness.main()
