#!/usr/bin/python3
"""test_tls.py -- wss:// and https:// through OpenSSL (issue 6): TLS 1.2 minimum, ALPN
http/1.1, the certificate reloaded on SIGHUP without dropping open connections, and bad TLS
settings refused at start. Certificates are made with the openssl command."""

import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile

import harness
import websocket
from harness import wait_for


def make_cert(d, name):
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=%s" % name,
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def tls_peer(port, maximum=None, alpn=("http/1.1",)):
    """(negotiated version, ALPN, sha256 of the server certificate) of one TLS handshake."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    if maximum:
        ctx.maximum_version = maximum
    ctx.set_alpn_protocols(list(alpn))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw) as s:
            der = s.getpeercert(binary_form=True)
            return s.version(), s.selected_alpn_protocol(), hashlib.sha256(der).hexdigest()


class TlsTest(harness.GatewayTestCase):

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="cg-tls-")
        self.cert, self.key = make_cert(self.dir, "one")

    def wss(self, sid):
        ws = websocket.create_connection(
            "wss://127.0.0.1:%d/ws" % self.gw.port, cookie="sessionid=" + sid, timeout=5,
            suppress_origin=True, sslopt={"cert_reqs": ssl.CERT_NONE, "check_hostname": False})
        self.addCleanup(ws.close)
        return ws

    def ping(self, ws, rid):
        ws.send(json.dumps({"action": "ping", "id": rid}))
        frames = [json.loads(x) for x in ws.recv().split("\n")]
        for f in frames:
            harness.VALIDATOR.validate_server_frame(f)
        self.assertIn({"type": "pong", "id": rid}, frames)

    def test_wss_https_and_versions(self):
        self.start_gateway("--tls-cert", self.cert, "--tls-key", self.key, wait=None)
        wait_for(lambda: self._https_ok(), 10, "https /healthz")
        ws = self.wss(self.make_session("u1"))
        self.ping(ws, 1)
        version, alpn, _ = tls_peer(self.gw.port)
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(alpn, "http/1.1")
        version, _, _ = tls_peer(self.gw.port, maximum=ssl.TLSVersion.TLSv1_2)
        self.assertEqual(version, "TLSv1.2")
        for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError), msg=str(old)):
                tls_peer(self.gw.port, maximum=old)
        # plain HTTP on the TLS port is not served
        with self.assertRaises(Exception):
            harness.http_get(self.gw.port, "/healthz", timeout=3)

    def _https_ok(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        import http.client
        try:
            c = http.client.HTTPSConnection("127.0.0.1", self.gw.port, timeout=2, context=ctx)
            c.request("GET", "/healthz")
            return c.getresponse().status == 200
        except OSError:
            return False

    def test_sighup_reloads_the_certificate_without_dropping(self):
        self.start_gateway("--tls-cert", self.cert, "--tls-key", self.key, wait=None)
        wait_for(lambda: self._https_ok(), 10, "https /healthz")
        _, _, before = tls_peer(self.gw.port)
        ws = self.wss(self.make_session("u1"))
        self.ping(ws, 1)
        # a new certificate at the same paths, then SIGHUP
        new_cert, new_key = make_cert(self.dir, "two")
        os.replace(new_cert, self.cert)
        os.replace(new_key, self.key)
        self.gw.signal(signal.SIGHUP)
        wait_for(lambda: tls_peer(self.gw.port)[2] != before, 5, "the new certificate served")
        self.ping(ws, 2)  # the open connection lives on
        self.assertIn("tls certificate reloaded", self.gw.log_text())
        # a broken file on reload: the old certificate stays, the process lives
        _, _, current = tls_peer(self.gw.port)
        with open(self.key, "w") as f:
            f.write("not a key\n")
        self.gw.signal(signal.SIGHUP)
        wait_for(lambda: "tls reload failed" in self.gw.log_text(), 5, "the failure logged")
        self.assertEqual(tls_peer(self.gw.port)[2], current)
        self.ping(ws, 3)

    def test_bad_tls_settings_refused_at_start(self):
        for args, flag in ((["--tls-cert", self.cert], "--tls-key"),
                           (["--tls-key", self.key], "--tls-cert"),
                           (["--tls-cert", "/nonexistent.pem", "--tls-key", self.key],
                            "--tls-cert")):
            r = subprocess.run([harness.gateway_binary(), "--listen", "127.0.0.1:1"] + args,
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 2, r.stderr)
            lines = r.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertTrue(lines[0].startswith("chartgate: %s:" % flag), lines[0])


if __name__ == "__main__":
    harness.main()
