#!/usr/bin/python3
"""harness.py -- the integration tests' browsers, backends and test case, on the local stack.

Nothing here is mocked: every test gets a private redis-server on 127.0.0.1 (free port,
persistence off, its own temp dir) and starts the gateway binary against it. The processes
are scripts/lib/localstack.py's (RedisServer, Gateway), stopped by PID in the test's cleanups,
also when the test failed; its names (wait_for, raw_upgrade, Metrics, ...) are re-exported here.

    class T(harness.GatewayTestCase):
        def test_x(self):
            gw = self.start_gateway('--session-check-s', '1')
            c = self.connect(user_id='u1')              # a browser: cookie + WebSocket
            c.subscribe(['rb2501'], id=1)               # also consumes and checks the snapshot
            self.wait_channel_ready('md:rb2501')
            self.publish('md:rb2501', {'p': 1})         # a backend
            tick = c.recv_until(harness.is_tick('rb2501'))[-1]

    if __name__ == '__main__':
        harness.main()

Run a test file as  /usr/bin/python3 test/integration/test_X.py [--gateway PATH] [unittest args]
(PATH defaults to $CHARTGATE_BIN, then build/gateway/chartgate under the repository root).
Every server frame received is split on "\\n", JSON-parsed and validated with proto/validate.py.
Run with Debian's /usr/bin/python3 (python3-websocket, python3-redis, python3-jsonschema).
"""

import json
import os
import secrets
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
import unittest
from collections import deque

try:
    import redis  # noqa: F401  (checked here: self.r is a redis-py client)
    import websocket
    from websocket import ABNF
except ImportError as e:  # pragma: no cover - environment problem
    sys.stderr.write("harness: %s; run with /usr/bin/python3 and "
                     "apt-get install python3-websocket python3-redis python3-jsonschema\n" % e)
    raise

TEST_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(TEST_DIR))
ARTIFACT_DIR = os.path.join(REPO_ROOT, "test-artifacts", "integration")

sys.path.insert(0, os.path.join(REPO_ROOT, "proto"))
sys.path.insert(0, os.path.join(REPO_ROOT, "scripts", "lib"))
import validate as proto_validate  # noqa: E402  (proto/validate.py)
from localstack import (  # noqa: E402,F401  (scripts/lib/localstack.py; re-exported)
    SANITIZER_RE, TIMEOUT_SCALE, WAIT, ClusterStack, Gateway, Metrics, RedisServer, SentinelServer,
    SentinelStack, Upgrade, compact,
    encode_ws_frame, free_port, gateway_binary, take_ws_frame, http_get, raw_upgrade, scaled, stop_proc, tail,
    track, wait_for, ws_accept)

VALIDATOR = proto_validate.load_validator()


# ---------------------------------------------------------------------------------------------
# raw WebSocket client (raw_upgrade, encode_ws_frame: localstack)


