"""Hardening of the service against a hostile but realistic client, with real processes:
bounded requests and job records, retention of finished jobs, no scratch left after any end,
metrics that promtool accepts, and a coordinator whose memory does not grow with jobs."""

import glob
import os
import signal
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import cluster  # noqa: E402
from test_cluster import ClusterTest, file_uri, pb, spec  # noqa: E402

import grpc  # noqa: E402

DEFAULT_CLIENT_LIMIT = 4 * 1024 * 1024  # grpc's default max receive size, in every client


def tiny(out, **kw):
    """A job that runs in about a second: RTN on 2 x 32 calibration tokens."""
    return spec(file_uri(cluster.MODEL), file_uri(cluster.CALIB), file_uri(out), method="rtn", nsamples=2,
                seq_len=32, **kw)


def scratch_dirs(workdir):
    return glob.glob(os.path.join(workdir, "**", "*.caliber-work-*"), recursive=True)


class Limits(ClusterTest):
    def test_labels_and_spec_are_bounded(self):
        c = self.start(workers=0)
        stub = self.stub(c)
        out = os.path.join(self.workdir, "o")
        cases = [
            # Over the spec's 64 KiB, under SubmitQuantJob's 80 KiB request limit
            # (test_security_admission.py tests that one).
            ("70 KiB value", {"big": "v" * (70 << 10)}, "spec is"),
            ("too many", {f"k{i}": "v" for i in range(65)}, "at most 64"),
            ("bad key", {"bad key": "v"}, "not a valid label key"),
            ("long key", {"k" * 64: "v"}, "not a valid label key"),
            ("bad value", {"k": "has space"}, "not a valid label value"),
            ("long value", {"k": "v" * 64}, "not a valid label value"),
        ]
        for name, labels, words in cases:
            with self.subTest(name):
                s = tiny(out)
                for k, v in labels.items():
                    s.labels[k] = v
                with self.assertRaises(grpc.RpcError) as e:
                    stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=s), timeout=30)
                self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, e.exception.details())
                self.assertIn(words, e.exception.details())
                self.assertLess(len(e.exception.details()), 1200)
        s = tiny(out, model_uri=file_uri(cluster.MODEL) + "/" + "x" * 4096)
        with self.assertRaises(grpc.RpcError) as e:
            stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=s), timeout=30)
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("at most 2048", e.exception.details())
        s = tiny(out)
        s.calibration.seq_len = 10**9
        with self.assertRaises(grpc.RpcError) as e:
            stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=s), timeout=30)
        self.assertIn("must be 1..131072", e.exception.details())
        s = tiny(out)
        s.labels["app.kubernetes.io/name"] = "caliber"
        s.labels["run"] = "r_1.2-x"
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=s), timeout=30)
        self.assertEqual(dict(job.spec.labels), {"app.kubernetes.io/name": "caliber", "run": "r_1.2-x"})
        self.assertEqual(len(stub.ListQuantJobs(pb.ListQuantJobsRequest(), timeout=10).jobs), 1)

    def test_identifiers_are_bounded_and_never_echoed(self):
        c = self.start(workers=0)
        stub = self.stub(c)
        huge = "j" * 2048  # under the 4 KiB request limits (test_security_admission.py tests them)
        calls = [
            ("get", lambda: stub.GetQuantJob(pb.GetQuantJobRequest(job_id=huge), timeout=10)),
            ("cancel", lambda: stub.CancelQuantJob(pb.CancelQuantJobRequest(job_id=huge), timeout=10)),
            ("watch", lambda: list(stub.WatchQuantJob(pb.WatchQuantJobRequest(job_id=huge), timeout=10))),
            ("list", lambda: stub.ListQuantJobs(pb.ListQuantJobsRequest(page_token=huge), timeout=10)),
            ("request_id", lambda: stub.SubmitQuantJob(pb.SubmitQuantJobRequest(
                request_id=huge, spec=tiny(os.path.join(self.workdir, "o"))), timeout=10)),
        ]
        for name, call in calls:
            with self.subTest(name):
                with self.assertRaises(grpc.RpcError) as e:
                    call()
                self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, e.exception.details())
                self.assertIn("is 2048 bytes; at most", e.exception.details())
                self.assertNotIn("jjjj", e.exception.details())
        with self.assertRaises(grpc.RpcError) as e:
            stub.GetQuantJob(pb.GetQuantJobRequest(job_id="job-0000000000000000"), timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_list_pages_fit_a_default_client(self):
        # Jobs as large as the limits allow: 64 labels with 253-byte prefixes and 63-byte names.
        c = self.start(workers=0)
        stub = self.stub(c)
        labels = {}
        for i in range(64):
            prefix = ".".join(["p" * 60] * 4)[:250] + f"{i:03d}"
            labels[f"{prefix}/{'n' * 59}{i:04d}"] = "v" * 63
        ids = []
        for i in range(190):
            s = tiny(os.path.join(self.workdir, f"o{i}"))
            for k, v in labels.items():
                s.labels[k] = v
            ids.append(stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=s), timeout=30).job_id)
        self.assertGreater(190 * pb.QuantJob(spec=s).ByteSize(), DEFAULT_CLIENT_LIMIT)
        listed, pages = [], 0
        req = pb.ListQuantJobsRequest(page_size=1000)
        while True:
            page = stub.ListQuantJobs(req, timeout=30)  # would fail over 4 MiB: the default limit
            self.assertLess(page.ByteSize(), DEFAULT_CLIENT_LIMIT)
            listed += [j.job_id for j in page.jobs]
            pages += 1
            if not page.next_page_token:
                break
            req.page_token = page.next_page_token
        self.assertGreater(pages, 1)
        self.assertEqual(sorted(listed), sorted(ids))


