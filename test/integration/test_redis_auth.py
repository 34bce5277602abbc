#!/usr/bin/python3
"""test_redis_auth.py -- a Redis that requires AUTH: requirepass for the default user and an ACL
user (ACL SETUSER gw on >pw ~* &* +@all). The gateway authenticates every link with URL
credentials or a password file (PASSWORD or USER:PASSWORD) and serves sessions and ticks; a
wrong password is reported once per link (WRONGPASS), retried with back-off (no storm) while
/healthz says 503; a password rotated under a running gateway is picked up from the file on
SIGHUP; and no password ever shows in logs, /metrics, /healthz, --help or a config error."""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import is_message, is_tick, wait_for  # noqa: E402

ADMIN_PW = "adm1n-Pw"  # requirepass: the default user
GW_USER = "gw"
LINKS = ("pubsub", "command", "inbox")
AUTH_FAILED_RE = r'msg="redis authentication failed" link=%s addr=\S+ error="WRONGPASS '


class AuthCase(harness.GatewayTestCase):
    """The harness's test case on a password-protected Redis with the ACL user gw."""
    gw_pw = "gw-S3cret:pw"  # the ACL user's; holds ':' to check the USER:PASSWORD split

    redis_password = ADMIN_PW

    def setUp(self):
        super().setUp()  # the harness's, on a password-protected Redis
        self.add_acl_user()

    def add_acl_user(self):
        self.r.execute_command("ACL", "SETUSER", GW_USER, "on", ">" + self.gw_pw, "~*", "&*",
                               "+@all")

    def secret_file(self, text, name="redis.pw"):
        path = os.path.join(self.logdir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def plain_url(self):
        return "redis://127.0.0.1:%d" % self.redis.port

    def connections_received(self):
        return int(self.r.info("stats")["total_connections_received"])

    def check_serves(self, gw, user):
        """Sessions, ticks and the inbox work through gw (every link authenticated)."""
        status, doc = gw.healthz()
        self.assertEqual(status, 200, doc)
        self.assertEqual(self.upgrade_status(self.make_session(user), gw=gw), 101)
        c = self.connect(user_id=user, gw=gw, name=user)
        c.subscribe(["rb2501"])
        self.wait_numsub("md:rb2501", 1)
        self.publish("md:rb2501", {"last_price": 1, "who": user})
        self.assertEqual(c.recv_until(is_tick("rb2501"))[-1]["data"]["who"], user)
        self.rpush_inbox({"user": user, "data": {"via": "inbox"}})
        self.assertEqual(c.recv_until(is_message("user"))[-1]["data"], {"via": "inbox"})
        m = gw.metrics()
        for link in LINKS + ("session",):
            self.assertEqual(m.value("chartgate_redis_up", link=link), 1, link)
            self.assertEqual(m.value("chartgate_redis_auth_failures_total", link=link), 0, link)
        c.close()
        self.wait_numsub("md:rb2501", 0)


class RedisAuthTest(AuthCase):

    def test_url_credentials(self):
        url = "redis://%s:%s@127.0.0.1:%d/0" % (GW_USER, self.gw_pw.replace(":", "%3A"),
                                                self.redis.port)
        gw = self.start_gateway(redis_url=url)
        self.check_serves(gw, "u-url")
        # the password is gone from the command line every local user can read
        with open("/proc/%d/cmdline" % gw.pid, "rb") as f:
            cmdline = f.read().decode("utf-8", "replace")
        self.assertNotIn("S3cret", cmdline)
        self.assertIn("redis://gw:", cmdline)

    def test_password_file_forms(self):
        forms = {"password": ADMIN_PW + "\n", "user:password": "%s:%s\n" % (GW_USER, self.gw_pw)}
        for form, text in forms.items():
            with self.subTest(form=form):
                path = self.secret_file(text, "pw-" + form.replace(":", "-"))
                gw = self.start_gateway("--redis-password-file", path,
                                        redis_url=self.plain_url())
                self.check_serves(gw, "u-" + form.replace(":", "-"))
                gw.stop()
        # and named in the config file
        conf = os.path.join(self.logdir, "conf.json")
        with open(conf, "w") as f:
            f.write('{"redis_password_file": "%s"}' % self.secret_file(ADMIN_PW, "pw-conf"))
        gw = self.start_gateway("--config", conf, redis_url=self.plain_url())
        self.check_serves(gw, "u-conf")

    def test_wrong_password_reported_once_and_backed_off(self):
        before = self.connections_received()
        t0 = time.monotonic()
        gw = self.start_gateway("--redis-password-file", self.secret_file("wrong-one\n"),
                                redis_url=self.plain_url(), wait="any")
        # a browser trying meanwhile: refused with 503, its session link refused too
        sid = self.make_session("u1")
        for _ in range(3):
            status, doc = gw.healthz()
            self.assertEqual(status, 503, doc)
            self.assertEqual(doc["status"], "degraded")
            self.assertEqual(self.upgrade_status(sid, gw=gw), 503)
            time.sleep(0.5)
        # the log names each link and Redis's error, once
        for link in LINKS + ("session",):
            wait_for(lambda: re.search(AUTH_FAILED_RE % link, gw.log_text()), 5,
                     "the %s link's WRONGPASS line" % link)
        time.sleep(max(0.0, 6.0 - (time.monotonic() - t0)))
        window = time.monotonic() - t0
        attempts = self.connections_received() - before
        log = gw.log_text()
        for link in LINKS + ("session",):
            self.assertEqual(len(re.findall(AUTH_FAILED_RE % link, log)), 1,
                             "one line for the %s link:\n%s" % (link, log))
        self.assertLess(len(log.splitlines()), 20, "a log storm:\n%s" % log)
        # retried, but with back-off: 100 ms doubling to 5 s is at most 7 tries per link in
        # 6 s; the session link is held 1 s, then 2 s, 4 s (a tight loop would be thousands)
        m = gw.metrics()
        for link in LINKS:
            n = m.value("chartgate_redis_auth_failures_total", link=link)
            self.assertGreaterEqual(n, 2, "%s link retried" % link)
            self.assertLessEqual(n, 9, "%s link backed off" % link)
        self.assertLessEqual(m.value("chartgate_redis_auth_failures_total", link="session"), 4)
        self.assertLessEqual(attempts, 40, "%d connections in %.1fs" % (attempts, window))
        print("wrong password: %d connection attempts in %.1fs" % (attempts, window))
        self.assertEqual(gw.healthz()[0], 503)

    def test_password_rotated_then_fixed_by_sighup(self):
        path = self.secret_file(ADMIN_PW + "\n")
        gw = self.start_gateway("--redis-password-file", path, "--session-check-s", "1",
                                redis_url=self.plain_url())
        c = self.connect(user_id="u1", gw=gw, name="u1")
        c.subscribe(["rb2501"])
        self.wait_numsub("md:rb2501", 1)
        self.publish("md:rb2501", {"n": 1})
        self.assertEqual(c.recv_until(is_tick("rb2501"))[-1]["data"], {"n": 1})

        # Redis comes back with another password (sessions kept: saved before the crash)
        self.redis.kill(save=True)
        self.redis.password = "rotated-Pw2"
        self.redis.start()
        self.r = self.redis.client()
        self.addCleanup(self.r.close)
        for link in LINKS:
            wait_for(lambda: re.search(AUTH_FAILED_RE % link, gw.log_text()), 10,
                     "the %s link's WRONGPASS line after the rotation" % link)
        self.assertEqual(gw.healthz()[0], 503)
        self.assertEqual(c.request({"action": "ping", "id": 1}), {"type": "pong", "id": 1})

        # the operator fixes the file and sends SIGHUP: back at the next reconnect (at once)
        with open(path, "w") as f:
            f.write("rotated-Pw2\n")
        t = time.monotonic()
        gw.signal(signal.SIGHUP)
        wait_for(lambda: gw.healthz()[0] == 200, 5, "/healthz 200 after SIGHUP")
        print("recovered %.2fs after SIGHUP" % (time.monotonic() - t))
        self.assertIn("password files reloaded", gw.log_text())
        # the same socket: re-subscribed, ticks flow, seq continues; new handshakes work
        self.wait_numsub("md:rb2501", 1)
        self.publish("md:rb2501", {"n": 2})
        self.assertEqual(c.recv_until(is_tick("rb2501"))[-1]["data"], {"n": 2})
        self.assertEqual(self.upgrade_status(self.make_session("u2"), gw=gw), 101)
        self.assertEqual(gw.metrics().value("chartgate_sessions_revoked_total"), 0)
        # a file that cannot be read on SIGHUP keeps the working password
        os.unlink(path)
        gw.signal(signal.SIGHUP)
        wait_for(lambda: "password file reload failed" in gw.log_text(), 5, "the reload error")
        self.assertEqual(gw.healthz()[0], 200)


class SecretLeakTest(AuthCase):
    """Every place the gateway writes to, searched for the passwords it was given."""
    gw_pw = "LEAKCANARY-gw-7f3a"
    wrong_pw = "LEAKCANARY-wrong-91c2"

    def run_gateway(self, *args):
        p = subprocess.run([harness.gateway_binary()] + list(args), capture_output=True,
                           text=True, timeout=10)
        return p.returncode, p.stdout + p.stderr

    def test_passwords_appear_nowhere(self):
        seen = []  # (where, text)
        # URL credentials, debug logging, a WebSocket, /metrics and /healthz
        url = "redis://%s:%s@127.0.0.1:%d" % (GW_USER, self.gw_pw, self.redis.port)
        a = self.start_gateway("--log-level", "debug", redis_url=url)
        self.check_serves(a, "u-a")
        for path in ("/metrics", "/healthz"):
            seen.append(("a " + path, a.get(path)[2].decode()))
        # the password file, reloaded on SIGHUP
        b = self.start_gateway("--log-level", "debug", "--redis-password-file",
                               self.secret_file("%s:%s" % (GW_USER, self.gw_pw), "b.pw"),
                               redis_url=self.plain_url())
        b.signal(signal.SIGHUP)
        wait_for(lambda: "password files reloaded" in b.log_text(), 5, "the reload")
        # a wrong password, failing for a while (debug logging)
        c = self.start_gateway("--log-level", "debug", "--redis-password-file",
                               self.secret_file("%s:%s" % (GW_USER, self.wrong_pw), "c.pw"),
                               redis_url=self.plain_url(), wait="any")
        self.assertEqual(self.upgrade_status(self.make_session("u-c"), gw=c), 503)
        wait_for(lambda: re.search(AUTH_FAILED_RE % "inbox", c.log_text()), 5, "WRONGPASS")
        time.sleep(1)
        for path in ("/metrics", "/healthz"):
            seen.append(("c " + path, c.get(path)[2].decode()))
        for gw in (a, b, c):
            gw.stop()
            seen.append((gw.log, gw.log_text()))
        # --help, and config errors that would quote the value they refuse
        seen.append(("--help", self.run_gateway("--help")[1]))
        bad_runs = [
            ["--redis", "redis://%s:%s@127.0.0.1:0" % (GW_USER, self.gw_pw)],
            ["--redis", "rediss://%s:%s@127.0.0.1:1" % (GW_USER, self.gw_pw)],
            ["--redis", "redis://:%s@h:1/99" % self.gw_pw],
            ["redis://%s:%s@127.0.0.1:1" % (GW_USER, self.gw_pw)],
            ["--redis-password-file", self.secret_file("%s\n%s\n" % (self.gw_pw, self.gw_pw))],
            ["--redis-password-file", self.secret_file("x" * 2000 + self.gw_pw)],
        ]
        for text in ('{"redis": "redis://gw:%s\n@h:1"}', '{"redis": redis://gw:%s@h:1}',
                     '{"redis": "redis://gw:%s@h:1", "bogus": 1}',
                     '{"redis": "redis://gw:%s@h:x"}'):
            path = os.path.join(self.logdir, "bad-%d.json" % len(bad_runs))
            with open(path, "w") as f:
                f.write(text % self.gw_pw)
            bad_runs.append(["--config", path])
        for args in bad_runs:
            rc, out = self.run_gateway(*args)
            self.assertEqual(rc, 2, "%s -> %s" % (args, out))
            self.assertTrue(out.startswith("chartgate: ") and out.count("\n") == 1, out)
            seen.append(("config error", out))
        for where, text in seen:
            for secret in (self.gw_pw, self.wrong_pw, ADMIN_PW, "LEAKCANARY"):
                self.assertNotIn(secret, text, "a password in %s:\n%s" % (where, text[-3000:]))
        print("searched %d outputs (%d bytes): no password" % (
            len(seen), sum(len(t) for _, t in seen)))


if __name__ == "__main__":
    harness.main()