class RawWS:
    """A hand-made WebSocket client on a plain socket (after a 101 from raw_upgrade): it reads
    only when told to, so it can play a client that stops reading."""

    def __init__(self, upgrade):
        self.sock = upgrade.sock
        self.buf = bytearray(upgrade.rest)
        self.close_code = None
        self.close_reason = None

    def send_text(self, text):
        self.sock.sendall(encode_ws_frame(0x1, text))

    def send_json(self, obj):
        self.send_text(compact(obj))

    def _parse_one(self):
        """One complete frame from self.buf as (opcode, payload) or None."""
        return take_ws_frame(self.buf)

    def _on_frame(self, opcode, payload, frames):
        if opcode == 0x8:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            self.close_reason = payload[2:].decode("utf-8", "replace")
        elif opcode == 0x1:
            frames.extend(_parse_message(payload))

    def recv_frames_until(self, pred, timeout=None):
        """Read and parse until a server frame satisfies pred; returns the frames read."""
        timeout = timeout or scaled(WAIT)
        deadline = time.monotonic() + timeout
        frames = []
        while True:
            f = self._parse_one()
            if f:
                self._on_frame(f[0], f[1], frames)
                if any(pred(x) for x in frames):
                    return frames
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("raw client: no matching frame within %.1fs; got %r"
                                     % (timeout, frames))
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("raw client: connection closed; got %r" % frames)
            self.buf += chunk

    def drain_until_closed(self, timeout=10.0):
        """Read (and parse) everything until EOF or reset. Returns ('eof'|'reset', nbytes);
        AssertionError if the connection is still open after timeout."""
        deadline = time.monotonic() + timeout
        total = 0
        frames = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("raw client: connection still open after %.0fs (%d bytes "
                                     "read)" % (timeout, total))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                return "reset", total
            except socket.timeout:
                continue
            if not chunk:
                return "eof", total
            total += len(chunk)
            self.buf += chunk
            while True:
                f = self._parse_one()
                if not f:
                    break
                if f[0] == 0x8:
                    self._on_frame(f[0], f[1], frames)
                frames.clear()

    def read_events(self, timeout):
        """Read for up to timeout seconds without ever answering: returns (events, how) where
        events are (monotonic time, opcode, payload) and how is 'eof', 'reset', 'close'
        (a close frame arrived) or 'timeout'."""
        deadline = time.monotonic() + timeout
        events = []
        while True:
            while True:
                f = self._parse_one()
                if not f:
                    break
                events.append((time.monotonic(), f[0], f[1]))
                if f[0] == 0x8:
                    self._on_frame(f[0], f[1], [])
                    return events, "close"
            left = deadline - time.monotonic()
            if left <= 0:
                return events, "timeout"
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return events, "reset"
            except socket.timeout:
                return events, "timeout"
            if not chunk:
                return events, "eof"
            self.buf += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# WebSocket client (websocket-client underneath)


class ClosedError(AssertionError):
    pass


def _parse_message(payload):
    """Split one server WebSocket text message into frames; parse and schema-validate each."""
    text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else payload
    frames = []
    for n, line in enumerate(text.split("\n"), 1):
        if line == "":
            raise AssertionError("empty line %d in server message (trailing/doubled newline?): %r"
                                 % (n, text[:300]))
        try:
            frame = json.loads(line)
        except ValueError as e:
            raise AssertionError("server frame is not JSON (%s): %r" % (e, line[:300]))
        try:
            VALIDATOR.validate_server_frame(frame)
        except proto_validate.ValidationError as e:
            raise AssertionError("server frame fails proto schema: %s\nframe: %s"
                                 % (e.message, line[:500]))
        frames.append(frame)
    return frames


