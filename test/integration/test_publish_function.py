#!/usr/bin/python3
"""test_publish_function.py -- the Redis Function chartgate_publish (gateway/functions/
chartgate_md.lua) and its publisher-side tools, on a real redis-server: the seq per instrument,
the "#<seq> <tick>" message, the capped stream of <seq>-0 entries with t and d, the stream-length
argument and its validation (a refused call never uses up a seq), usage errors, a lost or stale
:seq key, scripts/load-functions (fresh Redis, --stream-len, password file, dead port, a Redis
without Functions) and demo-feed publishing through the function (loading it itself, again after
FUNCTION FLUSH) or plainly."""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RedisServer, free_port, scaled, stop_proc, track, wait_for  # noqa: E402

import redis  # noqa: E402

LUA = os.path.join(harness.REPO_ROOT, "gateway", "functions", "chartgate_md.lua")
LOADER = os.path.join(harness.REPO_ROOT, "scripts", "load-functions")
LEN_ERROR = "stream length must be an integer"


def demo_feed_binary():
    """build/scripts/demo-feed of the build whose gateway is under test."""
    gw = harness.gateway_binary()
    return os.path.join(os.path.dirname(os.path.dirname(gw)), "scripts", "demo-feed")


def key_slot(key):
    """Redis Cluster's slot of key: CRC16/XMODEM of the hash tag (or the key) mod 16384."""
    k = key.encode()
    i = k.find(b"{")
    if i >= 0:
        j = k.find(b"}", i + 1)
        if j > i + 1:
            k = k[i + 1:j]
    crc = 0
    for b in k:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc % 16384


def fcall(r, key, tick, *more):
    return r.execute_command("FCALL", "chartgate_publish", 1, key, tick, *more)


def seq_key(channel):
    return "{%s}:seq" % channel


def stream_key(channel):
    return "{%s}:stream" % channel


def entry_seqs(r, channel):
    return [int(eid.split("-")[0]) for eid, _ in r.xrange(stream_key(channel))]


class PublishFunctionCase(harness.GatewayTestCase):
    """The test's Redis with chartgate_md loaded from the repository file."""

    load_library = True

    def setUp(self):
        super().setUp()
        if self.load_library:
            with open(LUA) as f:
                self.assertEqual(self.r.execute_command("FUNCTION", "LOAD", "REPLACE", f.read()),
                                 "chartgate_md")
        self.node_max = int(self.r.config_get("stream-node-max-entries")["stream-node-max-entries"])

    def assert_capped(self, channel, length, published):
        """MAXLEN ~ trims whole radix-tree nodes only: the stream keeps at least `length`
        entries (when that many were published) and fewer than length + one node's worth;
        what it keeps is always the newest, contiguous, ending at the last seq."""
        seqs = entry_seqs(self.r, channel)
        self.assertGreaterEqual(len(seqs), min(length, published))
        self.assertLess(len(seqs), length + self.node_max)
        self.assertEqual(seqs, list(range(published - len(seqs) + 1, published + 1)))


