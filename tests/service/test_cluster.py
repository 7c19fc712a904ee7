"""End-to-end tests of the service: real coordinator and worker processes on 127.0.0.1, a
real S3 server (moto, signatures checked), and an independent Python gRPC client."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import cluster  # noqa: E402

import grpc  # noqa: E402

_STUBS = tempfile.mkdtemp(prefix="caliber-stubs-")
pb, pb_grpc = cluster.load_stubs(_STUBS)

SMALL = dict(nsamples=16, seq_len=128)


def spec(model, calib, out, method="gptq", bits=4, group_size=128, propagation=pb.SEQUENTIAL, lora_rank=0,
         nsamples=16, seq_len=128, **kw):
    s = pb.QuantJobSpec(model_uri=model, output_uri=out, propagation=propagation,
                        calibration=pb.CalibrationData(uri=calib, nsamples=nsamples, seq_len=seq_len),
                        method=pb.QuantMethod(name=method, bits=bits, group_size=group_size, lora_rank=lora_rank))
    for k, v in kw.items():
        setattr(s, k, v)
    return s


def act_bits(s, bits):
    s.method.act_bits = bits
    return s


def file_uri(path):
    return "file://" + os.path.abspath(path)


class ClusterTest(unittest.TestCase):
    def setUp(self):
        self.workdir = cluster.new_workdir("caliber-it-")
        self.clusters = []
        self.motos = []

    def tearDown(self):
        for c in self.clusters:
            c.stop()
        for m in self.motos:
            m.close()
        if not os.environ.get("CALIBER_KEEP_TEST_DIRS"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def start(self, **kw):
        c = cluster.Cluster(self.workdir, **kw)
        self.clusters.append(c)
        return c

    def stub(self, c):
        return pb_grpc.QuantServiceStub(grpc.insecure_channel(c.address()))

    def follow(self, stub, job_id, timeout=900, workers=None):
        """The job's last event. `workers` (a dict), if given, collects per stage index the
        worker ids seen while the job ran (a finished job names none)."""
        last = None
        for event in stub.WatchQuantJob(pb.WatchQuantJobRequest(job_id=job_id), timeout=timeout):
            last = event.job
            if workers is not None:
                for st in last.stages:
                    if st.worker_id:
                        workers.setdefault(st.index, set()).add(st.worker_id)
        return last

    def wait_until(self, stub, job_id, predicate, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = stub.GetQuantJob(pb.GetQuantJobRequest(job_id=job_id), timeout=10)
            if predicate(job):
                return job
            time.sleep(0.02)
        self.fail(f"job {job_id} never reached the condition")

    def reference(self, name, *args):
        out = os.path.join(self.workdir, name)
        cluster.quantize_reference(out, *args)
        return cluster.model_files(out)

    def assert_same_checkpoint(self, out_dir, ref):
        got = cluster.model_files(out_dir)
        got.pop("caliber_manifest.json", None)
        self.assertEqual(sorted(got), sorted(ref))
        for name in ref:
            self.assertEqual(got[name], ref[name], f"{name} differs from caliber quantize's")


class S3Job(ClusterTest):
    def test_three_workers_on_s3_match_one_process_quantize(self):
        moto = cluster.Moto()
        self.motos.append(moto)
        for f in sorted(os.listdir(cluster.MODEL)):
            path = os.path.join(cluster.MODEL, f)
            if os.path.isfile(path):
                moto.client("put", "caliber", f"models/tinyllama-en/{f}", path, capture=False)
        moto.client("put", "caliber", "data/calib.i32", cluster.CALIB, capture=False)
        c = self.start(workers=3, s3=moto)
        stub = self.stub(c)
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(
            request_id="it-s3-1",
            spec=spec("s3://caliber/models/tinyllama-en", "s3://caliber/data/calib.i32", "s3://caliber/out/q1",
                      method="gptq_lora", lora_rank=8)), timeout=60)
        workers = {}
        final = self.follow(stub, job.job_id, workers=workers)
        self.assertEqual(final.state, pb.SUCCEEDED, final.error_message)
        self.assertEqual(len(final.stages), 3)
        self.assertEqual(set().union(*workers.values()), {"w1", "w2", "w3"})
        self.assertEqual({s.worker_id for s in final.stages}, {""})  # no worker holds a finished job

        ref = self.reference("ref", "--method", "gptq_lora", "--lora-rank", "8", "--nsamples", "16", "--seq-len", "128")
        manifest_path = os.path.join(self.workdir, "manifest.json")
        moto.client("get", "caliber", "out/q1/caliber_manifest.json", manifest_path, capture=False)
        manifest = json.load(open(manifest_path))
        listed = {f["name"]: f for f in manifest["files"]}
        self.assertIn("report.json", listed)
        for name, data in ref.items():
            self.assertIn(name, listed)
            stat = moto.client("stat", "caliber", f"out/q1/{name}")
            self.assertEqual(stat["sha256"], hashlib.sha256(data).hexdigest(), f"{name} differs")
            self.assertEqual(listed[name]["sha256"], stat["sha256"])
        # Scratch objects are gone.
        self.assertFalse(moto.client("exists", "caliber", f"out/q1.caliber-work-{job.job_id}/calib_tokens.i32"))

    def test_object_store_outage_fails_the_job_cleanly(self):
        moto = cluster.Moto()
        self.motos.append(moto)
        moto.upload_inputs()
        budget = ["--s3-retry-budget-ms", "1500"]
        c = self.start(workers=2, s3=moto, extra_coordinator=budget, extra_worker=budget)
        stub = self.stub(c)
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=spec(
            "s3://caliber/m", "s3://caliber/d/calib.i32", "s3://caliber/out/x", nsamples=48, seq_len=256)), timeout=60)
        self.wait_until(stub, job.job_id, lambda j: j.phase == "calibrating")
        moto.proc.kill()  # the store goes away for good
        moto.proc.wait()
        final = self.follow(stub, job.job_id)
        self.assertEqual(final.state, pb.FAILED)
        self.assertEqual(final.error_code, grpc.StatusCode.UNAVAILABLE.value[0], final.error_message)
        self.assertIsNone(c.coordinator.poll(), "the coordinator must survive")
        for w in c.workers.values():
            self.assertIsNone(w.poll(), "workers must survive")


class Faults(ClusterTest):
    ARGS = ["--method", "gptq", "--nsamples", "48", "--seq-len", "256"]

    def submit(self, c, out):
        stub = self.stub(c)
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(
            spec=spec(file_uri(cluster.MODEL), file_uri(cluster.CALIB), file_uri(out), nsamples=48, seq_len=256)),
            timeout=60)
        return stub, job

    def test_killed_worker_is_replaced_without_redoing_layers(self):
        c = self.start(workers=2, worker_timeout_ms=1500)
        out = os.path.join(self.workdir, "out")
        stub, job = self.submit(c, out)
        # Stage 0 holds layers [0, 2): kill its worker once layer 0 is durable.
        running = self.wait_until(stub, job.job_id, lambda j: len(j.stages) == 2 and j.layer_done[0])
        victim = running.stages[0].worker_id
        self.assertFalse(running.layer_done[1], "too late to kill mid-stage; make the job bigger")
        c.workers[victim].send_signal(signal.SIGKILL)
        c.workers[victim].wait()
        workers = {}
        final = self.follow(stub, job.job_id, workers=workers)
        self.assertEqual(final.state, pb.SUCCEEDED, final.error_message)
        self.assertGreaterEqual(final.stages[0].attempt, 2)
        survivor = ({"w1", "w2"} - {victim}).pop()
        self.assertIn(survivor, workers[0])
        self.assertIn("stage 0 layers [0, 2) from layer 1", c.log(survivor), "layer 0 was redone")
        self.assert_same_checkpoint(out, self.reference("ref", *self.ARGS))

    def test_coordinator_restart_recovers_the_job(self):
        c = self.start(workers=2)
        out = os.path.join(self.workdir, "out")
        stub, job = self.submit(c, out)
        self.wait_until(stub, job.job_id, lambda j: j.layers_done >= 1)
        c.coordinator.send_signal(signal.SIGKILL)
        c.coordinator.wait()
        c.start_coordinator(port=c.port)
        stub = self.stub(c)
        final = self.follow(stub, job.job_id)
        self.assertEqual(final.state, pb.SUCCEEDED, final.error_message)
        self.assert_same_checkpoint(out, self.reference("ref", *self.ARGS))

    def test_sigterm_stops_daemons_cleanly(self):
        c = self.start(workers=1)
        for proc in [c.workers["w1"], c.coordinator]:
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=20), 0)


class Requests(ClusterTest):
    def test_bad_requests_get_precise_statuses_and_leave_nothing(self):
        c = self.start(workers=1)
        stub = self.stub(c)
        model, calib = file_uri(cluster.MODEL), file_uri(cluster.CALIB)
        corrupt = os.path.join(self.workdir, "corrupt")
        shutil.copytree(cluster.MODEL, corrupt)
        with open(os.path.join(corrupt, "model.safetensors"), "r+b") as f:
            f.truncate(1000)
        gpt2 = os.path.join(self.workdir, "gpt2")
        shutil.copytree(cluster.MODEL, gpt2)
        cfg = json.load(open(os.path.join(gpt2, "config.json")))
        cfg["model_type"], cfg["architectures"] = "gpt2", ["GPT2LMHeadModel"]
        json.dump(cfg, open(os.path.join(gpt2, "config.json"), "w"))
        existing = os.path.join(self.workdir, "existing")
        os.makedirs(existing)
        open(os.path.join(existing, "config.json"), "w").write("{}")
        out = file_uri(os.path.join(self.workdir, "out"))
        cases = [
            ("unknown model", spec(file_uri(os.path.join(self.workdir, "nope")), calib, out), grpc.StatusCode.NOT_FOUND, "not found"),
            ("corrupt model", spec(file_uri(corrupt), calib, out), grpc.StatusCode.INVALID_ARGUMENT, "corrupt"),
            ("architecture", spec(file_uri(gpt2), calib, out), grpc.StatusCode.INVALID_ARGUMENT, "gpt2"),
            ("bits", spec(model, calib, out, bits=5), grpc.StatusCode.INVALID_ARGUMENT, "bits"),
            ("group size", spec(model, calib, out, group_size=100), grpc.StatusCode.INVALID_ARGUMENT, "group_size"),
            ("missing calibration", spec(model, file_uri(os.path.join(self.workdir, "none.i32")), out),
             grpc.StatusCode.NOT_FOUND, "calibration data"),
            ("output exists", spec(model, calib, file_uri(existing)), grpc.StatusCode.ALREADY_EXISTS, "already exists"),
            ("unknown method", spec(model, calib, out, method="awq"), grpc.StatusCode.INVALID_ARGUMENT, "method"),
            ("act bits", act_bits(spec(model, calib, out), 4), grpc.StatusCode.INVALID_ARGUMENT,
             "spec.method.act_bits: must be 16 (float activations; 0 means 16) or 8 (per-token dynamic INT8), got 4"),
            ("escaping root", spec(model, calib, "file:///etc/caliber-out"), grpc.StatusCode.PERMISSION_DENIED, ""),
            ("dot-dot", spec(model, calib, file_uri(self.workdir) + "/../x"), grpc.StatusCode.PERMISSION_DENIED, ""),
            ("not a uri", spec("models/x", calib, out), grpc.StatusCode.INVALID_ARGUMENT, ""),
        ]
        for name, s, code, words in cases:
            with self.subTest(name):
                with self.assertRaises(grpc.RpcError) as e:
                    stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=s), timeout=30)
                self.assertEqual(e.exception.code(), code, e.exception.details())
                self.assertIn(words, e.exception.details())
        self.assertFalse(os.path.exists(os.path.join(self.workdir, "out")))
        self.assertEqual(len(stub.ListQuantJobs(pb.ListQuantJobsRequest(), timeout=10).jobs), 0)

    def test_idempotent_submission(self):
        c = self.start(workers=0)
        stub = self.stub(c)
        s = spec(file_uri(cluster.MODEL), file_uri(cluster.CALIB), file_uri(os.path.join(self.workdir, "o")))
        a = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(request_id="same", spec=s), timeout=30)
        b = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(request_id="same", spec=s), timeout=30)
        self.assertEqual(a.job_id, b.job_id)
        s.method.bits = 3
        with self.assertRaises(grpc.RpcError) as e:
            stub.SubmitQuantJob(pb.SubmitQuantJobRequest(request_id="same", spec=s), timeout=30)
        self.assertEqual(e.exception.code(), grpc.StatusCode.ALREADY_EXISTS)
        cancelled = stub.CancelQuantJob(pb.CancelQuantJobRequest(job_id=a.job_id), timeout=10)
        self.assertEqual(cancelled.state, pb.CANCELLED)

    def test_hundred_concurrent_submissions_are_all_answered(self):
        c = self.start(workers=0)  # nothing runs: the jobs stay queued
        stub = self.stub(c)
        results = [None] * 100

        def submit(i):
            out = file_uri(os.path.join(self.workdir, f"o{i}"))
            s = spec(file_uri(cluster.MODEL), file_uri(cluster.CALIB), out, bits=4 if i % 3 else 5)
            try:
                results[i] = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(request_id=f"r{i}", spec=s), timeout=120).job_id
            except grpc.RpcError as e:
                results[i] = e.code()

        threads = [threading.Thread(target=submit, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, r in enumerate(results):
            if i % 3:
                self.assertIsInstance(r, str, f"submission {i}: {r}")
            else:
                self.assertEqual(r, grpc.StatusCode.INVALID_ARGUMENT)
        listed = []
        req = pb.ListQuantJobsRequest(page_size=25)
        while True:
            page = stub.ListQuantJobs(req, timeout=10)
            listed += [j.job_id for j in page.jobs]
            if not page.next_page_token:
                break
            req.page_token = page.next_page_token
        self.assertEqual(sorted(listed), sorted(r for r in results if isinstance(r, str)))
        self.assertIsNone(c.coordinator.poll())

    def test_metrics_endpoints(self):
        c = self.start(workers=1)
        w_metrics = cluster.wait_for_file(os.path.join(self.workdir, "w1.port"))[1]
        text = urllib.request.urlopen(f"http://127.0.0.1:{c.metrics_port}/metrics", timeout=10).read().decode()
        for name in ("caliber_jobs{", "caliber_workers{", "caliber_job_submissions_total"):
            self.assertIn(name, text)
        text = urllib.request.urlopen(f"http://127.0.0.1:{w_metrics}/metrics", timeout=10).read().decode()
        for name in ("caliber_calibration_tokens_total", "caliber_worker_connected"):
            self.assertIn(name, text)


class W4A8(ClusterTest):
    def test_two_workers_write_the_compressed_tensors_checkpoint_quantize_writes(self):
        c = self.start(workers=2)
        stub = self.stub(c)
        out = os.path.join(self.workdir, "out")
        s = act_bits(spec(file_uri(cluster.MODEL), file_uri(cluster.CALIB), file_uri(out)), 8)
        s.evaluation.CopyFrom(pb.EvaluationData(
            uri=file_uri(os.path.join(cluster.MODEL, "heldout", "heldout_tokens.i32")), max_windows=8))
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=s), timeout=60)
        self.assertEqual(job.spec.method.act_bits, 8)
        final = self.follow(stub, job.job_id)
        self.assertEqual(final.state, pb.SUCCEEDED, final.error_message)
        self.assertEqual(len(final.stages), 2)
        qc = json.load(open(os.path.join(out, "config.json")))["quantization_config"]
        self.assertEqual(qc["quant_method"], "compressed-tensors")
        self.assertEqual(qc["format"], "pack-quantized")
        self.assertEqual(qc["config_groups"]["group_0"]["input_activations"]["num_bits"], 8)
        self.assertEqual(qc["meta"]["caliber"]["act_bits"], 8)
        report = json.load(open(os.path.join(out, "report.json")))
        self.assertEqual(report["eval"]["quantized"]["act_bits"], 8)
        self.assertEqual(report["eval"]["fp"]["act_bits"], 16)
        self.assertGreater(final.report.ppl_quantized, 0)
        # Workers calibrated and propagated with INT8 activations exactly as one process does.
        self.assert_same_checkpoint(out, self.reference("ref", "--method", "gptq", "--act-bits", "8",
                                                        "--nsamples", "16", "--seq-len", "128"))
        # act_bits 0 means 16: a W·A16 job, normalized as such.
        plain = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=spec(
            file_uri(cluster.MODEL), file_uri(cluster.CALIB), file_uri(os.path.join(self.workdir, "o16")))), timeout=60)
        self.assertEqual(plain.spec.method.act_bits, 16)
        stub.CancelQuantJob(pb.CancelQuantJobRequest(job_id=plain.job_id), timeout=10)


class Heroq(ClusterTest):
    """HeRo-Q in a distributed job: every stage learns from its own layers, the coordinator sums
    the R1 gradient shares, folds the learned transforms into the model, and the quantize phase
    reads the transformed model."""
    ITERS = 12

    def heroq_spec(self, out, iterations=ITERS):
        s = spec(file_uri(cluster.MODEL), file_uri(cluster.CALIB), file_uri(out), method="heroq_gptq", bits=3)
        s.method.transform_options.iterations = iterations
        return s

    def reference_report(self, name, iterations=ITERS):
        out = os.path.join(self.workdir, name)
        cluster.quantize_reference(out, "--method", "heroq_gptq", "--bits", "3", "--heroq_iterations",
                                   str(iterations), "--nsamples", "16", "--seq-len", "128")
        with open(os.path.join(out, "report.json")) as f:
            return out, json.load(f)

    def check_against_one_process(self, out, ref, ref_out):
        with open(os.path.join(ref_out, "config.json")) as f:
            ref_cfg = json.load(f)
        with open(os.path.join(out, "report.json")) as f:
            report = json.load(f)
        t, rt = report["transform"], ref["transform"]
        self.assertEqual(t["kind"], "heroq")
        self.assertEqual(len(t["stages"]), 2)
        self.assertEqual(len(t["layers"]), len(rt["layers"]))
        history = t["loss_history"]
        self.assertTrue(all(b < a for a, b in zip(history, history[1:])), history)
        self.assertLess(t["loss"]["learned"], t["loss"]["start"])
        # Same Hessians, same start: the objective there agrees to rounding.
        for key in ("untransformed", "start"):
            self.assertAlmostEqual(t["loss"][key], rt["loss"][key], delta=1e-9 * rt["loss"][key])
        self.assertAlmostEqual(history[1], rt["loss_history"][1], delta=1e-9 * history[1])
        # The stages' sums differ from one process's in summation order only, but the
        # round-to-nearest term is piecewise: once a weight rounds the other way the paths part
        # (measured: 1e-12 after 7 steps, 5e-4 relative after 12). Both must learn as much.
        self.assertAlmostEqual(t["loss"]["learned"], rt["loss"]["learned"], delta=0.01 * rt["loss"]["learned"])
        for got, want in zip(t["layers"], rt["layers"]):
            for module, e in got["modules"].items():
                w = want["modules"][module]["rtn_rel_error_untransformed"]
                self.assertAlmostEqual(e["rtn_rel_error_untransformed"], w, delta=1e-9 * w)
        with open(os.path.join(out, "config.json")) as f:
            cfg = json.load(f)
        self.assertFalse(cfg["tie_word_embeddings"])
        self.assertEqual(cfg["quantization_config"]["bits"], 3)
        # The same metadata as `caliber quantize` writes.
        self.assertEqual(cfg["quantization_config"]["meta"]["caliber"], ref_cfg["quantization_config"]["meta"]["caliber"])
        mre = report["totals"]["mean_relative_output_error"]
        self.assertAlmostEqual(mre, ref["totals"]["mean_relative_output_error"], delta=0.05 * mre)
        # Nothing is left in the scratch prefix (the transformed model included).
        left = [os.path.join(b, f) for d in os.listdir(self.workdir) if ".caliber-work-" in d
                for b, _, fs in os.walk(os.path.join(self.workdir, d)) for f in fs]
        self.assertEqual(left, [])
        return report

    def test_two_workers_learn_together_what_one_process_learns(self):
        c = self.start(workers=2)
        stub = self.stub(c)
        out = os.path.join(self.workdir, "out")
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=self.heroq_spec(out)), timeout=60)
        self.assertEqual(job.spec.method.transform, "heroq")
        self.assertEqual(job.spec.method.transform_options.iterations, self.ITERS)
        self.assertAlmostEqual(job.spec.method.transform_options.smooth_alpha, 0.5)
        self.assertEqual(job.spec.method.transform_options.start, "best")
        final = self.follow(stub, job.job_id)
        self.assertEqual(final.state, pb.SUCCEEDED, final.error_message)
        ref_out, ref = self.reference_report("ref")
        self.check_against_one_process(out, ref, ref_out)
        for w in c.workers:
            self.assertIn("transform stage", c.log(w))
        w_metrics = cluster.wait_for_file(os.path.join(self.workdir, "w1.port"))[1]
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{w_metrics}/metrics", timeout=10).read().decode()
        self.assertIn('caliber_transform_objective{point="learned"}', metrics)
        self.assertIn('caliber_transform_hessian_top_share{hessian="transformed",input="qkv"}', metrics)

    def test_killed_worker_restarts_the_transform_phase(self):
        c = self.start(workers=3, worker_timeout_ms=1500)
        stub = self.stub(c)
        out = os.path.join(self.workdir, "out")
        s = self.heroq_spec(out, iterations=60)
        s.max_workers = 2
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=s), timeout=60)
        running = self.wait_until(stub, job.job_id,
                                  lambda j: j.phase == "learning transform" and len(j.stages) == 2 and
                                  all(st.worker_id for st in j.stages))
        victim = running.stages[1].worker_id
        deadline = time.time() + 60
        while "transform stage 1" not in c.log(victim) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # into the learning rounds
        self.assertEqual(stub.GetQuantJob(pb.GetQuantJobRequest(job_id=job.job_id)).phase, "learning transform",
                         "too late to kill mid-learning; make the job bigger")
        c.workers[victim].send_signal(signal.SIGKILL)
        c.workers[victim].wait()
        final = self.follow(stub, job.job_id)
        self.assertEqual(final.state, pb.SUCCEEDED, final.error_message)
        self.assertGreaterEqual(final.stages[1].attempt, 3)  # transform, transform again, quantize
        # The restarted phase learns exactly what an uninterrupted job with the same stage plan
        # learns: the same checkpoint, byte for byte.
        again = os.path.join(self.workdir, "again")
        s2 = self.heroq_spec(again, iterations=60)
        s2.max_workers = 2
        job2 = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=s2), timeout=60)
        final2 = self.follow(stub, job2.job_id)
        self.assertEqual(final2.state, pb.SUCCEEDED, final2.error_message)
        self.assertEqual(len(final2.stages), 2)
        ref = cluster.model_files(again)
        ref.pop("caliber_manifest.json", None)
        self.assert_same_checkpoint(out, ref)
        with open(os.path.join(out, "report.json")) as f, open(os.path.join(again, "report.json")) as g:
            self.assertEqual(json.load(f)["transform"]["loss_history"], json.load(g)["transform"]["loss_history"])

    def test_bad_transform_requests(self):
        c = self.start(workers=1)
        stub = self.stub(c)
        out = os.path.join(self.workdir, "bad")
        cases = []
        s = self.heroq_spec(out)
        s.method.transform = "quarot"  # heroq_gptq already sets heroq
        cases.append(s)
        s = spec(file_uri(cluster.MODEL), file_uri(cluster.CALIB), file_uri(out))
        s.method.transform = "spinquant"
        cases.append(s)
        s = self.heroq_spec(out)
        s.method.transform_options.iterations = -1
        cases.append(s)
        s = self.heroq_spec(out)
        s.method.transform_options.start = "random"
        cases.append(s)
        s = spec(file_uri(cluster.MODEL), file_uri(cluster.CALIB), file_uri(out))
        s.method.transform_options.seed = 1  # options without a transform
        cases.append(s)
        for s in cases:
            with self.assertRaises(grpc.RpcError) as e:
                stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=s), timeout=30)
            self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, e.exception.details())
            self.assertIn("spec.method.transform", e.exception.details())
        self.assertFalse(os.path.exists(out))


def make_certs(d):
    """A CA and one certificate for 127.0.0.1 (server and client use), via the openssl CLI."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=caliber-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=127.0.0.1")
    open(os.path.join(d, "ext.cnf"), "w").write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "node.pem", "-days", "2", "-extfile", "ext.cnf")
    return {k: os.path.join(d, k) for k in ("ca.pem", "node.pem", "node.key")}


