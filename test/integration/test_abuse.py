#!/usr/bin/python3
"""test_abuse.py -- hostile input against a running gateway (issue 6).

RFC 6455 framing abuse on raw sockets: fragmented messages (also with control frames
interleaved) are reassembled and answered; a continuation without a start or a new data frame
inside a fragmented message -> 1002; oversized or fragmented control frames fail the
connection; invalid UTF-8 -> 1007; unmasked client frames, RSV bits and reserved opcodes ->
1002; binary -> 1003; a fragmented message over --max-message-bytes -> 1009. Then a slowloris
handshake (dropped within lws's 10 s handshake timeout while others are served), 10,000
subscribe/unsubscribe cycles on one socket (every reply right, upstream and /metrics back to
zero, RSS back near baseline) and floods over the rate limit (rate_limited, then 1008) while a
bystander keeps getting every tick. After every case the gateway is alive, the bystander still
answers and a fresh client can connect and ping.

How the RFC is read here (RFC 6455 §5.1, §5.5, §7.1.7): a condition that requires the server
to "Fail the WebSocket Connection" is met by a close frame with the named code, or by dropping
TCP without one (the close frame is a SHOULD; Autobahn's requireClean=False); it is never met
by answering the frame or by another close code.
"""

import os
import secrets
import socket
import struct
import unittest
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Reader, encode_ws_frame, is_tick, is_type, scaled  # noqa: E402

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 64 * 1024  # PROTOCOL.md §8 --max-message-bytes default
HANDSHAKE_TIMEOUT_S = 10  # lws context timeout_secs (gateway/ws.c)
PING = b'{"action":"ping","id":"frag"}'


def raw_frame(opcode, payload=b"", fin=True, rsv=0, mask=True):
    """Any client frame, also illegal ones: rsv is the 3-bit RSV1..3 field, mask=False sends the
    payload unmasked. The length is encoded as RFC 6455 says (7 bit, 16 bit or 64 bit)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    if mask and not rsv:
        return encode_ws_frame(opcode, payload, fin)
    b0 = (0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0x0F)
    mbit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = secrets.token_bytes(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def sanitizer_env(extra):
    """Keep ASan's quarantine small so that RSS measures the gateway, not the sanitizer."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    return {"ASAN_OPTIONS": (opts + ":" if opts else "") + extra}


def describe(frames):
    """Frames sent, for failure messages: opcode, FIN, RSV, masked, length, payload head."""
    out = []
    for f in frames:
        b0, b1 = f[0], f[1]
        out.append("op=0x%X fin=%d rsv=%d mask=%d len=%d head=%s" % (
            b0 & 0x0F, b0 >> 7, (b0 >> 4) & 7, b1 >> 7, len(f), f[:12].hex()))
    return "; ".join(out)


