#!/usr/bin/python3
"""localstack.py -- the private local stack of the tests, benchmarks and soak: a redis-server
and chartgate processes on loopback, started on free ports and stopped by PID.

The one place that knows how to run the private redis-server and pick loopback ports:
  test/integration/harness.py (every integration test), scripts/soak, scripts/bench/core-cost
  and scripts/bench/run import it (sys.path: scripts/lib); scripts/run and scripts/nginx/run
  use its command line through scripts/lib/common.sh (cg_redis_start, cg_port_free,
  cg_pick_port). Gateway is the gateway process of the tests, the soak and core-cost
  (scripts/bench/run pins and logs its servers its own way).

    rs = localstack.RedisServer().start()     # free port, private dir, waits for PONG
    gw = localstack.Gateway(rs.url, ["--log-level", "warn"]).start()   # waits for /healthz 200
    ...
    gw.stop(); rs.cleanup()                   # SIGTERM by PID, SIGKILL after the timeout

    rs = localstack.RedisServer(password="pw").start()    # requirepass (PING and client() AUTH)
    st = localstack.SentinelStack(password="pw").start()  # master, replica, 3 sentinels
    st.master_port(); st.failover(); st.kill_master(); st.cleanup()

    cs = localstack.ClusterStack(password="pw").start()   # 3 masters + 3 replicas
    cs.seeds(); cs.fcall_publish(i, tick); cs.migrate_slot(slot, port); cs.kill_master(port)

Every process started here is also SIGKILLed at interpreter exit if still running (an
interrupted run leaves nothing behind). Failures to start raise AssertionError with the tail of
the process's log, so that in a test they count as failures. Only the standard library is
needed; RedisServer.client() imports python3-redis when called.

Command line (for the bash scripts; one result on stdout):
  localstack.py port-free PORT             exit 0 when 127.0.0.1:PORT can be bound
  localstack.py pick-port PREFERRED        PREFERRED if free, else a free port from the kernel
  localstack.py redis-argv PORT DIR LOG    RedisServer's command line, NUL-separated
  localstack.py cluster-self-check         ClusterStack end to end (create, SPUBLISH, migrate,
                                           failover), by hand
"""

import atexit
import base64
import hashlib
import http.client
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_GATEWAY = os.path.join(ROOT, "build", "gateway", "chartgate")

# Generic waits (process start, a reply to arrive) are multiplied by this; set it higher for
# slow builds (CHARTGATE_TIMEOUT_SCALE). Bounds that the spec itself pins are not scaled.
TIMEOUT_SCALE = float(os.environ.get("CHARTGATE_TIMEOUT_SCALE", "1") or 1)
WAIT = 5.0  # default bounded wait, seconds (times TIMEOUT_SCALE)

SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:")

_RETRY = (OSError, http.client.HTTPException)  # wait_for(): "not yet", not a failure


def scaled(seconds):
    return seconds * TIMEOUT_SCALE


def gateway_binary():
    """The gateway to run: $CHARTGATE_BIN, else build/gateway/chartgate under the root."""
    return os.environ.get("CHARTGATE_BIN") or DEFAULT_GATEWAY


# ---------------------------------------------------------------------------------------------
# ports and waits


def free_port():
    """A port on 127.0.0.1 that the kernel just handed out (free now, not reserved)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port):
    """True when 127.0.0.1:port can be bound with SO_REUSEADDR, as chartgate, nginx and
    redis-server bind: TIME-WAIT leftovers of a process that just stopped do not count, a
    listener does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(preferred):
    """preferred when it is free, else free_port()."""
    return preferred if port_free(preferred) else free_port()


def wait_for(cond, timeout=WAIT, msg="condition", interval=0.02):
    """Poll cond() until it returns something truthy (returned) or timeout (AssertionError).
    Connection errors raised by cond() count as "not yet"."""
    deadline = time.monotonic() + timeout
    last_exc = None
    retry = _RETRY
    if "redis" in sys.modules:  # a caller using redis-py: a refused connection is "not yet" too
        retry += (sys.modules["redis"].exceptions.ConnectionError,)
    while True:
        try:
            v = cond()
            if v:
                return v
            last_exc = None
        except retry as e:
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s%s" % (
                timeout, msg, " (last error: %r)" % last_exc if last_exc else ""))
        time.sleep(interval)


