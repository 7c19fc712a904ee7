"""Issue 13, items 3 and 6 with real processes on 127.0.0.1 (mTLS with certificates made here by
openssl, a worker token): a worker's push inbox takes only what one of its stages waits for, drops
what nobody takes, and refuses absurd shapes; the worker token check refuses two "authorization"
entries; the coordinator's worker registry is bounded and forgets lost workers.

New flags are set through the environment (CALIBER_<FLAG>), which an older build ignores, so
that these tests also run against one and fail on the behaviour itself."""

import os
import subprocess
import sys
import threading
import time
import unittest
import urllib.request
import zlib
from concurrent import futures

sys.path.insert(0, os.path.dirname(__file__))
import cluster  # noqa: E402
from test_cluster import ClusterTest, file_uri, make_certs, pb, pb_grpc, spec  # noqa: E402,F401

import grpc  # noqa: E402
from caliber.v1 import worker_protocol_pb2 as wp, worker_protocol_pb2_grpc as wp_grpc  # noqa: E402

TOKEN = "s3cret"
GOOD = [("authorization", "Bearer " + TOKEN)]
MIB = 1 << 20


def chunks(assignment, rows, cols, layer=0, rows_per_chunk=None, declared_rows=None, declared_cols=None):
    """One push: `rows` x `cols` floats in ~1 MiB chunks (the same bytes each time), declaring
    `declared_rows` x `declared_cols` (default: rows x cols)."""
    declared_rows = rows if declared_rows is None else declared_rows
    declared_cols = cols if declared_cols is None else declared_cols
    rows_per_chunk = rows_per_chunk or max(1, MIB // (cols * 4))
    block = os.urandom(rows_per_chunk * cols * 4)
    crc = zlib.crc32(block)
    for r in range(0, rows, rows_per_chunk):
        n = min(rows_per_chunk, rows - r)
        data = block if n == rows_per_chunk else block[:n * cols * 4]
        yield wp.ActivationChunk(job_id="job", assignment_id=assignment, layer=layer,
                                 total_rows=declared_rows, cols=declared_cols, row_offset=r, data=data,
                                 crc32=crc if data is block else zlib.crc32(data))


def metric(port, name, labels):
    """The value of one sample on a /metrics page (None when absent)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    want = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None


def ports(workdir, name):
    return cluster.wait_for_file(os.path.join(workdir, f"{name}.port"))


class SecureClusterTest(ClusterTest):
    def start_secure(self, workers=1, extra_coordinator=(), extra_worker=(), **kw):
        """mTLS everywhere and a worker token; returns the cluster and client credentials."""
        certs = make_certs(self.workdir)
        token = os.path.join(self.workdir, "worker.token")
        cluster.write_secret(token, TOKEN + "\n")
        tls = ["--tls-cert", certs["node.pem"], "--tls-key", certs["node.key"], "--tls-ca", certs["ca.pem"],
               "--tls-require-client-cert", "--worker-token-file", token]
        c = self.start(workers=workers, extra_coordinator=tls + list(extra_coordinator),
                       extra_worker=tls + list(extra_worker), **kw)
        with open(certs["ca.pem"], "rb") as ca, open(certs["node.key"], "rb") as key, \
                open(certs["node.pem"], "rb") as cert:
            self.creds = grpc.ssl_channel_credentials(ca.read(), key.read(), cert.read())
        return c

    def channel(self, port):
        ch = grpc.secure_channel(f"127.0.0.1:{port}", self.creds)
        self.addCleanup(ch.close)
        return ch

    def push(self, port, stream, metadata=GOOD):
        return wp_grpc.WorkerServiceStub(self.channel(port)).PushActivations(stream, metadata=metadata, timeout=60)


class PushInbox(SecureClusterTest):
    def test_pushes_to_unknown_assignments_are_refused_and_rss_stays_flat(self):
        c = self.start_secure(workers=1)
        port = ports(self.workdir, "w1")[0]
        pid = c.workers["w1"].pid
        self.try_push(port, "warm-up")  # the channel and the server's first-call buffers
        before = cluster.proc_status(pid)["VmRSS"]
        answers = [self.try_push(port, f"asg-nobody-{i}") for i in range(8)]  # 8 x 16 MiB
        after = cluster.proc_status(pid)["VmRSS"]
        print(f"worker RSS {before // 1024} MiB before 8 x 16 MiB pushes, {after // 1024} MiB after")
        self.assertLess(after - before, 48 * 1024, "the pushes stayed in memory")
        for i, (code, details) in enumerate(answers):
            self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, details)
            self.assertIn(f"no stage on this worker waits for activations of assignment asg-nobody-{i}", details)

    def try_push(self, port, assignment):
        """(status code, details) of a 16 MiB push."""
        try:
            self.push(port, chunks(assignment, rows=4096, cols=1024))
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            return e.code(), e.details()

    def test_absurd_declared_shape_is_invalid_argument(self):
        self.start_secure(workers=1)
        port = ports(self.workdir, "w1")[0]
        for rows, cols in [(1 << 31, 4096), (1 << 31, 1), (0, 16), (16, 0), (16, (1 << 20) + 1)]:
            with self.subTest(rows=rows, cols=cols):
                with self.assertRaises(grpc.RpcError) as e:
                    self.push(port, chunks("asg-x", rows=1, cols=max(cols, 1), declared_rows=rows,
                                           declared_cols=cols))
                self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, e.exception.details())
                self.assertIn("activation stream declares", e.exception.details())
        with self.assertRaises(grpc.RpcError) as e:
            self.push(port, chunks("asg-x", rows=1, cols=4096, declared_rows=1 << 31))
        self.assertIn("declares 2147483648 x 4096 floats (35184372088832 bytes), more than this worker's inbox "
                      "holds (4294967296 bytes, --max-push-inbox-bytes)", e.exception.details())
        self.assertIsNone(self.clusters[0].workers["w1"].poll(), "the worker exited")

    def test_pipelined_job_still_streams_between_workers(self):
        c = self.start_secure(workers=2)
        stub = pb_grpc.QuantServiceStub(self.channel(c.port))
        out = os.path.join(self.workdir, "out")
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=spec(
            file_uri(cluster.MODEL), file_uri(cluster.CALIB), file_uri(out), nsamples=8, seq_len=64,
            propagation=pb.PIPELINED)), timeout=60)
        final = self.follow(stub, job.job_id)
        self.assertEqual(final.state, pb.SUCCEEDED, final.error_message)
        sent = sum(metric(ports(self.workdir, w)[1], "caliber_activation_bytes_total", {"direction": "sent"}) or 0
                   for w in ("w1", "w2"))
        self.assertGreater(sent, 0, c.log("w1") + c.log("w2"))  # a push was admitted, not refused


class FakeCoordinator(wp_grpc.CoordinatorServiceServicer):
    """Hands one worker one assignment (once `assignment` is set) and records what it hears."""

    def __init__(self):
        self.lock = threading.Lock()
        self.assignment = None
        self.running = set()
        self.ended = []

    def RegisterWorker(self, request, context):
        return wp.RegisterWorkerResponse(session_id="ses-1", heartbeat_interval_ms=100)

    def Heartbeat(self, request, context):
        out = wp.HeartbeatResponse()
        with self.lock:
            self.running = set(request.running_assignments)
            a = self.assignment
            if a is not None and a.assignment_id not in self.running and not self.ended:
                out.assign.append(a)
        return out

    def ReportStageEnd(self, request, context):
        with self.lock:
            self.ended.append(request)
        return wp.ReportAck()


class PushInboxExpiry(ClusterTest):
    def test_unclaimed_push_expires(self):
        # A stage that never asks for its input: its model's config.json is a FIFO nobody writes,
        # so the stage blocks opening it. The push for it is admitted (the worker holds the
        # assignment) and must go after --push-inbox-ttl.
        model = os.path.join(self.workdir, "fifo-model")
        os.makedirs(model)
        fifo = os.path.join(model, "config.json")
        os.mkfifo(fifo)
        fake = FakeCoordinator()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        wp_grpc.add_CoordinatorServiceServicer_to_server(fake, server)
        coordinator_port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self.addCleanup(server.stop, None)
        port_file = os.path.join(self.workdir, "wf.port")
        with open(os.path.join(self.workdir, "wf.log"), "ab") as log:
            worker = subprocess.Popen(
                [cluster.WORKER, "--coordinator", f"127.0.0.1:{coordinator_port}", "--worker-id", "wf",
                 "--work-dir", os.path.join(self.workdir, "wf"), "--port-file", port_file,
                 "--file-roots", f"{cluster.ROOT},{self.workdir}"], stderr=log,
                env=dict(os.environ, CALIBER_PUSH_INBOX_TTL="2s"))

        def stop():
            try:  # unblock the stage (it then fails: not a regular file) and stop the worker
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        self.addCleanup(stop)
        port = cluster.wait_for_file(port_file, proc=worker)[0]
        stub = wp_grpc.WorkerServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))

        # Before the worker holds the assignment, a push for it is refused (the upstream retries,
        # then the stage reads the stored copy).
        with self.assertRaises(grpc.RpcError) as e:
            stub.PushActivations(chunks("asg-fifo", rows=64, cols=256, layer=0), timeout=60)
        self.assertEqual(e.exception.code(), grpc.StatusCode.FAILED_PRECONDITION, e.exception.details())

        with fake.lock:
            fake.assignment = wp.StageAssignment(
                assignment_id="asg-fifo", job_id="job", stage_index=1, first_layer=1, end_layer=2,
                model_uri=file_uri(model), scratch_uri=file_uri(os.path.join(self.workdir, "scratch")),
                method=pb.QuantMethod(name="rtn", bits=4, group_size=128), nsamples=2, seq_len=32, resume_from=1)
        deadline = time.time() + 60
        while time.time() < deadline:
            with fake.lock:
                if "asg-fifo" in fake.running:
                    break
            time.sleep(0.05)
        else:
            self.fail("the worker never ran the assignment")
        # The layer and row count the stage waits for (2 x 32 rows after layer 0) are admitted.
        response = stub.PushActivations(chunks("asg-fifo", rows=64, cols=256, layer=0), timeout=60)
        self.assertEqual(response.rows_received, 64)
        for bad, code in [(dict(layer=5), grpc.StatusCode.FAILED_PRECONDITION),
                          (dict(declared_rows=65, rows=65), grpc.StatusCode.INVALID_ARGUMENT)]:
            args = dict(rows=64, cols=256, layer=0)
            args.update(bad)
            with self.assertRaises(grpc.RpcError) as e:
                stub.PushActivations(chunks("asg-fifo", **args), timeout=60)
            self.assertEqual(e.exception.code(), code, e.exception.details())

        log = os.path.join(self.workdir, "wf.log")
        deadline = time.time() + 120
        while time.time() < deadline:
            with open(log, "rb") as f:
                text = f.read().decode(errors="replace")
            if "pushed for assignment asg-fifo, unclaimed for 2s" in text:
                break
            time.sleep(0.1)
        else:
            self.fail("the unclaimed push never expired:\n" + text)
        self.assertIn(f"dropped {64 * 256 * 4} bytes pushed for assignment asg-fifo", text)


class WorkerToken(SecureClusterTest):
    def test_two_authorization_entries_and_wrong_lengths_are_refused(self):
        c = self.start_secure(workers=1)
        worker_port = ports(self.workdir, "w1")[0]
        coordinator = wp_grpc.CoordinatorServiceStub(self.channel(c.port))
        register = wp.RegisterWorkerRequest(worker_id="probe", address="127.0.0.1:1")
        cases = {
            "good then wrong": [("authorization", "Bearer " + TOKEN), ("authorization", "Bearer wrong")],
            "wrong then good": [("authorization", "Bearer wrong"), ("authorization", "Bearer " + TOKEN)],
            "good twice": GOOD + GOOD,
            "shorter": [("authorization", "Bearer " + TOKEN[:-1])],
            "longer": [("authorization", "Bearer " + TOKEN + "x")],
            "empty": [("authorization", "")],
            "none": [],
        }
        for name, md in cases.items():
            with self.subTest(name):
                with self.assertRaises(grpc.RpcError) as e:
                    coordinator.RegisterWorker(register, metadata=md, timeout=10)
                self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED, e.exception.details())
                with self.assertRaises(grpc.RpcError) as e:
                    self.push(worker_port, chunks("asg-x", rows=4, cols=8), metadata=md)
                self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED, e.exception.details())
                if name.endswith("twice") or " then " in name:
                    # Refused at the headers (call admission) or by the handler's own check.
                    self.assertIn("more than one", e.exception.details())
                    self.assertIn("authorization", e.exception.details())
        coordinator.RegisterWorker(register, metadata=GOOD, timeout=10)  # the token itself passes


class WorkerRegistry(SecureClusterTest):
    def register_many(self, n, prefix):
        stub = wp_grpc.CoordinatorServiceStub(self.channel(self.clusters[0].port))
        codes = {}
        for i in range(n):
            try:
                stub.RegisterWorker(wp.RegisterWorkerRequest(worker_id=f"{prefix}-{i}", address="127.0.0.1:1"),
                                    metadata=GOOD, timeout=10)
                codes["OK"] = codes.get("OK", 0) + 1
            except grpc.RpcError as e:
                codes[e.code().name] = codes.get(e.code().name, 0) + 1
                last = e
        return codes, (last if len(codes) > 1 else None)

    def workers(self, c):
        return {s: metric(c.metrics_port, "caliber_workers", {"state": s}) for s in ("live", "lost")}

    def test_registry_is_bounded(self):
        # Nothing goes lost in this test (a minute of silence allowed): the default bound, 1024.
        c = self.start_secure(workers=0, worker_timeout_ms=60000)
        codes, last = self.register_many(1100, "fake")
        print("1100 RegisterWorker calls:", codes)
        self.assertEqual(codes, {"OK": 1024, "RESOURCE_EXHAUSTED": 76})
        self.assertIn("1024 workers registered, its limit (--max-workers)", last.details())
        self.assertEqual(self.workers(c), {"live": 1024, "lost": 0})

    def test_lost_workers_are_forgotten(self):
        c = self.start_secure(workers=1, worker_timeout_ms=1000, env={"CALIBER_LOST_WORKER_TTL": "2s"})
        codes, _ = self.register_many(500, "fake")
        self.assertEqual(codes, {"OK": 500})
        deadline = time.time() + 120
        while time.time() < deadline:
            seen = self.workers(c)
            if seen == {"live": 1, "lost": 0}:
                break
            time.sleep(0.2)
        self.assertEqual(seen, {"live": 1, "lost": 0}, "lost workers stayed in the registry")
        self.assertIn("forgot lost worker fake-499", c.log("coordinator"))
        # The real worker kept its place and a forgotten one may come back.
        codes, _ = self.register_many(1, "fake")
        self.assertEqual(codes, {"OK": 1})

    def test_a_full_registry_makes_room_by_forgetting_a_lost_worker(self):
        c = self.start_secure(workers=0, worker_timeout_ms=5000,
                              env={"CALIBER_MAX_WORKERS": "20", "CALIBER_LOST_WORKER_TTL": "1h"})
        self.assertEqual(self.register_many(20, "old")[0], {"OK": 20})
        deadline = time.time() + 120
        while self.workers(c)["lost"] != 20 and time.time() < deadline:
            time.sleep(0.2)
        self.assertEqual(self.workers(c), {"live": 0, "lost": 20})
        # Each new worker replaces a lost one; beyond that the registry is full (unless some new
        # ones went silent for 5 s meanwhile on a very slow machine: then they make room too).
        codes, _ = self.register_many(30, "new")
        self.assertGreaterEqual(codes.get("OK", 0), 20, codes)
        self.assertEqual(codes.get("OK", 0) + codes.get("RESOURCE_EXHAUSTED", 0), 30, codes)
        seen = self.workers(c)
        self.assertEqual(seen["live"] + seen["lost"], 20, seen)


if __name__ == "__main__":
    unittest.main()