class Security(ClusterTest):
    def test_tokens_tenants_and_prefixes(self):
        tokens = os.path.join(self.workdir, "tokens.json")
        data = file_uri(os.path.join(cluster.ROOT, "testdata")) + "/"
        cluster.write_secret(tokens, json.dumps({"tenants": [
            {"name": "a", "tokens": ["tok-a"], "read_prefixes": [data],
             "write_prefixes": [file_uri(os.path.join(self.workdir, "a")) + "/"]},
            {"name": "b", "tokens": ["tok-b"], "read_prefixes": [data],
             "write_prefixes": [file_uri(os.path.join(self.workdir, "b")) + "/"]}]}))
        c = self.start(workers=0, extra_coordinator=["--tokens-file", tokens])
        stub = self.stub(c)
        a_out = file_uri(os.path.join(self.workdir, "a", "q"))
        req = pb.SubmitQuantJobRequest(spec=spec(file_uri(cluster.MODEL), file_uri(cluster.CALIB), a_out))
        for md in [None, [("authorization", "Bearer nope")], [("authorization", "tok-a")]]:
            with self.assertRaises(grpc.RpcError) as e:
                stub.SubmitQuantJob(req, metadata=md, timeout=30)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            self.assertNotIn("nope", e.exception.details())
        as_a = [("authorization", "Bearer tok-a")]
        as_b = [("authorization", "Bearer tok-b")]
        with self.assertRaises(grpc.RpcError) as e:
            stub.SubmitQuantJob(req, metadata=as_b, timeout=30)
        self.assertEqual(e.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        outside = pb.SubmitQuantJobRequest(spec=spec(file_uri(cluster.MODEL), file_uri(cluster.CALIB),
                                                     file_uri(os.path.join(self.workdir, "a")) + "/../b/x"))
        with self.assertRaises(grpc.RpcError) as e:
            stub.SubmitQuantJob(outside, metadata=as_a, timeout=30)
        self.assertEqual(e.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        job = stub.SubmitQuantJob(req, metadata=as_a, timeout=30)
        with self.assertRaises(grpc.RpcError) as e:
            stub.GetQuantJob(pb.GetQuantJobRequest(job_id=job.job_id), metadata=as_b, timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(grpc.RpcError) as e:
            stub.CancelQuantJob(pb.CancelQuantJobRequest(job_id=job.job_id), metadata=as_b, timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(len(stub.ListQuantJobs(pb.ListQuantJobsRequest(), metadata=as_b, timeout=10).jobs), 0)
        self.assertEqual(len(stub.ListQuantJobs(pb.ListQuantJobsRequest(), metadata=as_a, timeout=10).jobs), 1)

    def start_mtls(self, extra=()):
        """A coordinator and 2 workers with mTLS and a worker token; the certificates and the
        client credentials that pass."""
        certs = make_certs(self.workdir)
        token = os.path.join(self.workdir, "worker.token")
        cluster.write_secret(token, "s3cret\n")
        tls = ["--tls-cert", certs["node.pem"], "--tls-key", certs["node.key"], "--tls-ca", certs["ca.pem"],
               "--tls-require-client-cert", "--worker-token-file", token] + list(extra)
        c = self.start(workers=2, extra_coordinator=tls, extra_worker=tls)
        ca = open(certs["ca.pem"], "rb").read()
        good = grpc.ssl_channel_credentials(ca, open(certs["node.key"], "rb").read(), open(certs["node.pem"], "rb").read())
        return c, certs, good

    def test_mtls_everywhere_runs_a_job(self):
        c, certs, good = self.start_mtls()
        ca = open(certs["ca.pem"], "rb").read()
        for creds in [None, grpc.ssl_channel_credentials(ca)]:  # plaintext; TLS without a client cert
            chan = grpc.insecure_channel(c.address()) if creds is None else grpc.secure_channel(c.address(), creds)
            with self.assertRaises(grpc.RpcError) as e:
                pb_grpc.QuantServiceStub(chan).ListQuantJobs(pb.ListQuantJobsRequest(), timeout=5)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)
        stub = pb_grpc.QuantServiceStub(grpc.secure_channel(c.address(), good))
        out = os.path.join(self.workdir, "out")
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=spec(
            file_uri(cluster.MODEL), file_uri(cluster.CALIB), file_uri(out), nsamples=8, seq_len=64,
            propagation=pb.PIPELINED)), timeout=60)
        final = self.follow(stub, job.job_id)
        self.assertEqual(final.state, pb.SUCCEEDED, final.error_message)
        self.assertTrue(os.path.exists(os.path.join(out, "caliber_manifest.json")))

    def test_peer_channels_keep_validated_tls_material_when_files_go_missing(self):
        # Peer channels are made at the first push. If the CA is gone by then (a rotation in
        # progress), the push must never go over a plaintext fallback channel (which would carry
        # the worker token and the activations in clear). The material validated at start-up
        # stays in use: the reload fails, says so, and the push goes over TLS.
        c, certs, good = self.start_mtls(extra=["--tls-refresh-interval", "1s"])
        stub = pb_grpc.QuantServiceStub(grpc.secure_channel(c.address(), good))
        os.rename(certs["ca.pem"], certs["ca.pem"] + ".rotating")
        # Both workers have noticed (and kept their material) before the job's first push.
        deadline = time.time() + 120
        while not all("cannot reload TLS material, keeping the previous one" in c.log(w) for w in ("w1", "w2")):
            self.assertLess(time.time(), deadline, "a worker never re-read its TLS files")
            time.sleep(0.2)
        out = os.path.join(self.workdir, "out")
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=spec(
            file_uri(cluster.MODEL), file_uri(cluster.CALIB), file_uri(out), nsamples=8, seq_len=64,
            propagation=pb.PIPELINED)), timeout=60)
        final = self.follow(stub, job.job_id)
        self.assertEqual(final.state, pb.SUCCEEDED, final.error_message)
        logs = c.log("w1") + c.log("w2")
        self.assertIn("ca.pem: does not exist", logs)
        self.assertNotIn("wrong version number", logs)  # no plaintext push reached a peer

if __name__ == "__main__":
    unittest.main()
