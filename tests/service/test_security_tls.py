"""TLS material and token files of the daemons, against real processes on 127.0.0.1 with
certificates made here by the openssl CLI (tests/service/cluster.py starts the processes):
start-up validation (expired, not yet valid, mismatched, near expiry), rotation on file change
and on SIGHUP without downgrade, token-file permissions, and the worker's log of TLS refusals."""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import cluster  # noqa: E402

import grpc  # noqa: E402

CA_CONFIG = """
[ ca ]
default_ca = ca_default
[ ca_default ]
database = index.txt
new_certs_dir = issued
serial = serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[ policy_any ]
commonName = supplied
"""


class Pki:
    """CAs and certificates for 127.0.0.1 under one directory, via the openssl CLI. `openssl ca`
    signs, so validity can lie in the past or the future (-startdate/-enddate)."""

    def __init__(self, directory):
        self.dir = directory

    def run(self, *args, cwd):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=cwd)

    def ca(self, name):
        d = os.path.join(self.dir, name)
        os.makedirs(os.path.join(d, "issued"))
        write(os.path.join(d, "index.txt"), "")
        write(os.path.join(d, "serial"), "1000\n")
        write(os.path.join(d, "ca.cnf"), CA_CONFIG)
        write(os.path.join(d, "ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        self.run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days",
                 "30", "-subj", f"/CN={name}", cwd=d)
        return d

    def leaf(self, ca_dir, name, days=None, start=None, end=None):
        """(cert, key) for 127.0.0.1 signed by the CA in ca_dir; days, or start/end (YYYYMMDDHHMMSSZ)."""
        key, csr, cert = (os.path.join(ca_dir, f"{name}.{x}") for x in ("key", "csr", "pem"))
        self.run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1",
                 cwd=ca_dir)
        dates = ["-startdate", start, "-enddate", end] if start else ["-days", str(days or 30)]
        self.run("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-in", csr, "-out",
                 cert, "-notext", "-extfile", "ext.cnf", *dates, cwd=ca_dir)
        return cert, key


