#!/usr/bin/env python3
"""Independent decoder of a compressed-tensors "pack-quantized" checkpoint directory (the format
vLLM's compressed-tensors integration and transformers read), written from the format's
published semantics (vllm-project/compressed-tensors: quant_args.py, quant_config.py,
compressors/quantized_compressors/pack_quantized.py, quantization/lifecycle/forward.py), not
from Caliber's code. Only json + numpy.

config.json quantization_config: quant_method "compressed-tensors", format "pack-quantized",
quantization_status "compressed", one config group targeting "Linear" whose `weights` are int
{num_bits, symmetric, strategy group|channel, group_size, actorder} and whose optional
`input_activations` say how activations are quantized at run time (printed, not decoded);
"lm_head" in `ignore`.

Per quantized linear `<base>` of a [out x in] layer, with f = 32 // num_bits:
  <base>.weight_shape       I64 [2] = [out, in]
  <base>.weight_packed      I32 [out, ceil(in / f)]   unpack_from_int32(packed_dim=1)
  <base>.weight_scale       F16 | BF16 | F32 [out, groups]
  <base>.weight_zero_point  I32 [ceil(out / f), groups]  asymmetric only, packed_dim=0
  <base>.weight_g_idx       I32 [in]   actorder "group" only
unpack_from_int32: for i in range(f): unpacked[:, i::f] = (packed >> (num_bits * i)) & mask,
padding cut to the true length, then minus 2^(num_bits-1) (signed int8 values).
Dequantization (forward.py _dequantize): W[o, i] = (q[o, i] - zp[o, g]) * scale[o, g] with
g = g_idx[i], or i // group_size without g_idx (0 for strategy channel); zp = 0 when symmetric.
Groups must all have group_size columns (forward.py refuses columns % group_size != 0).

Usage:
  decode_compressed_tensors.py CKPT --out DIR
      writes DIR/<base>.f32 (raw little-endian float32 [out x in]) for every quantized linear
  decode_compressed_tensors.py CKPT --expected DIR [--tol 0]
      compares against DIR/<base>.f32 files (every one must exist, and no extra), prints
      "max_abs_diff <x>" overall and per module over the tolerance; exit 1 on a mismatch.
      DIR may be what tests/tools/decode_gptq_checkpoint.py --out wrote for the same job.
  --source SRC (with either mode): every tensor of CKPT that is not part of a quantized linear
      must be byte-identical (dtype, shape, bytes) to SRC's, every non-linear tensor of SRC must
      be present, and no SRC linear `.weight` may remain
Exit status: 0 ok, 1 mismatch / invalid checkpoint, 2 usage error.
"""
import argparse
import json
import os
import sys

import numpy as np

from checkpoint_np import CheckpointError, as_array, bf16_to_f32, check_source, read_checkpoint

LINEAR_SUFFIXES = (".weight_packed", ".weight_scale", ".weight_shape", ".weight_zero_point",
                   ".weight_g_idx")


def float_array(t):
    dtype = t[0]
    a = as_array(t)
    if dtype == "BF16":
        return bf16_to_f32(a)
    if dtype in ("F16", "F32"):
        return a.astype(np.float32)
    raise CheckpointError(f"scale dtype {dtype} is not F16, BF16 or F32")


def unpack_from_int32(packed, num_bits, length, packed_dim):
    """compressed-tensors unpack_from_int32 -> signed int64 values."""
    f = 32 // num_bits
    mask = (1 << num_bits) - 1
    p = packed.astype(np.int64)  # int32 sign-extends; the mask drops the extension
    if packed_dim == 1:
        out = np.zeros((p.shape[0], p.shape[1] * f), dtype=np.int64)
        for i in range(f):
            out[:, i::f] = (p >> (num_bits * i)) & mask
        out = out[:, :length]
    else:
        out = np.zeros((p.shape[0] * f, p.shape[1]), dtype=np.int64)
        for i in range(f):
            out[i::f, :] = (p >> (num_bits * i)) & mask
        out = out[:length, :]
    return out - (1 << (num_bits - 1))


def expect(tensors, name, dtypes, shape):
    if name not in tensors:
        raise CheckpointError(f"missing tensor {name}")
    d, s, _ = tensors[name]
    if d not in dtypes or tuple(s) != tuple(shape):
        raise CheckpointError(f"tensor {name}: {d} {list(s)}, want {'|'.join(dtypes)} {list(shape)}")
    return tensors[name]


def parse_config(ckpt):
    with open(os.path.join(ckpt, "config.json")) as f:
        qc = json.load(f)["quantization_config"]
    if qc.get("quant_method") != "compressed-tensors":
        raise CheckpointError(f"quant_method is {qc.get('quant_method')!r}, not compressed-tensors")
    if qc.get("format") != "pack-quantized":
        raise CheckpointError(f"format is {qc.get('format')!r}, not pack-quantized")
    if qc.get("quantization_status", "compressed") != "compressed":
        raise CheckpointError(f"quantization_status is {qc.get('quantization_status')!r}")
    if "lm_head" not in (qc.get("ignore") or []):
        raise CheckpointError("lm_head is not in ignore")
    groups = qc.get("config_groups") or {}
    if len(groups) != 1:
        raise CheckpointError(f"{len(groups)} config groups; this decoder reads exactly one")
    (group,) = groups.values()
    if group.get("targets") != ["Linear"]:
        raise CheckpointError(f"targets {group.get('targets')}, want ['Linear']")
    w = group["weights"]
    if w.get("type", "int") != "int":
        raise CheckpointError(f"weights type {w.get('type')}")
    strategy = w.get("strategy") or ("group" if (w.get("group_size") or -1) > 0 else "channel")
    if strategy not in ("group", "channel"):
        raise CheckpointError(f"weights strategy {strategy}")
    actorder = w.get("actorder")
    if actorder is True or actorder == "dynamic":
        actorder = "group"
    return {
        "bits": int(w["num_bits"]),
        "group_size": int(w["group_size"]) if strategy == "group" else -1,
        "symmetric": bool(w.get("symmetric", True)),
        "g_idx": actorder == "group",
        "input_activations": group.get("input_activations"),
    }