class Retention(ClusterTest):
    def records(self, c):
        return sorted(os.listdir(os.path.join(c.state_dir, "jobs")))

    def test_oldest_finished_jobs_beyond_the_count_are_forgotten(self):
        c = self.start(workers=0, extra_coordinator=["--max-finished-jobs", "2"])
        stub = self.stub(c)
        ids = []
        for i in range(4):
            job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(request_id=f"r{i}", spec=tiny(
                os.path.join(self.workdir, f"o{i}"))), timeout=30)
            stub.CancelQuantJob(pb.CancelQuantJobRequest(job_id=job.job_id), timeout=10)
            ids.append(job.job_id)
            time.sleep(0.01)  # distinct end times
        queued = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=tiny(os.path.join(self.workdir, "q"))), timeout=30)
        deadline = time.time() + 20
        while time.time() < deadline and len(self.records(c)) > 3:
            time.sleep(0.1)
        listed = {j.job_id for j in stub.ListQuantJobs(pb.ListQuantJobsRequest(), timeout=10).jobs}
        self.assertEqual(listed, {ids[2], ids[3], queued.job_id})  # unfinished jobs are never expired
        self.assertEqual(self.records(c), sorted(f"{i}.job" for i in listed))
        with self.assertRaises(grpc.RpcError) as e:
            stub.GetQuantJob(pb.GetQuantJobRequest(job_id=ids[0]), timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)
        # An expired job's request id is free again.
        again = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(request_id="r0", spec=tiny(
            os.path.join(self.workdir, "o0"))), timeout=30)
        self.assertNotEqual(again.job_id, ids[0])
        # What was forgotten stays forgotten after a restart.
        c.coordinator.send_signal(15)
        c.coordinator.wait(timeout=30)
        c.start_coordinator()
        stub = self.stub(c)
        listed = {j.job_id for j in stub.ListQuantJobs(pb.ListQuantJobsRequest(), timeout=10).jobs}
        self.assertEqual(listed, {ids[2], ids[3], queued.job_id, again.job_id})
        text = urllib.request.urlopen(f"http://127.0.0.1:{c.metrics_port}/metrics", timeout=10).read().decode()
        self.assertIn("caliber_jobs_expired_total", text)

    def test_finished_jobs_older_than_the_ttl_are_forgotten(self):
        c = self.start(workers=0, extra_coordinator=["--finished-job-ttl", "2s"])
        stub = self.stub(c)
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=tiny(os.path.join(self.workdir, "o"))), timeout=30)
        stub.CancelQuantJob(pb.CancelQuantJobRequest(job_id=job.job_id), timeout=10)
        self.assertEqual(stub.GetQuantJob(pb.GetQuantJobRequest(job_id=job.job_id), timeout=10).state, pb.CANCELLED)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                stub.GetQuantJob(pb.GetQuantJobRequest(job_id=job.job_id), timeout=10)
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND)
                break
            time.sleep(0.2)
        else:
            self.fail("the job outlived its TTL")
        self.assertEqual(self.records(c), [])


