#!/usr/bin/python3
"""test_services.py -- two-way messages (PROTOCOL.md §16) end to end, with the real alerts service
(scripts/services/alerts) as the backend: a client's send goes onto the service's Redis list,
its reply reaches the asking socket only (on whichever gateway process it is), and a fired alert
reaches every socket of its user and nobody else's.

Also: the gateway's own checks (bad_request, unknown_service, forbidden), the list cap and a
stopped service (messages wait, then unavailable), connection events, replies that must be
dropped, Redis SIGKILLed under a stream of sends (each one answered exactly once), and the
service's own promises (bad input never stops it, alerts survive restarts, unfinished requests
are requeued, several instances fire an alert once)."""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import compact, is_message, scaled, wait_for  # noqa: E402

ALERTS = os.path.join(harness.REPO_ROOT, "scripts", "services", "alerts")
QUEUE = "chartgate:service:alerts"
SERVICE_ARGS = ("--service", "alerts", "--service-events", "alerts")


def is_reply(rid):
    return lambda f: f.get("type") == "reply" and f.get("id") == rid


def is_alert(aid=None):
    return lambda f: (f.get("type") == "message" and f.get("channel") == "user"
                      and isinstance(f.get("data"), dict) and f["data"].get("kind") == "alert"
                      and (aid is None or f["data"].get("alert") == aid))


class AlertsProcess:
    """scripts/services/alerts on the test's Redis, stopped by PID."""

    def __init__(self, redis_url, logdir, consumer, extra=()):
        self.log = os.path.join(logdir, "alerts-%s.log" % consumer)
        self.consumer = consumer
        with open(self.log, "ab") as out:
            self.proc = harness.track(subprocess.Popen(
                ["/usr/bin/python3", ALERTS, "--redis", redis_url, "--consumer-id", consumer]
                + list(extra), stdin=subprocess.DEVNULL, stdout=out, stderr=out))
        wait_for(lambda: self.exited() or "alerts loaded" in self.text(), scaled(10),
                 "the alerts service to start")
        if self.exited():
            raise AssertionError("alerts exited with %s:\n%s" % (self.proc.returncode,
                                                                 harness.tail(self.log)))

    def text(self):
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def exited(self):
        return self.proc.poll() is not None

    def stop(self):
        """SIGTERM; returns (exit status, seconds it took)."""
        t = time.monotonic()
        rc, _ = harness.stop_proc(self.proc, signal.SIGTERM, scaled(5))
        return rc, time.monotonic() - t


