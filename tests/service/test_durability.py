"""The coordinator never reports a job state that is not on disk: with --state-dir on a tiny
tmpfs that the test fills up, every state change is either durable before it is acknowledged or
refused (the RPC fails, the job stays as the disk has it), and a restart after each step finds
the job where the API last said it was.

Mounting a tmpfs needs root: run as root, or the test re-executes itself under `unshare -rm`
(a user and mount namespace of its own, so every process it starts sees the mount)."""

import errno
import os
import sys
import time
import unittest

if os.geteuid() != 0 and not os.environ.get("CALIBER_DURABILITY_USERNS"):
    os.environ["CALIBER_DURABILITY_USERNS"] = "1"
    os.execvp("unshare", ["unshare", "--user", "--map-root-user", "--mount", sys.executable] + sys.argv)

sys.path.insert(0, os.path.dirname(__file__))
import cluster  # noqa: E402
from test_cluster import ClusterTest, file_uri, pb, spec  # noqa: E402

import grpc  # noqa: E402
from caliber.v1 import worker_protocol_pb2 as wpb  # noqa: E402
from caliber.v1 import worker_protocol_pb2_grpc as wpb_grpc  # noqa: E402

MIB = 1 << 20


def tiny(out):
    return spec(file_uri(cluster.MODEL), file_uri(cluster.CALIB), file_uri(out), method="rtn", nsamples=2, seq_len=32)


class TinyStateDir(ClusterTest):
    """A ClusterTest whose coordinator's --state-dir is a tmpfs of `size` bytes."""

    def mount_state(self, size):
        self.state = os.path.join(self.workdir, "state")
        os.makedirs(self.state)
        rc = os.system(f"mount -t tmpfs -o size={size} caliber-test-state {self.state}")
        self.assertEqual(rc, 0, "cannot mount a tmpfs for the state directory")
        self.addCleanup(lambda: os.system(f"umount -l {self.state}"))
        self.filler = os.path.join(self.state, "filler")

    def fill(self):
        """Takes every free block of the state directory."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (65536, 4096, 512, 1):  # down to the last partial block
                while True:
                    try:
                        os.write(fd, b"\0" * size)
                    except OSError as e:
                        self.assertEqual(e.errno, errno.ENOSPC)
                        break
        finally:
            os.close(fd)
        st = os.statvfs(self.state)
        self.assertEqual(st.f_bavail, 0, "the state directory still has room")

    def free(self):
        os.remove(self.filler)

    def files(self):
        """Every file under the state directory but the filler, relative."""
        out = []
        for base, _, names in os.walk(self.state):
            for n in names:
                p = os.path.relpath(os.path.join(base, n), self.state)
                if p != "filler":
                    out.append(p)
        return sorted(out)

    def temporaries(self):
        """Half-written files: the atomic writer's temporaries, or an old-style *.tmp."""
        return [f for f in self.files() if f.endswith(".tmp") or ".caliber-tmp-" in os.path.basename(f)]

    def restart(self, c):
        c.coordinator.terminate()
        c.coordinator.wait(timeout=30)
        c.start_coordinator()
        return self.stub(c)

    def state_of(self, stub, job_id):
        return stub.GetQuantJob(pb.GetQuantJobRequest(job_id=job_id), timeout=30).state


