#!/usr/bin/python3
"""test_workers.py -- --workers N: one port, a supervisor, instance-wide /metrics and limits.

A supervisor forks the workers; each listens on the same port (SO_REUSEPORT) and the kernel
spreads connections. Which worker holds a socket shows in its `subscribed` epoch (one per
process) and in /healthz's per-worker connection counts. Checked here, against a real Redis:
both workers accept and deliver; a worker killed with SIGKILL is restarted by the supervisor
and its clients get data again after reconnecting; SIGTERM closes every socket of every
worker with 1001 and the supervisor exits 0; /metrics, whichever worker answers, gives the
instance's totals; the per-address and per-user limits hold across workers; workers that
keep dying make the supervisor give up with status 1; the killed worker's clients resume
on the other (shared seqs, PROTOCOL.md §19) with recovered:true and no gap."""

import json
import os
import signal
import socket
import ssl
import sys
import tempfile
import time

import websocket

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import scaled, wait_for  # noqa: E402
from test_tls import make_cert, tls_peer  # noqa: E402

SPREAD = 16  # sockets opened to see both workers used (all on one: probability 2^-15)


class Workers(harness.GatewayTestCase):
    def start_workers(self, *args, n=2):
        gw = self.start_gateway("--workers", str(n), *args)
        gw.wait_workers(n)
        return gw

    def open_spread(self, count=SPREAD, user_id="u1", instrument="rb2501"):
        """count sockets, each subscribed to instrument; returns them."""
        clients = []
        for i in range(count):
            c = self.connect(user_id=user_id, name="c%d" % i)
            c.epoch = c.subscribe([instrument])["epoch"]  # the worker process's
            clients.append(c)
        return clients

    def by_epoch(self, clients):
        groups = {}
        for c in clients:
            groups.setdefault(c.epoch, []).append(c)
        return groups

    def publish_and_collect(self, clients, instrument, n):
        for i in range(n):
            self.publish("md:" + instrument, {"last_price": 100 + i, "k": i})
        for c in clients:
            ticks = c.collect(harness.is_tick(instrument), n)
            self.assertEqual([t["data"]["k"] for t in ticks], list(range(n)), c.name)

    def test_both_workers_accept_and_deliver(self):
        gw = self.start_workers()
        clients = self.open_spread()
        counts = {w["index"]: w["connections"] for w in gw.workers()}
        self.assertEqual(sum(counts.values()), SPREAD, counts)
        self.assertTrue(all(v > 0 for v in counts.values()),
                        "the kernel gave every socket to one worker: %s" % counts)
        # One process epoch per worker: the sockets are on two processes.
        self.assertEqual(len(self.by_epoch(clients)), 2)
        # Each worker subscribed upstream once.
        self.wait_numsub("md:rb2501", 2)
        self.publish_and_collect(clients, "rb2501", 5)
        # Messages through the inbox reach the user's sockets on both workers.
        self.rpush_inbox({"user": "u1", "data": {"text": "hi"}})
        for c in clients:
            c.recv_until(harness.is_message())
        # Logs say which worker wrote them.
        log = gw.log_text()
        for i, pid in gw.worker_pids().items():
            self.assertIn("worker=%d pid=%d" % (i, pid), log)

    def test_killed_worker_is_restarted(self):
        gw = self.start_workers()
        clients = self.open_spread()
        self.wait_numsub("md:rb2501", 2)
        pids = gw.worker_pids()
        groups = self.by_epoch(clients)
        self.assertEqual(len(groups), 2)
        os.kill(pids[0], signal.SIGKILL)
        # SIGHUPs passed on while the replacement starts wait for its handlers (SIGHUP's default
        # action would kill it: restarts would then exceed 1).
        for _ in range(6):
            gw.signal(signal.SIGHUP)
            time.sleep(0.05)
        # Its sockets drop (no close frame: the process is gone); the other worker's stay.
        live = gw.wait_workers(2, exclude=(pids[0],))
        self.assertNotEqual(live[0], pids[0])
        self.assertEqual(live[1], pids[1])
        self.assertEqual({w["index"]: w["restarts"] for w in gw.workers()}, {0: 1, 1: 0})
        dropped, kept = [], []
        for c in clients:
            try:
                c.barrier(timeout=scaled(3))
                kept.append(c)
            except AssertionError:
                dropped.append(c)
        self.assertTrue(dropped, "no socket dropped with its worker")
        self.assertTrue(kept, "the other worker's sockets dropped too")
        # The dropped clients reconnect (to either worker) and get ticks again.
        again = self.open_spread(len(dropped))
        self.wait_numsub("md:rb2501", 2 if len(self.by_epoch(again + kept)) == 2 else 1)
        self.publish_and_collect(kept + again, "rb2501", 3)
        log = gw.log_text()
        self.assertIn('msg="worker died" worker=0 pid=%d signal=9' % pids[0], log)
        self.assertEqual(gw.metrics().value("chartgate_worker_restarts_total", worker="0"), 1)

    def test_killed_workers_clients_resume_without_gap(self):
        """Ticks published with chartgate_publish are numbered by Redis (PROTOCOL.md §19): the
        clients of a killed worker reconnect to whichever worker the kernel picks and resume
        with recovered:true, every missed tick once, in order."""
        gw = self.start_workers()
        wait_for(lambda: self.r.get("chartgate:epoch"), scaled(10), "the shared epoch")
        clients = self.open_spread(instrument="rk1")
        self.wait_numsub("md:rk1", 2)
        fpub = lambda k: self.r.execute_command(  # noqa: E731
            "FCALL", "chartgate_publish", 1, "md:rk1", json.dumps({"last_price": 100, "k": k}))
        for k in range(5):
            fpub(k)
        last = {}
        for c in clients:
            ticks = c.collect(harness.is_tick("rk1"), 5)
            self.assertEqual([t["seq"] for t in ticks], [1, 2, 3, 4, 5], c.name)
            last[c.name] = 5
        shared = self.r.get("chartgate:epoch")
        pids = gw.worker_pids()
        os.kill(pids[0], signal.SIGKILL)
        for k in range(5, 12):
            fpub(k)
        gw.wait_workers(2, exclude=(pids[0],))
        dropped, kept = [], []
        for c in clients:
            try:
                seen = [f for f in c.barrier(timeout=scaled(3)) if harness.is_tick("rk1")(f)]
                kept.append((c, seen))
            except AssertionError:
                dropped.append(c)
        self.assertTrue(dropped and kept, "premise: one worker's sockets dropped")
        for c, seen in kept:
            ticks = seen + c.collect(harness.is_tick("rk1"), 7 - len(seen)) if len(seen) < 7 \
                else seen
            self.assertEqual([t["seq"] for t in ticks], list(range(6, 13)), c.name)
        for c in dropped:
            n = self.connect(name=c.name + "-again")
            reply = n.request({"action": "subscribe", "instruments": ["rk1"], "id": 9,
                               "since": {"rk1": last[c.name]}, "epoch": c.epoch,
                               "shared_epoch": shared})
            self.assertEqual(reply["recovered"], {"rk1": True}, reply)
            ticks = n.collect(harness.is_tick("rk1"), 7)
            self.assertEqual([t["seq"] for t in ticks], list(range(6, 13)), n.name)
            self.assertEqual([t["data"]["k"] for t in ticks], list(range(5, 12)), n.name)
            self.assert_nothing_for(n)

    def test_sigterm_closes_every_socket_1001(self):
        gw = self.start_workers()
        clients = self.open_spread()
        self.assertEqual(len(self.by_epoch(clients)), 2)
        gw.signal(signal.SIGTERM)
        for c in clients:
            code, _ = c.expect_close(timeout=scaled(5))
            self.assertEqual(code, 1001, c.name)
        self.assertEqual(gw.wait_exit(scaled(10)), 0, gw.log_tail())
        self.assertIn('msg="supervisor stopped"', gw.log_text())

    def test_metrics_are_instance_totals(self):
        gw = self.start_workers()
        clients = self.open_spread()
        for _ in range(20):  # each scrape reaches one worker or the other
            m = gw.metrics()
            self.assertEqual(m.value("chartgate_connections"), SPREAD)
            self.assertEqual(m.value("chartgate_worker_connections"), SPREAD)
            self.assertEqual(m.value("chartgate_worker_up"), 2)
            self.assertEqual(m.value("chartgate_handshakes_total"), SPREAD)
            self.assertEqual(m.value("chartgate_workers"), 2)
        for c in clients[:5]:
            c.close()
        self.wait_metric("chartgate_connections", lambda v: v == SPREAD - 5)
        for _ in range(10):
            m = gw.metrics()
            self.assertEqual(m.value("chartgate_connections"), SPREAD - 5)
            self.assertEqual(m.value("chartgate_handshakes_total"), SPREAD)
        # A worker's counters survive its death (folded into the instance's).
        self.publish_and_collect(clients[5:], "rb2501", 2)
        frames = self.wait_metric("chartgate_frames_out_total", lambda v: v > 0)
        pid = gw.worker_pids()[1]
        os.kill(pid, signal.SIGKILL)
        gw.wait_workers(2, exclude=(pid,))
        m = gw.metrics()
        self.assertGreaterEqual(m.value("chartgate_frames_out_total"), frames)
        self.assertGreaterEqual(m.value("chartgate_handshakes_total"), SPREAD)

    def test_per_ip_limit_holds_across_workers(self):
        self.start_workers("--max-conns-per-ip", "6")
        clients = self.open_spread(6)
        # Ten more tries land on either worker (each holds fewer than 6 of its own, or none):
        # per-worker counting would let most of them in.
        for _ in range(10):
            self.assertEqual(self.upgrade_status(self.make_session("u1")), 429)
        clients[0].close()
        wait_for(lambda: self.upgrade_status(self.make_session("u1")) == 101,
                 scaled(5), "a free slot after a close")

    def test_per_user_limit_holds_across_workers(self):
        self.start_workers("--max-sockets-per-user", "4")
        clients = self.open_spread(4, user_id="alice")
        for _ in range(10):
            self.assertEqual(self.upgrade_status(self.make_session("alice")), 429)
        self.assertEqual(self.upgrade_status(self.make_session("bob")), 101)
        clients[0].close()
        wait_for(lambda: self.upgrade_status(self.make_session("alice")) == 101,
                 scaled(5), "a free slot after a close")

    def test_tls_and_sighup_reach_every_worker(self):
        d = tempfile.mkdtemp(prefix="cg-tls-", dir=self.logdir)
        cert, key = make_cert(d, "one")
        gw = self.start_gateway("--workers", "2", "--tls-cert", cert, "--tls-key", key, wait=None)
        wait_for(lambda: len([w for w in gw.workers_tls() if w["alive"]]) == 2, scaled(10),
                 "two workers over https")
        epochs = set()
        for i in range(SPREAD):
            ws = websocket.create_connection(
                "wss://127.0.0.1:%d/ws" % gw.port, cookie="sessionid=" + self.make_session(),
                timeout=5, suppress_origin=True,
                sslopt={"cert_reqs": ssl.CERT_NONE, "check_hostname": False})
            self.addCleanup(ws.close)
            ws.send(json.dumps({"action": "subscribe", "instruments": ["rb2501"], "id": i}))
            epochs.add(json.loads(ws.recv().split("\n")[0])["epoch"])
        self.assertEqual(len(epochs), 2, "wss sockets on both workers")
        _, _, before = tls_peer(gw.port)
        new_cert, new_key = make_cert(d, "two")
        os.replace(new_cert, cert)
        os.replace(new_key, key)
        gw.signal(signal.SIGHUP)
        wait_for(lambda: gw.log_text().count("tls certificate reloaded") == 2, scaled(5),
                 "both workers reloading")
        # Every connection, whichever worker takes it, gets the new certificate.
        for _ in range(SPREAD):
            self.assertNotEqual(tls_peer(gw.port)[2], before)

    def test_workers_that_keep_dying_make_the_supervisor_give_up(self):
        # Another program holds the port without SO_REUSEPORT: every worker fails to listen.
        gw = harness.Gateway(self.redis.url, ["--workers", "2", "--worker-deaths-max", "4",
                                              "--worker-deaths-window-s", "60"],
                             logdir=self.logdir, name="give-up")
        squatter = socket.socket()
        self.addCleanup(squatter.close)
        squatter.bind(("127.0.0.1", gw.port))
        squatter.listen(1)
        self.addCleanup(gw.kill)
        t0 = time.monotonic()
        gw.start(wait=None)
        rc = gw.wait_exit(scaled(30))
        self.assertEqual(rc, 1, gw.log_tail())
        log = gw.log_text()
        self.assertIn('msg="workers keep dying: giving up" deaths=5', log)
        self.assertGreaterEqual(log.count('msg="worker died"'), 5)
        # The back-off spaced the restarts out (100, 200, ... ms per slot).
        self.assertGreater(time.monotonic() - t0, 0.2)


if __name__ == "__main__":
    harness.main()
