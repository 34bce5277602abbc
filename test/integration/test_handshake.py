#!/usr/bin/python3
"""test_handshake.py -- authentication before the upgrade, Origin, fail-closed on Redis down,
session cache, revocation and expiry of live sessions (close 4001), no session id in logs."""

import os
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_for  # noqa: E402


class HandshakeTest(harness.GatewayTestCase):

    def test_valid_session_upgrades(self):
        self.start_gateway()
        sid = self.make_session("u1", instruments=["rb*"], exp=int(time.time()) + 3600)
        self.assertEqual(self.upgrade_status(sid), 101)
        c = self.connect(sid=sid)
        pong = c.request({"action": "ping", "id": 1})
        self.assertEqual(pong, {"type": "pong", "id": 1})
        # no Origin allowlist configured: any Origin is accepted
        self.assertEqual(self.upgrade_status(sid, origin="http://anything.example"), 101)

    def test_missing_cookie_is_401(self):
        self.start_gateway()
        self.assertEqual(self.upgrade_status(cookie=None), 401)
        self.assertEqual(self.upgrade_status(cookie="theme=dark; lang=en"), 401)
        self.assertEqual(self.upgrade_status(cookie="sessionid="), 401)

    def test_unknown_session_is_401(self):
        self.start_gateway()
        self.make_session("u1")  # some other session exists
        self.assertEqual(self.upgrade_status(secrets.token_urlsafe(24)), 401)

    def test_malformed_session_is_401(self):
        self.start_gateway()
        cases = {
            "not json": "{user_id: u1",
            "json array": '["u1"]',
            "json string": '"u1"',
            "missing user_id": '{"instruments": ["rb*"]}',
            "user_id not a string": '{"user_id": 5}',
            "instruments not a list": '{"user_id": "u1", "instruments": "rb*"}',
            "exp not a number": '{"user_id": "u1", "exp": "tomorrow"}',
        }
        for what, raw in cases.items():
            with self.subTest(what):
                sid = self.make_session(raw=raw)
                self.assertEqual(self.upgrade_status(sid), 401, "session %s: %r" % (what, raw))

    def test_expired_session_is_401(self):
        self.start_gateway()
        sid = self.make_session("u1", exp=int(time.time()) - 5)
        self.assertEqual(self.upgrade_status(sid), 401)
        sid = self.make_session("u1", exp=int(time.time()) + 600)
        self.assertEqual(self.upgrade_status(sid), 101)

    def test_session_id_shape_is_checked(self):
        self.start_gateway()
        # keys exist in Redis, but the ids are outside [A-Za-z0-9_-]{1,128}
        for sid in ("abc!def", "a.b", "x" * 129):
            with self.subTest(sid=sid[:20]):
                self.make_session("u1", sid=sid)
                self.assertEqual(self.upgrade_status(cookie="sessionid=%s" % sid), 401)
        longest = "y" * 128
        self.make_session("u1", sid=longest)
        self.assertEqual(self.upgrade_status(longest), 101)

    def test_cookie_name_matched_exactly(self):
        self.start_gateway()
        sid = self.make_session("u1")
        self.assertEqual(self.upgrade_status(cookie="xsessionid=%s" % sid), 401)
        self.assertEqual(self.upgrade_status(cookie="sessionidx=%s" % sid), 401)
        self.assertEqual(self.upgrade_status(cookie="my_sessionid=%s; other=1" % sid), 401)
        self.assertEqual(self.upgrade_status(cookie="a=1; sessionid=%s; b=2" % sid), 101)
        self.assertEqual(self.upgrade_status(cookie="xsessionid=nope; sessionid=%s" % sid), 101)
        self.assertEqual(self.upgrade_status(cookie="csrftoken=abc;sessionid=%s" % sid), 101)

    def test_origin_allowlist(self):
        self.start_gateway("--origin", "http://good", "--origin", "https://also.good:8443")
        sid = self.make_session("u1")
        self.assertEqual(self.upgrade_status(sid, origin="http://evil"), 403)
        self.assertEqual(self.upgrade_status(sid, origin="http://good.evil"), 403)
        self.assertEqual(self.upgrade_status(sid, origin="https://good"), 403)
        self.assertEqual(self.upgrade_status(sid, origin="http://good"), 101)
        self.assertEqual(self.upgrade_status(sid, origin="https://also.good:8443"), 101)
        c = self.connect(sid=sid, origin="http://good")
        self.assertEqual(c.request({"action": "ping", "id": "o"}), {"type": "pong", "id": "o"})
        # an unknown session from a good Origin is still 401
        self.assertEqual(self.upgrade_status(secrets.token_urlsafe(20), origin="http://good"), 401)

    def test_redis_down_is_503(self):
        gw = self.start_gateway()
        sid = self.make_session("u1")  # exists, but the gateway has never looked it up
        self.redis.stop()
        status = self.upgrade_status(sid)
        self.assertEqual(status, 503, "Redis unreachable must fail closed with 503")
        self.assertEqual(gw.get("/healthz")[0], 503)

    def test_other_paths_do_not_upgrade(self):
        self.start_gateway()
        sid = self.make_session("u1")
        for path in ("/", "/other", "/wsx", "/ws/extra", "/healthz"):
            with self.subTest(path=path):
                status = self.upgrade_status(sid, path=path)
                self.assertNotEqual(status, 101)
                if path not in ("/", "/healthz"):
                    self.assertEqual(status, 404)
        self.assertEqual(self.upgrade_status(sid, path="/ws"), 101)

    def test_session_ids_never_logged(self):
        gw = self.start_gateway("--log-level", "debug", "--session-check-s", "1")
        sids = []
        good = self.make_session("u1")
        sids.append(good)
        c = self.connect(sid=good)
        c.request({"action": "subscribe", "instruments": ["rb2501"], "id": 1})
        unknown = "unknown" + secrets.token_urlsafe(20)
        sids.append(unknown)
        self.assertEqual(self.upgrade_status(unknown), 401)
        expired = self.make_session("u2", exp=int(time.time()) - 1)
        sids.append(expired)
        self.assertEqual(self.upgrade_status(expired), 401)
        bad = self.make_session(raw="{garbage")
        sids.append(bad)
        self.assertEqual(self.upgrade_status(bad), 401)
        self.assertEqual(self.upgrade_status(cookie="xsessionid=%s" % good), 401)
        self.assertEqual(self.upgrade_status(good, path="/nope"), 404)
        # revocation is logged too
        self.r.delete("session:" + good)
        self.assertEqual(c.expect_close(timeout=3.0)[0], 4001)
        gw.stop()
        log = gw.log_text()
        self.assertIn('msg="listening"', log)
        for sid in sids:
            self.assertNotIn(sid, log, "a session id appears in the gateway log")
            self.assertNotIn(sid[:16], log, "a session id prefix appears in the gateway log")

    def test_revocation_on_delete(self):
        self.start_gateway("--session-check-s", "1")
        sid = self.make_session("u1")
        other = self.make_session("u1")  # same user, another login: must stay
        c = self.connect(sid=sid, name="revoked")
        keep = self.connect(sid=other, name="kept")
        c.subscribe(["rb2501"])
        keep.subscribe(["rb2501"])
        t0 = time.monotonic()
        self.r.delete("session:" + sid)
        code, reason = c.expect_close(timeout=3.0)
        self.assertEqual((code, reason), (4001, "session ended"))
        self.assertLess(time.monotonic() - t0, 3.0)
        # the other session's socket is alive and still gets data
        self.assertEqual(keep.barrier(), [])
        self.wait_channel_ready("md:rb2501")
        self.publish("md:rb2501", {"p": 1})
        tick = keep.recv_until(harness.is_tick("rb2501"))[-1]
        self.assertEqual(tick["data"], {"p": 1})
        self.wait_metric("chartgate_sessions_revoked_total", lambda v: v >= 1)

    def test_redis_ttl_expiry_closes(self):
        self.start_gateway("--session-check-s", "1")
        sid = self.make_session("u1", ttl_ms=1500)
        c = self.connect(sid=sid)
        t0 = time.monotonic()
        code, reason = c.expect_close(timeout=4.5)
        self.assertEqual((code, reason), (4001, "session ended"))
        self.assertGreater(time.monotonic() - t0, 0.5, "closed before the key expired")

    def test_exp_reached_closes(self):
        self.start_gateway("--session-check-s", "1")
        exp = int(time.time()) + 2
        sid = self.make_session("u1", exp=exp)
        c = self.connect(sid=sid)
        self.assertEqual(c.request({"action": "ping", "id": 1})["type"], "pong")
        code, reason = c.expect_close(timeout=(exp - time.time()) + 3.0)
        self.assertEqual((code, reason), (4001, "session ended"))
        self.assertGreaterEqual(time.time(), exp - 0.05, "closed before exp")

    def test_session_cache_bounds_redis_lookups(self):
        self.start_gateway("--session-cache-ms", "1000")

        def gets():
            stats = self.r.info("commandstats")
            return sum(stats.get("cmdstat_%s" % c, {}).get("calls", 0)
                       for c in ("get", "getex", "mget"))

        # control: distinct sessions each need a lookup
        before = gets()
        for _ in range(5):
            self.assertEqual(self.upgrade_status(self.make_session("u1")), 101)
        distinct = gets() - before
        if distinct < 5:
            self.skipTest("the gateway does not look sessions up with GET (%d GETs)" % distinct)
        # a reconnect storm on one session: served from the cache
        sid = self.make_session("u1")
        before = gets()
        for _ in range(20):
            self.assertEqual(self.upgrade_status(sid), 101)
        self.assertLessEqual(gets() - before, 3, "20 reconnects of one session hit Redis")
        # the cache is short: a deleted session is refused once its entry expires
        self.r.delete("session:" + sid)
        wait_for(lambda: self.upgrade_status(sid) == 401, 3.0,
                 "a deleted session to be refused after --session-cache-ms")

    def test_rejections_counted_by_reason(self):
        self.start_gateway("--origin", "http://good")
        sid = self.make_session("u1")
        before = self.metrics()
        self.assertEqual(self.upgrade_status(None, origin="http://good"), 401)
        self.assertEqual(self.upgrade_status(secrets.token_urlsafe(20), origin="http://good"),
                         401)
        self.assertEqual(self.upgrade_status(self.make_session(raw="{"), origin="http://good"),
                         401)
        self.assertEqual(self.upgrade_status(self.make_session("u1", exp=1),
                                             origin="http://good"), 401)
        self.assertEqual(self.upgrade_status(sid, origin="http://bad"), 403)
        self.assertEqual(self.upgrade_status(sid, origin="http://good"), 101)
        after = self.metrics()
        name = "chartgate_handshake_rejections_total"
        for reason in ("no_cookie", "unknown_session", "bad_session", "expired", "origin"):
            with self.subTest(reason=reason):
                self.assertEqual(after.value(name, reason=reason)
                                 - before.value(name, reason=reason), 1)
        self.assertGreaterEqual(after.value("chartgate_handshakes_total")
                                - before.value("chartgate_handshakes_total"), 1)