def tail(path, n=40):
    """The last n lines of a log file, or a note saying why there are none."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        return "(no log: %s)" % e
    return "\n".join(lines[-n:])


# ---------------------------------------------------------------------------------------------
# processes, stopped by PID

_live_procs = {}  # pid -> Popen, SIGKILLed at exit if still running


def _kill_leftovers():
    for pid, proc in list(_live_procs.items()):
        if proc.poll() is None:
            try:
                os.kill(pid, signal.SIGKILL)
                proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass


atexit.register(_kill_leftovers)


def track(proc):
    """Register a Popen started elsewhere for the at-exit SIGKILL; returns proc."""
    _live_procs[proc.pid] = proc
    return proc


def stop_proc(proc, sig=signal.SIGTERM, timeout=5.0):
    """Signal proc by PID (sig 0: no signal, only the wait) and wait; SIGKILL if it does not
    exit within timeout. Returns (exit status, exited_in_time)."""
    if proc.poll() is not None:
        _live_procs.pop(proc.pid, None)
        return proc.returncode, True
    if sig:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
    try:
        rc = proc.wait(timeout)
        ok = True
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        rc = proc.wait(10)
        ok = False
    _live_procs.pop(proc.pid, None)
    return rc, ok


# ---------------------------------------------------------------------------------------------
# redis-server


def redis_argv(port, workdir, logfile, extra=()):
    """The command line of a private redis-server: 127.0.0.1:port only, persistence off,
    working directory workdir (dump.rdb of an explicit SAVE goes there), log to logfile."""
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
            "--save", "", "--appendonly", "no", "--dir", workdir, "--daemonize", "no",
            "--logfile", logfile] + list(extra)


def _resp(*args):
    """One command in RESP (binary-safe: passwords may hold anything)."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def _ping(port, password=None, timeout=0.5):
    """True when 127.0.0.1:port answers PING with PONG (after AUTH password when given)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout) as s:
            s.sendall((_resp("AUTH", password) if password else b"") + _resp("PING"))
            buf = b""
            deadline = time.monotonic() + timeout
            while buf.count(b"\r\n") < (2 if password else 1) and time.monotonic() < deadline:
                chunk = s.recv(256)
                if not chunk:
                    break
                buf += chunk
            return buf.split(b"\r\n")[-2 if buf.endswith(b"\r\n") else -1].startswith(b"+PONG")
    except (OSError, IndexError):
        return False


def redis_client(port, password=None, timeout=5.0):
    """A new redis-py client (decode_responses) for 127.0.0.1:port; the caller closes it."""
    import redis
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=timeout,
                       socket_connect_timeout=timeout, password=password)


class RedisServer:
    """A private redis-server on 127.0.0.1:<port>; persistence off; stopped by PID.

    port: default a free one. workdir: default a new temporary directory, removed by
    cleanup() (a given one is left alone). logfile: default redis.log in workdir; the
    process's own stdout and stderr are appended to it too. extra: more redis-server flags.
    cpu: pin the process to this CPU number. password: requirepass (and masterauth), used by
    ping() and client(); change it and restart() to rotate it. replicaof: a master's port on
    127.0.0.1 to replicate."""

    def __init__(self, port=None, workdir=None, logfile=None, extra=(), cpu=None, password=None,
                 replicaof=None):
        self.port = port or free_port()
        self.own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="cg-redis-")
        self.log = logfile or os.path.join(self.dir, "redis.log")
        self.extra = list(extra)
        self.cpu = None if cpu is None else int(cpu)
        self.password = password
        self.replicaof = replicaof
        self.proc = None

    def argv(self):
        extra = list(self.extra)
        if self.password:
            extra += ["--requirepass", self.password, "--masterauth", self.password]
        if self.replicaof:
            extra += ["--replicaof", "127.0.0.1", str(self.replicaof)]
        return redis_argv(self.port, self.dir, self.log, extra)

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    @property
    def pid(self):
        return self.proc.pid

    def ping(self, timeout=0.5):
        """True when the server answers PING with PONG (not while it loads its dump)."""
        return _ping(self.port, self.password, timeout)

    def start(self, timeout=None):
        """Start and wait for PONG (timeout default 10 s, scaled). Returns self; AssertionError
        with the log tail if it exits or does not answer in time (it is then stopped)."""
        timeout = timeout or scaled(10)
        cpu = self.cpu
        with open(self.log, "ab") as out:
            self.proc = track(subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL,
                stdout=out, stderr=out, cwd=self.dir,
                preexec_fn=None if cpu is None else lambda: os.sched_setaffinity(0, {cpu})))
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.proc.poll() is not None:
                raise AssertionError("redis-server on port %d exited with %s:\n%s" % (
                    self.port, self.proc.returncode, tail(self.log)))
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("redis-server on port %d not answering PING:\n%s" % (
                    self.port, tail(self.log)))
            time.sleep(0.02)
        return self

    def client(self, timeout=5.0):
        """A new redis-py client (decode_responses) for this server; the caller closes it."""
        return redis_client(self.port, self.password, timeout)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=5.0):
        """SIGTERM by PID (SIGKILL after timeout)."""
        if self.proc is not None:
            stop_proc(self.proc, signal.SIGTERM, timeout)

    def kill(self, save=True):
        """Crash it: SIGKILL by PID. With save, a SAVE first writes dump.rdb to the private dir,
        so restart() comes back with the same keys (sessions survive, as in production where
        Redis keeps them); nothing is written after the SAVE."""
        if save and self.running():
            c = self.client()
            try:
                c.save()
            finally:
                c.close()
        if self.proc is not None:
            stop_proc(self.proc, signal.SIGKILL)

    def restart(self):
        """Start again on the same port and dir (loads dump.rdb when kill(save=True) wrote one)."""
        self.stop()
        return self.start()

    def cleanup(self):
        """stop(), and remove the directory when it is the server's own."""
        self.stop()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Redis Sentinel


