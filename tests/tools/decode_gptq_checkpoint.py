#!/usr/bin/env python3
"""Independent decoder of a GPTQ "v1" checkpoint directory (the AutoGPTQ layout that vLLM and
transformers/optimum load), written from the format's published semantics, not from Caliber's
code. Only json + numpy.

Format, per quantized linear `<base>` (e.g. model.layers.0.self_attn.q_proj) of a [out x in] layer:
  <base>.qweight  I32 [in*bits/32, out]     codes packed along the INPUT dim
  <base>.qzeros   I32 [groups, out*bits/32] (zero - 1) packed along the OUTPUT dim
  <base>.scales   F16 [groups, out]
  <base>.g_idx    I32 [in]                  group of each input column
For bits 2/4/8 a word holds 32/bits fields, lowest bits first. For 3 bits (AutoGPTQ), 32 fields
live in 3 consecutive words with two fields spanning word boundaries; that is a continuous
little-endian bit stream over each group of 3 words.
Dequantization as v1 kernels compute it (AutoGPTQ cuda_old / exllama, vLLM gptq):
  W[o, i] = scales[g, o] * (q[i, o] - (z[g, o] + 1)),  g = g_idx[i]
where z is the stored field and the +1 does NOT wrap (a stored all-ones field means 2^bits).
Without desc_act, v1 kernels ignore g_idx and use g = i // group_size, so a checkpoint whose
g_idx disagrees with that while desc_act is false is reported as an error.

Usage:
  decode_gptq_checkpoint.py CKPT --out DIR
      writes DIR/<base>.f32 (raw little-endian float32 [out x in]) for every quantized linear
  decode_gptq_checkpoint.py CKPT --expected DIR [--tol 1e-6]
      compares against DIR/<base>.f32 files (every one must exist, and no extra), prints
      "max_abs_diff <x>" overall and per module over the tolerance; exit 1 on a mismatch
  --source SRC (with either mode): every tensor of CKPT that is not part of a quantized linear
      must be byte-identical (dtype, shape, bytes) to SRC's, every non-linear tensor of SRC must
      be present, and no SRC linear `.weight` may remain
  --zeros-report: print, per module, how many (group, channel) zero fields are all-ones
Exit status: 0 ok, 1 mismatch / invalid checkpoint, 2 usage error.
"""
import argparse
import json
import os
import sys

import numpy as np

from checkpoint_np import CheckpointError, as_array, check_source, read_checkpoint

GPTQ_SUFFIXES = (".qweight", ".qzeros", ".scales", ".g_idx")


def unpack_words_248(packed, bits):
    """packed uint32 [words, n] -> uint32 [words * 32/bits, n]: field k of word w is value
    w*(32/bits) + k, at bits [k*bits, (k+1)*bits)."""
    per = 32 // bits
    mask = np.uint32((1 << bits) - 1)
    shifts = (np.arange(per, dtype=np.uint32) * np.uint32(bits))[None, :, None]
    vals = (packed[:, None, :] >> shifts) & mask          # [words, per, n]
    return vals.reshape(packed.shape[0] * per, packed.shape[1])