class AbuseLimitTest(harness.GatewayTestCase):
    """Issue 6, security posture: per-address connection and handshake limits (believing
    X-Forwarded-For / X-Real-IP only from configured proxies) and sockets per user."""

    def hold(self, sid, headers=None):
        """An open upgraded socket (kept until the test ends), or the refusal status."""
        up = harness.raw_upgrade(self.gw.port, cookie="sessionid=%s" % sid,
                                 extra_headers=headers, keep_open=True)
        if up.sock is not None:
            self.addCleanup(up.sock.close)
        return up.status

    def rejected(self, reason):
        return self.metrics().value("chartgate_handshake_rejections_total", reason=reason)

    def test_sockets_per_user(self):
        self.start_gateway("--max-sockets-per-user", "2")
        sid = self.make_session("u1")
        self.assertEqual([self.hold(sid) for _ in range(3)], [101, 101, 429])
        self.assertEqual(self.rejected("user_limit"), 1)
        # another user is not affected
        self.assertEqual(self.hold(self.make_session("u2")), 101)

    def test_connections_per_address(self):
        self.start_gateway("--max-conns-per-ip", "2", "--max-sockets-per-user", "0")
        sid = self.make_session("u1")
        up1 = harness.raw_upgrade(self.gw.port, cookie="sessionid=" + sid, keep_open=True)
        self.assertEqual(up1.status, 101)
        self.assertEqual(self.hold(sid), 101)
        self.assertEqual(self.hold(sid), 429)
        self.assertEqual(self.rejected("ip_limit"), 1)
        up1.sock.close()  # a slot frees when a connection closes
        harness.wait_for(lambda: self.metrics().value("chartgate_connections") == 1,
                         msg="the closed socket counted out")
        self.assertEqual(self.hold(sid), 101)

    def test_handshake_rate_per_address(self):
        self.start_gateway("--handshake-rate-per-ip", "1", "--handshake-burst-per-ip", "3")
        sid = self.make_session("u1")
        self.assertEqual([self.upgrade_status(sid) for _ in range(4)], [101, 101, 101, 429])
        self.assertEqual(self.rejected("ip_rate"), 1)
        harness.wait_for(lambda: self.upgrade_status(sid) == 101, 5, "a token back after ~1 s")

    def test_forwarded_address_only_from_trusted_proxies(self):
        sid = self.make_session("u1")
        # not trusted: the header is the client's word and is ignored (same address twice)
        self.start_gateway("--max-conns-per-ip", "1")
        self.assertEqual(self.hold(sid, {"X-Forwarded-For": "198.51.100.1"}), 101)
        self.assertEqual(self.hold(sid, {"X-Forwarded-For": "198.51.100.2"}), 429)
        # trusted (the local nginx): the proxy's last X-Forwarded-For entry is the client
        self.gw = None
        gw = self.start_gateway("--max-conns-per-ip", "1", "--trusted-proxy", "127.0.0.1")
        self.gw = gw
        self.assertEqual(self.hold(sid, {"X-Forwarded-For": "203.0.113.9, 198.51.100.1"}), 101)
        self.assertEqual(self.hold(sid, {"X-Forwarded-For": "198.51.100.2"}), 101)
        self.assertEqual(self.hold(sid, {"X-Real-IP": "198.51.100.3"}), 101)
        # the same forwarded client twice: limited, whatever it claims before the proxy's entry
        self.assertEqual(self.hold(sid, {"X-Forwarded-For": "10.9.9.9, 198.51.100.1"}), 429)


if __name__ == "__main__":
    harness.main()
