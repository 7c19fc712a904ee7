#!/usr/bin/env python3
"""End-to-end service benchmark: one fixture job (tinyllama-en, GPTQ W4 g128, 128 x 256
calibration tokens) through a coordinator and 1, 2, 3 workers in both propagation modes. Prints
wall time, speed-up over 1 worker of the same mode (measured in the same run), activation bytes
streamed between workers, peak RSS of every process, and the job's mean relative output error.

  /usr/bin/python3 bench/service_bench.py [--workers 1,2,3] [--nsamples 128] [--out FILE.md]
"""

import argparse
import os
import re
import shutil
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "service"))
import cluster  # noqa: E402

import grpc  # noqa: E402


def peak_rss_mib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def run(pb, pb_grpc, workers, mode, nsamples, blas_threads):
    workdir = cluster.new_workdir("caliber-bench-")
    env = {"OPENBLAS_NUM_THREADS": str(blas_threads)} if blas_threads else None
    c = cluster.Cluster(workdir, workers=workers, env=env)
    try:
        stub = pb_grpc.QuantServiceStub(grpc.insecure_channel(c.address()))
        spec = pb.QuantJobSpec(
            model_uri="file://" + cluster.MODEL, output_uri="file://" + os.path.join(workdir, "out"),
            propagation=mode, calibration=pb.CalibrationData(uri="file://" + cluster.CALIB, nsamples=nsamples, seq_len=256),
            method=pb.QuantMethod(name="gptq", bits=4, group_size=128))
        t0 = time.time()
        job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=spec), timeout=60)
        final = None
        phase_start = {}  # first time each job phase was seen, relative to submission
        for event in stub.WatchQuantJob(pb.WatchQuantJobRequest(job_id=job.job_id), timeout=3600):
            final = event.job
            phase_start.setdefault(final.phase, time.time() - t0)
        wall = time.time() - t0
        # The stages' share of the wall time: from the first calibrating event to assembly.
        stages = phase_start.get("assembling", wall) - phase_start.get("calibrating", 0.0)
        assert final.state == pb.SUCCEEDED, final.error_message
        sent = 0.0
        for name in c.workers:
            mport = cluster.wait_for_file(os.path.join(workdir, f"{name}.port"))[1]
            sent += metric(mport, 'caliber_activation_bytes_total{direction="sent"}')
        rss = {"coordinator": peak_rss_mib(c.coordinator.pid)}
        rss.update({n: peak_rss_mib(p.pid) for n, p in c.workers.items()})
        return wall, stages, sent, rss, final.report.mean_relative_output_error
    finally:
        c.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", default="1,2,3")
    ap.add_argument("--nsamples", type=int, default=128)
    ap.add_argument("--out", default="")
    # 0 = OpenBLAS's default (all cores in every process). 1 shows how stages scale when each
    # worker owns one core, which is what a machine with a core (or GPU) per worker gives.
    ap.add_argument("--blas-threads", type=int, default=0)
    args = ap.parse_args()
    stubs = cluster.new_workdir("caliber-stubs-")
    pb, pb_grpc = cluster.load_stubs(stubs)
    rows = []
    for mode_name, mode in (("sequential", pb.SEQUENTIAL), ("pipelined", pb.PIPELINED)):
        base = base_stages = None
        for w in [int(x) for x in args.workers.split(",")]:
            wall, stages, sent, rss, err = run(pb, pb_grpc, w, mode, args.nsamples, args.blas_threads)
            base = base or wall
            base_stages = base_stages or stages
            rows.append((mode_name, w, wall, base / wall, stages, base_stages / stages, sent / 2**20,
                         max(rss.values()), rss["coordinator"], err))
            print(f"{mode_name:10s} workers={w} wall={wall:6.2f}s speedup={base / wall:4.2f}x "
                  f"stages={stages:6.2f}s stage_speedup={base_stages / stages:4.2f}x "
                  f"streamed={sent / 2**20:7.1f} MiB peak_rss(max)={max(rss.values()):6.1f} MiB err={err:.6f}",
                  flush=True)
    table = ["| mode | workers | wall s | speed-up vs 1 worker | stages s | stages speed-up | activations streamed MiB | peak RSS max MiB | coordinator RSS MiB | mean rel. error |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    table += [f"| {m} | {w} | {t:.2f} | {s:.2f} | {st:.2f} | {ss:.2f} | {b:.1f} | {r:.1f} | {c:.1f} | {e:.6f} |"
              for m, w, t, s, st, ss, b, r, c, e in rows]
    print("\n".join(table))
    if args.out:
        threads = args.blas_threads or "default (all cores)"
        with open(args.out, "a") as f:
            f.write(f"machine: {os.cpu_count()} cores; OpenBLAS threads per process: {threads}; "
                    f"nsamples={args.nsamples} seq_len=256, GPTQ W4 g128\n\n")
            f.write("\n".join(table) + "\n\n")


if __name__ == "__main__":
    main()
