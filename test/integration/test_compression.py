#!/usr/bin/python3
"""test_compression.py -- permessage-deflate (RFC 7692, PROTOCOL.md §1.1) against a real gateway.

- Python's websockets (its own permessage-deflate, offered by default) subscribes with a
  compressed message and reads compressed ticks; /metrics counts the socket and the messages.
- A hand-made client sees the frames themselves: a batch of at least --deflate-min-bytes has
  RSV1 set and inflates (raw deflate, the 00 00 ff ff tail appended) to the frames; a smaller
  message is plain; two sockets with the same batch get the same compressed bytes, compressed
  once. A compressed subscribe from it is answered.
- A client that limits the server's window (server_max_window_bits=10) gets it echoed and
  messages that inflate with a 1 KiB window, where a 32 KiB client's copy of the same batch
  does not; offers the gateway cannot keep (8, no value, quoted, out of range) get plain frames.
- A client that does not offer the extension and any client of a gateway run with --deflate
  off get plain frames and no Sec-WebSocket-Extensions header.
- Compressed client messages many times larger than lws's 1 KiB read chunks inflate whole
  (up to exactly --max-message-bytes), with and without the client's context takeover; one
  that inflates past the limit is closed with 1009, and the gateway's peak memory does not
  grow by what it would inflate to; invalid UTF-8 inside one is closed with 1007.
"""

import asyncio
import json
import os
import secrets
import struct
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import compact, raw_upgrade, scaled  # noqa: E402

try:
    import websockets
    import websockets.exceptions
except ImportError as e:  # pragma: no cover - environment problem
    sys.stderr.write("test_compression: %s; apt-get install python3-websockets\n" % e)
    raise

OFFER = "permessage-deflate; client_max_window_bits"
TAIL = b"\x00\x00\xff\xff"


def deflate_message(data):
    """What a client with no context takeover sends: raw deflate, sync flush, tail removed."""
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def inflate(payload, wbits=15):
    """A compressed message inflated as a client with a 2**wbits window does: 64 bytes of
    output at a time, so a back-reference further than the window fails (zlib.error), where
    one big output buffer would let zlib read it from the output instead."""
    z = zlib.decompressobj(-wbits)
    out, data = [], payload + TAIL
    while data:
        out.append(z.decompress(data, 64))
        data = z.unconsumed_tail
    out.append(z.flush())
    return b"".join(out)


def client_frame(payload, rsv1):
    """A masked client text frame, RSV1 set when rsv1."""
    return harness.encode_ws_frame(0x1, payload, rsv1=rsv1)