class WSClient:
    """A browser-like client: cookie + Origin on the upgrade, JSON frames, split on newline."""

    _ids = 0

    def __init__(self, port, cookie=None, origin=None, path="/ws", rcvbuf=None, timeout=None,
                 name="client"):
        self.name = name
        self.port = port
        # bar t on the epoch grid (no trading calendar: PROTOCOL.md §14); False: session-aligned
        self.epoch_aligned = True
        self.pending = deque()  # frames received but not yet handed out
        self.history = []  # every frame received, in order
        self.messages = []  # byte length and frame count of every text message received
        self.keep_raw = False  # set to keep every message's bytes in raw_messages
        self.raw_messages = []
        self.close_code = None
        self.close_reason = None
        self.eof = False
        self._frag = None
        self.snapshots = {}  # instrument -> the last snapshot consumed by subscribe()
        sockopt = ()
        if rcvbuf:
            sockopt = ((socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf),)
        self.ws = websocket.WebSocket(sockopt=sockopt, enable_multithread=False)
        opts = {"timeout": timeout or scaled(5)}
        if cookie is not None:
            opts["cookie"] = cookie
        if origin is not None:
            opts["origin"] = origin
        else:
            opts["suppress_origin"] = True
        self.ws.connect("ws://127.0.0.1:%d%s" % (port, path), **opts)

    # -- sending
    @classmethod
    def next_id(cls):
        cls._ids += 1
        return cls._ids

    def send(self, obj, validate=True):
        """Send a dict/list as compact JSON (validated as a client frame when it is meant to be
        valid), or a str as it is."""
        if isinstance(obj, (dict, list)):
            if validate:
                VALIDATOR.validate_client_frame(obj)
            text = compact(obj)
        else:
            text = obj
        self.ws.send(text)

    def send_binary(self, data):
        self.ws.send_binary(data)

    def send_together(self, objs, validate=True):
        """Send several client messages (one WebSocket text frame each) in one TCP write, so
        that the gateway reads them together: for tests of reply order."""
        for o in objs:
            if validate:
                VALIDATOR.validate_client_frame(o)
        self.ws.sock.sendall(b"".join(encode_ws_frame(0x1, compact(o)) for o in objs))

    # -- receiving
    def _read_message(self, deadline):
        """Read frames until one whole text message; returns its frames, or None at deadline.
        Raises ClosedError once the server has closed."""
        if self.close_code is not None or self.eof:
            raise ClosedError("%s: connection already closed (%s %r)" % (
                self.name, self.close_code, self.close_reason))
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.ws.sock.settimeout(left)
            try:
                fr = self.ws.recv_frame()
            except websocket.WebSocketTimeoutException:
                return None
            except socket.timeout:
                return None
            except (websocket.WebSocketConnectionClosedException, ConnectionError) as e:
                self.eof = True
                raise ClosedError("%s: connection dropped without a close frame (%r)"
                                  % (self.name, e))
            op = fr.opcode
            if op == ABNF.OPCODE_PING:
                try:
                    self.ws.pong(fr.data)
                except (OSError, websocket.WebSocketException):
                    pass
                continue
            if op == ABNF.OPCODE_PONG:
                continue
            if op == ABNF.OPCODE_CLOSE:
                data = fr.data or b""
                self.close_code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                self.close_reason = data[2:].decode("utf-8", "replace")
                try:
                    self.ws.send_close()
                except (OSError, websocket.WebSocketException):
                    pass
                raise ClosedError("%s: server closed with %s %r" % (
                    self.name, self.close_code, self.close_reason))
            if op == ABNF.OPCODE_BINARY:
                raise AssertionError("%s: server sent a binary message" % self.name)
            if op == ABNF.OPCODE_TEXT:
                self._frag = bytearray(fr.data)
            elif op == ABNF.OPCODE_CONT:
                if self._frag is None:
                    raise AssertionError("%s: continuation frame without a start" % self.name)
                self._frag += fr.data
            if fr.fin:
                payload, self._frag = bytes(self._frag), None
                frames = _parse_message(payload)
                self.messages.append((len(payload), len(frames)))
                if self.keep_raw:
                    self.raw_messages.append(payload)
                self.history.extend(frames)
                return frames

    def recv_frames(self, timeout=None):
        """Frames of the next text message (or those still pending); [] after timeout."""
        if self.pending:
            out = list(self.pending)
            self.pending.clear()
            return out
        frames = self._read_message(time.monotonic() + (scaled(WAIT) if timeout is None
                                                        else timeout))
        return frames or []

    def recv_until(self, pred, timeout=None, what=None):
        """Frames up to and including the first one satisfying pred (later frames of the same
        message stay pending). AssertionError after timeout, listing what did arrive."""
        timeout = scaled(WAIT) if timeout is None else timeout
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            while self.pending:
                f = self.pending.popleft()
                seen.append(f)
                if pred(f):
                    return seen
            try:
                frames = self._read_message(deadline)
            except ClosedError as e:
                raise AssertionError("%s while waiting for %s; frames before: %s" % (
                    e, what or "a frame", _short(seen)))
            if frames is None:
                raise AssertionError("%s: no %s within %.1fs; got %s" % (
                    self.name, what or "matching frame", timeout, _short(seen)))
            self.pending.extend(frames)

    def collect(self, pred, count, timeout=None, what=None):
        """Exactly the first `count` frames satisfying pred (others are dropped)."""
        got = []
        timeout = scaled(WAIT) if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while len(got) < count:
            frames = self.recv_until(pred, max(0.0, deadline - time.monotonic()),
                                     what="%s #%d of %d" % (what or "frame", len(got) + 1, count))
            got.append(frames[-1])
        return got

    def request(self, obj, timeout=None, validate=True):
        """Send obj (which must carry an id) and return the first non-tick/message frame with
        that id."""
        rid = obj["id"]
        self.send(obj, validate=validate)
        frames = self.recv_until(lambda f: f.get("type") not in ("tick", "message")
                                 and f.get("id") == rid and type(f.get("id")) is type(rid),
                                 timeout, what="reply to %s" % compact(obj)[:200])
        return frames[-1]

    def barrier(self, timeout=None):
        """Ping with a fresh id and wait for its pong; returns the frames that came before it.
        Whatever the gateway had queued for this socket before it read the ping is in there."""
        pid = "barrier-%d" % self.next_id()
        self.send({"action": "ping", "id": pid})
        frames = self.recv_until(lambda f: f.get("type") == "pong" and f.get("id") == pid,
                                 timeout, what="pong %s" % pid)
        return frames[:-1]

    # The epoch of each gateway port's process, as its subscribed replies gave it: a client that
    # resumes sends the epoch its seq numbers came from (PROTOCOL.md §15), like the web page.
    epochs = {}

    def subscribe(self, names, id=None, timeout=None, intervals=None, since=None, epoch="auto",
                  overlays=None):
        """Subscribe (with "intervals"/"since" when given) and return the `subscribed` reply,
        after checking it (instruments, intervals echo, recovered keys) and consuming what the
        protocol says follows it (PROTOCOL.md §3, §15): one `snapshot` per distinct instrument
        that is not recovered, checked by take_snapshots() and kept in self.snapshots. Frames of
        recovered instruments (the replay) and unrelated frames stay pending, in order."""
        id = self.next_id() if id is None else id
        req = {"action": "subscribe", "instruments": list(names), "id": id}
        if intervals is not None:
            req["intervals"] = list(intervals)
        if overlays is not None:
            req["overlays"] = overlays
        if since is not None:
            req["since"] = dict(since)
            if epoch == "auto":
                epoch = WSClient.epochs.get(self.port)
            if epoch:
                req["epoch"] = epoch
        reply = self.request(req, timeout)
        if reply.get("type") != "subscribed":
            raise AssertionError("subscribe %s -> %s" % (names, reply))
        WSClient.epochs[self.port] = reply["epoch"]
        if reply.get("instruments") != list(names):
            raise AssertionError("subscribed.instruments %r is not the request's %r"
                                 % (reply.get("instruments"), list(names)))
        echo = reply.get("intervals")
        if sorted(echo) != sorted(set(intervals or [])):
            raise AssertionError("subscribed.intervals %r is not the accepted set %r"
                                 % (echo, intervals or []))
        recovered = reply.get("recovered")
        if since is None:
            if recovered is not None:
                raise AssertionError("subscribed has recovered without since: %s" % reply)
            recovered = {}
        else:
            want = {n for n in names if n in since}
            if recovered is None or set(recovered) != want:
                raise AssertionError("subscribed.recovered %r: expected one entry for each of %s"
                                     % (recovered, sorted(want)))
        snaps = self.take_snapshots([n for n in names if not recovered.get(n)], intervals or [],
                                    timeout)
        for f in snaps:
            if bool(overlays) != ("overlays" in f):
                raise AssertionError("snapshot of %s %s overlays, the request asked %s" % (
                    f["instrument"], "has" if "overlays" in f else "has no", overlays))
        return reply

    def take_snapshots(self, names, intervals=(), timeout=None):
        """Consume one `snapshot` for each distinct name, which must come in that order and before
        any `tick`/`bar` of its instrument; each is checked (its bars: one array per interval,
        strictly ascending t, aligned to the interval) and stored in self.snapshots[name].
        Other frames read meanwhile stay pending, in order. Returns the snapshots."""
        order = list(dict.fromkeys(names))
        timeout = scaled(WAIT) if timeout is None else timeout
        deadline = time.monotonic() + timeout
        got, others = [], []
        try:
            while len(got) < len(order):
                if not self.pending:
                    frames = self._read_message(deadline)
                    if frames is None:
                        raise AssertionError("%s: no snapshot for %s within %.1fs; got %s" % (
                            self.name, order[len(got)], timeout, _short(others)))
                    self.pending.extend(frames)
                    continue
                f = self.pending.popleft()
                inst = f.get("instrument")
                if f.get("type") == "snapshot" and inst in order:
                    if inst != order[len(got)]:
                        raise AssertionError("%s: snapshot of %s came before that of %s "
                                             "(request order %s)" % (
                                                 self.name, inst, order[len(got)], order))
                    check_snapshot(f, inst, intervals, self.epoch_aligned)
                    got.append(f)
                    self.snapshots[inst] = f
                elif f.get("type") in ("tick", "bar", "snapshot") and inst in order[len(got):]:
                    raise AssertionError("%s: %s of %s before its snapshot: %s" % (
                        self.name, f.get("type"), inst, compact(f)[:300]))
                else:
                    others.append(f)
        finally:
            self.pending.extendleft(reversed(others))
        return got

    def unsubscribe(self, names, id=None, timeout=None):
        id = self.next_id() if id is None else id
        reply = self.request({"action": "unsubscribe", "instruments": list(names), "id": id},
                             timeout)
        if reply.get("type") != "unsubscribed":
            raise AssertionError("unsubscribe %s -> %s" % (names, reply))
        return reply

    def expect_close(self, timeout=None):
        """Read until the server's close frame; returns (code, reason). Frames before it are kept
        in history. AssertionError on timeout or a drop without a close frame."""
        timeout = scaled(WAIT) if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if self.close_code is not None:
            return self.close_code, self.close_reason
        while True:
            try:
                frames = self._read_message(deadline)
            except ClosedError:
                if self.close_code is not None:
                    return self.close_code, self.close_reason
                raise
            if frames is None:
                raise AssertionError("%s: no close frame within %.1fs" % (self.name, timeout))

    def close(self):
        try:
            if self.close_code is None and not self.eof:
                self.ws.send_close()
        except (OSError, websocket.WebSocketException):
            pass
        try:
            self.ws.shutdown()
        except (OSError, websocket.WebSocketException):
            pass