class FunctionTest(PublishFunctionCase):
    def test_seq_per_instrument_is_independent(self):
        got = [(ch, fcall(self.r, ch, '{"p":%d}' % i))
               for i, ch in enumerate(["md:a", "md:b", "md:a", "md:a", "md:c", "md:b"])]
        self.assertEqual(got, [("md:a", 1), ("md:b", 1), ("md:a", 2), ("md:a", 3), ("md:c", 1),
                               ("md:b", 2)])
        self.assertEqual(self.r.get(seq_key("md:a")), "3")
        self.assertEqual(self.r.get(seq_key("md:b")), "2")
        self.assertEqual(entry_seqs(self.r, "md:a"), [1, 2, 3])
        self.assertEqual(entry_seqs(self.r, "md:c"), [1])

    def test_channel_gets_seq_and_tick(self):
        ps = self.r.pubsub()
        self.addCleanup(ps.close)
        ps.subscribe("md:rb2501")
        wait_for(lambda: ps.get_message(timeout=0.1) is not None, msg="subscribe confirmed")
        ticks = ['{"last_price":3500.0,"volume":%d}' % v for v in (10, 11, 12)]
        for t in ticks:
            fcall(self.r, "md:rb2501", t)
        fcall(self.r, "md:other", '{"x":1}')  # another channel: not received
        got = []
        deadline = time.monotonic() + scaled(5)
        while len(got) < 3 and time.monotonic() < deadline:
            m = ps.get_message(timeout=0.2)
            if m and m["type"] == "message":
                got.append((m["channel"], m["data"]))
        self.assertEqual(got, [("md:rb2501", "#%d %s" % (i + 1, t)) for i, t in enumerate(ticks)])
        self.assertIsNone(ps.get_message(timeout=0.3))
        self.assertEqual(self.r.pubsub_numsub("md:rb2501"), [("md:rb2501", 1)])

    def test_publish_reply_counts_no_receivers_but_seq(self):
        # the reply is the seq, whether anyone listens or not
        self.assertEqual(fcall(self.r, "md:nobody", "{}"), 1)
        self.assertEqual(fcall(self.r, "md:nobody", "{}"), 2)

    def test_stream_entries_hold_t_and_d(self):
        before = int(time.time() * 1000)
        tick = '{"last_price":3500.5,"volume":7,"note":"with spaces and \\"quotes\\""}'
        self.assertEqual(fcall(self.r, "md:x", tick), 1)
        self.assertEqual(fcall(self.r, "md:x", "{}"), 2)
        after = int(time.time() * 1000)
        entries = self.r.xrange(stream_key("md:x"))
        self.assertEqual([e[0] for e in entries], ["1-0", "2-0"])
        self.assertEqual(set(entries[0][1]), {"t", "d"})
        self.assertEqual(entries[0][1]["d"], tick)
        self.assertEqual(entries[1][1]["d"], "{}")
        for _, fields in entries:  # Redis time, ms (same clock on loopback, 1 s of slack)
            self.assertTrue(before - 1000 <= int(fields["t"]) <= after + 1000, fields["t"])
        self.assertLessEqual(int(entries[0][1]["t"]), int(entries[1][1]["t"]))
        # the derived keys live in the declared key's slot (hash tag), as Redis Cluster needs
        for ch in ("md:x", "md:rb2501"):
            slots = {key_slot(k) for k in (ch, seq_key(ch), stream_key(ch))}
            self.assertEqual(len(slots), 1, ch)
        self.assertEqual(key_slot("123456789"), 12739)  # the spec's check value (0x31C3)

    def test_stream_is_capped_near_the_given_length(self):
        pipe = self.r.pipeline(transaction=False)
        for i in range(1000):
            pipe.execute_command("FCALL", "chartgate_publish", 1, "md:cap", '{"i":%d}' % i, 50)
        self.assertEqual(pipe.execute(), list(range(1, 1001)))
        self.assert_capped("md:cap", 50, 1000)
        # a longer length keeps more (nothing trimmed below it any more)
        for i in range(300):
            fcall(self.r, "md:cap", "{}", 400)
        self.assert_capped("md:cap", 400, 1300)

    def test_default_length_is_the_librarys(self):
        # the library's own default (10000) keeps everything of a short run
        pipe = self.r.pipeline(transaction=False)
        for i in range(500):
            pipe.execute_command("FCALL", "chartgate_publish", 1, "md:def", "{}")
        pipe.execute()
        self.assertEqual(self.r.xlen(stream_key("md:def")), 500)

    def test_stream_length_validation(self):
        self.assertEqual(fcall(self.r, "md:v", "{}", 5), 1)
        bad = ["0", "-1", "1.5", "inf", "-inf", "nan", "1e3", "1e400", "0x10", " 7", "7 ", "",
               "+7", "007", "abc", "1234567890123456", "99999999999999999999"]
        for arg in bad:
            with self.assertRaises(redis.ResponseError, msg=repr(arg)) as cm:
                fcall(self.r, "md:v", "{}", arg)
            self.assertIn(LEN_ERROR, str(cm.exception), repr(arg))
        # a refused call used up no seq and wrote nothing
        self.assertEqual(self.r.get(seq_key("md:v")), "1")
        self.assertEqual(entry_seqs(self.r, "md:v"), [1])
        self.assertEqual(fcall(self.r, "md:v", "{}", "999999999999999"), 2)
        self.assertEqual(fcall(self.r, "md:v", "{}", "1"), 3)
        self.assertLess(self.r.xlen(stream_key("md:v")), 1 + self.node_max)

    def test_usage_errors(self):
        for argv in (["FCALL", "chartgate_publish", 0],
                     ["FCALL", "chartgate_publish", 0, "md:x"],
                     ["FCALL", "chartgate_publish", 1, "md:x"]):
            with self.assertRaises(redis.ResponseError, msg=argv) as cm:
                self.r.execute_command(*argv)
            self.assertIn("usage: FCALL chartgate_publish 1 <channel> <tick>", str(cm.exception))
        with self.assertRaises(redis.ResponseError):  # more keys than arguments: Redis's check
            self.r.execute_command("FCALL", "chartgate_publish", 3, "md:x", "{}")
        self.assertEqual(self.r.keys("*md:x*"), [])

    def test_lost_seq_key_continues_after_the_stream(self):
        for _ in range(5):
            fcall(self.r, "md:l", "{}")
        self.r.delete(seq_key("md:l"))
        self.assertEqual(fcall(self.r, "md:l", "{}"), 6)
        self.assertEqual(self.r.get(seq_key("md:l")), "6")
        self.assertEqual(fcall(self.r, "md:l", "{}"), 7)
        # a counter restored older than the stream (not 1): also after the stream's last ID
        self.r.set(seq_key("md:l"), 3)
        self.assertEqual(fcall(self.r, "md:l", "{}"), 8)
        # a stream trimmed empty still knows its last ID
        self.r.xtrim(stream_key("md:l"), 0)
        self.assertEqual(self.r.xlen(stream_key("md:l")), 0)
        self.r.delete(seq_key("md:l"))
        self.assertEqual(fcall(self.r, "md:l", "{}"), 9)
        self.assertEqual(entry_seqs(self.r, "md:l"), [9])
        # both keys gone: a new sequence from 1
        self.r.delete(seq_key("md:l"), stream_key("md:l"))
        self.assertEqual(fcall(self.r, "md:l", "{}"), 1)

    def test_wrong_type_stream_key_is_refused_without_using_a_seq(self):
        fcall(self.r, "md:w", "{}")
        self.r.delete(stream_key("md:w"))
        self.r.set(stream_key("md:w"), "not a stream")
        with self.assertRaises(redis.ResponseError) as cm:
            fcall(self.r, "md:w", "{}")
        self.assertIn("WRONGTYPE", str(cm.exception))
        self.assertEqual(self.r.get(seq_key("md:w")), "1")
        self.r.delete(stream_key("md:w"))
        self.assertEqual(fcall(self.r, "md:w", "{}"), 2)


