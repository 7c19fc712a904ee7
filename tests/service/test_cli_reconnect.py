"""The `caliber` client and the worker against real processes (tests/service/cluster.py):
`caliber watch` / `submit --wait` follow a job through a coordinator restart and exit 0 when it
succeeds, give up with exit 4 after --reconnect-timeout without a coordinator, and a worker
with a wrong worker token says why and exits after --max-auth-refusals refusals."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import cluster  # noqa: E402

JOB = ["--model", cluster.MODEL, "--calib", cluster.CALIB, "--nsamples", "48", "--seq-len", "256"]


class CliTest(unittest.TestCase):
    def setUp(self):
        self.workdir = cluster.new_workdir("caliber-cli-it-")
        self.clusters = []
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()
        for c in self.clusters:
            c.stop()
        if not os.environ.get("CALIBER_KEEP_TEST_DIRS"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def start(self, **kw):
        c = cluster.Cluster(self.workdir, **kw)
        self.clusters.append(c)
        return c

    def caliber(self, c, *args, stderr_name, stdout=subprocess.PIPE):
        """`caliber ARGS --coordinator C` in the background; stderr goes to a file."""
        with open(os.path.join(self.workdir, stderr_name), "wb") as err:
            p = subprocess.Popen([cluster.CALIBER] + list(args) + ["--coordinator", c.address()],
                                 stdout=stdout, stderr=err, text=True)
        self.procs.append(p)
        return p

    def read(self, name):
        with open(os.path.join(self.workdir, name), "rb") as f:
            return f.read().decode(errors="replace")

    def wait_for(self, what, predicate, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        self.fail(f"timed out waiting for {what}")

    def status(self, c, job_id):
        r = subprocess.run([cluster.CALIBER, "status", job_id, "--coordinator", c.address()],
                           capture_output=True, text=True, timeout=60)
        return r.stdout

    def kill_coordinator(self, c):
        c.coordinator.send_signal(signal.SIGKILL)
        c.coordinator.wait()


class CliReconnect(CliTest):
    def test_watch_and_submit_wait_follow_the_job_through_a_coordinator_restart(self):
        c = self.start(workers=1)
        out = os.path.join(self.workdir, "out")
        submit = self.caliber(c, "submit", *JOB, "--out", out, "--wait", "--reconnect-timeout", "120s",
                              stderr_name="submit.err")
        job_id = submit.stdout.readline().strip()
        self.assertTrue(job_id.startswith("job-"), self.read("submit.err"))
        watch = self.caliber(c, "watch", job_id, "--reconnect-timeout", "120s", stderr_name="watch.err")
        # Both followers are connected (they print a line per event) and the job is running.
        self.wait_for("the followers' first events",
                      lambda: job_id in self.read("watch.err") and job_id in self.read("submit.err"))
        self.wait_for("the job to run", lambda: "RUNNING" in self.status(c, job_id))
        self.assertIsNone(watch.poll(), "the job ended before the restart; make it bigger")
        self.kill_coordinator(c)
        # Both notice the loss before the coordinator is back.
        self.wait_for("the followers to notice",
                      lambda: "lost contact" in self.read("watch.err") and "lost contact" in self.read("submit.err"),
                      timeout=60)
        c.start_coordinator(port=c.port)
        self.assertEqual(watch.wait(timeout=300), 0, self.read("watch.err"))
        self.assertEqual(submit.wait(timeout=60), 0, self.read("submit.err"))
        for name, proc in (("watch.err", watch), ("submit.err", submit)):
            err = self.read(name)
            self.assertIn("reconnected to the coordinator", err)
            self.assertNotIn("Socket closed\n", err.split("lost contact")[-1])
        details = watch.stdout.read()
        self.assertIn("SUCCEEDED", details)
        self.assertTrue(os.path.exists(os.path.join(out, "caliber_manifest.json")))

    def test_watch_gives_up_with_exit_4_after_the_reconnect_timeout(self):
        c = self.start(workers=0)  # the job waits for a worker: it never ends by itself
        r = subprocess.run([cluster.CALIBER, "submit", *JOB, "--out", os.path.join(self.workdir, "out"),
                            "--coordinator", c.address()], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        job_id = r.stdout.strip()
        watch = self.caliber(c, "watch", job_id, "--reconnect-timeout", "2s", stderr_name="watch.err")
        waiting = self.caliber(c, "submit", *JOB, "--out", os.path.join(self.workdir, "out2"), "--wait",
                               "--reconnect-timeout", "2s", stderr_name="submit.err")
        self.wait_for("the followers' first events",
                      lambda: job_id in self.read("watch.err") and self.read("submit.err").count("job-") >= 1)
        self.kill_coordinator(c)
        self.assertEqual(watch.wait(timeout=120), 4, self.read("watch.err"))
        self.assertEqual(waiting.wait(timeout=120), 4, self.read("submit.err"))
        err = self.read("watch.err")
        self.assertIn("no contact with the coordinator", err)
        self.assertIn("--reconnect-timeout", err)
        self.assertIn(f"caliber status {job_id}", err)


class CliRequests(CliTest):
    def test_seq_len_refusal_states_the_bound(self):
        # The bound is the coordinator's (coordinator/request_limits.h); the CLI passes it on.
        c = self.start(workers=0)
        r = subprocess.run([cluster.CALIBER, "submit", "--model", cluster.MODEL, "--calib", cluster.CALIB,
                            "--out", os.path.join(self.workdir, "out"), "--seq-len", "1000000000",
                            "--coordinator", c.address()], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"spec\.calibration\.seq_len: must be 1\.\.\d+ .*got 1000000000")
        self.assertNotIn("must be positive", r.stderr)


class WorkerAuth(CliTest):
    def spawn_worker(self, c, name, *args):
        log = open(os.path.join(self.workdir, name + ".log"), "wb")
        p = subprocess.Popen([cluster.WORKER, "--coordinator", c.address(), "--worker-id", name,
                              "--work-dir", os.path.join(self.workdir, name)] + c.common + list(args),
                             stderr=log)
        log.close()
        self.procs.append(p)
        return p

    def test_worker_with_a_wrong_token_says_why_and_exits(self):
        good = os.path.join(self.workdir, "good.token")
        bad = os.path.join(self.workdir, "bad.token")
        for path, token in ((good, "s3cret\n"), (bad, "guess\n")):
            cluster.write_secret(path, token)
        c = self.start(workers=0, extra_coordinator=["--worker-token-file", good])
        wrong = self.spawn_worker(c, "wrong", "--worker-token-file", bad, "--max-auth-refusals", "3")
        none = self.spawn_worker(c, "none", "--max-auth-refusals", "2")
        self.assertEqual(wrong.wait(timeout=120), 1, c.log("wrong"))
        self.assertEqual(none.wait(timeout=120), 1, c.log("none"))
        for name, n in (("wrong", 3), ("none", 2)):
            log = c.log(name)
            self.assertIn("refused this worker: UNAUTHENTICATED: missing or wrong worker token", log)
            self.assertIn(f"refusal {n} of {n} in a row", log)
            self.assertIn("giving up", log)
            self.assertNotIn("guess", log, "the token itself is never logged")
        # The right token still registers (the refusals were about the token, not the cluster).
        right = self.spawn_worker(c, "right", "--worker-token-file", good, "--max-auth-refusals", "3")
        self.wait_for("registration", lambda: "registered with" in c.log("right"), timeout=60)
        self.assertIsNone(right.poll())
        right.send_signal(signal.SIGTERM)
        self.assertEqual(right.wait(timeout=30), 0, c.log("right"))


if __name__ == "__main__":
    unittest.main()
