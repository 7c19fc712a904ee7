#!/usr/bin/env python3
"""Coordinator memory over many sequential small jobs: a real coordinator and one worker on
127.0.0.1, N tiny RTN jobs (2 x 32 calibration tokens) one after another, the coordinator's
VmRSS, VmSize and thread count printed every --every jobs. Memory should plateau: job records
are small and bounded, finished jobs are forgotten past --max-finished-jobs, and job threads are
joined as they finish.

Usage: /usr/bin/python3 bench/coordinator_rss_bench.py [--jobs 1000] [--every 50]
       [--max-finished-jobs 1000] [--out bench/results/coordinator_rss.md]
"""

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "service"))
import cluster  # noqa: E402

import grpc  # noqa: E402


def proc_status(pid):
    s = cluster.proc_status(pid)
    return s["VmRSS"], s["VmSize"], s["Threads"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--max-finished-jobs", type=int, default=1000)
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    stubs = cluster.new_workdir("caliber-stubs-")
    pb, pb_grpc = cluster.load_stubs(stubs)
    workdir = cluster.new_workdir("caliber-rss-")
    c = cluster.Cluster(workdir, workers=1,
                        extra_coordinator=["--max-finished-jobs", str(args.max_finished_jobs)])
    rows = []
    try:
        stub = pb_grpc.QuantServiceStub(grpc.insecure_channel(c.address()))
        model, calib = "file://" + cluster.MODEL, "file://" + cluster.CALIB
        rows.append((0, *proc_status(c.coordinator.pid), 0.0))
        start = time.time()
        for i in range(1, args.jobs + 1):
            out = os.path.join(workdir, "out", f"o{i}")
            spec = pb.QuantJobSpec(model_uri=model, output_uri="file://" + out,
                                   calibration=pb.CalibrationData(uri=calib, nsamples=2, seq_len=32),
                                   method=pb.QuantMethod(name="rtn", bits=4, group_size=128))
            job = stub.SubmitQuantJob(pb.SubmitQuantJobRequest(spec=spec), timeout=60)
            last = None
            for event in stub.WatchQuantJob(pb.WatchQuantJobRequest(job_id=job.job_id), timeout=300):
                last = event.job
            if last.state != pb.SUCCEEDED:
                raise RuntimeError(f"job {i}: {pb.JobState.Name(last.state)} {last.error_message}")
            shutil.rmtree(out)  # keep the disk small; the coordinator does not look back
            if i % args.every == 0:
                rss, vm, threads = proc_status(c.coordinator.pid)
                rows.append((i, rss, vm, threads, time.time() - start))
                print(f"{i:5d} jobs  RSS {rss / 1024:7.1f} MiB  VmSize {vm / 1024:8.1f} MiB  "
                      f"threads {threads:3d}  {time.time() - start:7.1f} s", flush=True)
    finally:
        c.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(stubs, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("# Coordinator memory over sequential small jobs\n\n")
            f.write(f"`/usr/bin/python3 bench/coordinator_rss_bench.py --jobs {args.jobs} --every {args.every} "
                    f"--max-finished-jobs {args.max_finished_jobs}`: one coordinator, one worker, tiny RTN jobs "
                    "(2 x 32 calibration tokens) one after another on this machine.\n\n")
            f.write("| jobs | RSS MiB | VmSize MiB | threads | seconds |\n|---:|---:|---:|---:|---:|\n")
            for i, rss, vm, threads, secs in rows:
                f.write(f"| {i} | {rss / 1024:.1f} | {vm / 1024:.1f} | {threads} | {secs:.0f} |\n")


if __name__ == "__main__":
    main()
