#!/usr/bin/env python3
"""One-shot `caliber quantize` of the fixture end to end, per method: wall seconds and peak RSS.

Each method runs in its own child process (peak RSS from getrusage of that child alone).
Usage: python3 bench/quantize_e2e.py [--caliber build/cli/caliber] [--model testdata/tinyllama-en]
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time

METHODS = [
    ("rtn", ["--method", "rtn"]),
    ("gptq", ["--method", "gptq"]),
    ("gptq act-order", ["--method", "gptq", "--act-order"]),
    ("gptq_lora r32", ["--method", "gptq_lora", "--lora-rank", "32"]),
    ("gptq_lora r32 refine2", ["--method", "gptq_lora", "--lora-rank", "32", "--refine-iters", "2"]),
]


def run_one(caliber, model, extra, out):
    cmd = [caliber, "quantize", "--model", model, "--calib", f"{model}/calib/calib_tokens.i32",
           "--calib-sampling", "first", "--nsamples", "128", "--seq-len", "256",
           "--bits", "4", "--group-size", "128", "--out", out, "--json", *extra]
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.execv(caliber, cmd)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    return seconds, usage.ru_maxrss / 1024.0, report["totals"]["quantizer_seconds"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--caliber", default="build/cli/caliber")
    p.add_argument("--model", default="testdata/tinyllama-en")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="caliber-e2e-")
    print(f"{'method (W4 g128, 128 x 256 calib)':36s} {'wall s':>8s} {'quantizer s':>12s} {'peak RSS MiB':>13s}")
    try:
        for i, (name, extra) in enumerate(METHODS):
            seconds, rss, qsec = run_one(args.caliber, args.model, extra, os.path.join(work, str(i)))
            print(f"{name:36s} {seconds:8.2f} {qsec:12.2f} {rss:13.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