class Reader(threading.Thread):
    """Reads a WSClient on its own thread, recording (monotonic time, frame)."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client = client
        self.frames = []
        self.error = None
        self.stop_flag = threading.Event()

    def run(self):
        try:
            while not self.stop_flag.is_set():
                for f in self.client.recv_frames(timeout=0.1):
                    self.frames.append((time.monotonic(), f))
        except BaseException as e:  # reported by the test
            self.error = e

    def stop(self):
        self.stop_flag.set()
        self.join(5)


INTERVAL_UNIT_MS = {"s": 1000, "m": 60000, "h": 3600000, "d": 86400000}


def interval_ms(name):
    """Length of interval name ("1s", "5m", "1d") in ms (PROTOCOL.md §14)."""
    return int(name[:-1]) * INTERVAL_UNIT_MS[name[-1]]


def check_bar_list(bars, interval, what="bars", aligned=True):
    """Bar arrays [t,o,h,l,c,v]: strictly ascending t (one per t), each aligned to interval
    (unless not aligned: a trading calendar's buckets start at session opens, §18)."""
    ms = interval_ms(interval)
    ts = [b[0] for b in bars]
    if ts != sorted(set(ts)):
        raise AssertionError("%s (%s): t not strictly ascending: %s" % (what, interval, ts[:20]))
    bad = [t for t in ts if t % ms] if aligned else []
    if bad:
        raise AssertionError("%s (%s): t not aligned to the interval: %s" % (what, interval,
                                                                           bad[:5]))


def check_snapshot(f, instrument, intervals=(), aligned=True):
    """A snapshot of instrument for the requested intervals (beyond the schema's checks)."""
    if f.get("type") != "snapshot" or f.get("instrument") != instrument:
        raise AssertionError("not a snapshot of %s: %s" % (instrument, compact(f)[:300]))
    if set(f["bars"]) != set(intervals):
        raise AssertionError("snapshot of %s has bars for %s, the request asked for %s"
                             % (instrument, sorted(f["bars"]), sorted(set(intervals))))
    for iv, bars in f["bars"].items():
        check_bar_list(bars, iv, "snapshot of %s" % instrument, aligned)


def _short(frames, n=8):
    s = [compact(f)[:160] for f in frames[-n:]]
    more = len(frames) - len(s)
    return ("[%d earlier] " % more if more > 0 else "") + "[" + ", ".join(s) + "]"


# frame predicates
def is_type(t, **fields):
    return lambda f: f.get("type") == t and all(f.get(k) == v for k, v in fields.items())


def is_tick(instrument=None):
    return lambda f: f.get("type") == "tick" and (instrument is None
                                                  or f.get("instrument") == instrument)


def is_message(channel=None):
    return lambda f: f.get("type") == "message" and (channel is None
                                                     or f.get("channel") == channel)


# ---------------------------------------------------------------------------------------------
# the test base class


class GatewayTestCase(unittest.TestCase):
    """Each test: its own redis-server (self.redis, client self.r); start_gateway() starts the
    gateway. Cleanups (LIFO) close clients, SIGTERM the gateway (asserting exit 0 and a clean
    log), then stop redis, all by PID, also when the test failed."""

    session_prefix = "session:"
    inbox_key = "chartgate:inbox"

    redis_password = None  # requirepass of the test's Redis (test_redis_auth)
    redis_extra = ()  # more redis-server arguments (test_streams: a durable AOF)

    def setUp(self):
        self.redis = RedisServer(password=self.redis_password, extra=self.redis_extra)
        self.addCleanup(self.redis.cleanup)
        self.redis.start()
        self.r = self.redis.client()
        self.addCleanup(self.r.close)
        self.gw = None
        self.logdir = tempfile.mkdtemp(prefix="cg-it-")
        self.addCleanup(shutil.rmtree, self.logdir, True)

    def secret(self, name, text):
        """A file in the test's log directory holding text on one line (a password file)."""
        path = os.path.join(self.logdir, name)
        with open(path, "w") as f:
            f.write(text + "\n")
        return path

    # -- processes
    def start_gateway(self, *args, wait="healthy", env=None, redis_url=None):
        gw = Gateway(redis_url or self.redis.url, args, env=env, logdir=self.logdir,
                     name=self.id().rsplit(".", 1)[-1])
        self.addCleanup(self._finish_gateway, gw)
        gw.start(wait=wait)
        if self.gw is None:
            self.gw = gw
        return gw

    def _finish_gateway(self, gw):
        try:
            if gw.proc is not None:
                gw.stop()
        finally:
            if self._failed():
                self._keep_log(gw)

    def _failed(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is None:
            return False
        return any(t is self for t, _ in list(result.failures) + list(result.errors))

    def _keep_log(self, gw):
        try:
            os.makedirs(ARTIFACT_DIR, exist_ok=True)
            dst = os.path.join(ARTIFACT_DIR, "%s.log" % self.id())
            shutil.copyfile(gw.log, dst)
            sys.stderr.write("\n--- gateway log tail (%s, full copy: %s) ---\n%s\n---\n"
                             % (self.id(), dst, gw.log_tail(30)))
        except OSError:
            pass

    # -- sessions and clients
    def make_session(self, user_id="u1", instruments=None, exp=None, sid=None, raw=None,
                     ttl_ms=None):
        """Write session:<sid> (JSON, or raw text as given) and return sid."""
        sid = sid or secrets.token_urlsafe(24)
        if raw is None:
            doc = {"user_id": user_id}
            if instruments is not None:
                doc["instruments"] = instruments
            if exp is not None:
                doc["exp"] = exp
            raw = json.dumps(doc)
        self.r.set(self.session_prefix + sid, raw, px=ttl_ms)
        return sid

    def connect(self, sid=None, user_id="u1", instruments=None, origin=None, path="/ws",
                gw=None, cookie=None, rcvbuf=None, name=None):
        """Open a WebSocket like a browser would (a fresh session unless sid/cookie given)."""
        gw = gw or self.gw
        if cookie is None:
            sid = sid or self.make_session(user_id, instruments)
            cookie = "sessionid=%s" % sid
        c = WSClient(gw.port, cookie=cookie, origin=origin, path=path, rcvbuf=rcvbuf,
                     name=name or "client(%s)" % user_id)
        self.addCleanup(c.close)
        return c

    def ws_connect(self, sid, origin=None, path="/ws", **kw):
        """connect() with the brief's signature: an existing session id."""
        return self.connect(sid=sid, origin=origin, path=path, **kw)

    def kill_redis(self, save=True):
        self.redis.kill(save=save)

    def restart_redis(self):
        self.redis.restart()
        self.r = self.redis.client()
        self.addCleanup(self.r.close)

    def upgrade_status(self, sid=None, cookie=None, origin=None, path="/ws", gw=None,
                       extra_headers=None):
        """HTTP status of a raw upgrade attempt (cookie: whole header value; sid: sessionid)."""
        gw = gw or self.gw
        if cookie is None and sid is not None:
            cookie = "sessionid=%s" % sid
        up = raw_upgrade(gw.port, path=path, cookie=cookie, origin=origin,
                         extra_headers=extra_headers)
        if up.status == 101:
            self.assertEqual(up.headers.get("sec-websocket-accept"), ws_accept(up.key),
                             "101 with a wrong Sec-WebSocket-Accept")
        return up.status

    # -- backend side
    def publish(self, channel, obj):
        """PUBLISH channel <json or str as is>; returns the number of Redis receivers."""
        return self.r.publish(channel, obj if isinstance(obj, (str, bytes)) else compact(obj))

    def rpush_inbox(self, envelope, key=None):
        return self.r.rpush(key or self.inbox_key,
                            envelope if isinstance(envelope, (str, bytes)) else compact(envelope))

    def numsub(self, channel):
        return dict(self.r.pubsub_numsub(channel)).get(channel, 0)

    def wait_numsub(self, channel, n, timeout=None):
        return wait_for(lambda: self.numsub(channel) == n or None, timeout or scaled(WAIT),
                        "PUBSUB NUMSUB %s == %d (now %d)" % (channel, n, self.numsub(channel)))

    def wait_channel_ready(self, channel, timeout=None):
        """Wait until the gateway listens on channel upstream (a SUBSCRIBE, or any PSUBSCRIBE)."""
        wait_for(lambda: self.numsub(channel) >= 1 or self.r.pubsub_numpat() >= 1,
                 timeout or scaled(WAIT), "the gateway to subscribe %s upstream" % channel)

    def metrics(self, gw=None):
        return (gw or self.gw).metrics()

    def wait_metric(self, name, pred, timeout=None, gw=None, **labels):
        """Poll /metrics until pred(value of name{labels}) holds; returns the value."""
        box = {}

        def check():
            box["v"] = (gw or self.gw).metrics().value(name, **labels)
            return pred(box["v"])
        try:
            wait_for(check, timeout or scaled(WAIT), "metric %s%s" % (name, labels or ""))
        except AssertionError as e:
            raise AssertionError("%s; last value %r" % (e, box.get("v")))
        return box["v"]

    def assert_nothing_for(self, client, what="frame"):
        """No frame queued for client (ping barrier); fails listing what came instead."""
        before = client.barrier()
        self.assertEqual(before, [], "%s got unexpected %s(s): %s" % (client.name, what,
                                                                      _short(before)))


def main():
    """Parse --gateway PATH, then run unittest on __main__; prints unittest's summary and a
    closing 'N passed, N failed' line; exits non-zero on any failure."""
    argv = sys.argv[1:]
    rest = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--gateway" and i + 1 < len(argv):
            os.environ["CHARTGATE_BIN"] = os.path.abspath(argv[i + 1])
            i += 2
            continue
        if a.startswith("--gateway="):
            os.environ["CHARTGATE_BIN"] = os.path.abspath(a.split("=", 1)[1])
            i += 1
            continue
        rest.append(a)
        i += 1
    binary = gateway_binary()
    if not os.access(binary, os.X_OK):
        sys.stderr.write("harness: gateway binary %s is missing or not executable "
                         "(build it, or pass --gateway PATH / set CHARTGATE_BIN)\n" % binary)
        sys.exit(1)
    if shutil.which("redis-server") is None:
        sys.stderr.write("harness: redis-server not found (apt-get install redis-server)\n")
        sys.exit(1)
    prog = unittest.main(module="__main__", argv=[sys.argv[0]] + rest, exit=False,
                         testRunner=unittest.TextTestRunner(verbosity=2))
    r = prog.result
    failed = len(r.failures) + len(r.errors) + len(getattr(r, "unexpectedSuccesses", ()))
    skipped = len(r.skipped)
    passed = r.testsRun - failed - skipped
    name = os.path.basename(sys.argv[0]).rsplit(".", 1)[0]
    line = "%s: %d passed, %d failed" % (name.replace("test_", ""), passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line, flush=True)
    sys.exit(0 if r.wasSuccessful() and r.testsRun > 0 else 1)