class AbuseTest(harness.GatewayTestCase):

    # -- helpers
    def gateway_with_bystander(self, *args, env=None):
        """Start the gateway; a bystander socket subscribed to by.stander stays connected through
        the test and is checked by assert_gateway_ok()."""
        gw = self.start_gateway(*args, env=env)
        self.bystander = self.connect(user_id="bystander", name="bystander")
        self.bystander.subscribe(["by.stander"])
        return gw

    def assert_gateway_ok(self, what):
        """The process lives, the bystander still answers, a fresh client connects and pings."""
        self.assertTrue(self.gw.running(), "gateway died after %s (rc %s)\nlog:\n%s" % (
            what, self.gw.proc.poll(), self.gw.log_tail()))
        by = getattr(self, "bystander", None)
        if by is not None:
            self.assertEqual(by.request({"action": "ping", "id": "by"}, timeout=scaled(3)),
                             {"type": "pong", "id": "by"}, "bystander after %s" % what)
        fresh = self.connect(user_id="fresh", name="fresh client after %s" % what)
        self.assertEqual(fresh.request({"action": "ping", "id": "fresh"}, timeout=scaled(3)),
                         {"type": "pong", "id": "fresh"})
        fresh.close()

    def raw_client(self, user_id="abuser"):
        up = harness.raw_upgrade(self.gw.port, cookie="sessionid=%s" % self.make_session(user_id),
                                 keep_open=True)
        self.assertEqual(up.status, 101, "upgrade refused: %r" % up)
        ws = harness.RawWS(up)
        self.addCleanup(ws.close)
        return ws

    def send_frames(self, ws, frames, together=False, gap=0.0):
        """Send frames one TCP write each (with gap seconds between), or all in one write.
        A reset while sending (the gateway already failed us) is not an error here."""
        try:
            if together:
                ws.sock.sendall(b"".join(frames))
                return
            for f in frames:
                ws.sock.sendall(f)
                if gap:
                    time.sleep(gap)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def read_until_end(self, ws, timeout):
        """All server frames until the server's close frame and then EOF (or a drop), at most
        timeout: returns (events [(opcode, payload)], how: 'close'|'eof'|'reset'|'timeout')."""
        events, how = ws.read_events(timeout)
        events = [(op, p) for _, op, p in events]
        if how == "close":
            # the server closes TCP after its close frame (it waits for ours at most ~5 s)
            try:
                ws.sock.sendall(raw_frame(OP_CLOSE, struct.pack("!H", ws.close_code or 1000)))
            except OSError:
                pass
            more, end = ws.read_events(scaled(6))
            events += [(op, p) for _, op, p in more]
            if end == "timeout":
                how = "close (TCP still open %.0fs after it)" % scaled(6)
        return events, how

    def evidence(self, frames, events, how):
        return ("\nsent: %s\nreceived: %s\nending: %s\nlog tail:\n%s" % (
            describe(frames), [(hex(op), p[:80]) for op, p in events], how,
            self.gw.log_tail(8)))

    def expect_fail(self, frames, code, together=False, gap=0.0, allow_drop=False,
                    timeout=None):
        """On a fresh raw socket send frames; the server must close with `code` (or, with
        allow_drop, may drop TCP without a close frame) and must not answer anything."""
        ws = self.raw_client()
        self.send_frames(ws, frames, together, gap)
        events, how = self.read_until_end(ws, timeout or scaled(3))
        msg = self.evidence(frames, events, how)
        answered = [(op, p) for op, p in events if op != OP_CLOSE]
        self.assertEqual(answered, [], "the gateway answered frames it must reject" + msg)
        if how in ("eof", "reset"):
            self.assertTrue(allow_drop, "connection dropped without a close frame, expected "
                            "close %d" % code + msg)
            return None
        self.assertEqual(how, "close", "no close (expected %d)" % code + msg)
        self.assertEqual(ws.close_code, code, "wrong close code" + msg)
        return ws.close_reason

    def expect_answers(self, ws, frames, pred, together=False, gap=0.0, what="reply", pongs=0):
        """Send frames on ws and read until a text frame satisfies pred (and, with pongs=N, N
        pong frames came too, before or after it); returns the raw events (opcode, payload) up
        to then. Fails with the evidence if the server closes instead."""
        self.send_frames(ws, frames, together, gap)
        deadline = time.monotonic() + scaled(5)
        got = []
        matched = False
        while True:
            f = ws._parse_one()
            if f:
                got.append(f)
                if f[0] == OP_CLOSE:
                    ws._on_frame(f[0], f[1], [])
                    self.fail("no %s: the server closed with %s %r%s" % (
                        what, ws.close_code, ws.close_reason, self.evidence(frames, got, "close")))
                if f[0] == OP_TEXT and any(pred(x) for x in harness._parse_message(f[1])):
                    matched = True
                if matched and sum(1 for op, _ in got if op == OP_PONG) >= pongs:
                    return got
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail("no %s within %.0fs%s" % (what, scaled(5),
                                                     self.evidence(frames, got, "timeout")))
            ws.sock.settimeout(left)
            try:
                chunk = ws.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.fail("no %s: connection dropped%s" % (what, self.evidence(frames, got, "eof")))
            ws.buf += chunk

    # -- fragmentation
    def test_fragmented_messages_reassembled(self):
        self.gateway_with_bystander()
        ws = self.raw_client()
        P = PING
        cases = {
            "three fragments, one write each": ([raw_frame(OP_TEXT, P[:5], fin=False),
                                                 raw_frame(OP_CONT, P[5:12], fin=False),
                                                 raw_frame(OP_CONT, P[12:])], False, 0.05),
            "one byte per fragment, one write": (
                [raw_frame(OP_TEXT, P[:1], fin=False)]
                + [raw_frame(OP_CONT, P[i:i + 1], fin=False) for i in range(1, len(P) - 1)]
                + [raw_frame(OP_CONT, P[-1:])], True, 0),
            "empty first and last fragments": ([raw_frame(OP_TEXT, b"", fin=False),
                                                raw_frame(OP_CONT, P, fin=False),
                                                raw_frame(OP_CONT, b"")], False, 0.02),
        }
        for name, (frames, together, gap) in cases.items():
            with self.subTest(name):
                self.expect_answers(ws, frames, is_type("pong", id="frag"), together, gap,
                                    "pong for a fragmented ping (%s)" % name)
        # a UTF-8 character split between two fragments is valid (validation is per message)
        text = '{"action":"ping","id":"é€𝄞"}'.encode()
        cut = text.index("€".encode()) + 1
        self.expect_answers(ws, [raw_frame(OP_TEXT, text[:cut], fin=False),
                                 raw_frame(OP_CONT, text[cut:])],
                            is_type("pong", id="é€𝄞"), gap=0.05, what="pong, split UTF-8")
        # a fragmented subscribe works like any other
        sub = b'{"action":"subscribe","instruments":["frag.one"],"id":"s"}'
        self.expect_answers(ws, [raw_frame(OP_TEXT, sub[:20], fin=False),
                                 raw_frame(OP_CONT, sub[20:])],
                            is_type("snapshot", instrument="frag.one"), gap=0.05,
                            what="subscribed + snapshot for a fragmented subscribe")
        self.wait_channel_ready("md:frag.one")
        self.publish("md:frag.one", {"p": 1})
        self.expect_answers(ws, [], is_tick("frag.one"), what="tick after fragmented subscribe")
        # exactly --max-message-bytes in 16 fragments: an ordinary (bad_json) message
        big = b" " * MAX_MESSAGE
        frames = [raw_frame(OP_TEXT if i == 0 else OP_CONT, big[i * 4096:(i + 1) * 4096],
                            fin=(i == 15)) for i in range(16)]
        self.expect_answers(ws, frames, is_type("error", code="bad_json"), together=True,
                            what="bad_json for a 64 KiB fragmented message")
        self.expect_answers(ws, [raw_frame(OP_TEXT, P)], is_type("pong", id="frag"),
                            what="pong after the 64 KiB message")
        self.assert_gateway_ok("fragmented messages")

    def test_control_frames_between_fragments(self):
        self.gateway_with_bystander()
        ws = self.raw_client()
        P = PING
        frames = [raw_frame(OP_TEXT, P[:6], fin=False), raw_frame(OP_PING, b"between-1"),
                  raw_frame(OP_CONT, P[6:14], fin=False), raw_frame(OP_PONG, b"unsolicited"),
                  raw_frame(OP_PING, b"between-2"), raw_frame(OP_CONT, P[14:])]
        # Pongs and queued data frames may go out in either order (RFC 6455 5.5.2 asks for a
        # pong "as soon as is practical"; the gateway writes its queue right after reading).
        got = self.expect_answers(ws, frames, is_type("pong", id="frag"), False, 0.05,
                                  "pong for the fragmented ping", pongs=2)
        self.assertEqual([f for f in got if f[0] == OP_PONG],
                         [(OP_PONG, b"between-1"), (OP_PONG, b"between-2")],
                         "each interleaved ping answered by a pong with its payload, in order "
                         "(unsolicited pong ignored)" + self.evidence(frames, got, "-"))
        self.assertEqual([f for f in got if f[0] != OP_PONG],
                         [(OP_TEXT, b'{"type":"pong","id":"frag"}')],
                         self.evidence(frames, got, "-"))
        # the same with everything in one TCP write and a single ping between the fragments
        frames = [raw_frame(OP_TEXT, P[:6], fin=False), raw_frame(OP_PONG, b"unsolicited"),
                  raw_frame(OP_CONT, P[6:14], fin=False), raw_frame(OP_PING, b"between"),
                  raw_frame(OP_CONT, P[14:])]
        got = self.expect_answers(ws, frames, is_type("pong", id="frag"), True,
                                  what="pong for the fragmented ping", pongs=1)
        self.assertEqual(sorted(got), [(OP_TEXT, b'{"type":"pong","id":"frag"}'),
                                       (OP_PONG, b"between")],
                         self.evidence(frames, got, "-"))
        # a 125-byte ping (the largest legal control frame) is echoed whole
        got = self.expect_answers(ws, [raw_frame(OP_PING, b"p" * 125), raw_frame(OP_TEXT, P)],
                                  is_type("pong", id="frag"), what="pong after 125-byte ping",
                                  pongs=1)
        self.assertEqual([p for op, p in got if op == OP_PONG], [b"p" * 125])
        self.assert_gateway_ok("interleaved control frames")

    # libwebsockets 4.1.6 answers the first of several pending pings, not the most recent one.
    # Harmless (a keep-alive is answered), but not what RFC 6455 §5.5.3 allows; kept visible.
    @unittest.expectedFailure
    def test_ping_burst_answers_latest(self):
        """RFC 6455 §5.5.2/§5.5.3: every ping gets a pong with its payload, except that an
        endpoint that has not yet answered earlier pings MAY answer only the most recent one."""
        self.gateway_with_bystander()
        ws = self.raw_client()
        frames = [raw_frame(OP_TEXT, PING[:6], fin=False)]
        frames += [raw_frame(OP_PING, b"burst-%d" % i) for i in range(5)]
        frames += [raw_frame(OP_CONT, PING[6:])]
        got = self.expect_answers(ws, frames, is_type("pong", id="frag"), together=True,
                                  what="pong for the fragmented ping after a ping burst")
        pongs = [p for op, p in got if op == OP_PONG]
        all_ = [b"burst-%d" % i for i in range(5)]
        self.assertTrue(pongs and pongs == all_[len(all_) - len(pongs):],
                        "pongs %r: must answer each ping, or at least the most recent one"
                        % pongs + self.evidence(frames, got, "-"))
        self.assert_gateway_ok("ping burst")

    def test_bad_continuation_closes_1002(self):
        self.gateway_with_bystander()
        P = PING
        cases = {
            "continuation without a start": [raw_frame(OP_CONT, P)],
            "non-final continuation without a start": [raw_frame(OP_CONT, P[:5], fin=False),
                                                       raw_frame(OP_CONT, P[5:])],
            "new text frame inside a fragmented message": [
                raw_frame(OP_TEXT, P[:5], fin=False), raw_frame(OP_TEXT, P)],
            "new fragmented text inside a fragmented message": [
                raw_frame(OP_TEXT, P[:5], fin=False), raw_frame(OP_TEXT, P[:5], fin=False),
                raw_frame(OP_CONT, P[5:])],
            "binary frame inside a fragmented text message": [
                raw_frame(OP_TEXT, P[:5], fin=False), raw_frame(OP_BINARY, P)],
            "continuation after the message ended": [raw_frame(OP_TEXT, P),
                                                     raw_frame(OP_CONT, b"x")],
        }
        for name, frames in cases.items():
            with self.subTest(name):
                if name == "continuation after the message ended":
                    ws = self.raw_client()
                    got = self.expect_answers(ws, frames, is_type("pong", id="frag"), gap=0.05,
                                              what="pong before the stray continuation")
                    events, how = self.read_until_end(ws, scaled(5))
                    msg = self.evidence(frames, got + events, how)
                    self.assertEqual(how, "close", msg)
                    self.assertEqual(ws.close_code, 1002, msg)
                else:
                    self.expect_fail(frames, 1002, gap=0.05)
        self.assert_gateway_ok("bad continuations")

    # -- control frames
    def test_oversized_and_fragmented_control_frames(self):
        """RFC 6455 §5.5: control frames carry <= 125 bytes and are never fragmented; anything
        else fails the connection (close 1002, or a TCP drop: the close frame is a SHOULD)."""
        self.gateway_with_bystander()
        cases = {
            "ping, 126 bytes": ([raw_frame(OP_PING, b"x" * 126)], True),
            "ping, 1000 bytes": ([raw_frame(OP_PING, b"x" * 1000)], True),
            "pong, 126 bytes": ([raw_frame(OP_PONG, b"x" * 126)], True),
            "close, 126 bytes": ([raw_frame(OP_CLOSE, struct.pack("!H", 1000) + b"r" * 124)],
                                 True),
            "ping with FIN=0": ([raw_frame(OP_PING, b"x", fin=False)], False),
            "fragmented ping inside a text message": (
                [raw_frame(OP_TEXT, PING[:5], fin=False), raw_frame(OP_PING, b"a", fin=False),
                 raw_frame(OP_CONT, b"b"), raw_frame(OP_CONT, PING[5:])], False),
        }
        drops = []
        for name, (frames, drop_ok) in cases.items():
            with self.subTest(name):
                reason = self.expect_fail(frames, 1002, gap=0.05, allow_drop=drop_ok)
                if reason is None:
                    drops.append(name)
        if drops:  # RFC-conformant, but say so: a browser then reports 1006, not 1002
            sys.stderr.write("\nnote: no close frame (TCP dropped) for: %s\n" % ", ".join(drops))
        self.assert_gateway_ok("oversized control frames")

    def test_malformed_close_frames(self):
        """RFC 6455 §5.5.1/§7.4: a close body is empty or a 2-byte code + UTF-8 reason; a 1-byte
        body or a code that may not be sent fails the connection with 1002, a reason that is not
        UTF-8 with 1007 (or a drop). A valid close is echoed."""
        self.gateway_with_bystander()
        ws = self.raw_client()
        self.send_frames(ws, [raw_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye")])
        events, how = ws.read_events(scaled(5))
        self.assertEqual((how, ws.close_code), ("close", 1000), "valid close not echoed: %s %r"
                         % (how, events))
        cases = {
            "close code 999": ([raw_frame(OP_CLOSE, struct.pack("!H", 999))], 1002),
            "close code 1005 (never sent)": ([raw_frame(OP_CLOSE, struct.pack("!H", 1005))],
                                             1002),
            "close reason not UTF-8": ([raw_frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xff")],
                                       1007),
        }
        for name, (frames, code) in cases.items():
            with self.subTest(name):
                ws = self.raw_client()
                self.send_frames(ws, frames)
                events, how = self.read_until_end(ws, scaled(5))
                msg = self.evidence(frames, events, how)
                if how in ("eof", "reset"):
                    continue  # failed without a close frame: allowed
                self.assertEqual(how, "close", msg)
                closes = [p for op, p in events if op == OP_CLOSE]
                self.assertGreaterEqual(len(closes[0]), 2, "the server's close frame is itself "
                                        "malformed (body of %d byte)" % len(closes[0]) + msg)
                self.assertEqual(ws.close_code, code, msg)
        self.assert_gateway_ok("malformed close frames")

    # libwebsockets 4.1.6 echoes a 1-byte close body back (08 01 03: itself malformed) instead
    # of failing the connection with 1002. Harmless to the gateway; kept visible.
    @unittest.expectedFailure
    def test_one_byte_close_body_closes_1002(self):
        self.gateway_with_bystander()
        ws = self.raw_client()
        frames = [raw_frame(OP_CLOSE, b"\x03")]
        self.send_frames(ws, frames)
        events, how = self.read_until_end(ws, scaled(5))
        if how in ("eof", "reset"):
            return
        closes = [p for op, p in events if op == OP_CLOSE]
        self.assertGreaterEqual(len(closes[0]), 2, "the server's close frame is malformed"
                                + self.evidence(frames, events, how))
        self.assertEqual(ws.close_code, 1002)

    # -- payload and header bits
    def test_invalid_utf8_closes_1007(self):
        self.gateway_with_bystander()
        pre, post = b'{"action":"ping","id":"', b'"}'
        bad = {
            "0xFF": b"\xff",
            "lone continuation byte": b"\x80",
            "overlong '/'": b"\xc0\xaf",
            "overlong 3-byte": b"\xe0\x80\xaf",
            "UTF-16 surrogate": b"\xed\xa0\x80",
            "above U+10FFFF": b"\xf4\x90\x80\x80",
            "0xF5 lead byte": b"\xf5\x80\x80\x80",
        }
        for name, seq in bad.items():
            with self.subTest(name):
                self.expect_fail([raw_frame(OP_TEXT, pre + seq + post)], 1007)
        with self.subTest("truncated sequence at the end of the message"):
            self.expect_fail([raw_frame(OP_TEXT, PING + b"\xc3")], 1007)
        with self.subTest("invalid sequence in a later fragment"):
            self.expect_fail([raw_frame(OP_TEXT, pre, fin=False),
                              raw_frame(OP_CONT, b"ok", fin=False),
                              raw_frame(OP_CONT, b"\xed\xa0\x80" + post)], 1007, gap=0.05)
        with self.subTest("message ends inside a sequence split over fragments"):
            self.expect_fail([raw_frame(OP_TEXT, PING, fin=False),
                              raw_frame(OP_CONT, b"\xe2\x82")], 1007, gap=0.05)
        self.assertEqual(self.metrics().value("chartgate_client_errors_total"), 0,
                         "invalid UTF-8 must never reach the JSON parser")
        self.assert_gateway_ok("invalid UTF-8")

    # libwebsockets 4.1.6 (Debian 12's) does not do this: its frame parser records the mask bit
    # and never rejects, and the 4.1 API cannot tell the gateway whether a frame was masked.
    # Upstream fixed it after 4.1 (commit cae06c63a, "client unmasked"). Expected to fail until
    # the gateway is built against a libwebsockets with the fix; it then passes, and this
    # marker turns that into a failure to be removed.
    @unittest.expectedFailure
    def test_unmasked_client_frames_close_1002(self):
        """RFC 6455 §5.1: "The server MUST close the connection upon receiving a frame that is
        not masked" (MAY with 1002). Answering it is wrong."""
        self.gateway_with_bystander()
        for name, frames in {
            "unmasked text": [raw_frame(OP_TEXT, PING, mask=False)],
            "unmasked ping": [raw_frame(OP_PING, b"nomask", mask=False)],
            "masked start, unmasked continuation": [raw_frame(OP_TEXT, PING[:5], fin=False),
                                                    raw_frame(OP_CONT, PING[5:], mask=False)],
        }.items():
            with self.subTest(name):
                self.expect_fail(frames, 1002, gap=0.05, allow_drop=True)
        self.assert_gateway_ok("unmasked frames")

    def test_reserved_bits_close_1002(self):
        """No extension is negotiated, so RSV1-3 must be 0 (RFC 6455 §5.2)."""
        self.gateway_with_bystander()
        for rsv in (4, 2, 1, 7):  # RSV1, RSV2, RSV3, all
            with self.subTest(rsv="0b{:03b}".format(rsv), frame="text"):
                self.expect_fail([raw_frame(OP_TEXT, PING, rsv=rsv)], 1002)
        with self.subTest(frame="ping with RSV2"):
            self.expect_fail([raw_frame(OP_PING, b"x", rsv=2)], 1002)
        with self.subTest(frame="continuation with RSV1"):
            self.expect_fail([raw_frame(OP_TEXT, PING[:5], fin=False),
                              raw_frame(OP_CONT, PING[5:], rsv=4)], 1002, gap=0.05)
        self.assert_gateway_ok("reserved bits")

    def test_reserved_opcodes_close_1002(self):
        self.gateway_with_bystander()
        for op in list(range(0x3, 0x8)) + list(range(0xB, 0x10)):
            with self.subTest(opcode=hex(op)):
                self.expect_fail([raw_frame(op, PING if op < 8 else b"x")], 1002)
        with self.subTest("reserved opcode inside a fragmented message"):
            self.expect_fail([raw_frame(OP_TEXT, PING[:5], fin=False), raw_frame(0x3, b"x"),
                              raw_frame(OP_CONT, PING[5:])], 1002, gap=0.05)
        self.assert_gateway_ok("reserved opcodes")

    def test_binary_closes_1003(self):
        self.gateway_with_bystander()
        self.expect_fail([raw_frame(OP_BINARY, PING)], 1003)
        self.expect_fail([raw_frame(OP_BINARY, PING[:5], fin=False),
                          raw_frame(OP_CONT, PING[5:])], 1003, gap=0.05)
        self.assert_gateway_ok("binary frames")

    def test_fragmented_oversize_closes_1009(self):
        self.gateway_with_bystander()
        with self.subTest("two fragments, 40000 + 30000 bytes"):
            self.expect_fail([raw_frame(OP_TEXT, b" " * 40000, fin=False),
                              raw_frame(OP_CONT, b" " * 30000)], 1009)
        with self.subTest("17 x 4 KiB fragments (one byte too many at the 17th)"):
            frames = [raw_frame(OP_TEXT, b" " * 4096, fin=False)]
            frames += [raw_frame(OP_CONT, b" " * 4096, fin=False) for _ in range(15)]
            frames += [raw_frame(OP_CONT, b" ", fin=False), raw_frame(OP_CONT, b" " * 100)]
            self.expect_fail(frames, 1009, together=True)
        with self.subTest("over the limit and never finished"):
            frames = [raw_frame(OP_TEXT, b" " * 60000, fin=False),
                      raw_frame(OP_CONT, b" " * 6000, fin=False)]
            self.expect_fail(frames, 1009)
        with self.subTest("one frame announcing 2^40 bytes"):
            head = struct.pack("!BBQ", 0x81, 0xFF, 1 << 40) + b"\0\0\0\0"  # zero mask key
            self.expect_fail([head + b" " * 70000], 1009, allow_drop=True)
        self.assert_gateway_ok("oversized fragmented messages")

    # -- slowloris
    def test_slowloris_handshake(self):
        gw = self.gateway_with_bystander()
        by = self.bystander
        request = ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                   "Cookie: sessionid=%s\r\n\r\n" % (
                       gw.port, "dGhlIHNhbXBsZSBub25jZQ==", self.make_session("loris"))).encode()
        n_slow = 8
        slow = []
        for _ in range(n_slow):
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=scaled(2))
            self.addCleanup(s.close)
            slow.append(s)
        silent = socket.create_connection(("127.0.0.1", gw.port), timeout=scaled(2))
        self.addCleanup(silent.close)
        t0 = time.monotonic()
        state = {"closed": {}, "received": {}, "sent": [0] * n_slow, "error": None}
        stop = threading.Event()

        def drip():  # one byte per socket every 0.5 s; notes when the gateway drops each
            try:
                i = 0
                while not stop.is_set() and len(state["closed"]) < n_slow:
                    for k, s in enumerate(slow):
                        if k in state["closed"]:
                            continue
                        try:
                            s.send(request[i % len(request):i % len(request) + 1])
                            state["sent"][k] += 1
                            s.settimeout(0.001)
                            data = s.recv(4096)
                            if not data:
                                state["closed"][k] = time.monotonic() - t0
                            else:
                                state["received"][k] = state["received"].get(k, b"") + data
                        except socket.timeout:
                            pass
                        except OSError:
                            state["closed"][k] = time.monotonic() - t0
                    i += 1
                    stop.wait(0.5)
            except BaseException as e:  # reported below
                state["error"] = e

        th = threading.Thread(target=drip, daemon=True)
        th.start()
        self.addCleanup(th.join, 5)
        self.addCleanup(stop.set)

        # meanwhile: ticks flow to the bystander, and a newcomer connects, subscribes, gets ticks
        reader = Reader(by)
        reader.start()
        self.addCleanup(reader.stop)
        newcomer_ticks = []
        n = 0
        newcomer = None
        deadline = t0 + HANDSHAKE_TIMEOUT_S + scaled(4)
        silent_closed = None
        while time.monotonic() < deadline:
            n += 1
            self.publish("md:by.stander", {"p": n, "n": n})
            if newcomer is None and time.monotonic() - t0 > 2:
                c0 = time.monotonic()
                newcomer = self.connect(user_id="newcomer", name="newcomer")
                newcomer.subscribe(["by.stander"])
                self.assertLess(time.monotonic() - c0, scaled(1.5),
                                "a handshake took long during the slowloris")
                self.wait_channel_ready("md:by.stander")
            if newcomer is not None:
                newcomer_ticks += [f for f in newcomer.recv_frames(timeout=0.05)
                                   if f.get("type") == "tick"]
            else:
                time.sleep(0.05)
            if silent_closed is None:
                silent.settimeout(0.001)
                try:
                    if silent.recv(1) == b"":
                        silent_closed = time.monotonic() - t0
                except socket.timeout:
                    pass
                except OSError:
                    silent_closed = time.monotonic() - t0
            if len(state["closed"]) == n_slow and silent_closed is not None \
                    and time.monotonic() - t0 > HANDSHAKE_TIMEOUT_S + 1:
                break
        stop.set()
        th.join(5)
        reader.stop()
        self.assertIsNone(state["error"])
        self.assertEqual(state["received"], {}, "a slowloris socket got an answer")
        self.assertEqual(sorted(state["closed"]), list(range(n_slow)),
                         "slowloris sockets still open after %.0fs: %s (closed at %s)" % (
                             time.monotonic() - t0,
                             sorted(set(range(n_slow)) - set(state["closed"])), state["closed"]))
        self.assertLessEqual(max(state["closed"].values()), HANDSHAKE_TIMEOUT_S + scaled(2),
                             "slowloris held past the handshake timeout: %s" % state["closed"])
        self.assertTrue(all(v < len(request) for v in state["sent"]),
                        "a slowloris finished its request before being dropped: %s bytes sent "
                        "of %d" % (state["sent"], len(request)))
        self.assertIsNotNone(silent_closed, "a silent TCP connection was never dropped")
        self.assertLessEqual(silent_closed, HANDSHAKE_TIMEOUT_S + scaled(2))
        # the bystander got every tick on time, the newcomer got ticks
        self.assertIsNone(reader.error, "bystander: %r" % reader.error)
        ticks = [(t, f) for t, f in reader.frames if f.get("type") == "tick"]
        self.assertGreater(len(ticks), n * 0.9, "bystander got %d of %d ticks" % (len(ticks), n))
        gaps = [b[0] - a[0] for a, b in zip(ticks, ticks[1:])]
        self.assertLess(max(gaps), 1.0, "bystander starved during the slowloris (gap %.2fs)"
                        % max(gaps))
        self.assertGreater(len(newcomer_ticks), 20, "the newcomer got too few ticks")
        self.assert_gateway_ok("slowloris")

    # -- subscribe churn
    def test_10000_subscribe_unsubscribe_cycles(self):
        gw = self.gateway_with_bystander("--rate-limit", "1000000", "--rate-burst", "1000000",
                                         env=sanitizer_env("quarantine_size_mb=16"))
        names = ["churn.%02d" % i for i in range(50)]
        for i, name in enumerate(names[:25]):  # half of them have a chart (a tick) beforehand
            self.publish("md:" + name, {"p": i})
        c = self.connect(user_id="churner", name="churner")
        self.assertEqual(c.request({"action": "ping", "id": "warm"}), {"type": "pong",
                                                                        "id": "warm"})
        base_rss = gw.rss_kb()
        cycles, per_write = 10000, 250
        rss_at = {}
        t0 = time.monotonic()
        for start in range(0, cycles, per_write):
            batch, expect = [], []
            for k in range(start, start + per_write):
                name = names[k % len(names)]
                sub = {"action": "subscribe", "instruments": [name], "id": 2 * k}
                if k % 3 == 1:
                    sub["intervals"] = ["1m", "5m"]
                batch += [sub, {"action": "unsubscribe", "instruments": [name], "id": 2 * k + 1}]
                expect += [("subscribed", 2 * k, name), ("unsubscribed", 2 * k + 1, name)]
            c.send_together(batch, validate=(start == 0))  # (the schema check is slow)
            replies, snaps = [], {}
            last_id = 2 * (start + per_write - 1) + 1
            deadline = time.monotonic() + scaled(10)
            while not (replies and replies[-1][1] == last_id):
                frames = c.recv_frames(timeout=max(0.0, deadline - time.monotonic()))
                if not frames:
                    self.fail("cycles %d..: no reply %d within %.0fs; got %d replies, last %s"
                              % (start, last_id, scaled(10), len(replies), replies[-1:]))
                for f in frames:
                    t = f.get("type")
                    if t in ("subscribed", "unsubscribed"):
                        replies.append((t, f["id"], f["instruments"][0]))
                    elif t == "snapshot":
                        snaps.setdefault(f["instrument"], 0)
                        snaps[f["instrument"]] += 1
                    elif t == "error":
                        self.fail("cycle batch %d: error %s" % (start, f))
                    else:
                        self.fail("cycle batch %d: unexpected frame %s" % (start, f))
            self.assertEqual(replies, expect, "replies of cycles %d..%d" % (start,
                                                                          start + per_write))
            for name, k in snaps.items():
                self.assertLessEqual(k, sum(1 for e in expect if e[0] == "subscribed"
                                            and e[2] == name), "more snapshots than subscribes")
            if start + per_write in (2000, cycles):
                rss_at[start + per_write] = gw.rss_kb()
        took = time.monotonic() - t0
        # everything is released: on the socket, upstream, in the metrics, in memory
        self.assertEqual(c.barrier(), [], "frames after the last unsubscribed")
        self.wait_metric("chartgate_subscriptions", lambda v: v == 1)  # the bystander's
        for name in names:
            self.wait_numsub("md:" + name, 0)
        self.assertEqual(self.numsub("md:by.stander"), 1)
        # the bystander still gets ticks; the churned instruments reach nobody
        self.publish("md:by.stander", {"p": 1})
        self.bystander.recv_until(is_tick("by.stander"))
        self.publish("md:churn.00", {"p": 1})
        self.assertEqual(c.barrier(), [], "a tick of an unsubscribed instrument arrived")
        rss = gw.rss_kb()
        sys.stderr.write("\n%d cycles in %.1fs; RSS kB: base %d, after 2000 %d, after %d %d, "
                         "end %d\n" % (cycles, took, base_rss, rss_at[2000], cycles,
                                       rss_at[cycles], rss))
        self.assertLess(rss, base_rss + 20 * 1024, "RSS grew from %d to %d kB" % (base_rss, rss))
        self.assertLess(rss_at[cycles] - rss_at[2000], 8 * 1024,
                        "RSS still growing between 2000 and %d cycles: %s" % (cycles, rss_at))
        self.assert_gateway_ok("subscription churn")

    # -- floods over the rate limit
    def test_rate_limit_floods(self):
        self.gateway_with_bystander()  # defaults: 50 messages/s, burst 100
        reader = Reader(self.bystander)
        reader.start()
        self.addCleanup(reader.stop)
        pub_stop = threading.Event()
        published = []

        def publisher():
            r = self.redis.client()
            try:
                n = 0
                while not pub_stop.is_set():
                    n += 1
                    r.publish("md:by.stander", harness.compact({"p": n, "n": n}))
                    published.append(n)
                    pub_stop.wait(0.02)
            finally:
                r.close()

        pt = threading.Thread(target=publisher, daemon=True)
        pt.start()
        self.addCleanup(pt.join, 5)
        self.addCleanup(pub_stop.set)
        def ping(i):
            return encode_ws_frame(OP_TEXT, '{"action":"ping","id":%d}' % i)

        floods = {  # name: (message i, messages per write, pause between writes)
            "pings": (ping, 50, 0.01),
            "garbage": (lambda i: encode_ws_frame(OP_TEXT, "{garbage %d" % i), 50, 0.01),
            "subscribes": (lambda i: encode_ws_frame(
                OP_TEXT, '{"action":"subscribe","instruments":["fl.%d"],"id":%d}' % (i % 7, i)),
                50, 0.01),
            "fragmented pings": (lambda i: (
                raw_frame(OP_TEXT, b'{"action":"pi', fin=False)
                + raw_frame(OP_CONT, ('ng","id":%d}' % i).encode())), 50, 0.01),
            # sustained at twice the rate (100/s against 50/s, burst 100): closed after the
            # burst is spent and more than --rate-burst messages were refused, ~4 s
            "steady 2x the rate": (ping, 5, 0.05),
        }
        for name, (make, per_write, pause) in floods.items():
            ws = self.raw_client(user_id="flood-" + name)
            i, t0, how, events = 0, time.monotonic(), None, []
            while time.monotonic() - t0 < scaled(8):
                try:
                    ws.sock.sendall(b"".join(make(i + k) for k in range(per_write)))
                    i += per_write
                except (BrokenPipeError, ConnectionResetError):
                    break
                ev, how = ws.read_events(pause)
                events += [(op, p) for _, op, p in ev]
                if how != "timeout":
                    break
            if how == "timeout" or how is None:
                ev, how = ws.read_events(scaled(3))
                events += [(op, p) for _, op, p in ev]
            frames = []
            for op, p in events:
                if op == OP_TEXT:
                    frames += harness._parse_message(p)
            errors = [f for f in frames if f.get("type") == "error"]
            msg = "flood of %s: %d messages sent in %.1fs, ended %s, close %s %r, errors %s" % (
                name, i, time.monotonic() - t0, how, ws.close_code, ws.close_reason,
                errors[:3])
            with self.subTest(flood=name):
                self.assertTrue(errors, "no error frame: " + msg)
                limited = [f for f in errors if f["code"] == "rate_limited"]
                self.assertTrue(limited, "no rate_limited error: " + msg)
                if name != "garbage":
                    self.assertEqual(errors[0]["code"], "rate_limited", msg)
                self.assertNotIn("id", limited[0], "rate_limited echoes no id (§6): " + msg)
                wrong = {f["code"] for f in errors} - {"rate_limited", "bad_json"}
                self.assertEqual(wrong, set(), msg)
                if name != "garbage":
                    self.assertNotIn("bad_json", {f["code"] for f in errors}, msg)
                pongs = sum(1 for f in frames if f.get("type") == "pong")
                self.assertLessEqual(pongs, 100 + 50 * (time.monotonic() - t0) + 5,
                                     "more answered than the bucket allows: " + msg)
                self.assertEqual(how, "close", "no close frame: " + msg)
                self.assertEqual(ws.close_code, 1008, msg)
                self.assertEqual(ws.close_reason, "rate limit",
                                 "reason text per PROTOCOL.md §8/§10: " + msg)
            ws.close()
        pub_stop.set()
        pt.join(5)
        time.sleep(0.3)
        reader.stop()
        self.assertIsNone(reader.error, "bystander: %r" % reader.error)
        ticks = [(t, f) for t, f in reader.frames if f.get("type") == "tick"]
        ns = [f["data"]["n"] for _, f in ticks]
        self.assertEqual(ns, published[:len(ns)], "bystander missed or reordered ticks")
        self.assertGreaterEqual(len(ns), len(published) - 2, "bystander lost ticks at the end")
        gaps = [b[0] - a[0] for a, b in zip(ticks, ticks[1:])]
        self.assertLess(max(gaps), 1.0, "bystander stalled during the floods (%.2fs)" % max(gaps))
        self.wait_metric("chartgate_rate_limit_disconnects_total", lambda v: v >= len(floods))
        self.wait_metric("chartgate_subscriptions", lambda v: v == 1)
        for k in range(7):
            self.wait_numsub("md:fl.%d" % k, 0)
        self.assert_gateway_ok("rate-limit floods")


if __name__ == "__main__":
    harness.main()
