#!/usr/bin/env python3
"""Paired per-window NLL comparison of two checkpoints (bench/results/heroq_ood.md section 4).

Runs `caliber eval --json` on both over the same token file and prints, for the first n windows
(n from --windows), the mean of candidate − baseline NLL and its z score (mean / standard error
of the mean): positive means the candidate is worse. A checkpoint's adapter/ is applied.

Usage: scripts/paired_nll.py BASELINE_DIR CANDIDATE_DIR TOKENS [--windows 16,32,64,128,400]
"""
import argparse
import json
import math
import os
import statistics
import subprocess


def window_nll(caliber, model, tokens, windows):
    cmd = [caliber, "eval", "--model", model, "--tokens", tokens, "--seq-len", "256",
           "--max-windows", str(windows), "--json"]
    if os.path.isdir(os.path.join(model, "adapter")):
        cmd[4:4] = ["--adapter", os.path.join(model, "adapter")]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["window_nll"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("baseline")
    p.add_argument("candidate")
    p.add_argument("tokens")
    p.add_argument("--windows", default="16,32,64,128,400")
    p.add_argument("--caliber", default=os.path.join(os.path.dirname(__file__), "..", "build", "cli", "caliber"))
    a = p.parse_args()
    ns = [int(n) for n in a.windows.split(",")]
    base = window_nll(a.caliber, a.baseline, a.tokens, max(ns))
    cand = window_nll(a.caliber, a.candidate, a.tokens, max(ns))
    d = [c - b for b, c in zip(base, cand)]
    for n in ns:
        if n > len(d) or n < 2:
            continue
        mean = sum(d[:n]) / n
        se = statistics.stdev(d[:n]) / math.sqrt(n)
        print(f"n={n} d={mean:+.5f} z={mean / se:+.2f}")


if __name__ == "__main__":
    main()