class ServicesTest(harness.GatewayTestCase):

    sent_after_reply = 0  # how often the reply overtook the sent frame (reported at the end)

    # --- helpers ------------------------------------------------------------------------------

    def start_alerts(self, consumer="t1", extra=()):
        svc = AlertsProcess(self.redis.url, self.logdir, consumer, extra)

        def finish():
            if svc.exited():
                return
            rc, took = svc.stop()
            if self._failed():
                sys.stderr.write("\n--- alerts log tail (%s) ---\n%s\n---\n"
                                 % (consumer, harness.tail(svc.log, 30)))
            self.assertEqual(rc, 0, "alerts exited with %s on SIGTERM" % rc)
            self.assertLess(took, scaled(3), "alerts took %.1fs to stop" % took)
            self.assertNotIn("Traceback", svc.text())
            self.assertNotIn("level=error", svc.text())
        self.addCleanup(finish)
        return svc

    def send(self, c, data, rid=None, service="alerts", what="sent"):
        """A send; returns the gateway's answer to it (a sent or an error frame). A service's
        reply that overtakes the sent frame stays pending for ask()."""
        rid = c.next_id() if rid is None else rid
        req = {"action": "send", "service": service, "data": data, "id": rid}
        c.send(req)
        early = []
        while True:
            frame = c.recv_until(lambda f: f.get("id") == rid and f.get("type") != "message",
                                 what="answer to %s" % compact(req)[:200])[-1]
            if frame.get("type") != "reply":
                break
            early.append(frame)
        c.pending.extendleft(reversed(early))
        if what:
            self.assertEqual(frame.get("type"), what, "%s -> %s" % (compact(req), frame))
        return frame

    def ask(self, c, data, service="alerts"):
        """A send that must be queued, and the service's reply's data. Exactly one sent and one
        reply, in either order: they come over different Redis links (PROTOCOL.md §16)."""
        rid = c.next_id()
        self.send(c, data, rid, service)
        reply = c.recv_until(is_reply(rid), what="reply %d" % rid)[-1]
        self.assertEqual(reply["service"], service)
        ServicesTest.sent_after_reply += sum(1 for f in c.history[c.history.index(reply):]
                                     if f.get("type") == "sent" and f.get("id") == rid)
        return reply["data"]

    def set_alert(self, c, instrument, **level):
        d = self.ask(c, dict(op="set", instrument=instrument, **level))
        self.assertTrue(d.get("ok"), d)
        return d["alert"]

    def alerts_of(self, c):
        d = self.ask(c, {"op": "list"})
        self.assertTrue(d.get("ok"), d)
        return d["alerts"]

    def refused(self, c, data):
        d = self.ask(c, data)
        self.assertIs(d.get("ok"), False, "%s -> %s" % (compact(data), d))
        self.assertIsInstance(d.get("error"), str)
        return d["error"]

    def error(self, c, req, code):
        err = c.request(req, validate=False)
        self.assertEqual((err.get("type"), err.get("code"), err.get("id")),
                         ("error", code, req["id"]), "%s -> %s" % (compact(req), err))

    def tick(self, instrument, price):
        self.publish("md:" + instrument, {"last_price": price, "volume": 1,
                                          "ts": int(time.time() * 1000)})

    def quiet(self, *clients, wait=0.3):
        """Nothing for these clients: the service had `wait` seconds to misbehave."""
        time.sleep(scaled(wait))
        for c in clients:
            self.assert_nothing_for(c)

    def replies_total(self, gw, result):
        return gw.metrics().value("chartgate_service_replies_total", result=result)

    # --- the alerts feature, end to end ----------------------------------------------------------

    def test_set_list_fire_cancel(self):
        """Set, list, fire, cancel. A reply reaches only the asking socket; the notification
        every socket (tab) of the user and no other user's."""
        self.start_gateway(*SERVICE_ARGS)
        svc = self.start_alerts()
        sid = self.make_session("u1")
        tab1, tab2 = self.connect(sid=sid, name="u1-tab1"), self.connect(sid=sid, name="u1-tab2")
        other = self.connect(user_id="u2", name="u2")

        aid = self.set_alert(tab1, "rb2501", above=3600)
        self.assert_nothing_for(tab2, "reply meant for tab1")
        self.assert_nothing_for(other)
        self.assertEqual([(a["alert"], a["instrument"], a.get("above")) for a in
                          self.alerts_of(tab2)], [(aid, "rb2501", 3600)])
        self.assert_nothing_for(tab1, "reply meant for tab2")
        self.assertEqual(self.alerts_of(other), [])
        other_aid = self.set_alert(other, "rb2501", below=3000)

        # The service watches the instrument once "set" has been answered.
        self.assertGreaterEqual(self.numsub("md:rb2501"), 1)
        self.tick("rb2501", 3599.5)  # not yet
        self.tick("rb2501", 3600)  # >= fires
        self.tick("rb2501", 3700)  # already gone: no second notification
        notes = []
        for c in (tab1, tab2):
            frames = c.recv_until(is_alert(aid), what="alert notification")
            self.assertEqual([f for f in frames if is_message()(f)], [frames[-1]],
                             "exactly one message, the alert")
            notes.append(frames[-1]["data"])
        self.assertEqual(notes[0], notes[1])
        n = notes[0]
        self.assertEqual((n["kind"], n["alert"], n["instrument"], n["above"], n["price"]),
                         ("alert", aid, "rb2501", 3600, 3600))
        self.assertNotIn("below", n)
        self.assertIsInstance(n["ts"], int)
        self.quiet(tab1, tab2, other)
        self.assertEqual(self.alerts_of(tab1), [])
        self.assertEqual([a["alert"] for a in self.alerts_of(other)], [other_aid])

        # cancel, from the other tab
        aid2 = self.set_alert(tab1, "au2412", below=500.25)
        self.assertEqual(self.ask(tab2, {"op": "cancel", "alert": aid2}),
                         {"ok": True, "alert": aid2})
        self.assertEqual(self.alerts_of(tab1), [])
        self.assertIn("no such alert", self.refused(tab2, {"op": "cancel", "alert": aid2}))
        self.assertIn("no such alert", self.refused(other, {"op": "cancel", "alert": aid}),
                      "another user's alert")
        self.tick("au2412", 400)
        wait_for(lambda: self.numsub("md:au2412") == 0, scaled(5), "the service to unsubscribe")
        self.quiet(tab1, tab2)

        # u2's alert: u2 alone
        self.tick("rb2501", 2999)
        other.recv_until(is_alert(other_aid), what="u2's alert")
        self.quiet(tab1, tab2, other)
        wait_for(lambda: self.numsub("md:rb2501") == 0, scaled(5), "no alerts left on rb2501")

        # connection events reached the service (it logs them)
        log = svc.text()
        self.assertIn('msg="connection open" user=u1', log)
        self.assertIn('msg="connection open" user=u2', log)

    def test_bad_input(self):
        """The gateway's checks, then the service's: every bad request gets an answer and the
        service keeps serving; 100 alerts per user."""
        gw = self.start_gateway(*SERVICE_ARGS, "--rate-limit", "2000", "--rate-burst", "2000")
        svc = self.start_alerts()
        c = self.connect()

        # the gateway's (PROTOCOL.md §3 send, §6)
        self.error(c, {"action": "send", "data": {"op": "list"}, "id": 1}, "bad_request")
        self.error(c, {"action": "send", "service": 7, "data": {}, "id": 2}, "bad_request")
        self.error(c, {"action": "send", "service": "alerts", "id": 3}, "bad_request")
        self.error(c, {"action": "send", "service": "orders", "data": {}, "id": 4},
                   "unknown_service")
        self.error(c, {"action": "send", "service": "", "data": {}, "id": 5}, "unknown_service")

        # the service's: data is any JSON value at the gateway, the service refuses
        for data in ([1, 2], "set", None, 3600, {}, {"op": 1}, {"op": "delete"},
                     {"op": "set"}, {"op": "set", "above": 1},
                     {"op": "set", "instrument": "rb 2501", "above": 1},
                     {"op": "set", "instrument": "x" * 33, "above": 1},
                     {"op": "set", "instrument": "rb2501"},
                     {"op": "set", "instrument": "rb2501", "above": "3600"},
                     {"op": "set", "instrument": "rb2501", "above": True},
                     {"op": "set", "instrument": "rb2501", "above": None},
                     {"op": "set", "instrument": "rb2501", "above": 1, "below": 2},
                     {"op": "set", "instrument": ["rb2501"], "above": 1},
                     {"op": "cancel"}, {"op": "cancel", "alert": 5},
                     {"op": "cancel", "alert": "a999999"}, {"op": "cancel", "alert": "../x"}):
            self.refused(c, data)

        # junk straight onto the service's list never stops it
        self.r.rpush(QUEUE, "not json", "[]", "{}", '{"user":"u1"}', "NaN", b"\xff\xfe{",
                     compact({"user": "u1", "conn": "0123456789abcdef.1", "data": {"op": "list"}}),
                     compact({"event": "open"}), '{"a":' * 200, "[" * 100000 + "]" * 100000,
                     compact({"service": "alerts", "user": "u1", "conn": 5, "data": {},
                              "reply_to": "chartgate:reply:x", "ts": 1}))
        wait_for(lambda: self.r.llen(QUEUE) == 0, scaled(5), "the junk to be consumed")
        self.assertEqual(self.alerts_of(c), [])

        # the per-user cap
        ids = [self.set_alert(c, "cu%04d" % (i % 7), above=1000 + i) for i in range(100)]
        self.assertEqual(len(set(ids)), 100)
        self.assertIn("too many", self.refused(c, {"op": "set", "instrument": "rb2501",
                                                   "above": 1}))
        listed = self.alerts_of(c)
        self.assertEqual([a["alert"] for a in listed], ids, "oldest first")
        other = self.connect(user_id="u2")
        self.set_alert(other, "rb2501", above=1)  # the cap is per user
        self.ask(c, {"op": "cancel", "alert": ids[0]})
        last = self.set_alert(c, "rb2501", above=1)

        # ticks it cannot read (not UTF-8, not JSON, no price) fire nothing
        for junk in (b"\xff{\"last_price\":5}", "[5]", '{"last_price":"5"}', '{"last_price":NaN}',
                     '{"last_price":true}', "{" * 100000):
            self.publish("md:rb2501", junk)
        self.quiet(c, other)
        self.assertIn(last, [a["alert"] for a in self.alerts_of(c)])

        self.assertFalse(svc.exited())
        self.assertIn("dropped", svc.text())
        self.assertEqual(self.replies_total(gw, "malformed"), 0)

    def test_session_services_allowlist(self):
        """A session's "services" globs: ["other"] forbids, ["al*"] allows, [] forbids all."""
        self.start_gateway("--service", "alerts", "--service", "other")
        self.start_alerts()
        for services, code in ((["other"], "forbidden"), ([], "forbidden"),
                               (["al*"], None), (["o*", "alerts"], None)):
            # written by hand: make_session() knows no "services"
            sid = "svc%d" % harness.WSClient.next_id()
            self.r.set("session:" + sid, json.dumps({"user_id": "u1", "services": services}))
            c = self.connect(sid=sid)
            rid = c.next_id()
            req = {"action": "send", "service": "alerts", "data": {"op": "list"}, "id": rid}
            if code:
                self.error(c, req, code)
                self.assertEqual(self.r.llen(QUEUE), 0)
            else:
                self.assertEqual(self.ask(c, {"op": "list"}), {"ok": True, "alerts": []})
            # the other configured service: allowed by "other" / "o*"
            ok_other = services and any(s in ("other", "o*") for s in services)
            f = self.send(c, {"x": 1}, service="other", what=None)
            self.assertEqual(f["type"], "sent" if ok_other else "error", (services, f))
            c.close()

    def test_two_gateways(self):
        """Ask through gateway B: the reply reaches B's socket only, not the same user's socket
        on A; a fired alert reaches both."""
        gw_a = self.start_gateway(*SERVICE_ARGS)
        gw_b = self.start_gateway(*SERVICE_ARGS)
        self.start_alerts()
        sid = self.make_session("u1")
        on_a = self.connect(sid=sid, gw=gw_a, name="u1@A")
        on_b = self.connect(sid=sid, gw=gw_b, name="u1@B")
        replies_a = self.replies_total(gw_a, "delivered")

        aid = self.set_alert(on_b, "rb2501", above=10)
        self.assertEqual([a["alert"] for a in self.alerts_of(on_b)], [aid])
        self.assert_nothing_for(on_a, "a reply for B's socket")
        self.assertEqual([a["alert"] for a in self.alerts_of(on_a)], [aid])
        self.assert_nothing_for(on_b, "a reply for A's socket")
        self.assertEqual(self.replies_total(gw_a, "delivered"), replies_a + 1)
        self.assertEqual(self.replies_total(gw_a, "no_socket"), 0, "B's replies never reach A")
        self.assertEqual(self.replies_total(gw_b, "no_socket"), 0)

        self.tick("rb2501", 11)
        for c in (on_a, on_b):
            c.recv_until(is_alert(aid), what="the alert on %s" % c.name)

    def test_replies_dropped(self):
        """Replies naming another process's conn, a closed socket, or garbage: dropped and
        counted, the gateway keeps serving; the right reply still arrives."""
        gw = self.start_gateway("--service", "alerts")
        c = self.connect()
        gone = self.connect(name="gone")
        self.send(c, {"op": "list"}, rid=1)
        self.send(gone, {"op": "list"}, rid=1)
        env, env_gone = [json.loads(x) for x in self.r.lrange(QUEUE, 0, -1)]
        harness.VALIDATOR.validate(env, "service-envelope")
        self.assertEqual((env["service"], env["user"], env["id"], env["data"]),
                         ("alerts", "u1", 1, {"op": "list"}))
        epoch, _, n = env["conn"].partition(".")
        self.assertEqual(env["reply_to"], "chartgate:reply:" + epoch)
        self.assertEqual(env_gone["reply_to"], env["reply_to"])
        self.assertNotEqual(env_gone["conn"], env["conn"])
        gone.close()
        wait_for(lambda: gw.metrics().value("chartgate_connections") == 1, scaled(5),
                 "the gateway to see the socket closed")
        other_epoch = "0" * 16 if epoch != "0" * 16 else "1" * 16
        bad = ["not json", "[]", '"x"', "{}", compact({"service": "alerts", "data": 1}),
               compact({"service": "alerts", "conn": env["conn"]}),
               compact({"service": 5, "conn": env["conn"], "data": 1}),
               compact({"service": "alerts", "conn": 42, "data": 1}),
               compact({"service": "alerts", "conn": "nonsense", "data": 1}),
               compact({"service": "alerts", "conn": other_epoch + "." + n, "data": 1}),
               compact({"service": "alerts", "conn": epoch + ".99999999", "data": 1}),
               compact({"service": "alerts", "conn": env["conn"], "data": 1, "id": 3.5}),
               "{" * 5000]
        malformed0 = self.replies_total(gw, "malformed")
        nosock0 = self.replies_total(gw, "no_socket")
        for b in bad:
            self.r.publish(env["reply_to"], b)
        # the socket that closed meanwhile: no_socket, not delivered anywhere
        time.sleep(scaled(0.2))
        self.r.publish(env["reply_to"], compact({"service": "alerts", "conn": env_gone["conn"],
                                                 "id": 1, "data": {"late": True}}))
        good = {"service": "alerts", "conn": env["conn"], "id": 1, "data": {"ok": True}}
        self.r.publish(env["reply_to"], compact(good))
        frames = c.recv_until(is_reply(1), what="the good reply")
        self.assertEqual([f for f in frames if f.get("type") == "reply"],
                         [{"type": "reply", "service": "alerts", "id": 1, "data": {"ok": True}}])
        # no id in the reply: none in the frame
        self.r.publish(env["reply_to"], compact({"service": "alerts", "conn": env["conn"],
                                                 "data": [1, "two"]}))
        f = c.recv_until(lambda f: f.get("type") == "reply")[-1]
        self.assertEqual(f, {"type": "reply", "service": "alerts", "data": [1, "two"]})
        self.assert_nothing_for(c)
        dropped = (self.replies_total(gw, "malformed") - malformed0
                   + self.replies_total(gw, "no_socket") - nosock0)
        self.assertEqual(dropped, len(bad) + 1, "every bad reply dropped and counted")
        self.assertGreaterEqual(self.replies_total(gw, "no_socket") - nosock0, 2)
        status, doc = gw.healthz()
        self.assertEqual(status, 200, doc)

    def test_queue_cap_and_stopped_service(self):
        """No service running: messages wait on its list up to --service-queue-max, then
        unavailable. Started, the service answers those that waited, in order."""
        gw = self.start_gateway("--service", "alerts", "--service-queue-max", "5")
        c = self.connect()
        for rid in range(1, 6):
            self.send(c, {"op": "set", "instrument": "rb2501", "above": 100 + rid}, rid)
        self.assertEqual(self.r.llen(QUEUE), 5)
        err = self.send(c, {"op": "list"}, rid=6, what="error")
        self.assertEqual(err["code"], "unavailable", err)
        self.assertEqual(self.r.llen(QUEUE), 5, "a refused message is not queued")
        m = gw.metrics()
        self.assertEqual(m.value("chartgate_service_unavailable_total", service="alerts"), 1)
        self.assertEqual(m.value("chartgate_service_messages_total", service="alerts"), 5)

        self.start_alerts()
        got = [c.recv_until(is_reply(rid), what="reply %d" % rid)[-1] for rid in range(1, 6)]
        self.assertTrue(all(g["data"]["ok"] for g in got), got)
        self.assertEqual(len({g["data"]["alert"] for g in got}), 5)
        self.assertEqual(self.r.llen(QUEUE), 0)
        self.assertEqual(len(self.alerts_of(c)), 5)

    def test_connection_events(self):
        """--service-events: open and close envelopes on the list; the service consumes them."""
        self.start_gateway(*SERVICE_ARGS)
        c = self.connect(user_id="ev1")
        wait_for(lambda: self.r.llen(QUEUE) >= 1, scaled(5), "the open event")
        c.close()
        wait_for(lambda: self.r.llen(QUEUE) >= 2, scaled(5), "the close event")
        events = [json.loads(x) for x in self.r.lrange(QUEUE, 0, -1)]
        for e in events:
            harness.VALIDATOR.validate(e, "service-envelope")
        self.assertEqual([(e["event"], e["user"]) for e in events],
                         [("open", "ev1"), ("close", "ev1")])
        self.assertEqual(events[0]["conn"], events[1]["conn"])
        self.assertLessEqual(events[0]["ts"], events[1]["ts"])
        svc = self.start_alerts()
        wait_for(lambda: self.r.llen(QUEUE) == 0, scaled(5), "the events to be consumed")
        wait_for(lambda: 'msg="connection close" user=ev1 conn=%s' % events[0]["conn"]
                 in svc.text(), scaled(5), "the service to log the close event")

    def test_alerts_survive_restarts(self):
        """Alerts live in Redis: the service and the gateway restart, they are still there and
        still fire."""
        gw = self.start_gateway(*SERVICE_ARGS)
        svc = self.start_alerts()
        c = self.connect()
        aid = self.set_alert(c, "rb2501", below=3000)
        aid2 = self.set_alert(c, "IF2412", above=4000.5)
        rc, _ = svc.stop()
        self.assertEqual(rc, 0)
        wait_for(lambda: self.numsub("md:rb2501") == 0, scaled(5), "the service gone")
        self.send(c, {"op": "list"}, rid=900)  # waits on the list meanwhile
        gw.stop()
        gw = self.start_gateway(*SERVICE_ARGS)
        self.gw = gw
        self.start_alerts()
        wait_for(lambda: self.numsub("md:rb2501") == 1 and self.numsub("md:IF2412") == 1,
                 scaled(5), "the restarted service to watch both instruments")
        c = self.connect()
        self.assertEqual({a["alert"] for a in self.alerts_of(c)}, {aid, aid2})
        self.tick("IF2412", 4000.5)
        self.assertEqual(c.recv_until(is_alert(aid2))[-1]["data"]["price"], 4000.5)
        self.assertEqual([a["alert"] for a in self.alerts_of(c)], [aid])

    def test_redis_restart(self):
        """Redis goes away and comes back: the service reconnects both its links, reloads its
        alerts and watches their ticks again; sends and replies flow again."""
        gw = self.start_gateway(*SERVICE_ARGS)
        svc = self.start_alerts()
        c = self.connect()
        aid = self.set_alert(c, "rb2501", above=50)
        self.kill_redis(save=True)
        time.sleep(scaled(0.5))
        self.restart_redis()
        wait_for(lambda: gw.healthz()[0] == 200, scaled(10), "the gateway back on Redis")
        wait_for(lambda: self.numsub("md:rb2501") == 1, scaled(10), "the service watching again")
        self.tick("rb2501", 51)
        c.recv_until(is_alert(aid), what="the alert after the restart")
        wait_for(lambda: self.send(c, {"op": "list"}, what=None)["type"] == "sent", scaled(10),
                 "sends queued again")
        c.recv_until(lambda f: f.get("type") == "reply", what="a reply after the restart")
        self.assertEqual(self.alerts_of(c), [])
        self.assertIn('msg="redis link back" role=queue', svc.text())
        self.assertIn('msg="redis link back" role=pubsub', svc.text())

    def test_unfinished_requests_requeued(self):
        """What a crashed instance left in its processing list is handled at the next start;
        handling the same "set" twice makes one alert."""
        ps = self.r.pubsub()
        self.addCleanup(ps.close)
        ps.subscribe("chartgate:reply:test")
        ps.get_message(timeout=1)
        env = {"service": "alerts", "user": "u9", "conn": "0123456789abcdef.7", "id": 7,
               "data": {"op": "set", "instrument": "rb2501", "above": 5},
               "ts": int(time.time() * 1000), "reply_to": "chartgate:reply:test"}
        self.r.rpush(QUEUE + ":processing:crashed", compact(env))

        def reply():
            m = ps.get_message(timeout=scaled(5))
            while m is not None and m["type"] != "message":
                m = ps.get_message(timeout=scaled(5))
            self.assertIsNotNone(m, "no reply published")
            return json.loads(m["data"])

        self.start_alerts(consumer="crashed")
        first = reply()
        self.assertEqual((first["conn"], first["id"], first["data"]["ok"]),
                         (env["conn"], 7, True))
        # the reply goes out before the item leaves the processing list (at least once)
        wait_for(lambda: self.r.llen(QUEUE + ":processing:crashed") == 0, scaled(5),
                 "the processing list to empty")
        env["ts"] += 1  # the client retried with the same id
        self.r.rpush(QUEUE, compact(env))
        self.assertEqual(reply()["data"], first["data"], "the same alert, not a second one")
        self.assertEqual(self.r.hlen("chartgate:alerts:user:u9"), 1)
        env["data"] = {"op": "set", "instrument": "rb2501", "above": 6}  # the id reused (§5)
        self.r.rpush(QUEUE, compact(env))
        self.assertNotEqual(reply()["data"]["alert"], first["data"]["alert"], "a new request")
        self.assertEqual(self.r.hlen("chartgate:alerts:user:u9"), 2)

    def test_two_service_instances_fire_once(self):
        """Two instances on one Redis: both watch, one notification."""
        self.start_gateway(*SERVICE_ARGS)
        self.start_alerts(consumer="s1")
        self.start_alerts(consumer="s2")
        c = self.connect()
        aid = self.set_alert(c, "rb2501", above=100)
        self.wait_numsub("md:rb2501", 2)
        self.tick("rb2501", 101)
        c.recv_until(is_alert(aid))
        self.quiet(c, wait=0.5)
        self.assertEqual(self.alerts_of(c), [])
        wait_for(lambda: self.numsub("md:rb2501") == 0, scaled(5), "both instances to let go")

    def test_redis_killed_during_sends(self):
        """Redis SIGKILLed with sends pending at it and more streaming in: every send gets exactly
        one of sent or unavailable, none is lost, none answered twice; once Redis is back, sends
        are queued again."""
        self.start_gateway("--service", "alerts", "--rate-limit", "100000", "--rate-burst",
                           "100000", "--redis-backoff-max-ms", "200")
        c = self.connect()
        answers = {}

        def send_batch(ids):
            c.ws.sock.sendall(b"".join(harness.encode_ws_frame(0x1, compact(
                {"action": "send", "service": "alerts", "id": i,
                 "data": {"op": "set", "instrument": "rb2501", "above": i}})) for i in ids))

        def read(ids, timeout):
            """Answers (sent/error frames) until every id of ids has one, or timeout."""
            deadline = time.monotonic() + timeout
            while any(i not in answers for i in ids) and time.monotonic() < deadline:
                for f in c.recv_frames(timeout=min(0.2, max(0.01, deadline - time.monotonic()))):
                    if f.get("type") in ("sent", "error") and isinstance(f.get("id"), int):
                        answers.setdefault(f["id"], []).append(f)

        queued, pending, streamed = range(1, 201), range(201, 251), range(251, 601)
        for b in range(1, 201, 50):
            send_batch(range(b, b + 50))
        read(queued, scaled(10))
        # Redis stopped: these pushes reach its socket and wait there, unanswered.
        os.kill(self.redis.pid, signal.SIGSTOP)
        try:
            send_batch(pending)
            time.sleep(scaled(0.5))
            read(pending, 0.3)
            in_flight = sum(1 for i in pending if i not in answers)
        finally:
            self.kill_redis(save=False)  # SIGKILL ends a stopped process too
        for b in range(251, 601, 50):
            send_batch(range(b, b + 50))
            time.sleep(0.002)
        read(range(1, 601), scaled(10))

        missing = [i for i in range(1, 601) if i not in answers]
        twice = {i: a for i, a in answers.items() if len(a) != 1}
        self.assertEqual(missing, [], "sends without an answer")
        self.assertEqual(twice, {}, "sends answered more than once")
        kind = {i: a[0]["type"] if a[0]["type"] == "sent" else a[0]["code"]
                for i, a in answers.items()}
        self.assertEqual(set(kind.values()) - {"sent", "unavailable"}, set())
        self.assertEqual({kind[i] for i in queued}, {"sent"})
        self.assertEqual({kind[i] for i in pending}, {"unavailable"},
                         "pushes Redis never answered cannot be sent")
        self.assertEqual({kind[i] for i in streamed}, {"unavailable"})
        self.assertEqual(in_flight, len(pending), "the gateway answered before Redis did")

        self.restart_redis()
        wait_for(lambda: self.send(c, {"op": "list"}, what=None)["type"] == "sent",
                 scaled(10), "sends to be queued again")
        self.assertGreaterEqual(self.r.llen(QUEUE), 1)


def tearDownModule():
    if ServicesTest.sent_after_reply:
        sys.stderr.write("note: %d service replies reached the client before their sent frame\n"
                         % ServicesTest.sent_after_reply)


if __name__ == "__main__":
    harness.main()