class RawClient:
    """A socket after a 101: reads whole server frames with their RSV1 bit."""

    def __init__(self, up):
        self.up = up
        self.sock = up.sock
        self.buf = bytearray(up.rest)
        self.wbits = 15  # the window this client inflates with (server_max_window_bits)

    def frame(self, deadline):
        while True:
            b = self.buf
            if len(b) >= 2:
                n, off = b[1] & 0x7F, 2
                if n == 126 and len(b) >= 4:
                    n, off = struct.unpack("!H", b[2:4])[0], 4
                elif n == 127 and len(b) >= 10:
                    n, off = struct.unpack("!Q", b[2:10])[0], 10
                if n < 126 or off > 2:
                    if len(b) >= off + n:
                        b0, payload = b[0], bytes(b[off:off + n])
                        del b[:off + n]
                        return b0, payload
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("raw client: no complete frame in time")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("raw client: connection closed")
            self.buf += chunk

    def messages_until(self, pred, timeout=None):
        """(rsv1, raw payload, parsed frames) of each text message until pred(frame)."""
        deadline = time.monotonic() + (timeout or scaled(10))
        out = []
        while True:
            b0, payload = self.frame(deadline)
            op = b0 & 0x0F
            if op == 0x8:
                raise AssertionError("closed: %r" % payload)
            if op != 0x1:
                continue
            assert b0 & 0x80, "the gateway sends whole messages, unfragmented"
            rsv1 = bool(b0 & 0x40)
            text = inflate(payload, self.wbits) if rsv1 else payload
            frames = [json.loads(line) for line in text.decode("utf-8").split("\n")]
            out.append((rsv1, payload, frames))
            if any(pred(f) for f in frames):
                return out

    def send(self, obj, compress):
        data = compact(obj).encode("utf-8") if not isinstance(obj, bytes) else obj
        self.sock.sendall(client_frame(deflate_message(data) if compress else data, compress))

    def close_code(self, timeout=None):
        """The close code the server sends (reading past anything else)."""
        deadline = time.monotonic() + (timeout or scaled(10))
        while True:
            try:
                b0, payload = self.frame(deadline)
            except (ConnectionResetError, AssertionError) as e:
                raise AssertionError("no close frame: %s" % e)
            if b0 & 0x0F == 0x8:
                return struct.unpack("!H", payload[:2])[0]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class DeflateTest(harness.GatewayTestCase):

    def raw(self, offer=OFFER, user_id="u1"):
        sid = self.make_session(user_id)
        up = raw_upgrade(self.gw.port, cookie="sessionid=%s" % sid, keep_open=True,
                         extra_headers={"Sec-WebSocket-Extensions": offer} if offer else None)
        self.assertEqual(up.status, 101)
        c = RawClient(up)
        self.addCleanup(c.close)
        return c, up.headers.get("sec-websocket-extensions")

    def burst(self, channel, n, start=0):
        """n ticks published in one pipeline: the gateway reads them in one go, one batch."""
        p = self.r.pipeline(transaction=False)
        for i in range(start, start + n):
            p.publish(channel, compact({"last_price": 100.0 + i, "volume": i, "i": i,
                                        "note": "tick number %d of the burst" % i}))
        p.execute()

    def subscribe_raw(self, c, name, compress):
        c.send({"action": "subscribe", "instruments": [name], "id": "s"}, compress)
        msgs = c.messages_until(lambda f: f.get("type") == "snapshot")
        self.assertTrue(any(f.get("type") == "subscribed" and f.get("id") == "s"
                            for _, _, fr in msgs for f in fr), msgs)
        return msgs

    def test_raw_frames_rsv1_shared_and_min_bytes(self):
        self.start_gateway()
        a, ext_a = self.raw()
        b, ext_b = self.raw(user_id="u2")
        self.assertEqual(ext_a, "permessage-deflate")
        self.assertEqual(ext_b, "permessage-deflate")
        self.wait_metric("chartgate_deflate_sockets", lambda v: v == 2)
        # a compressed subscribe (RSV1, deflated) is understood; the other one is plain
        self.subscribe_raw(a, "rb2501", compress=True)
        self.subscribe_raw(b, "rb2501", compress=False)
        self.wait_channel_ready("md:rb2501")
        # one tick: a message under --deflate-min-bytes (256) goes out plain
        self.burst("md:rb2501", 1)
        for c in (a, b):
            msgs = c.messages_until(lambda f: f.get("type") == "tick" and f["data"]["i"] == 0)
            rsv1, payload, frames = msgs[-1]
            self.assertFalse(rsv1, "a %d-byte message was compressed" % len(payload))
            self.assertLess(len(payload), 256)
        before = self.metrics().value("chartgate_deflate_compressions_total")
        # 20 ticks in one read: one batch per socket, compressed once for both
        self.burst("md:rb2501", 20, start=1)
        got = {}
        for name, c in (("a", a), ("b", b)):
            msgs = c.messages_until(lambda f: f.get("type") == "tick" and f["data"]["i"] == 20)
            ticks = [f["data"]["i"] for _, _, fr in msgs for f in fr if f.get("type") == "tick"]
            self.assertEqual(ticks, list(range(1, 21)), name)
            big = [(payload, fr) for rsv1, payload, fr in msgs if rsv1]
            self.assertTrue(big, "%s: no compressed message among %r" % (
                name, [(r, len(p)) for r, p, _ in msgs]))
            for payload, fr in big:
                raw_len = len("\n".join(compact(f) for f in fr))
                self.assertLess(len(payload), raw_len * 0.6, "compressed to %d of %d bytes"
                                % (len(payload), raw_len))
            got[name] = [(r, p) for r, p, _ in msgs]
        self.assertEqual(got["a"], got["b"], "the same batch, the same bytes on both sockets")
        m = self.metrics()
        n_compressed = sum(1 for r, _ in got["a"] if r)
        self.assertEqual(m.value("chartgate_deflate_compressions_total") - before, n_compressed,
                         "each batch is compressed once, not once per socket")
        self.assertGreaterEqual(m.value("chartgate_deflate_messages_out_total"),
                                2 * n_compressed)
        self.assertGreater(m.value("chartgate_deflate_bytes_in_total"), 0)
        # a compressed ping still gets its pong
        a.send({"action": "ping", "id": "p"}, True)
        msgs = a.messages_until(lambda f: f.get("type") == "pong")
        self.assertEqual(msgs[-1][2][-1], {"type": "pong", "id": "p"})
        a.close()
        b.close()
        self.wait_metric("chartgate_deflate_sockets", lambda v: v == 0)

    def test_large_compressed_client_message(self):
        # high-ratio messages inflate to many times the rx chunk lws reads: they come whole,
        # with or without context takeover on the client's side (three messages from one
        # stream), also right at --max-message-bytes
        self.start_gateway("--max-message-bytes", "65536")
        c, _ = self.raw()
        for pad in (900, 1100, 5000, 20000, 65536 - 31):
            msg = b'{"action":"ping","id":"p%d"' % pad + b" " * pad + b"}"
            self.assertLessEqual(len(msg), 65536)
            c.send(msg, True)
            msgs = c.messages_until(lambda f: f.get("type") in ("pong", "error"))
            self.assertEqual(msgs[-1][2][-1], {"type": "pong", "id": "p%d" % pad})
        z = zlib.compressobj(6, zlib.DEFLATED, -15)
        for k in range(3):
            data = b'{"action":"ping","id":"t%d"' % k + b" " * 30000 + b"}"
            out = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
            c.sock.sendall(client_frame(out[:-4], True))
            msgs = c.messages_until(lambda f: f.get("type") in ("pong", "error"))
            self.assertEqual(msgs[-1][2][-1], {"type": "pong", "id": "t%d" % k})
        # one byte over the limit: 1009
        c.send(b'{"action":"ping","id":"x"' + b" " * 65600 + b"}", True)
        self.assertEqual(c.close_code(), 1009)

    def test_compressed_invalid_utf8_closes_1007(self):
        self.start_gateway()
        c, _ = self.raw()
        c.send(b'{"action":"ping","id":"\xc3\x28"}', True)
        self.assertEqual(c.close_code(), 1007)

    def test_python_websockets_interop(self):
        self.start_gateway()
        sid = self.make_session("u1")
        port = self.gw.port
        wait_ready = self.wait_channel_ready
        burst = self.burst
        metrics = self.metrics

        async def run():
            async with websockets.connect(
                    "ws://127.0.0.1:%d/ws" % port, extra_headers={"Cookie": "sessionid=" + sid},
                    max_size=None, open_timeout=scaled(5)) as ws:
                names = [e.name for e in ws.extensions]
                self.assertEqual(names, ["permessage-deflate"], ws.response_headers)
                self.assertEqual(metrics().value("chartgate_deflate_sockets"), 1)
                # websockets compresses every message it sends once the extension is on
                await ws.send(compact({"action": "subscribe", "instruments": ["au2412"],
                                       "id": 1}))
                frames = []
                while not any(f.get("type") == "snapshot" for f in frames):
                    msg = await asyncio.wait_for(ws.recv(), scaled(10))
                    frames += [json.loads(x) for x in msg.split("\n")]
                self.assertTrue(any(f.get("type") == "subscribed" for f in frames), frames)
                wait_ready("md:au2412")
                for k in range(5):
                    burst("md:au2412", 10, start=10 * k)
                ticks = []
                while len(ticks) < 50:
                    msg = await asyncio.wait_for(ws.recv(), scaled(10))
                    ticks += [json.loads(x)["data"]["i"] for x in msg.split("\n")
                              if json.loads(x).get("type") == "tick"]
                self.assertEqual(ticks, list(range(50)))
        asyncio.run(run())
        m = self.metrics()
        self.assertGreater(m.value("chartgate_deflate_messages_out_total"), 0,
                           "the bursts went out compressed")
        self.wait_metric("chartgate_deflate_sockets", lambda v: v == 0)

    def assert_plain(self, c, ext, channel):
        self.assertIsNone(ext, "no Sec-WebSocket-Extensions in the 101")
        self.subscribe_raw(c, channel.split(":", 1)[1], compress=False)
        self.wait_channel_ready(channel)
        self.burst(channel, 20)
        msgs = c.messages_until(lambda f: f.get("type") == "tick" and f["data"]["i"] == 19)
        self.assertFalse(any(r for r, _, _ in msgs), "a compressed frame to a plain client")
        self.assertTrue(any(len(p) >= 256 for _, p, _ in msgs), "a batch went out")

    def test_no_offer_gets_plain_frames(self):
        self.start_gateway()
        c, ext = self.raw(offer=None)
        self.assertEqual(self.metrics().value("chartgate_deflate_sockets"), 0)
        self.assert_plain(c, ext, "md:rb2501")
        # the harness's websocket-client offers nothing either: it reads plain ticks
        w = self.connect(user_id="u3")
        w.subscribe(["rb2501"], id=3)
        self.assertEqual(self.metrics().value("chartgate_deflate_sockets"), 0)

    def test_server_max_window_bits_kept(self):
        # a client that can only keep a 1 KiB window asks for it; a burst whose ticks repeat a
        # random 700-byte blob two ticks (over 1 KiB) apart compresses differently for it and
        # for a 32 KiB client, and each socket's message inflates with its own window only
        self.start_gateway()
        small, ext = self.raw(offer="permessage-deflate; server_max_window_bits=10")
        self.assertEqual(ext, "permessage-deflate; server_max_window_bits=10")
        small.wbits = 10
        wide, ext = self.raw(user_id="u2")
        self.assertEqual(ext, "permessage-deflate")
        self.wait_metric("chartgate_deflate_sockets", lambda v: v == 2)
        for c in (small, wide):
            self.subscribe_raw(c, "rb2501", compress=False)
        self.wait_channel_ready("md:rb2501")
        before = self.metrics().value("chartgate_deflate_compressions_total")
        blobs = ["".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(700))
                 for _ in range(2)]
        p = self.r.pipeline(transaction=False)
        for i in range(8):
            p.publish("md:rb2501", compact({"last_price": 100.0 + i, "i": i,
                                            "blob": blobs[(i // 2) % 2]}))
        p.execute()
        got = {}
        for name, c in (("small", small), ("wide", wide)):
            msgs = c.messages_until(lambda f: f.get("type") == "tick" and f["data"]["i"] == 7)
            ticks = [f["data"]["i"] for _, _, fr in msgs for f in fr if f.get("type") == "tick"]
            self.assertEqual(ticks, list(range(8)), name)
            got[name] = [p for r, p, _ in msgs if r and len(p) > 1024]
            self.assertTrue(got[name], "%s: no large compressed message" % name)
        for payload in got["small"]:
            inflate(payload, 10)  # within the agreed window: it inflates (also in messages_until)
        far = 0
        for payload in got["wide"]:
            try:
                inflate(payload, 10)
            except zlib.error:
                far += 1  # reaches further back than 1 KiB: only the 32 KiB client reads it
        self.assertGreater(far, 0, "the 32 KiB window was not used: the test shows nothing")
        self.assertGreaterEqual(self.metrics().value("chartgate_deflate_compressions_total")
                                - before, 2, "one compression per window asked for")

    def test_server_window_offers_declined(self):
        # 8 (zlib cannot make a 256-byte raw window), no value, a quoted or spaced value, out
        # of range, given twice: no extension, plain frames
        self.start_gateway()
        for k, offer in enumerate(["permessage-deflate; server_max_window_bits=8",
                                   "permessage-deflate; server_max_window_bits",
                                   'permessage-deflate; server_max_window_bits="10"',
                                   "permessage-deflate; server_max_window_bits = 10",
                                   "permessage-deflate; server_max_window_bits=16",
                                   "permessage-deflate; server_max_window_bits=010",
                                   "permessage-deflate; server_max_window_bits=10; "
                                   "server_max_window_bits=12"]):
            c, ext = self.raw(offer=offer, user_id="u%d" % k)
            self.assertEqual(self.metrics().value("chartgate_deflate_sockets"), 0, offer)
            self.assert_plain(c, ext, "md:rb%d" % (2501 + k))
            c.close()

    def test_deflate_off(self):
        self.start_gateway("--deflate", "off")
        c, ext = self.raw()
        self.assertEqual(self.metrics().value("chartgate_deflate_sockets"), 0)
        self.assert_plain(c, ext, "md:rb2501")
        # RSV1 on a socket without the extension is a protocol error (RFC 6455 §5.2)
        c.send({"action": "ping"}, True)
        self.assertEqual(c.close_code(), 1002)

    def test_min_bytes_zero_compresses_every_message(self):
        self.start_gateway("--deflate-min-bytes", "0")
        c, ext = self.raw()
        self.assertEqual(ext, "permessage-deflate")
        msgs = self.subscribe_raw(c, "rb2501", compress=False)
        self.assertTrue(all(r for r, p, _ in msgs if len(p) > 40),
                        [(r, len(p)) for r, p, _ in msgs])

    def test_inflating_past_max_message_closes_1009(self):
        self.start_gateway("--max-message-bytes", "4096")
        c, _ = self.raw()
        pid = self.gw.pid

        def hwm_kib():
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
            raise AssertionError("no VmHWM")
        before = hwm_kib()
        # 256 MiB of spaces inside a JSON string: about 250 KiB compressed
        bomb = deflate_message(b'{"action":"ping","id":"' + b" " * (256 << 20) + b'"}')
        self.assertLess(len(bomb), 1 << 20)
        try:
            c.sock.sendall(client_frame(bomb, True))
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed before it had all of it: fine, the close frame is read below
        self.assertEqual(c.close_code(), 1009)
        grown = hwm_kib() - before
        self.assertLess(grown, 64 << 10, "peak RSS grew by %d KiB" % grown)
        # the gateway serves on
        d, ext = self.raw(user_id="u2")
        d.send({"action": "ping", "id": "after"}, True)
        self.assertEqual(d.messages_until(lambda f: f.get("type") == "pong")[-1][2][-1],
                         {"type": "pong", "id": "after"})


if __name__ == "__main__":
    harness.main()