class Scratch(ClusterTest):
    """After any terminal state the job's scratch prefix is gone, and no stage names a worker."""

    def assert_ended_clean(self, stub, job_id, state):
        job = self.follow(stub, job_id)
        self.assertEqual(job.state, state, job.error_message)
        self.assertTrue(all(st.worker_id == "" for st in job.stages), job.stages)
        # The final sweep runs max(5 s, 2 x worker timeout + heartbeat) after the end.
        deadline = time.time() + 30
        while time.time() < deadline and scratch_dirs(self.workdir):
            time.sleep(0.2)
        self.assertEqual(scratch_dirs(self.workdir), [])
        return job

    def test_succeeded(self):
        c = self.start(workers=2)
        stub = self.stub(c)
        out = os.path.join(self.workdir, "out")
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=tiny(out)), timeout=30)
        self.assert_ended_clean(stub, job.job_id, pb.SUCCEEDED)
        self.assertTrue(os.path.exists(os.path.join(out, "config.json")))

    def test_cancelled_while_running(self):
        c = self.start(workers=2)
        stub = self.stub(c)
        out = os.path.join(self.workdir, "out")
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=spec(
            file_uri(cluster.MODEL), file_uri(cluster.CALIB), file_uri(out), nsamples=32, seq_len=256)), timeout=30)
        self.wait_until(stub, job.job_id, lambda j: j.layers_done >= 1)
        stub.CancelQuantJob(pb.CancelQuantJobRequest(job_id=job.job_id), timeout=10)
        self.assert_ended_clean(stub, job.job_id, pb.CANCELLED)
        self.assertFalse(os.path.exists(out))

    def test_failed(self):
        # The output appears while the job runs: it fails at commit, with its layers in scratch.
        c = self.start(workers=1)
        stub = self.stub(c)
        out = os.path.join(self.workdir, "out")
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=spec(
            file_uri(cluster.MODEL), file_uri(cluster.CALIB), file_uri(out), nsamples=16, seq_len=256)), timeout=30)
        self.wait_until(stub, job.job_id, lambda j: j.state == pb.RUNNING)
        os.makedirs(out)
        with open(os.path.join(out, "config.json"), "w") as f:
            f.write("{}")
        job = self.assert_ended_clean(stub, job.job_id, pb.FAILED)
        self.assertIn("appeared while the job ran", job.error_message)
        self.assertEqual(os.listdir(out), ["config.json"])  # someone else's output is left alone