def dequantize(tensors, base, qc):
    bits, group_size = qc["bits"], qc["group_size"]
    f = 32 // bits
    shape_t = expect(tensors, base + ".weight_shape", ("I64",), (2,))
    out_f, in_f = (int(v) for v in as_array(shape_t))
    if group_size > 0 and in_f % group_size:
        raise CheckpointError(f"{base}: group_size {group_size} does not divide {in_f}")
    groups = 1 if group_size == -1 else in_f // group_size
    packed = as_array(expect(tensors, base + ".weight_packed", ("I32",), (out_f, -(-in_f // f))))
    scale = float_array(expect(tensors, base + ".weight_scale", ("F16", "BF16", "F32"), (out_f, groups)))
    q = unpack_from_int32(packed, bits, in_f, packed_dim=1)          # [out, in] signed
    if q.min() < -(1 << (bits - 1)) or q.max() >= (1 << (bits - 1)):
        raise CheckpointError(f"{base}: values outside the {bits}-bit range")
    if qc["symmetric"]:
        if base + ".weight_zero_point" in tensors:
            raise CheckpointError(f"{base}: symmetric but weight_zero_point is stored")
        zp = np.zeros((out_f, groups), dtype=np.int64)
    else:
        zpt = as_array(expect(tensors, base + ".weight_zero_point", ("I32",), (-(-out_f // f), groups)))
        zp = unpack_from_int32(zpt, bits, out_f, packed_dim=0)      # [out, groups] signed
    if qc["g_idx"]:
        g_idx = as_array(expect(tensors, base + ".weight_g_idx", ("I32",), (in_f,))).astype(np.int64)
        if g_idx.min() < 0 or g_idx.max() >= groups:
            raise CheckpointError(f"{base}.weight_g_idx has entries outside [0, {groups})")
        if group_size > 0 and np.any(np.bincount(g_idx, minlength=groups) != group_size):
            raise CheckpointError(f"{base}.weight_g_idx: groups of unequal size")
    else:
        if base + ".weight_g_idx" in tensors:
            raise CheckpointError(f"{base}: weight_g_idx stored but actorder is not 'group'")
        g_idx = np.arange(in_f) // (in_f if group_size == -1 else group_size)
    # (q - zp) is a small exact integer, the scale an exact float32: one rounding, as in torch.
    w = scale[:, g_idx] * (q - zp[:, g_idx]).astype(np.float32)
    return np.ascontiguousarray(w, dtype=np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out")
    mode.add_argument("--expected")
    ap.add_argument("--source")
    ap.add_argument("--tol", type=float, default=0.0)
    args = ap.parse_args()

    try:
        qc = parse_config(args.checkpoint)
        acts = qc["input_activations"]
        if acts:
            print(f"input_activations int{acts.get('num_bits')} {acts.get('strategy')} "
                  f"dynamic={acts.get('dynamic')} symmetric={acts.get('symmetric')}")
        else:
            print("input_activations none")
        print(f"weights int{qc['bits']} group_size {qc['group_size']} symmetric={qc['symmetric']} "
              f"g_idx={qc['g_idx']}")
        tensors = read_checkpoint(args.checkpoint)
        bases = sorted(n[:-len(".weight_packed")] for n in tensors if n.endswith(".weight_packed"))
        if not bases:
            raise CheckpointError("no quantized linears")
        ok = True
        if args.source:
            problems, copied = check_source(tensors, args.source, bases, LINEAR_SUFFIXES)
            for p in problems:
                print("source mismatch:", p)
            ok = ok and not problems
            print(f"copied_tensors {copied} identical" if not problems else "copied_tensors differ")
        if args.expected:
            files = {f[:-4] for f in os.listdir(args.expected) if f.endswith(".f32")}
            for extra in sorted(files - set(bases)):
                print(f"expected file {extra}.f32 has no quantized linear in the checkpoint")
                ok = False
        worst = 0.0
        for base in bases:
            w = dequantize(tensors, base, qc)
            if args.out:
                os.makedirs(args.out, exist_ok=True)
                w.tofile(os.path.join(args.out, base + ".f32"))
                continue
            path = os.path.join(args.expected, base + ".f32")
            if not os.path.exists(path):
                print(f"missing expected file {path}")
                ok = False
                continue
            want = np.fromfile(path, dtype="<f4")
            if want.size != w.size:
                print(f"{base}: expected {want.size} values, decoded {w.size}")
                ok = False
                continue
            want = want.reshape(w.shape)
            diff = float(np.max(np.abs(want.astype(np.float64) - w)))
            worst = max(worst, diff)
            if not diff <= args.tol:
                ok = False
                bad = np.abs(want.astype(np.float64) - w) > args.tol
                o, i = np.argwhere(bad)[0]
                print(f"{base}: max_abs_diff {diff:.9g} at {np.count_nonzero(bad)} entries, "
                      f"first [{o}, {i}]: decoded {w[o, i]!r} expected {want[o, i]!r}")
        print(f"modules {len(bases)}")
        if args.expected:
            print(f"max_abs_diff {worst:.9g}")
        print("OK" if ok else "MISMATCH")
        return 0 if ok else 1
    except (CheckpointError, KeyError, ValueError, TypeError, OSError) as e:
        print(f"error: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