class LoadFunctionsTest(PublishFunctionCase):
    load_library = False

    def loader(self, *args, timeout=None):
        return subprocess.run([LOADER] + list(args), capture_output=True, text=True,
                              timeout=timeout or scaled(30))

    def assert_one_line_failure(self, res, *needles):
        self.assertEqual(res.returncode, 1, res.stderr)
        lines = res.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, res.stderr)
        self.assertTrue(lines[0].startswith("load-functions: error: "), lines[0])
        for n in needles:
            self.assertIn(n, lines[0])
        self.assertEqual(res.stdout, "")

    def code(self):
        libs = self.r.execute_command("FUNCTION", "LIST", "WITHCODE")
        self.assertEqual(len(libs), 1)
        lib = dict(zip(libs[0][0::2], libs[0][1::2]))
        self.assertEqual(lib["library_name"], "chartgate_md")
        return lib["library_code"]

    def test_loads_into_a_fresh_redis(self):
        self.assertEqual(self.r.execute_command("FUNCTION", "LIST"), [])
        res = self.loader("--redis", self.redis.url)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("loaded library chartgate_md (stream length 10000)", res.stdout)
        with open(LUA) as f:
            self.assertEqual(self.code(), f.read())
        self.assertEqual(fcall(self.r, "md:f", "{}"), 1)
        # again (REPLACE): harmless, the counters stay
        self.assertEqual(self.loader("--redis", self.redis.url).returncode, 0)
        self.assertEqual(fcall(self.r, "md:f", "{}"), 2)

    def test_stream_len_replaces_the_default(self):
        res = self.loader("--redis", self.redis.url + "/3", "--stream-len", "20")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("(stream length 20)", res.stdout)
        self.assertRegex(self.code(), r"(?m)^local STREAM_LEN = 20 -- @stream-len@")
        pipe = self.r.pipeline(transaction=False)
        for i in range(500):
            pipe.execute_command("FCALL", "chartgate_publish", 1, "md:s", "{}")
        pipe.execute()
        self.assert_capped("md:s", 20, 500)
        # the argument still wins over the loaded default
        for i in range(300):
            fcall(self.r, "md:s", "{}", 250)
        self.assert_capped("md:s", 250, 800)

    def test_bad_options(self):
        for args in (["--stream-len", "0"], ["--stream-len", "1e3"], ["--stream-len", "-5"],
                     ["--redis", "http://127.0.0.1:1"], ["--redis", "redis://127.0.0.1:99999"],
                     ["--file", "/nonexistent/chartgate_md.lua"]):
            res = self.loader(*args)
            self.assertEqual(res.returncode, 2, (args, res.stderr))
            self.assertIn("load-functions: error: ", res.stderr)
        self.assertEqual(self.r.execute_command("FUNCTION", "LIST"), [])

    def test_fails_clearly_against_a_dead_port(self):
        port = free_port()
        res = self.loader("--redis", "redis://127.0.0.1:%d" % port, "--timeout", "3")
        self.assert_one_line_failure(res, "127.0.0.1:%d" % port, "refused")

    def test_password(self):
        rs = RedisServer(password="s3cret:pw").start()
        self.addCleanup(rs.cleanup)
        url = "redis://127.0.0.1:%d" % rs.port
        res = self.loader("--redis", url)
        self.assert_one_line_failure(res, "authentication")
        self.assertNotIn("s3cret", res.stderr)
        wrong = os.path.join(self.logdir, "wrong.pw")
        with open(wrong, "w") as f:
            f.write("nope\n")
        res = self.loader("--redis", url, "--password-file", wrong)
        self.assert_one_line_failure(res, "authentication")
        right = os.path.join(self.logdir, "right.pw")
        with open(right, "w") as f:
            f.write("default:s3cret:pw\n")  # USER:PASSWORD, the password holding ':'
        res = self.loader("--redis", url, "--password-file", right)
        self.assertEqual(res.returncode, 0, res.stderr)
        c = rs.client()
        self.addCleanup(c.close)
        self.assertEqual(fcall(c, "md:p", "{}"), 1)

    def test_redis_without_functions(self):
        # what a Redis before 7.0 answers: FUNCTION is an unknown command
        rs = RedisServer(extra=["--rename-command", "FUNCTION", ""]).start()
        self.addCleanup(rs.cleanup)
        res = self.loader("--redis", rs.url)
        self.assert_one_line_failure(res, "has no Functions", "Redis 7.0 or later")
        self.assertNotIn("#!lua", res.stderr)