class S3Store(ClusterTest):
    """A missing output bucket is refused at submission; a hung store fails a job within its
    retry budget plus one request's limits; a store that comes back in time lets it finish."""

    def moto_with_inputs(self):
        moto = cluster.Moto()
        self.motos.append(moto)
        moto.upload_inputs()
        return moto

    def calibrating_job(self, moto, budget_ms, request_timeout_ms):
        """A job on `moto` with these S3 limits on both daemons, once it calibrates."""
        limits = ["--s3-retry-budget-ms", str(budget_ms), "--s3-request-timeout-ms", str(request_timeout_ms),
                  "--s3-connect-timeout-ms", "1000"]
        c = self.start(workers=1, s3=moto, extra_coordinator=limits, extra_worker=limits)
        stub = self.stub(c)
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=spec(
            "s3://caliber/m", "s3://caliber/d/calib.i32", "s3://caliber/out/x", nsamples=48, seq_len=256)), timeout=60)
        self.wait_until(stub, job.job_id, lambda j: j.phase == "calibrating")
        return stub, job

    def test_missing_output_bucket_is_refused_at_submission(self):
        moto = self.moto_with_inputs()
        c = self.start(workers=1, s3=moto)
        stub = self.stub(c)
        with self.assertRaises(grpc.RpcError) as e:
            stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=spec(
                "s3://caliber/m", "s3://caliber/d/calib.i32", "s3://no-such-bucket/out/x")), timeout=60)
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND, e.exception.details())
        self.assertIn('S3 bucket "no-such-bucket" does not exist', e.exception.details())
        self.assertEqual(len(stub.ListQuantJobs(pb.ListQuantJobsRequest(), timeout=10).jobs), 0)

    def test_paused_store_fails_the_job_within_the_budget(self):
        moto = self.moto_with_inputs()
        stub, job = self.calibrating_job(moto, budget_ms=3000, request_timeout_ms=2000)
        moto.proc.send_signal(signal.SIGSTOP)
        try:
            paused = time.time()
            final = self.follow(stub, job.job_id)
            took = time.time() - paused
        finally:
            moto.proc.send_signal(signal.SIGCONT)
        self.assertEqual(final.state, pb.FAILED)
        self.assertEqual(final.error_code, grpc.StatusCode.UNAVAILABLE.value[0], final.error_message)
        # Budget 3 s + one request's 2 s stall limit + its bytes at the minimum rate (a layer's
        # result, < 1 s) + curl's 1 s progress tick, per request the stage chains, with room for
        # the layer's compute on a loaded machine; the unbounded store held a request for 120 s.
        print(f"paused store: the job failed {took:.1f} s after the pause")
        self.assertLess(took, 40)

    def test_store_back_within_the_budget_lets_the_job_succeed(self):
        moto = self.moto_with_inputs()
        stub, job = self.calibrating_job(moto, budget_ms=30000, request_timeout_ms=1000)
        moto.proc.send_signal(signal.SIGSTOP)
        time.sleep(4)  # several requests time out and are retried meanwhile
        moto.proc.send_signal(signal.SIGCONT)
        final = self.follow(stub, job.job_id)
        self.assertEqual(final.state, pb.SUCCEEDED, final.error_message)


class Promtool(ClusterTest):
    def test_both_daemons_metrics_pass_promtool(self):
        c = self.start(workers=1)
        stub = self.stub(c)
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=tiny(os.path.join(self.workdir, "o"))), timeout=30)
        self.assertEqual(self.follow(stub, job.job_id).state, pb.SUCCEEDED)  # every family has samples
        w_metrics = cluster.wait_for_file(os.path.join(self.workdir, "w1.port"))[1]
        for name, port in (("coordinator", c.metrics_port), ("worker", w_metrics)):
            with self.subTest(name):
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
                r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
                self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode())
                self.assertEqual((r.stdout + r.stderr).decode().strip(), "")


class Resources(ClusterTest):
    def test_coordinator_threads_and_memory_plateau_over_jobs(self):
        # Each job runs three coordinator threads (preparation, assembly, cleanup); finished ones
        # must be joined, or each keeps its stack mapped (8 MiB of address space apiece).
        c = self.start(workers=1)
        stub = self.stub(c)

        def run(n, tag):
            for i in range(n):
                job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=tiny(
                    os.path.join(self.workdir, f"{tag}{i}"))), timeout=30)
                self.assertEqual(self.follow(stub, job.job_id).state, pb.SUCCEEDED)

        def status():
            s = cluster.proc_status(c.coordinator.pid)
            return s["VmSize"], s["Threads"]

        run(5, "warm")
        time.sleep(6)  # the final sweeps of the warm-up jobs
        vm0, threads0 = status()
        run(20, "job")
        time.sleep(6)
        vm1, threads1 = status()
        print(f"coordinator VmSize {vm0} -> {vm1} KiB, threads {threads0} -> {threads1} over 20 jobs")
        self.assertLessEqual(threads1, threads0 + 2)
        # Unjoined threads would add 20 jobs x 3 threads x 8 MiB = 480 MiB. Joined ones may still
        # leave their stacks in glibc's cache of freed stacks (up to 40 MiB), and gRPC's pool
        # grows and shrinks with load: allow that cache plus a stack or two.
        self.assertLess(vm1 - vm0, 64 * 1024)


if __name__ == "__main__":
    unittest.main()
