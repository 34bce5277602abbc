#!/usr/bin/python3
"""test_relay.py -- what a backend publishes reaches exactly the sockets it should: ticks by
instrument (with seq), user messages, broadcasts, the inbox list; upstream subscriptions are
reference-counted; bad payloads are dropped and counted; list/search honour the allowlist."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import is_message, is_tick, wait_for  # noqa: E402


class RelayTest(harness.GatewayTestCase):

    def test_subscribe_and_unsubscribe_replies(self):
        self.start_gateway()
        c = self.connect()
        reply = c.request({"action": "subscribe", "instruments": ["rb2501"], "id": 7})
        self.assertRegex(reply.get("epoch", ""), "^[0-9a-f]{16}$", "the process's epoch")
        # The shared epoch (PROTOCOL.md §19) is Redis's, once the gateway has read it.
        self.assertEqual(reply.get("shared_epoch"), self.r.get("chartgate:epoch"))
        self.assertEqual(reply, {"type": "subscribed", "id": 7, "instruments": ["rb2501"],
                                 "intervals": [], "epoch": reply["epoch"],
                                 "shared_epoch": reply["shared_epoch"]})
        # then one snapshot per instrument: never ticked here, no intervals asked for
        self.assertEqual(c.recv_until(lambda f: True)[-1],
                         {"type": "snapshot", "instrument": "rb2501", "seq": 0, "last": None,
                          "bars": {}})
        r = c.request({"action": "subscribe", "instruments": ["au2412", "cu2501"], "id": "s-2"})
        self.assertEqual(r["id"], "s-2")
        self.assertEqual(sorted(r["instruments"]), ["au2412", "cu2501"])
        self.assertEqual(r["intervals"], [])
        self.assertEqual([(f["type"], f["instrument"]) for f in c.collect(lambda f: True, 2)],
                         [("snapshot", "au2412"), ("snapshot", "cu2501")],
                         "one snapshot per instrument, in request order, right after the reply")
        # re-subscribing is a no-op that still succeeds (and sends the snapshot again)
        r = c.request({"action": "subscribe", "instruments": ["rb2501"], "id": 9})
        self.assertEqual((r["type"], r["id"]), ("subscribed", 9))
        self.assertEqual(c.recv_until(lambda f: True)[-1]["type"], "snapshot")
        self.assert_nothing_for(c, "frame after the snapshots")
        self.assertEqual(self.metrics().value("chartgate_subscriptions"), 3)
        self.assertEqual(c.request({"action": "unsubscribe", "instruments": ["rb2501"], "id": 8}),
                         {"type": "unsubscribed", "id": 8, "instruments": ["rb2501"]})
        # no id in the request: none in the reply
        c.send({"action": "unsubscribe", "instruments": ["au2412"]})
        r = c.recv_until(harness.is_type("unsubscribed"))[-1]
        self.assertNotIn("id", r)
        self.assertEqual(r["instruments"], ["au2412"])
        c.send({"action": "ping"})
        self.assertEqual(c.recv_until(harness.is_type("pong"))[-1], {"type": "pong"})
        self.wait_metric("chartgate_subscriptions", lambda v: v == 1)

    def test_tick_data_and_seq(self):
        self.start_gateway()
        c = self.connect()
        c.subscribe(["rb2501"])
        self.wait_channel_ready("md:rb2501")
        payloads = [
            {"last": 3512.0, "vol": 10},
            {"last": 3513, "bid": [3512, 5], "ask": {"p": 3514, "q": 2}},
            {"text": "line1\nline2\ttab \"quoted\" \\ back", "name": "螺纹钢", "emoji": "📈"},
            {"nested": {"a": [1, 2, {"b": None, "c": True, "d": False}]}, "neg": -1.5e-7},
            {},
        ]
        for p in payloads[:3]:
            self.publish("md:rb2501", p)
        # pretty-printed JSON (raw newlines between tokens) must arrive re-encoded on one line
        self.publish("md:rb2501", json.dumps(payloads[3], indent=2, ensure_ascii=False))
        self.publish("md:rb2501", payloads[4])
        ticks = c.collect(is_tick("rb2501"), len(payloads), what="tick")
        self.assertEqual([t["data"] for t in ticks], payloads)
        seqs = [t["seq"] for t in ticks]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(payloads))),
                         "seq must increase by one per tick")
        self.assertEqual(seqs[0], 1, "first tick of an instrument in a fresh process is seq 1")
        for t in ticks:
            self.assertEqual(t["instrument"], "rb2501")

    def test_fanout_to_subscribers_only(self):
        self.start_gateway()
        a = self.connect(user_id="u1", name="a")
        b = self.connect(user_id="u2", name="b")
        other = self.connect(user_id="u3", name="other")
        a.subscribe(["rb2501"])
        b.subscribe(["rb2501", "au2412"])
        other.subscribe(["au2412"])
        self.wait_channel_ready("md:rb2501")
        for i in range(3):
            self.publish("md:rb2501", {"i": i})
        ta = a.collect(is_tick("rb2501"), 3)
        tb = b.collect(is_tick("rb2501"), 3)
        self.assertEqual(ta, tb, "both subscribers get the same frames")
        self.assertEqual([t["data"]["i"] for t in ta], [0, 1, 2])
        self.assert_nothing_for(other, "tick for an instrument it did not subscribe")
        self.assert_nothing_for(a)
        # after unsubscribing, a gets nothing more while b still does
        a.unsubscribe(["rb2501"])
        self.publish("md:rb2501", {"i": 3})
        self.assertEqual(b.recv_until(is_tick("rb2501"))[-1]["data"], {"i": 3})
        self.assert_nothing_for(a, "tick after unsubscribe")

    def test_user_channel_reaches_all_sockets_of_that_user(self):
        self.start_gateway()
        tab1 = self.connect(user_id="u1", name="u1-tab1")
        tab2 = self.connect(user_id="u1", name="u1-tab2")
        stranger = self.connect(user_id="u2", name="u2")
        self.wait_channel_ready("user:u1")
        self.publish("user:u1", {"alert": "margin call", "n": 1})
        self.publish("user:u1", '"just a string"')
        self.publish("user:u1", "42")
        for tab in (tab1, tab2):
            got = tab.collect(is_message(), 3)
            self.assertEqual(got, [
                {"type": "message", "channel": "user", "data": {"alert": "margin call", "n": 1}},
                {"type": "message", "channel": "user", "data": "just a string"},
                {"type": "message", "channel": "user", "data": 42},
            ])
        self.assert_nothing_for(stranger, "another user's message")

    def test_broadcast_reaches_everyone(self):
        self.start_gateway()
        clients = [self.connect(user_id=u, name=n) for u, n in
                   (("u1", "a"), ("u1", "b"), ("u2", "c"))]
        clients[2].subscribe(["rb2501"])
        self.wait_channel_ready("broadcast")
        self.publish("broadcast", {"notice": "maintenance at 17:00"})
        for c in clients:
            m = c.recv_until(is_message("broadcast"))[-1]
            self.assertEqual(m["data"], {"notice": "maintenance at 17:00"})

    def test_inbox_envelopes_are_routed(self):
        self.start_gateway()
        u1 = self.connect(user_id="u1", name="u1")
        u2 = self.connect(user_id="u2", name="u2")
        u1.subscribe(["rb2501"])
        self.wait_channel_ready("md:rb2501")
        self.publish("md:rb2501", {"via": "pubsub"})
        first = u1.recv_until(is_tick("rb2501"))[-1]
        self.rpush_inbox({"instrument": "rb2501", "data": {"via": "inbox"}})
        tick = u1.recv_until(is_tick("rb2501"))[-1]
        self.assertEqual(tick["data"], {"via": "inbox"})
        self.assertEqual(tick["seq"], first["seq"] + 1, "one seq per instrument, any source")
        self.rpush_inbox({"user": "u2", "data": {"to": "u2"}})
        self.assertEqual(u2.recv_until(is_message())[-1],
                         {"type": "message", "channel": "user", "data": {"to": "u2"}})
        self.rpush_inbox({"broadcast": True, "data": [1, "two"]})
        for c in (u1, u2):
            self.assertEqual(c.recv_until(is_message())[-1],
                             {"type": "message", "channel": "broadcast", "data": [1, "two"]})
        self.assert_nothing_for(u1, "frame not addressed to u1")
        self.assert_nothing_for(u2, "frame not addressed to u2")
        self.wait_metric("chartgate_published_total", lambda v: v >= 3, source="inbox")
        wait_for(lambda: self.r.llen("chartgate:inbox") == 0, 3, "the inbox to be empty")
        self._assert_processing_lists_empty()

    def _assert_processing_lists_empty(self):
        def empty():
            keys = self.r.keys("chartgate:inbox:processing:*")
            return all(self.r.llen(k) == 0 for k in keys)
        wait_for(empty, 3, "the inbox processing list to be emptied after delivery")

    def test_inbox_pushed_while_gateway_down_is_delivered(self):
        sid = self.make_session("u1")
        self.rpush_inbox({"user": "u1", "data": {"queued": 1}})
        self.rpush_inbox({"broadcast": True, "data": {"queued": 2}})
        self.rpush_inbox({"instrument": "rb2501", "data": {"queued": 3}})
        # Hold back every write command (BLMOVE/BLPOP included) so that a browser can connect
        # to the freshly started gateway before it takes the queued envelopes.
        self.r.client_pause(10000, all=False)
        try:
            self.start_gateway(wait="any")
            c = self.connect(sid=sid)
            c.subscribe(["rb2501"])
            self.wait_channel_ready("md:rb2501")
            self.assertEqual(self.r.llen("chartgate:inbox"), 3, "test premise: nothing taken yet")
        finally:
            self.r.client_unpause()
        got = c.collect(lambda f: f.get("type") in ("tick", "message"), 3, timeout=5)
        self.assertEqual([f["data"] for f in got], [{"queued": 1}, {"queued": 2}, {"queued": 3}])
        self.assertEqual([f.get("channel", f["type"]) for f in got], ["user", "broadcast", "tick"])
        wait_for(lambda: self.r.llen("chartgate:inbox") == 0, 3, "the inbox to be drained")
        self._assert_processing_lists_empty()

    def test_inbox_backlog_drained_on_start(self):
        for i in range(5):
            self.rpush_inbox({"user": "nobody", "data": {"i": i}})
        self.start_gateway()
        wait_for(lambda: self.r.llen("chartgate:inbox") == 0, 5, "the backlog to be consumed")
        self._assert_processing_lists_empty()

    def test_bad_payloads_dropped_and_counted(self):
        self.start_gateway("--max-payload-bytes", "2048")
        c = self.connect(user_id="u1")
        c.subscribe(["rb2501"])
        self.wait_channel_ready("md:rb2501")
        dropped = "chartgate_payloads_dropped_total"
        base = self.metrics()
        for raw in ("[1,2,3]", '"a string"', "42", "null", "true"):
            self.publish("md:rb2501", raw)
        for raw in ("{not json", "", "{\"a\":1"):
            self.publish("md:rb2501", raw)
        self.publish("md:rb2501", {"big": "x" * 4096})
        self.rpush_inbox({"data": {"no": "target"}})
        self.rpush_inbox({"instrument": "rb2501"})  # no data: not a deliverable envelope either
        self.rpush_inbox("{broken")
        self.rpush_inbox({"instrument": "rb2501", "data": {"pad": "y" * 4096}})
        # everything above is dropped; the connection and the relay still work
        self.publish("md:rb2501", {"ok": True})
        t = c.recv_until(is_tick("rb2501"))
        self.assertEqual([f["data"] for f in t if f.get("type") == "tick"], [{"ok": True}],
                         "only the valid payload is delivered")

        def delta(reason):
            return self.metrics().value(dropped, reason=reason) - base.value(dropped,
                                                                             reason=reason)
        wait_for(lambda: delta("not_object") >= 5, 3, "not_object drops counted")
        wait_for(lambda: delta("bad_json") >= 4, 3, "bad_json drops counted")
        wait_for(lambda: delta("no_target") >= 1, 3, "no_target drops counted")
        wait_for(lambda: delta("too_large") >= 2, 3, "too_large drops counted")
        self.assertEqual(c.request({"action": "ping", "id": "alive"}),
                         {"type": "pong", "id": "alive"})

    def test_list_and_search(self):
        self.r.sadd("md:instruments", "rb2501", "rb2505", "au2412", "cu2501")
        self.start_gateway()
        c = self.connect(user_id="u1")
        rb = self.connect(user_id="u2", instruments=["rb*"], name="rb-only")
        # instruments seen on the wire are known too
        c.subscribe(["zn2501"])
        self.wait_channel_ready("md:zn2501")
        self.publish("md:zn2501", {"p": 1})
        c.recv_until(is_tick("zn2501"))
        self.rpush_inbox({"instrument": "ag2412", "data": {"p": 2}})
        self.rpush_inbox({"instrument": "rb2510", "data": {"p": 3}})
        wait_for(lambda: self.r.llen("chartgate:inbox") == 0, 3, "inbox consumed")
        everything = ["ag2412", "au2412", "cu2501", "rb2501", "rb2505", "rb2510", "zn2501"]

        def listed(client, req):
            r = client.request(req)
            self.assertEqual(r["type"], "instruments", r)
            return r["instruments"]
        wait_for(lambda: listed(c, {"action": "list", "id": c.next_id()}) == everything, 3,
                 "list == %s (last %s)" % (everything, c.history[-1:]))
        self.assertEqual(c.request({"action": "list", "id": "L"}),
                         {"type": "instruments", "id": "L", "instruments": everything})
        self.assertEqual(listed(c, {"action": "search", "pattern": "RB", "id": 2}),
                         ["rb2501", "rb2505", "rb2510"])
        self.assertEqual(listed(c, {"action": "search", "pattern": "2501", "id": 3}),
                         ["cu2501", "rb2501", "zn2501"])
        self.assertEqual(listed(c, {"action": "search", "pattern": "nothing", "id": 4}), [])
        # the allowlist filters both
        self.assertEqual(listed(rb, {"action": "list", "id": 5}), ["rb2501", "rb2505", "rb2510"])
        self.assertEqual(listed(rb, {"action": "search", "pattern": "2501", "id": 6}), ["rb2501"])
        self.assertEqual(listed(rb, {"action": "search", "pattern": "au", "id": 7}), [])

    def test_allowlist_forbids_subscribe(self):
        self.start_gateway()
        c = self.connect(user_id="u1", instruments=["rb*", "au2412"])
        err = c.request({"action": "subscribe", "instruments": ["rb2501", "cu2501"], "id": 11})
        self.assertEqual((err["type"], err["code"], err["id"]), ("error", "forbidden", 11))
        self.assertEqual(c.barrier(), [])
        self.assertEqual(self.metrics().value("chartgate_subscriptions"), 0,
                         "a forbidden request subscribes nothing")
        self.assertEqual(self.numsub("md:rb2501"), 0)
        err = c.request({"action": "subscribe", "instruments": ["au2413"], "id": "f"})
        self.assertEqual((err["code"], err["id"]), ("forbidden", "f"))
        self.assertEqual(sorted(c.subscribe(["rb2501", "au2412", "rb9999"])["instruments"]),
                         ["au2412", "rb2501", "rb9999"])
        self.assertEqual(self.metrics().value("chartgate_subscriptions"), 3)

    def test_upstream_subscriptions_are_refcounted(self):
        self.start_gateway()
        a = self.connect(user_id="u1", name="a")
        b = self.connect(user_id="u2", name="b")
        self.assertEqual(self.numsub("md:rb2501"), 0)
        a.subscribe(["rb2501"])
        self.wait_numsub("md:rb2501", 1)
        b.subscribe(["rb2501"])
        self.assertEqual(b.barrier(), [])
        self.assertEqual(self.numsub("md:rb2501"), 1)
        a.unsubscribe(["rb2501"])
        self.assertEqual(a.barrier(), [])
        self.assertEqual(self.numsub("md:rb2501"), 1, "b still needs md:rb2501")
        self.publish("md:rb2501", {"still": "flowing"})
        self.assertEqual(b.recv_until(is_tick())[-1]["data"], {"still": "flowing"})
        b.unsubscribe(["rb2501"])
        self.wait_numsub("md:rb2501", 0)
        # and the same through disconnects instead of unsubscribes
        c = self.connect(user_id="u3", name="c")
        d = self.connect(user_id="u4", name="d")
        c.subscribe(["au2412", "rb2501"])
        d.subscribe(["au2412"])
        self.wait_numsub("md:au2412", 1)
        self.wait_numsub("md:rb2501", 1)
        c.close()
        self.wait_numsub("md:rb2501", 0)
        self.assertEqual(self.numsub("md:au2412"), 1)
        d.close()
        self.wait_numsub("md:au2412", 0)
        self.wait_metric("chartgate_subscriptions", lambda v: v == 0)
        self.wait_metric("chartgate_instruments", lambda v: v == 0)
        self.wait_metric("chartgate_connections", lambda v: v == 2)

    def test_key_names_are_configurable(self):
        self.r.sadd("cfg:known", "kk1")
        self.start_gateway("--md-prefix", "tick.", "--user-prefix", "to.",
                           "--broadcast-channel", "all", "--inbox-key", "q:in",
                           "--instruments-key", "cfg:known", "--session-prefix", "s/")
        sid = "abc" + harness.secrets.token_hex(8)
        self.r.set("s/" + sid, json.dumps({"user_id": "u9"}))
        c = self.connect(sid=sid)
        c.subscribe(["rb2501"])
        self.wait_channel_ready("tick.rb2501")
        self.publish("md:rb2501", {"old": "prefix"})
        self.publish("tick.rb2501", {"new": "prefix"})
        self.assertEqual(c.recv_until(is_tick())[-1]["data"], {"new": "prefix"})
        self.wait_channel_ready("to.u9")
        self.publish("to.u9", {"u": 1})
        self.assertEqual(c.recv_until(is_message())[-1], {"type": "message", "channel": "user",
                                                          "data": {"u": 1}})
        self.wait_channel_ready("all")
        self.publish("all", {"b": 1})
        self.assertEqual(c.recv_until(is_message())[-1]["channel"], "broadcast")
        self.rpush_inbox({"user": "u9", "data": {"q": 1}}, key="q:in")
        self.assertEqual(c.recv_until(is_message())[-1]["data"], {"q": 1})
        self.assertEqual(c.request({"action": "list", "id": 1})["instruments"], ["kk1", "rb2501"])
        self.assert_nothing_for(c, "frame from a default-named key")


if __name__ == "__main__":
    harness.main()