class DemoFeedTest(PublishFunctionCase):
    load_library = False

    def feed(self, *args):
        binary = demo_feed_binary()
        if not os.access(binary, os.X_OK):
            self.fail("%s is missing: build it (ninja -C build)" % binary)
        log = open(os.path.join(self.logdir, "demo-feed.log"), "w+")
        self.addCleanup(log.close)
        p = track(subprocess.Popen([binary, "--redis", self.redis.url, "--seed", "7"]
                                   + list(args), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL))
        self.addCleanup(stop_proc, p)
        return p, log

    @staticmethod
    def text(log):
        log.seek(0)
        return log.read()

    def test_feed_publishes_increasing_seqs_through_the_function(self):
        ps = self.r.pubsub()
        self.addCleanup(ps.close)
        ps.subscribe("md:rb2501")
        wait_for(lambda: ps.get_message(timeout=0.1) is not None, msg="subscribe confirmed")
        p, log = self.feed("--rate", "300", "--instruments", "3", "--duration", "3")
        self.assertEqual(p.wait(scaled(30)), 0, self.text(log))
        out = self.text(log)
        self.assertIn('msg="loaded the redis function library"', out)
        self.assertIn("redis_errors=0", out)
        total = 0
        for name in ("rb2501", "IF2412", "au2412"):
            seqs = entry_seqs(self.r, "md:" + name)
            self.assertGreater(len(seqs), 0, name)
            self.assertEqual(seqs, list(range(1, len(seqs) + 1)), name)  # every seq, in order
            self.assertEqual(self.r.get(seq_key("md:" + name)), str(seqs[-1]))
            for _, fields in self.r.xrange(stream_key("md:" + name), count=3):
                self.assertIn('"last_price":', fields["d"])
            total += len(seqs)
        m = re.search(r'msg="duration reached" ticks=\d+ rate=[\d.]+ ticks_total=(\d+) '
                      r'inbox_ticks=(\d+)', out)
        self.assertIsNotNone(m, out)
        self.assertEqual(total, int(m.group(1)) - int(m.group(2)))
        got = []
        while True:
            msg = ps.get_message(timeout=0.5)
            if msg is None:
                break
            if msg["type"] == "message":
                got.append(msg["data"])
        seqs = [int(re.match(r"#(\d+) \{", d).group(1)) for d in got]
        self.assertEqual(seqs, list(range(1, len(entry_seqs(self.r, "md:rb2501")) + 1)))

    def test_feed_loads_the_function_again_after_a_flush(self):
        p, log = self.feed("--rate", "200", "--instruments", "1", "--duration", "30")
        wait_for(lambda: self.r.exists(stream_key("md:rb2501")), timeout=scaled(10),
                 msg="first ticks")
        self.r.execute_command("FUNCTION", "FLUSH")
        n0 = int(self.r.get(seq_key("md:rb2501")))
        wait_for(lambda: int(self.r.get(seq_key("md:rb2501"))) > n0 + 50, timeout=scaled(10),
                 msg="ticks after FUNCTION FLUSH")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(scaled(10)), 0, self.text(log))
        self.assertEqual(self.text(log).count('msg="loaded the redis function library"'), 2)
        seqs = entry_seqs(self.r, "md:rb2501")
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))

    def test_feed_fails_clearly_when_the_function_cannot_be_loaded(self):
        p, log = self.feed("--rate", "50", "--functions", "/nonexistent/chartgate_md.lua")
        self.assertEqual(p.wait(scaled(10)), 1, self.text(log))
        errors = [line for line in self.text(log).splitlines() if "level=error" in line]
        self.assertEqual(len(errors), 1, self.text(log))
        self.assertIn("/nonexistent/chartgate_md.lua", errors[0])
        self.assertEqual(self.r.keys("*"), [])

    def test_feed_plain_publish(self):
        ps = self.r.pubsub()
        self.addCleanup(ps.close)
        ps.subscribe("md:rb2501")
        wait_for(lambda: ps.get_message(timeout=0.1) is not None, msg="subscribe confirmed")
        p, log = self.feed("--rate", "100", "--instruments", "1", "--duration", "1",
                           "--publish", "plain")
        self.assertEqual(p.wait(scaled(30)), 0, self.text(log))
        msgs = []
        while True:
            m = ps.get_message(timeout=0.5)
            if m is None:
                break
            if m["type"] == "message":
                msgs.append(m["data"])
        self.assertGreater(len(msgs), 10)
        self.assertTrue(all(d.startswith('{"last_price":') for d in msgs), msgs[:3])
        self.assertEqual(self.r.execute_command("FUNCTION", "LIST"), [])
        self.assertEqual(self.r.keys("{*"), [])


if __name__ == "__main__":
    harness.main()