class SentinelServer:
    """A private redis-server --sentinel on 127.0.0.1:<port>, monitoring master_name at
    127.0.0.1:master_port, from a config generated in its own directory (Sentinel rewrites it).
    data_password: the data nodes' requirepass (auth-pass); password: the sentinel's own
    requirepass (also given to its peers as sentinel-pass). Quick timings for tests:
    down_after_ms before a master is subjectively down, failover_timeout_ms."""

    def __init__(self, master_port, master_name="mymaster", quorum=2, port=None,
                 down_after_ms=1000, failover_timeout_ms=3000, data_password=None, password=None):
        self.port = port or free_port()
        self.monitor_port = master_port
        self.name = master_name
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.data_password = data_password
        self.password = password
        self.dir = tempfile.mkdtemp(prefix="cg-sentinel-")
        self.log = os.path.join(self.dir, "sentinel.log")
        self.conf = os.path.join(self.dir, "sentinel.conf")
        self.proc = None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def write_conf(self):
        n = self.name
        lines = ["port %d" % self.port, "bind 127.0.0.1", "daemonize no",
                 "logfile %s" % self.log, "dir %s" % self.dir,
                 "sentinel monitor %s 127.0.0.1 %d %d" % (n, self.monitor_port, self.quorum),
                 "sentinel down-after-milliseconds %s %d" % (n, self.down_after_ms),
                 "sentinel failover-timeout %s %d" % (n, self.failover_timeout_ms),
                 "sentinel parallel-syncs %s 1" % n]
        if self.data_password:
            lines.append("sentinel auth-pass %s %s" % (n, self.data_password))
        if self.password:
            lines += ["requirepass %s" % self.password, "sentinel sentinel-pass %s" % self.password]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=None):
        """Start and wait for PONG; AssertionError with the log tail on failure."""
        timeout = timeout or scaled(10)
        self.write_conf()
        with open(self.log, "ab") as out:
            self.proc = track(subprocess.Popen(
                ["redis-server", self.conf, "--sentinel"], stdin=subprocess.DEVNULL, stdout=out,
                stderr=out, cwd=self.dir))
        deadline = time.monotonic() + timeout
        while not _ping(self.port, self.password):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("sentinel on port %d not answering PING:\n%s" % (
                    self.port, tail(self.log)))
            time.sleep(0.02)
        return self

    def client(self, timeout=5.0):
        """A new redis-py client (decode_responses) for this sentinel; the caller closes it."""
        return redis_client(self.port, self.password, timeout)

    def command(self, *args):
        """One command on a fresh connection (redis-py's reply)."""
        c = self.client()
        try:
            return c.execute_command(*args)
        finally:
            c.close()

    def master_port(self):
        """The master's port as this sentinel sees it."""
        host, port = self.command("SENTINEL", "get-master-addr-by-name", self.name)
        return int(port)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=5.0):
        if self.proc is not None:
            stop_proc(self.proc, signal.SIGTERM, timeout)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelStack:
    """A master, its replica and nsentinels sentinels on loopback, all private and stopped by
    PID. password: requirepass of master and replica; sentinel_password: the sentinels'.
    start() returns once every sentinel knows the replica and the other sentinels, so that a
    failover can start at once."""

    def __init__(self, nsentinels=3, master_name="mymaster", password=None,
                 sentinel_password=None, down_after_ms=1000, failover_timeout_ms=3000):
        self.name = master_name
        self.password = password
        fast_sync = ["--repl-diskless-sync-delay", "0"]  # not Redis 7's 5 s wait for more replicas
        self.master = RedisServer(password=password, extra=fast_sync)
        self.replica = RedisServer(password=password, replicaof=self.master.port, extra=fast_sync)
        self.nodes = {self.master.port: self.master, self.replica.port: self.replica}
        self.sentinels = [SentinelServer(self.master.port, master_name, quorum=2,
                                         down_after_ms=down_after_ms,
                                         failover_timeout_ms=failover_timeout_ms,
                                         data_password=password, password=sentinel_password)
                          for _ in range(nsentinels)]

    def sentinel_args(self):
        """The gateway's flags naming the sentinels and the master."""
        args = []
        for s in self.sentinels:
            args += ["--redis-sentinel", s.addr]
        return args + ["--redis-master", self.name]

    def start(self, timeout=None):
        timeout = timeout or scaled(30)
        self.master.start()
        self.replica.start()
        wait_for(lambda: self.node_role(self.replica) == "slave" and self._replica_synced(),
                 scaled(10), "the replica to sync")
        for s in self.sentinels:
            s.start()
        n = len(self.sentinels)

        def ready():
            for s in self.sentinels:
                if len(s.command("SENTINEL", "replicas", self.name)) < 1:
                    return False
                if len(s.command("SENTINEL", "sentinels", self.name)) < n - 1:
                    return False
            return True
        wait_for(ready, timeout, "the sentinels to discover the replica and each other",
                 interval=0.1)
        return self

    def _replica_synced(self):
        c = self.replica.client()
        try:
            return c.info("replication").get("master_link_status") == "up"
        finally:
            c.close()

    def node_role(self, node):
        c = node.client(timeout=1)
        try:
            return c.execute_command("ROLE")[0]
        finally:
            c.close()

    def master_port(self):
        """The master's port according to the first sentinel that answers."""
        last = None
        for s in self.sentinels:
            try:
                return s.master_port()
            except Exception as e:  # a sentinel down: the next one
                last = e
        raise AssertionError("no sentinel answered: %r" % last)

    def current_master(self):
        """The RedisServer the sentinels name as master."""
        return self.nodes[self.master_port()]

    def failover(self):
        """SENTINEL FAILOVER (a graceful switch); returns at once."""
        return self.sentinels[0].command("SENTINEL", "FAILOVER", self.name)

    def kill_master(self):
        """SIGKILL the current master by PID; returns the RedisServer killed."""
        m = self.current_master()
        m.kill(save=False)
        return m

    def wait_switched(self, old_port, timeout=None):
        """Wait until every running sentinel names a master other than old_port that answers
        ROLE as master; returns its port."""
        def switched():
            ports = {s.master_port() for s in self.sentinels if s.running()}
            if len(ports) != 1 or old_port in ports:
                return None
            port = ports.pop()
            return port if self.node_role(self.nodes[port]) == "master" else None
        return wait_for(switched, timeout or scaled(30), "the sentinels to switch master",
                        interval=0.1)

    def cleanup(self):
        for s in self.sentinels:
            s.cleanup()
        self.replica.cleanup()
        self.master.cleanup()


# ---------------------------------------------------------------------------------------------
# Redis Cluster