def pem(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def install(src, dst):
    """Replaces dst with src's content atomically (as a Secret mount or cert-manager does)."""
    shutil.copyfile(src, dst + ".new")
    os.replace(dst + ".new", dst)


def served_certificate(port, cert, key):
    """The DER certificate a TLS server on 127.0.0.1:port presents to a new connection (the client
    presents cert/key, as mTLS asks; it does not verify: it only looks)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as tls:
            return tls.getpeercert(binary_form=True)


def der(cert_path):
    return ssl.PEM_cert_to_DER_cert(pem(cert_path).decode())


def connects(port, creds=None, timeout=5):
    """Whether a gRPC channel (TLS with creds, else plaintext) to 127.0.0.1:port becomes ready."""
    target = f"127.0.0.1:{port}"
    channel = grpc.secure_channel(target, creds) if creds is not None else grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
        return True
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()


def creds_for(ca, cert, key):
    return grpc.ssl_channel_credentials(pem(ca), pem(key), pem(cert))


class TlsTest(unittest.TestCase):
    def setUp(self):
        self.workdir = cluster.new_workdir("caliber-tls-")
        self.pki = Pki(self.workdir)
        self.procs = []
        self.clusters = []

    def tearDown(self):
        for c in self.clusters:
            c.stop()
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        if not os.environ.get("CALIBER_KEEP_TEST_DIRS"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_path(self, name):
        return os.path.join(self.workdir, name + ".log")

    def log(self, name):
        return pem(self.log_path(name)).decode(errors="replace")

    def spawn(self, name, args):
        with open(self.log_path(name), "ab") as log:
            p = subprocess.Popen(args, stderr=log)
        self.procs.append(p)
        return p

    def coordinator(self, name, *args):
        return self.spawn(name, [cluster.COORDINATOR, "--listen", "127.0.0.1:0", "--state-dir",
                                 os.path.join(self.workdir, name + "-state"), "--port-file",
                                 os.path.join(self.workdir, name + ".port")] + list(args))

    def started(self, name, proc):
        """(grpc port, metrics port) once `proc` listens."""
        return cluster.wait_for_file(os.path.join(self.workdir, name + ".port"), timeout=60, proc=proc)

    def exit_code(self, proc, timeout=60):
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail("the daemon kept running")

    def wait_for_log(self, name, text, timeout=60, count=1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.log(name).count(text) >= count:
                return
            time.sleep(0.1)
        self.fail(f"{name} never logged {text!r} ({count}x); log:\n{self.log(name)}")

    def wait_until(self, predicate, what, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        self.fail(what)

    def tls_files(self, cert, key, ca):
        """Copies of the material at fixed paths the daemons read (rotation replaces them)."""
        paths = {k: os.path.join(self.workdir, k) for k in ("tls.pem", "tls.key", "ca.pem")}
        for src, dst in ((cert, "tls.pem"), (key, "tls.key"), (ca, "ca.pem")):
            install(src, paths[dst])
        return paths

    def tls_args(self, files):
        return ["--tls-cert", files["tls.pem"], "--tls-key", files["tls.key"], "--tls-ca", files["ca.pem"],
                "--tls-require-client-cert"]


class TlsStartup(TlsTest):
    def test_expired_or_not_yet_valid_certificates_refuse_start(self):
        ca = self.pki.ca("ca")
        ca_pem = os.path.join(ca, "ca.pem")
        cases = [("expired", "20200101000000Z", "20210101000000Z", "has expired", "2021-01-01 00:00:00 UTC"),
                 ("future", "20990101000000Z", "21000101000000Z", "is not yet valid", "2099-01-01 00:00:00 UTC")]
        for name, start, end, why, date in cases:
            cert, key = self.pki.leaf(ca, name, start=start, end=end)
            tls = ["--tls-cert", cert, "--tls-key", key, "--tls-ca", ca_pem]
            for daemon, binary in (("coordinator", cluster.COORDINATOR), ("worker", cluster.WORKER)):
                with self.subTest(case=name, daemon=daemon):
                    log = f"{daemon}-{name}"
                    if daemon == "coordinator":
                        p = self.coordinator(log, *tls)
                    else:
                        p = self.spawn(log, [binary, "--coordinator", "127.0.0.1:1", "--work-dir",
                                             os.path.join(self.workdir, log)] + tls)
                    self.assertEqual(self.exit_code(p), 1, self.log(log))
                    text = self.log(log)
                    self.assertIn("startup failed (tls)", text)
                    self.assertIn(cert, text)  # names the file
                    self.assertIn(why, text)
                    self.assertIn(date, text)  # and the dates

    def test_key_not_matching_the_certificate_refuses_start(self):
        ca = self.pki.ca("ca")
        cert, _ = self.pki.leaf(ca, "a")
        _, other_key = self.pki.leaf(ca, "b")
        p = self.coordinator("c", "--tls-cert", cert, "--tls-key", other_key)
        self.assertEqual(self.exit_code(p), 1)
        self.assertIn(f"key_file {other_key} does not match the certificate in cert_file {cert}", self.log("c"))

    def test_near_expiry_warns_and_metrics_export_the_expiry(self):
        ca = self.pki.ca("ca")  # 30 days
        cert, key = self.pki.leaf(ca, "soon", days=2)
        tls = ["--tls-cert", cert, "--tls-key", key, "--tls-ca", os.path.join(ca, "ca.pem")]
        p = self.coordinator("c", *tls)
        _, metrics_port = self.started("c", p)
        text = self.log("c")
        self.assertRegex(text, re.escape(f"warning: TLS cert_file {cert} expires at ") +
                         r".* within --tls-expiry-warning 720h\): rotate it")
        not_after = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-enddate"], capture_output=True,
                                   text=True, check=True).stdout.strip().split("=", 1)[1]
        expected = ssl.cert_time_to_seconds(not_after)
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        m = re.search(r'caliber_tls_certificate_expiry_timestamp_seconds\{file="' + re.escape(cert) +
                      r'",role="cert"\} (\S+)', body)
        self.assertIsNotNone(m, body)
        self.assertAlmostEqual(float(m.group(1)), expected, delta=1)
        self.assertIn('role="ca"', body)
        # A shorter window: no warning.
        q = self.coordinator("quiet", "--tls-expiry-warning", "1h", *tls)
        self.started("quiet", q)
        self.assertNotIn("warning", self.log("quiet"))


class TlsRotation(TlsTest):
    def test_file_change_rotates_and_bad_replacements_keep_the_old_material(self):
        a = self.pki.ca("a")
        b = self.pki.ca("b")
        a_cert, a_key = self.pki.leaf(a, "node")
        b_cert, b_key = self.pki.leaf(b, "node")
        expired_cert, expired_key = self.pki.leaf(a, "old", start="20200101000000Z", end="20210101000000Z")
        _, a_other_key = self.pki.leaf(a, "other")
        files = self.tls_files(a_cert, a_key, os.path.join(a, "ca.pem"))
        p = self.coordinator("c", "--tls-refresh-interval", "1s", *self.tls_args(files))
        port, _ = self.started("c", p)
        creds_a = creds_for(os.path.join(a, "ca.pem"), a_cert, a_key)
        creds_b = creds_for(os.path.join(b, "ca.pem"), b_cert, b_key)
        self.assertEqual(served_certificate(port, a_cert, a_key), der(a_cert))
        self.assertTrue(connects(port, creds_a))

        # Each bad replacement is refused (logged once), the previous material stays in use, and
        # the port never speaks plaintext.
        garbage = os.path.join(self.workdir, "garbage.pem")
        write(garbage, "not a certificate\n")
        bad = [("expired", lambda: (install(expired_key, files["tls.key"]), install(expired_cert, files["tls.pem"])),
                "has expired"),
               ("garbage", lambda: install(garbage, files["tls.pem"]), "not PEM"),
               ("mismatch", lambda: (install(a_cert, files["tls.pem"]), install(a_other_key, files["tls.key"])),
                "does not match the certificate"),
               ("missing", lambda: os.remove(files["tls.pem"]), "does not exist")]
        for name, replace, why in bad:
            with self.subTest(replacement=name):
                replace()
                self.wait_for_log("c", why)
                self.assertIn("cannot reload TLS material, keeping the previous one", self.log("c"))
                time.sleep(2.5)  # the private copy's refresh (1 s) would have picked anything up
                self.assertEqual(served_certificate(port, a_cert, a_key), der(a_cert))
                self.assertTrue(connects(port, creds_a))
                self.assertFalse(connects(port, None, timeout=3))  # never plaintext
        self.assertEqual(p.poll(), None)

        # A good replacement from a new CA: new connections get it.
        install(b_key, files["tls.key"])
        install(b_cert, files["tls.pem"])
        install(os.path.join(b, "ca.pem"), files["ca.pem"])
        self.wait_for_log("c", "TLS material reloaded; new connections use it")
        self.wait_until(lambda: served_certificate(port, b_cert, b_key) == der(b_cert),
                        "the server never presented the new certificate")
        self.assertTrue(connects(port, creds_b))
        self.assertFalse(connects(port, creds_a, timeout=3))  # the old CA no longer verifies it
        self.assertFalse(connects(port, None, timeout=3))

    def test_sighup_reloads_at_once_and_keeps_the_old_material_on_error(self):
        a = self.pki.ca("a")
        b = self.pki.ca("b")
        a_cert, a_key = self.pki.leaf(a, "node")
        b_cert, b_key = self.pki.leaf(b, "node")
        files = self.tls_files(a_cert, a_key, os.path.join(a, "ca.pem"))
        # 0: no polling; only SIGHUP reloads.
        p = self.coordinator("c", "--tls-refresh-interval", "0", *self.tls_args(files))
        port, _ = self.started("c", p)
        install(b_key, files["tls.key"])
        install(b_cert, files["tls.pem"])
        install(os.path.join(b, "ca.pem"), files["ca.pem"])
        time.sleep(3)
        self.assertEqual(served_certificate(port, a_cert, a_key), der(a_cert))  # not polled
        p.send_signal(signal.SIGHUP)
        self.wait_for_log("c", "TLS material reloaded; new connections use it")
        self.wait_until(lambda: served_certificate(port, b_cert, b_key) == der(b_cert),
                        "the server never presented the new certificate")
        self.assertTrue(connects(port, creds_for(os.path.join(b, "ca.pem"), b_cert, b_key)))
        # A broken file and SIGHUP: the error is logged, the daemon keeps serving B.
        write(files["tls.key"], "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
        p.send_signal(signal.SIGHUP)
        self.wait_for_log("c", "cannot reload TLS material, keeping the previous one")
        # A second SIGHUP with nothing fixed logs again (SIGHUP reports every outcome).
        p.send_signal(signal.SIGHUP)
        self.wait_for_log("c", "cannot reload TLS material, keeping the previous one", count=2)
        self.assertEqual(p.poll(), None)
        self.assertEqual(served_certificate(port, b_cert, b_key), der(b_cert))
        self.assertTrue(connects(port, creds_for(os.path.join(b, "ca.pem"), b_cert, b_key)))

    def test_worker_push_server_and_coordinator_channel_rotate_on_sighup(self):
        a = self.pki.ca("a")
        b = self.pki.ca("b")
        a_cert, a_key = self.pki.leaf(a, "node")
        b_cert, b_key = self.pki.leaf(b, "node")
        files = self.tls_files(a_cert, a_key, os.path.join(a, "ca.pem"))
        token = cluster.write_secret(os.path.join(self.workdir, "worker.token"), "s3cret\n")
        tls = self.tls_args(files) + ["--tls-refresh-interval", "0", "--worker-token-file", token]
        c = cluster.Cluster(self.workdir, workers=1, extra_coordinator=tls, extra_worker=tls)
        self.clusters.append(c)
        self.wait_until(lambda: "registered with" in c.log("w1"), "the worker never registered")
        worker_port = cluster.wait_for_file(os.path.join(self.workdir, "w1.port"))[0]
        self.assertEqual(served_certificate(worker_port, a_cert, a_key), der(a_cert))

        # Rotate everyone's files to CA b; SIGHUP the worker.
        install(b_key, files["tls.key"])
        install(b_cert, files["tls.pem"])
        install(os.path.join(b, "ca.pem"), files["ca.pem"])
        c.workers["w1"].send_signal(signal.SIGHUP)
        self.wait_until(lambda: "TLS material reloaded" in c.log("w1"), "the worker never reloaded")
        # Its push server presents b to new connections.
        self.wait_until(lambda: served_certificate(worker_port, b_cert, b_key) == der(b_cert),
                        "the worker's push server never presented the new certificate")
        # A coordinator restarted on b: the worker's channel to it handshakes with b and the
        # worker registers again (with a: "certificate verify failed" forever).
        c.coordinator.send_signal(signal.SIGTERM)
        c.coordinator.wait(timeout=30)
        c.start_coordinator(port=c.port)
        self.wait_until(lambda: c.log("w1").count("registered with") >= 2,
                        "the worker never registered with the rotated coordinator:\n" + c.log("w1"), timeout=120)


class TokenFilePermissions(TlsTest):
    def test_group_or_world_accessible_token_files_refuse_start_unless_overridden(self):
        tokens = os.path.join(self.workdir, "tokens.json")
        write(tokens, '{"tenants": [{"name": "a", "tokens": ["tok-a"]}]}')
        worker_token = os.path.join(self.workdir, "worker.token")
        write(worker_token, "s3cret\n")
        cases = [("tokens", ["--tokens-file", tokens], tokens, 0o644, "--tokens-file"),
                 ("worker-token-644", ["--worker-token-file", worker_token], worker_token, 0o644,
                  "--worker-token-file"),
                 ("worker-token-660", ["--worker-token-file", worker_token], worker_token, 0o660,
                  "--worker-token-file"),
                 ("worker-token-604", ["--worker-token-file", worker_token], worker_token, 0o604,
                  "--worker-token-file")]
        for name, args, path, mode, flag in cases:
            with self.subTest(case=name):
                os.chmod(path, mode)
                p = self.coordinator(name, *args)
                self.assertEqual(self.exit_code(p), 1, self.log(name))
                text = self.log(name)
                self.assertIn(f"{flag} {path} has mode {mode:04o}", text)
                self.assertIn(f"chmod 600 {path}", text)
                self.assertIn("--allow-insecure-token-file-permissions", text)
                self.assertNotIn("s3cret", text)
                # The override starts, with a warning.
                q = self.coordinator(name + "-allowed", *args, "--allow-insecure-token-file-permissions")
                self.started(name + "-allowed", q)
                self.assertIn(f"warning: {flag} {path} has mode {mode:04o}", self.log(name + "-allowed"))
                q.kill()
                os.chmod(path, 0o600)
        # The worker checks its own copy; 0600 starts.
        os.chmod(worker_token, 0o640)
        w = self.spawn("worker", [cluster.WORKER, "--coordinator", "127.0.0.1:1", "--worker-token-file",
                                  worker_token, "--work-dir", os.path.join(self.workdir, "w")])
        self.assertEqual(self.exit_code(w), 1)
        self.assertIn(f"--worker-token-file {worker_token} has mode 0640", self.log("worker"))
        os.chmod(worker_token, 0o600)
        ok = self.coordinator("ok", "--worker-token-file", worker_token, "--tokens-file", tokens)
        self.started("ok", ok)
        # The CLI's --token-file too.
        client_token = os.path.join(self.workdir, "client.token")
        write(client_token, "tok-a\n")
        os.chmod(client_token, 0o644)
        r = subprocess.run([cluster.CALIBER, "list", "--coordinator", "127.0.0.1:1", "--token-file", client_token],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"--token-file {client_token} has mode 0644", r.stderr)
        self.assertIn(f"chmod 600 {client_token}", r.stderr)


class TlsRefusalLog(TlsTest):
    def test_worker_logs_tls_refusals_rate_limited(self):
        a = self.pki.ca("a")
        b = self.pki.ca("b")
        a_cert, a_key = self.pki.leaf(a, "node")
        b_cert, b_key = self.pki.leaf(b, "node")
        a_ca, b_ca = os.path.join(a, "ca.pem"), os.path.join(b, "ca.pem")
        p = self.coordinator("c", "--tls-cert", a_cert, "--tls-key", a_key, "--tls-ca", a_ca,
                             "--tls-require-client-cert")
        port, _ = self.started("c", p)
        workers = {
            # foreign CA: the worker does not trust the coordinator
            "foreign": (["--tls-cert", b_cert, "--tls-key", b_key, "--tls-ca", b_ca],
                        "this worker does not trust the coordinator's certificate"),
            # its certificate from a CA the coordinator does not trust
            "untrusted": (["--tls-cert", b_cert, "--tls-key", b_key, "--tls-ca", a_ca],
                          "does not trust this worker's certificate"),
            # plaintext against mTLS
            "plaintext": ([], "it probably requires TLS"),
        }
        start = time.time()
        for name, (args, _) in workers.items():
            self.spawn(name, [cluster.WORKER, "--coordinator", f"127.0.0.1:{port}", "--worker-id", name,
                              "--work-dir", os.path.join(self.workdir, name)] + args)
        for name, (_, why) in workers.items():
            self.wait_for_log(name, why)
        time.sleep(max(0.0, 10 - (time.time() - start)))  # ~20 retries each at 0.5 s
        for name, (_, why) in workers.items():
            lines = [l for l in self.log(name).splitlines() if "refused the TLS connection" in l]
            self.assertGreaterEqual(len(lines), 1)
            self.assertLessEqual(len(lines), 2, "\n".join(lines))  # at most one per 30 s after the first
            self.assertIn(why, lines[0])
            self.assertIn("retrying", lines[0])


if __name__ == "__main__":
    unittest.main()