def unpack_words_3(packed):
    """packed uint32 [3*k, n] -> uint32 [32*k, n]: each 3 words form a 96-bit little-endian
    stream (word 0 bits 0..31, word 1 bits 32..63, word 2 bits 64..95); value j of the block is
    stream bits [3j, 3j+3)."""
    words, n = packed.shape
    if words % 3:
        raise CheckpointError(f"3-bit packed dim {words} is not a multiple of 3 words")
    blocks = packed.reshape(words // 3, 3, n).astype(object)  # python ints: exact 96-bit shifts
    stream = blocks[:, 0, :] | (blocks[:, 1, :] << 32) | (blocks[:, 2, :] << 64)  # [k, n]
    out = np.empty((words // 3, 32, n), dtype=np.uint32)
    for j in range(32):
        out[:, j, :] = ((stream >> (3 * j)) & 7).astype(np.uint32)
    return out.reshape(words // 3 * 32, n)


def unpack(packed_i32, bits):
    """Unpack along axis 0."""
    packed = packed_i32.view(np.uint32)
    if bits == 3:
        return unpack_words_3(packed)
    if bits in (2, 4, 8):
        return unpack_words_248(packed, bits)
    raise CheckpointError(f"unsupported bits {bits}")


def linear_bases(tensors):
    return sorted(name[:-len(".qweight")] for name in tensors if name.endswith(".qweight"))


def expect(tensors, name, dtype, shape):
    if name not in tensors:
        raise CheckpointError(f"missing tensor {name}")
    d, s, _ = tensors[name]
    if d != dtype or tuple(s) != tuple(shape):
        raise CheckpointError(f"tensor {name}: {d} {list(s)}, want {dtype} {list(shape)}")
    return as_array(tensors[name])


def dequantize(tensors, base, qc):
    bits, group_size, desc_act = qc["bits"], qc["group_size"], qc["desc_act"]
    qweight_t = tensors[base + ".qweight"]
    if qweight_t[0] != "I32" or len(qweight_t[1]) != 2:
        raise CheckpointError(f"{base}.qweight must be 2-D I32")
    in_features = qweight_t[1][0] * 32 // bits
    out_features = qweight_t[1][1]
    groups = 1 if group_size == -1 else -(-in_features // group_size)
    qweight = expect(tensors, base + ".qweight", "I32", (in_features * bits // 32, out_features))
    qzeros = expect(tensors, base + ".qzeros", "I32", (groups, out_features * bits // 32))
    scales = expect(tensors, base + ".scales", "F16", (groups, out_features))
    g_idx = expect(tensors, base + ".g_idx", "I32", (in_features,)).astype(np.int64)
    if g_idx.min() < 0 or g_idx.max() >= groups:
        raise CheckpointError(f"{base}.g_idx has entries outside [0, {groups})")
    trivial = (np.arange(in_features) // (in_features if group_size == -1 else group_size))
    if not desc_act and not np.array_equal(g_idx, trivial):
        raise CheckpointError(f"{base}.g_idx is not i // group_size but desc_act is false: "
                              "v1 kernels would ignore it")
    q = unpack(qweight, bits).astype(np.int64)              # [in, out]
    z = unpack(qzeros.T.copy(), bits).T.astype(np.int64)    # [groups, out]
    zero = z + 1                                            # v1: no wrap
    s = scales.astype(np.float32)
    # float32 scale * float32 (code - zero), both exactly representable: one rounding.
    w = s[g_idx, :] * (q - zero[g_idx, :]).astype(np.float32)   # [in, out]
    all_ones = int(np.count_nonzero(z == (1 << bits) - 1))
    return np.ascontiguousarray(w.T, dtype=np.float32), all_ones


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out")
    mode.add_argument("--expected")
    ap.add_argument("--source")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--zeros-report", action="store_true")
    args = ap.parse_args()

    try:
        with open(os.path.join(args.checkpoint, "config.json")) as f:
            qc = json.load(f)["quantization_config"]
        if qc.get("quant_method") != "gptq" or qc.get("checkpoint_format", "gptq") != "gptq":
            raise CheckpointError(f"not a GPTQ v1 checkpoint: {qc}")
        qc = {"bits": int(qc["bits"]), "group_size": int(qc["group_size"]),
              "desc_act": bool(qc.get("desc_act", False))}
        tensors = read_checkpoint(args.checkpoint)
        bases = linear_bases(tensors)
        if not bases:
            raise CheckpointError("no quantized linears")
        ok = True
        if args.source:
            problems, copied = check_source(tensors, args.source, bases, GPTQ_SUFFIXES)
            for p in problems:
                print("source mismatch:", p)
            ok = ok and not problems
            print(f"copied_tensors {copied} identical" if not problems else "copied_tensors differ")
        worst = 0.0
        if args.expected:
            files = {f[:-4] for f in os.listdir(args.expected) if f.endswith(".f32")}
            for extra in sorted(files - set(bases)):
                print(f"expected file {extra}.f32 has no quantized linear in the checkpoint")
                ok = False
        total_all_ones = 0
        for base in bases:
            w, all_ones = dequantize(tensors, base, qc)
            total_all_ones += all_ones
            if args.zeros_report and all_ones:
                print(f"zeros_all_ones {base} {all_ones}")
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
            diff = float(np.max(np.abs(want.reshape(w.shape).astype(np.float64) - w)))
            worst = max(worst, diff)
            if not diff <= args.tol:
                ok = False
                bad = np.abs(want.reshape(w.shape) - w) > args.tol
                o, i = np.argwhere(bad)[0]
                print(f"{base}: max_abs_diff {diff:.9g} at {np.count_nonzero(bad)} entries, "
                      f"first [{o}, {i}]: decoded {w[o, i]!r} expected "
                      f"{want.reshape(w.shape)[o, i]!r}")
        print(f"modules {len(bases)}")
        print(f"zeros_all_ones_total {total_all_ones}")
        if args.expected:
            print(f"max_abs_diff {worst:.9g}")
        print("OK" if ok else "MISMATCH")
        return 0 if ok else 1
    except (CheckpointError, KeyError, ValueError, OSError) as e:
        print(f"error: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