class ClusterStack:
    """A private Redis Cluster on loopback: nmasters masters with replicas_per_master replicas
    each (default 3 + 3), created with redis-cli --cluster create, stopped by PID.

    Every node is a RedisServer (persistence off) with --cluster-enabled, its own nodes.conf and
    an explicit --cluster-port (the bus port), both on free ports. node_timeout_ms is
    cluster-node-timeout: a killed master is failed over about that long plus 1 s after the
    kill; 1500 ms is quick yet does not fail a master over because a loaded 2-core box stalled
    it for a moment. cluster-replica-validity-factor 0: a replica always takes over, however
    long ago it last heard from its master. repl-ping-replica-period 1: a new replica's offset
    leaves 0 within a second, so that CLUSTER SLOTS lists it (Redis omits replicas at offset 0)
    and start() returns in ~3 s rather than after the default 10 s ping. password: requirepass and masterauth of every node
    (AUTH is exercised on every link, MIGRATE included).

        cs = localstack.ClusterStack(password="pw").start()   # cluster_state:ok, replicas synced
        cs.seeds()                            # ["127.0.0.1:p1", ...] for --redis-cluster
        cs.fcall_publish("rb2501", '{"p":1}') # on the master owning slot(md:rb2501)
        cs.migrate_slot(cs.slot("md:rb2501"), dst_port)
        cs.kill_master(port); cs.wait_failover(port)
        cs.cleanup()

    Keys and channels are routed by slot here (CLUSTER SLOTS, redis.crc.key_slot, MOVED/ASK/
    TRYAGAIN followed); client() is redis-py's own RedisCluster when a caller prefers it.
    nmasters 1 or 2 (replicas_per_master 0): made with CLUSTER MEET and ADDSLOTSRANGE, for the
    one-shard baseline of scripts/bench/cluster."""

    def __init__(self, nmasters=3, replicas_per_master=1, password=None, node_timeout_ms=1500,
                 extra=()):
        self.password = password
        self.nmasters = nmasters
        self.replicas_per_master = replicas_per_master
        self.node_timeout_ms = node_timeout_ms
        self.dir = tempfile.mkdtemp(prefix="cg-cluster-")
        self.nodes = {}  # port -> RedisServer, every node ever started here
        self.router = ClusterRouter(self)  # the main thread's routed commands
        self._owned_at_kill = {}  # port -> [(first, last)] it owned when kill_master() ran
        used = set()
        for _ in range(nmasters * (1 + replicas_per_master)):
            port = self._fresh_port(used)
            bus = self._fresh_port(used)
            d = os.path.join(self.dir, str(port))
            os.mkdir(d)
            flags = ["--cluster-enabled", "yes",
                     "--cluster-config-file", os.path.join(d, "nodes-%d.conf" % port),
                     "--cluster-port", str(bus),
                     "--cluster-node-timeout", str(node_timeout_ms),
                     "--cluster-replica-validity-factor", "0",
                     "--repl-diskless-sync-delay", "0",
                     "--repl-ping-replica-period", "1"] + list(extra)
            self.nodes[port] = RedisServer(port=port, workdir=d, password=password, extra=flags)

    @staticmethod
    def _fresh_port(used):
        while True:
            p = free_port()
            if p not in used:
                used.add(p)
                return p

    # -- start
    def start(self, timeout=None):
        """Start every node, create the cluster, and return once every node reports
        cluster_state:ok with the same full slot map and every replica's link is up."""
        timeout = timeout or scaled(30)
        for n in self.nodes.values():
            n.start()
        if self.nmasters < 3:  # below redis-cli --cluster create's minimum (benchmarks)
            try:
                self._create_small()
                self.wait_ok(timeout)
            except AssertionError:
                self.cleanup()
                raise
            return self
        argv = ["redis-cli"] + self._cli_auth() + ["--cluster", "create"]
        argv += ["127.0.0.1:%d" % p for p in self.nodes]
        argv += ["--cluster-replicas", str(self.replicas_per_master), "--cluster-yes"]
        out = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=timeout)
        text = out.stdout.decode("utf-8", "replace")
        if out.returncode != 0 or "[OK] All 16384 slots covered" not in text:
            self.cleanup()
            raise AssertionError("redis-cli --cluster create failed (%s):\n%s" % (
                out.returncode, text[-3000:]))
        try:
            self.wait_ok(timeout)
        except AssertionError:
            self.cleanup()
            raise
        return self

    def _create_small(self):
        """1 or 2 masters without replicas (redis-cli wants 3): CLUSTER MEET, then each master
        CLUSTER ADDSLOTSRANGE of an even share of the slots."""
        if self.replicas_per_master:
            raise AssertionError("ClusterStack: replicas need 3 masters or more")
        ports = list(self.nodes)
        for p in ports[1:]:
            self.command(p, "CLUSTER", "MEET", "127.0.0.1", ports[0])
        share = 16384 // len(ports)
        for k, p in enumerate(ports):
            last = 16383 if k == len(ports) - 1 else (k + 1) * share - 1
            self.command(p, "CLUSTER", "ADDSLOTSRANGE", k * share, last)

    def _cli_auth(self):
        return ["-a", self.password, "--no-auth-warning"] if self.password else []

    def running_ports(self):
        return [p for p, n in self.nodes.items() if n.running()]

    def node_client(self, port, timeout=5.0):
        """A new plain redis-py client (decode_responses) for one node; the caller closes it."""
        return redis_client(port, self.password, timeout)

    def command(self, port, *args, timeout=5.0):
        """One command on one node over a fresh connection (redis-py's reply)."""
        c = self.node_client(port, timeout)
        try:
            return c.execute_command(*args)
        finally:
            c.close()

    def info(self, port):
        """CLUSTER INFO of one node as {field: text}."""
        text = self.command(port, "CLUSTER", "INFO")
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def _slot_map(self, port):
        """CLUSTER SLOTS of one node as a sorted [(first, last, master port, [replica ports])]."""
        out = []
        for entry in self.command(port, "CLUSTER", "SLOTS"):
            first, last, master = int(entry[0]), int(entry[1]), entry[2]
            out.append((first, last, int(master[1]), sorted(int(r[1]) for r in entry[3:])))
        return sorted(out)

    def _node_id(self, port):
        return self.command(port, "CLUSTER", "MYID")

    def _replicas_synced(self):
        for p in self.running_ports():
            rep = self.command(p, "INFO", "replication")
            if rep.get("role") == "slave" and rep.get("master_link_status") != "up":
                return False
        return True

    def wait_ok(self, timeout=None):
        """Wait until every running node says cluster_state:ok, all agree on one slot map that
        covers the 16384 slots and lists exactly the running nodes (masters and replicas), and
        every running replica's link to its master is up."""
        def ok():
            ports = self.running_ports()
            maps = set()
            for p in ports:
                if self.info(p).get("cluster_state") != "ok":
                    return False
                m = self._slot_map(p)
                maps.add(repr(m))
            if len(maps) != 1:
                return False
            m = self._slot_map(ports[0])
            if sum(last - first + 1 for first, last, _, _ in m) != 16384:
                return False
            listed = {mp for _, _, mp, _ in m} | {r for _, _, _, reps in m for r in reps}
            if listed != set(ports):  # a dead node still listed, or a replica not yet known
                return False
            if not self._replicas_synced():
                return False
            self.router._slots = m
            return True
        return wait_for(ok, timeout or scaled(30), "the cluster to be ok on every node",
                        interval=0.1)

    def seeds(self):
        """"127.0.0.1:<port>" of every running node (the gateway's --redis-cluster values)."""
        return ["127.0.0.1:%d" % p for p in self.running_ports()]

    def seed_args(self, n=None):
        """--redis-cluster flags for the first n seeds (default all)."""
        args = []
        for s in self.seeds()[:n]:
            args += ["--redis-cluster", s]
        return args

    def client(self, timeout=5.0):
        """A new redis-py RedisCluster (decode_responses) seeded with every running node; the
        caller closes it."""
        from redis.cluster import ClusterNode, RedisCluster
        return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", p)
                                           for p in self.running_ports()],
                            password=self.password, decode_responses=True,
                            socket_timeout=timeout, socket_connect_timeout=timeout)

    # -- the slot map and commands routed by slot: the stack's own router (main thread)
    def refresh(self):
        """Reload the slot map from a running node; returns [(first, last, master, replicas)]."""
        return self.router.refresh()

    def master_for_slot(self, slot):
        return self.router.master_for_slot(slot)

    def node_for_key(self, key):
        return self.router.node_for_key(key)

    def masters(self):
        return self.router.masters()

    def replicas_of(self, master_port):
        return self.router.replicas_of(master_port)

    def execute(self, key, *args, **kw):
        return self.router.execute(key, *args, **kw)

    def spublish(self, channel, message):
        return self.router.spublish(channel, message)

    def fcall_publish(self, instrument, tick, **kw):
        return self.router.fcall_publish(instrument, tick, **kw)

    @property
    def _slots(self):
        return self.router._slots

    def new_router(self):
        """A ClusterRouter with connections of its own (for another thread); close() it."""
        return ClusterRouter(self)

    @staticmethod
    def slot(key):
        """The hash slot of key (hash tags honoured), as gateway/slots.c computes it."""
        from redis.crc import key_slot
        return key_slot(key.encode() if isinstance(key, str) else key)

    def load_function(self, path=None, stream_len=None):
        """FUNCTION LOAD REPLACE the library at path (default chartgate_md.lua) on every running
        master, with its @stream-len@ line set when stream_len is given."""
        path = path or os.path.join(ROOT, "gateway", "functions", "chartgate_md.lua")
        with open(path) as f:
            code = f.read()
        if stream_len is not None:
            code = re.sub(r"^(local STREAM_LEN = )\d+", r"\g<1>%d" % stream_len, code,
                          flags=re.M)
        for p in self.masters():
            self.command(p, "FUNCTION", "LOAD", "REPLACE", code)

    # -- resharding and failover
    def migrate_slot(self, slot, dst_port, batch=100):
        """Move one slot to the master dst_port the way redis-cli --cluster reshard does: SETSLOT
        IMPORTING on the target, MIGRATING on the source, MIGRATE its keys in batches (AUTH when
        the cluster has a password), then SETSLOT NODE on the target, the source and every other
        master. Returns the source's port."""
        self.refresh()
        src = self.master_for_slot(slot)
        if src == dst_port:
            raise AssertionError("slot %d is already on %d" % (slot, dst_port))
        if dst_port not in self.masters():
            raise AssertionError("%d is not a master owning slots" % dst_port)
        src_id, dst_id = self._node_id(src), self._node_id(dst_port)
        self.command(dst_port, "CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        self.command(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        auth = ["AUTH", self.password] if self.password else []
        while True:
            keys = self.command(src, "CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not keys:
                break
            self.command(src, "MIGRATE", "127.0.0.1", dst_port, "", 0, 5000, *auth,
                         "KEYS", *keys)
        self.command(dst_port, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        self.command(src, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        for p in self.masters():
            if p not in (src, dst_port):
                self.command(p, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        self.wait_ok()
        if self.master_for_slot(slot) != dst_port:
            raise AssertionError("slot %d still on %d after the migration" % (
                slot, self.master_for_slot(slot)))
        return src

    def kill_master(self, port):
        """SIGKILL the master on port by PID (nothing saved); returns its RedisServer.
        wait_failover(port) then waits for the slots it owned at this moment."""
        self.refresh()
        self._owned_at_kill[port] = [(f, l) for f, l, m, _ in self._slots if m == port]
        node = self.nodes[port]
        stop_proc(node.proc, signal.SIGKILL)
        self.router._drop_conn(port)
        return node

    def wait_failover(self, old_port, timeout=None):
        """Wait until the slots old_port owned are served by a promoted replica and the
        surviving nodes say cluster_state:ok again; returns the new master's port."""
        owned = self._owned_at_kill.get(old_port)
        if not owned:
            raise AssertionError("%d owned no slots in the last map" % old_port)

        def switched():
            ports = self.running_ports()
            m = self._slot_map(ports[0])
            for f, l, mp, _ in m:
                if f <= owned[0][0] <= l:
                    if mp == old_port or mp not in ports:
                        return None
                    return mp
            return None
        new = wait_for(switched, timeout or scaled(30), "a replica of %d to take over" % old_port,
                       interval=0.1)
        self.wait_ok(timeout)
        return new

    def pid(self, port):
        return self.nodes[port].pid

    def cleanup(self):
        """Close the routing connections, stop every node by PID, remove the directory."""
        self.router.close()
        for n in self.nodes.values():
            n.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class ClusterRouter:
    """Commands routed by hash slot to a ClusterStack's masters, over its own connections (one
    router per thread): the slot map from CLUSTER SLOTS, MOVED (map reloaded), ASK (ASKING,
    once), TRYAGAIN/CLUSTERDOWN/LOADING (retried) and dead nodes (map reloaded) followed."""

    def __init__(self, stack):
        self.stack = stack
        self._conns = {}  # port -> redis.Redis
        self._slots = []  # [(first, last, master port, [replica ports])], from CLUSTER SLOTS

    slot = staticmethod(lambda key: ClusterStack.slot(key))

    # -- the slot map
    def refresh(self):
        """Reload the slot map from the first running node that answers; returns it."""
        last = None
        for p in self.stack.running_ports():
            try:
                self._slots = self.stack._slot_map(p)
                return self._slots
            except Exception as e:  # that node is down or loading: the next one
                last = e
        raise AssertionError("no cluster node answered CLUSTER SLOTS: %r" % last)

    def master_for_slot(self, slot):
        """The port of the master owning slot (from the cached map; refresh() to reload)."""
        if not self._slots:
            self.refresh()
        for first, last, master, _ in self._slots:
            if first <= slot <= last:
                return master
        raise AssertionError("slot %d is not covered by the slot map %r" % (slot, self._slots))

    def node_for_key(self, key):
        """The port of the master owning key's slot."""
        return self.master_for_slot(self.slot(key))

    def masters(self):
        """The ports of the masters owning slots, from the cached map."""
        if not self._slots:
            self.refresh()
        return sorted({m for _, _, m, _ in self._slots})

    def replicas_of(self, master_port):
        if not self._slots:
            self.refresh()
        for _, _, m, reps in self._slots:
            if m == master_port:
                return list(reps)
        return []

    def _conn(self, port):
        c = self._conns.get(port)
        if c is None:
            c = self._conns[port] = redis_client(port, self.stack.password, timeout=scaled(5))
        return c

    def _drop_conn(self, port):
        c = self._conns.pop(port, None)
        if c is not None:
            c.close()

    def execute(self, key, *args, after=(), timeout=None):
        """Run args on the master owning key's slot, following MOVED (map reloaded), ASK (ASKING
        then the command, once, on the named node), TRYAGAIN, CLUSTERDOWN and a dead node (map
        reloaded) until timeout (default 10 s, scaled). after: more commands sent right behind
        it on the same connection (e.g. ("WAIT", 1, 100)); their replies are returned after the
        command's, as a list. Returns the command's reply (a list with after)."""
        import redis
        deadline = time.monotonic() + (timeout or scaled(10))
        port = self.node_for_key(key)
        asking = False
        last = None
        while time.monotonic() < deadline:
            try:
                pipe = self._conn(port).pipeline(transaction=False)
                if asking:
                    pipe.execute_command("ASKING")
                pipe.execute_command(*args)
                for cmd in after:
                    pipe.execute_command(*cmd)
                res = pipe.execute(raise_on_error=False)
                res = res[1:] if asking else res
                for r in res:
                    if isinstance(r, Exception):
                        raise r  # the first error, with Redis's own message
                return res if after else res[0]
            except redis.exceptions.ResponseError as e:
                msg = str(e)
                last = e
                word = msg.split(" ", 1)[0]
                if word == "MOVED":
                    self.refresh()
                    port, asking = int(msg.rsplit(":", 1)[1]), False
                    continue
                if word == "ASK":
                    port, asking = int(msg.rsplit(":", 1)[1]), True
                    continue
                if word in ("TRYAGAIN", "CLUSTERDOWN", "LOADING", "MASTERDOWN"):
                    time.sleep(0.02)
                    port, asking = self.node_for_key(key), False
                    continue
                raise
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
                last = e
                self._drop_conn(port)
                time.sleep(0.05)
                try:
                    self.refresh()
                except AssertionError:
                    pass
                port, asking = self.node_for_key(key), False
        raise AssertionError("cluster command %r on key %s failed until the deadline: %r" % (
            args[:3], key, last))

    def spublish(self, channel, message):
        """SPUBLISH on the master owning channel's slot; returns the number of receivers."""
        return self.execute(channel, "SPUBLISH", channel, message)

    def fcall_publish(self, instrument, tick, prefix="md:", wait_replicas=0, wait_ms=100):
        """FCALL chartgate_publish on the owner of slot(md:<instrument>); returns the seq.

        The function's own keys, {md:<i>}:seq and {md:<i>}:stream, are declared after the
        channel (3 keys; the function reads only KEYS[1]). The channel is never a key, so while
        the slot migrates the call is "some keys missing" on the source and on the target alike:
        TRYAGAIN, retried here, until SETSLOT NODE ends the migration (milliseconds for one slot
        with its two keys); then it runs on the new owner, where the counter now is. With the
        channel alone, the migrating source would ASK every call to the target at once, where
        INCR would start a second counter at 1 before the first one moved (checked by hand:
        FCALL ... 1 md:<i> during MIGRATING is redirected by ASK).
        wait_replicas: WAIT for that many replicas (at most wait_ms) after it, on the same
        connection, so that a failover loses no acknowledged tick; the return value is then
        (seq, replicas that acknowledged it)."""
        ch = prefix + instrument
        args = ("FCALL", "chartgate_publish", 3, ch, "{%s}:seq" % ch, "{%s}:stream" % ch, tick)
        if wait_replicas:
            seq, acked = self.execute(ch, *args, after=(("WAIT", wait_replicas, wait_ms),))
            return int(seq), int(acked)
        return int(self.execute(ch, *args))

    def close(self):
        for p in list(self._conns):
            self._drop_conn(p)


# ---------------------------------------------------------------------------------------------
# HTTP


def http_get(port, path, headers=None, timeout=None):
    """GET http://127.0.0.1:port/path -> (status, {lowercased header: value}, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout or scaled(5))
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$")
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


class Metrics(dict):
    """Prometheus text parsed into {(name, ((label, value), ...)): float}."""

    @classmethod
    def parse(cls, text):
        m = cls()
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            mm = _SAMPLE_RE.match(line)
            if not mm:
                raise AssertionError("unparsable /metrics line: %r" % line)
            name, labels_txt, value = mm.group(1), mm.group(3) or "", mm.group(4)
            labels = tuple(sorted((k, v) for k, v in _LABEL_RE.findall(labels_txt)))
            m[(name, labels)] = float(value)
        return m

    def names(self):
        return {k[0] for k in self}

    def has(self, name, **labels):
        want = set(labels.items())
        return any(n == name and want <= set(lab) for n, lab in self)

    def value(self, name, **labels):
        """Sum of the samples of NAME whose labels include LABELS (0 when none)."""
        want = set(labels.items())
        return sum(v for (n, lab), v in self.items() if n == name and want <= set(lab))


# ---------------------------------------------------------------------------------------------
# the gateway process


class Gateway:
    """One chartgate process: --listen 127.0.0.1:<free port> --redis <url> plus extra flags
    (redis_url None: no --redis, e.g. args naming --redis-cluster seeds instead).
    Its output goes to logdir/<name>-<port>.log (logdir default: a new temporary directory)."""

    def __init__(self, redis_url, args=(), env=None, binary=None, logdir=None, name="gateway"):
        self.binary = binary or gateway_binary()
        self.redis_url = redis_url
        self.args = list(args)
        self.env = env
        self.port = free_port()
        self.logdir = logdir or tempfile.mkdtemp(prefix="cg-gw-")
        self.log = os.path.join(self.logdir, "%s-%d.log" % (name, self.port))
        self.proc = None
        self.returncode = None
        self.stop_signalled = False

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    @property
    def pid(self):
        return self.proc.pid

    def cmdline(self):
        # CHARTGATE_WRAPPER: e.g. "valgrind --error-exitcode=99 --leak-check=full" (the
        # gateway's exit status is checked at stop, so a leak fails the test).
        wrapper = shlex.split(os.environ.get("CHARTGATE_WRAPPER", ""))
        redis = ["--redis", self.redis_url] if self.redis_url is not None else []
        return wrapper + [self.binary, "--listen", "127.0.0.1:%d" % self.port] + redis + self.args

    def start(self, wait="healthy", timeout=None):
        """Start; wait='healthy' waits for /healthz 200, 'any' for any HTTP answer, None not at
        all. Fails with the log tail if the process dies or the wait times out."""
        if not os.access(self.binary, os.X_OK):
            raise AssertionError("gateway binary %s is missing or not executable "
                                 "(build it, or pass --gateway PATH)" % self.binary)
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        with open(self.log, "ab") as logf:
            self.proc = track(subprocess.Popen(self.cmdline(), stdin=subprocess.DEVNULL,
                                               stdout=logf, stderr=logf, env=env,
                                               cwd=self.logdir))
        if wait:
            self.wait_ready(wait == "healthy", timeout or scaled(10))
        return self

    def wait_ready(self, healthy=True, timeout=10.0):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("gateway exited with %s before answering /healthz; "
                                     "cmd: %s\nlog tail:\n%s" % (
                                         self.proc.returncode, " ".join(self.cmdline()),
                                         self.log_tail()))
            try:
                status, _, body = http_get(self.port, "/healthz", timeout=1)
                last = (status, body[:200])
                if status == 200 or not healthy:
                    return
            except (OSError, http.client.HTTPException) as e:
                last = e
            if time.monotonic() > deadline:
                raise AssertionError("gateway /healthz not %s within %.0fs (last: %r)\nlog:\n%s"
                                     % ("200" if healthy else "answering", timeout, last,
                                        self.log_tail()))
            time.sleep(0.02)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.stop_signalled = True
        os.kill(self.proc.pid, sig)

    def stop(self, timeout=5.0, expect_rc=0):
        """SIGTERM by PID; assert it exits within timeout with expect_rc and that the log holds
        no sanitizer report. Idempotent: a second call only repeats the checks."""
        if self.proc is None:
            return None
        if self.returncode is None:
            # a caller that already sent SIGTERM/SIGINT gets no second one (a second signal may
            # rightly mean "exit now"); only the wait and the checks
            sig = 0 if self.stop_signalled else signal.SIGTERM
            rc, in_time = stop_proc(self.proc, sig, timeout)
            self.returncode = rc
            if not in_time:
                raise AssertionError("gateway did not exit within %.0fs of SIGTERM (killed)\n%s"
                                     % (timeout, self.log_tail()))
        self.check_log()
        if expect_rc is not None and self.returncode != expect_rc:
            raise AssertionError("gateway exited with %s after SIGTERM, expected %s\nlog:\n%s"
                                 % (self.returncode, expect_rc, self.log_tail()))
        return self.returncode

    def wait_exit(self, timeout=5.0):
        """Wait (no signal) for the process to exit; returns its exit code, or None (still
        running) after timeout."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        _live_procs.pop(self.proc.pid, None)
        self.returncode = rc
        return rc

    def kill(self):
        if self.proc is not None and self.returncode is None:
            self.returncode, _ = stop_proc(self.proc, signal.SIGKILL)

    def log_text(self):
        try:
            with open(self.log, "r", encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=40):
        return tail(self.log, n)

    def check_log(self):
        text = self.log_text()
        m = SANITIZER_RE.search(text)
        if m:
            start = max(0, m.start() - 200)
            raise AssertionError("sanitizer report in gateway log:\n%s" % text[start:start + 4000])

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS for pid %d" % self.proc.pid)

    # HTTP on the gateway's port
    def get(self, path, headers=None, timeout=None):
        return http_get(self.port, path, headers, timeout)

    def healthz(self):
        """(status, parsed JSON body)."""
        status, headers, body = self.get("/healthz")
        try:
            doc = json.loads(body)
        except ValueError:
            raise AssertionError("/healthz body is not JSON: %r" % body[:200])
        return status, doc

    # --workers N: the supervisor is self.proc; the workers are its children
    def workers(self):
        """The workers as /healthz lists them (--workers N): [{"index", "pid", "alive",
        "connections", "restarts", "redis"}, ...]; AssertionError without a supervisor."""
        _, doc = self.healthz()
        if "workers" not in doc:
            raise AssertionError("/healthz lists no workers (no --workers?): %r" % doc)
        return doc["workers"]

    def workers_tls(self):
        """workers() over https (a gateway with --tls-cert; the certificate is not checked)."""
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=2, context=ctx)
        try:
            c.request("GET", "/healthz")
            return json.loads(c.getresponse().read())["workers"]
        finally:
            c.close()

    def worker_pids(self):
        """{index: pid} of the live workers, from /healthz."""
        return {w["index"]: w["pid"] for w in self.workers() if w["alive"]}

    def wait_workers(self, n, timeout=None, exclude=()):
        """Wait until n workers are alive with their Redis links up and none of their pids is in
        exclude (e.g. the pid of a worker just killed); returns {index: pid}."""
        def ready():
            ws = self.workers()
            live = [w for w in ws if w["alive"] and w["pid"] not in exclude and
                    all(w["redis"].values())]
            return {w["index"]: w["pid"] for w in live} if len(live) == n else None
        return wait_for(ready, timeout or scaled(10), "%d workers alive" % n)

    def metrics(self):
        status, headers, body = self.get("/metrics")
        if status != 200:
            raise AssertionError("/metrics answered %d" % status)
        return Metrics.parse(body.decode("utf-8"))


# ---------------------------------------------------------------------------------------------
# the WebSocket wire, by hand (no library between the caller and the bytes)


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def ws_accept(key):
    return base64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()


class Upgrade:
    """Result of raw_upgrade: status, headers (lowercased), and the socket when kept open."""

    def __init__(self, status, reason, headers, rest, sock, key):
        self.status, self.reason, self.headers, self.rest, self.sock, self.key = (
            status, reason, headers, rest, sock, key)

    def __repr__(self):
        return "<Upgrade %s %s>" % (self.status, self.reason)


def raw_upgrade(port, path="/ws", cookie=None, origin=None, extra_headers=None,
                keep_open=False, rcvbuf=None, timeout=None, source=None):
    """Send a WebSocket upgrade request by hand and read the status line and headers.

    cookie is the whole Cookie header value (or None for none); source, a local address such as
    127.0.0.2 to connect from (what a proxy sees as the client). Returns an Upgrade; its sock
    is open only when keep_open and the status is 101."""
    timeout = timeout or scaled(5)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    if source:
        sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port, "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: %s" % key, "Sec-WebSocket-Version: 13"]
    if cookie is not None:
        lines.append("Cookie: %s" % cookie)
    if origin is not None:
        lines.append("Origin: %s" % origin)
    for k, v in (extra_headers or {}).items():
        lines.append("%s: %s" % (k, v))
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in buf:
        if time.monotonic() > deadline:
            sock.close()
            raise AssertionError("no complete HTTP response head within %.0fs: %r" % (timeout, buf))
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            sock.close()
            raise AssertionError("connection closed before an HTTP response head: %r" % buf)
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    head_lines = head.decode("latin-1").split("\r\n")
    parts = head_lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        sock.close()
        raise AssertionError("bad HTTP status line %r" % head_lines[0])
    status = int(parts[1])
    headers = {}
    for line in head_lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if keep_open and status == 101:
        return Upgrade(status, parts[2] if len(parts) > 2 else "", headers, rest, sock, key)
    sock.close()
    return Upgrade(status, parts[2] if len(parts) > 2 else "", headers, rest, None, key)


def take_ws_frame(buf):
    """One complete server->client (unmasked) WebSocket frame off the front of bytearray buf, as
    (opcode, payload), removed from buf; None while buf holds no complete frame."""
    if len(buf) < 2:
        return None
    opcode, n, off = buf[0] & 0x0F, buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, off = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, off = struct.unpack("!Q", buf[2:10])[0], 10
    if len(buf) < off + n:
        return None
    payload = bytes(buf[off:off + n])
    del buf[:off + n]
    return opcode, payload


def encode_ws_frame(opcode, payload, fin=True, rsv1=False):
    """A masked client->server WebSocket frame; rsv1 marks it compressed (permessage-deflate)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    mask = secrets.token_bytes(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 4096 else \
        _mask_fast(payload, mask)
    return head + mask + body


def _mask_fast(payload, mask):
    n = len(payload)
    m = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ m).to_bytes(n, "big")


# ---------------------------------------------------------------------------------------------
# command line (scripts/lib/common.sh)


def cluster_self_check(password="pw"):
    """ClusterStack end to end, by hand: create, SSUBSCRIBE + SPUBLISH, FCALL, a slot migrated
    (Redis sends sunsubscribe to the old owner's subscriber), a master killed (its replica takes
    over). Prints a line per step; AssertionError on the first failure."""
    t0 = time.monotonic()
    cs = ClusterStack(password=password).start()
    try:
        print("cluster up in %.1fs: %s" % (time.monotonic() - t0, cs._slots))
        cs.load_function()
        ch = "md:selfcheck"
        slot, owner = cs.slot(ch), cs.node_for_key(ch)
        with socket.create_connection(("127.0.0.1", owner), scaled(5)) as s:
            s.sendall(_resp("AUTH", password) + _resp("SSUBSCRIBE", ch))
            wait_for(lambda: cs.command(owner, "PUBSUB", "SHARDNUMSUB", ch)[1] == 1,
                     scaled(5), "SSUBSCRIBE on the owner")
            assert cs.spublish(ch, "hello") == 1, "SPUBLISH reached no subscriber"
            seqs = [cs.fcall_publish("selfcheck", '{"p":%d}' % i, wait_replicas=1)
                    for i in range(3)]
            assert seqs == [(1, 1), (2, 1), (3, 1)], seqs
            dst = [m for m in cs.masters() if m != owner][0]
            cs.migrate_slot(slot, dst)
            buf = b""
            while b"sunsubscribe" not in buf:
                chunk = s.recv(4096)
                assert chunk, "connection closed before sunsubscribe: %r" % buf
                buf += chunk
            print("slot %d moved %d -> %d; the subscriber got sunsubscribe" % (slot, owner, dst))
        assert cs.fcall_publish("selfcheck", '{"p":3}') == 4, "seq did not move with the slot"
        t = time.monotonic()
        cs.kill_master(dst)
        new = cs.wait_failover(dst)
        print("master %d killed; replica %d took over in %.1fs" % (dst, new,
                                                                   time.monotonic() - t))
        assert cs.fcall_publish("selfcheck", '{"p":4}') == 5, "seq lost in the failover"
        print("cluster self-check passed in %.1fs" % (time.monotonic() - t0))
    finally:
        cs.cleanup()


def _main(argv):
    usage = ("usage: localstack.py port-free PORT | pick-port PREFERRED | "
             "redis-argv PORT DIR LOGFILE | cluster-self-check")
    try:
        if len(argv) == 2 and argv[0] == "port-free":
            return 0 if port_free(int(argv[1])) else 1
        if len(argv) == 2 and argv[0] == "pick-port":
            print(pick_port(int(argv[1])))
            return 0
        if argv == ["cluster-self-check"]:
            cluster_self_check()
            return 0
        if len(argv) == 4 and argv[0] == "redis-argv":
            sys.stdout.write("\0".join(redis_argv(int(argv[1]), argv[2], argv[3])))
            return 0
    except ValueError:
        pass
    sys.stderr.write(usage + "\n")
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