class FullStateDir(TinyStateDir):
    def test_submit_on_a_full_disk_is_refused_and_leaves_nothing(self):
        self.mount_state(4 * MIB)
        c = self.start(workers=0)
        stub = self.stub(c)
        before = self.files()
        self.fill()
        with self.assertRaises(grpc.RpcError) as e:
            stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=tiny(os.path.join(self.workdir, "o1"))), timeout=60)
        self.assertEqual(e.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED, e.exception.details())
        self.assertIn("No space left", e.exception.details())
        self.assertEqual(self.files(), before, "a refused submission left files behind")
        stub = self.restart(c)
        self.assertEqual(len(stub.ListQuantJobs(pb.ListQuantJobsRequest(), timeout=30).jobs), 0)
        self.free()
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=tiny(os.path.join(self.workdir, "o1"))), timeout=60)
        self.assertEqual(job.state, pb.QUEUED)
        stub = self.restart(c)
        self.assertEqual(self.state_of(stub, job.job_id), pb.QUEUED)

    def test_cancel_is_acknowledged_only_once_durable(self):
        self.mount_state(4 * MIB)
        c = self.start(workers=0)  # no worker: the job stays QUEUED
        stub = self.stub(c)
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=tiny(os.path.join(self.workdir, "o2"))), timeout=60)
        self.fill()
        with self.assertRaises(grpc.RpcError) as e:
            stub.CancelQuantJob(pb.CancelQuantJobRequest(job_id=job.job_id), timeout=30)
        self.assertEqual(e.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED, e.exception.details())
        self.assertEqual(self.state_of(stub, job.job_id), pb.QUEUED, "the API reports a cancel that is not on disk")
        self.assertFalse(self.temporaries(), self.files())
        stub = self.restart(c)
        self.assertEqual(self.state_of(stub, job.job_id), pb.QUEUED)
        self.free()
        self.assertEqual(stub.CancelQuantJob(pb.CancelQuantJobRequest(job_id=job.job_id), timeout=30).state,
                         pb.CANCELLED)
        stub = self.restart(c)
        self.assertEqual(self.state_of(stub, job.job_id), pb.CANCELLED)

    def test_a_job_failed_by_a_full_cache_disk_is_failed_on_disk(self):
        # 4 MiB holds the records but not the 10 MB model the coordinator caches for the job.
        self.mount_state(4 * MIB)
        out = os.path.join(self.workdir, "o3")
        c = self.start(workers=1)
        stub = self.stub(c)
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=tiny(out)), timeout=60)
        end = self.follow(stub, job.job_id, timeout=300)
        self.assertEqual(end.state, pb.FAILED)
        self.assertEqual(end.error_code, grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], end.error_message)
        self.assertIn("No space left", end.error_message)
        c.workers["w1"].terminate()  # nothing may run it again
        c.workers["w1"].wait(timeout=30)
        stub = self.restart(c)
        self.assertEqual(self.state_of(stub, job.job_id), pb.FAILED)
        self.assertFalse(os.path.exists(out))
        deadline = time.time() + 60
        while time.time() < deadline and [f for f in self.files() if not f.startswith("jobs/")]:
            time.sleep(0.2)
        self.assertEqual([f for f in self.files() if not f.startswith("jobs/")], [], "the failed job's cache stayed")


class FakeWorker:
    """A worker that is only the CoordinatorService side of one: registers, heartbeats and
    reports what the test tells it to."""

    def __init__(self, address):
        self.stub = wpb_grpc.CoordinatorServiceStub(grpc.insecure_channel(address))
        self.id = "fake-1"
        self.session = self.stub.RegisterWorker(
            wpb.RegisterWorkerRequest(worker_id=self.id, address="127.0.0.1:1", memory_bytes=8 << 30),
            timeout=30).session_id
        self.running = []

    def heartbeat(self):
        r = self.stub.Heartbeat(wpb.HeartbeatRequest(worker_id=self.id, session_id=self.session,
                                                     running_assignments=self.running), timeout=30)
        self.running += [a.assignment_id for a in r.assign]
        self.running = [a for a in self.running if a not in r.cancel]
        return r


class JobThreadEndings(TinyStateDir):
    def test_an_ending_that_cannot_be_written_is_not_reported_and_is_retried(self):
        self.mount_state(32 * MIB)  # room for the model cache
        c = self.start(workers=0, worker_timeout_ms=60000)
        stub = self.stub(c)
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=tiny(os.path.join(self.workdir, "o4"))), timeout=60)
        worker = FakeWorker(c.address())
        deadline = time.time() + 120
        while not worker.running and time.time() < deadline:
            worker.heartbeat()
            time.sleep(0.1)
        self.assertTrue(worker.running, "the job's stage never reached the worker")
        assignment = worker.running[0]
        self.fill()
        # A finished layer cannot be recorded: the worker is told to retry (UNAVAILABLE).
        with self.assertRaises(grpc.RpcError) as e:
            worker.stub.ReportLayerDone(wpb.ReportLayerDoneRequest(
                worker_id=worker.id, assignment_id=assignment, job_id=job.job_id, layer=0,
                result_uri=file_uri(os.path.join(self.workdir, "nowhere"))), timeout=30)
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE, e.exception.details())
        self.assertEqual(stub.GetQuantJob(pb.GetQuantJobRequest(job_id=job.job_id), timeout=30).layers_done, 0)
        # The stage fails; the job's FAILED cannot be written: the API keeps saying RUNNING.
        worker.stub.ReportStageEnd(wpb.ReportStageEndRequest(
            worker_id=worker.id, assignment_id=assignment, job_id=job.job_id, code=13, message="disk on fire"),
            timeout=30)
        time.sleep(1.5)  # the scheduler's retries fail too
        self.assertEqual(self.state_of(stub, job.job_id), pb.RUNNING, "the API reports an end that is not on disk")
        self.assertIn(assignment, worker.heartbeat().cancel, "the worker was not told to stop")
        self.assertFalse(self.temporaries(), self.files())
        # Room again: the scheduler writes the ending; a restart finds it.
        self.free()
        end = self.wait_until(stub, job.job_id, lambda j: j.state != pb.RUNNING, timeout=60)
        self.assertEqual(end.state, pb.FAILED)
        self.assertIn("disk on fire", end.error_message)
        stub = self.restart(c)
        self.assertEqual(self.state_of(stub, job.job_id), pb.FAILED)


if __name__ == "__main__":
    unittest.main()
