#!/usr/bin/env python3
"""Independent decoder of GPTQ v1 packed tensors, written the way AutoGPTQ's
qlinear_cuda_old dequantizes them (shift tables, 3-bit words stitched by hand, zeros + 1).

Usage: decode_gptq.py DIR [DIR ...]

Each DIR holds meta.json {"bits", "in_features", "out_features", "groups"} and raw little-endian
blobs qweight.bin (int32 [in*bits/32, out]), qzeros.bin (int32 [groups, out*bits/32]),
scales.bin (float32 [groups, out]) and g_idx.bin (int32 [in]). Writes codes.bin (int32
[out, in]), zeros.bin (int32 [groups, out], the stored field + 1, no wrap, as v1 kernels
read it) and weight.bin (float32 [out, in] = scales[g_idx] * (codes - zeros)).
"""
import json
import os
import sys

import numpy as np

# AutoGPTQ's shift table for 3 bits: 32 values over 3 words, two of them straddling words.
WF3 = np.array([[0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 0],
                [0, 1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31],
                [0, 2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 0]], dtype=np.int32)


def unpack_along_rows(packed, bits):
    """packed: int32 [words, cols] -> int32 [words*32/bits, cols], lowest bits first."""
    words, cols = packed.shape
    if bits in (2, 4, 8):
        wf = np.arange(0, 32, bits, dtype=np.int32)            # [32/bits]
        w = packed[:, None, :] >> wf[None, :, None]            # arithmetic shift, like torch
        return (w & ((1 << bits) - 1)).reshape(words * (32 // bits), cols)
    if bits == 3:
        w = packed.reshape(words // 3, 3, 1, cols)
        w = np.broadcast_to(w, (words // 3, 3, 12, cols)) >> WF3[None, :, :, None]
        w = w & 0x7
        w[:, 0, 10] = (w[:, 0, 10] & 0x3) | ((w[:, 1, 0] << 2) & 0x4)
        w[:, 1, 11] = (w[:, 1, 11] & 0x1) | ((w[:, 2, 0] << 1) & 0x6)
        w = w & 0x7
        return np.concatenate([w[:, 0, :11], w[:, 1, 1:12], w[:, 2, 1:11]], axis=1).reshape(
            words // 3 * 32, cols)
    raise ValueError(f"unsupported bits {bits}")


def decode(d):
    meta = json.load(open(os.path.join(d, "meta.json")))
    bits, n_in, n_out, groups = (meta["bits"], meta["in_features"], meta["out_features"],
                                 meta["groups"])
    qweight = np.fromfile(os.path.join(d, "qweight.bin"), dtype="<i4").reshape(
        n_in * bits // 32, n_out)
    qzeros = np.fromfile(os.path.join(d, "qzeros.bin"), dtype="<i4").reshape(
        groups, n_out * bits // 32)
    scales = np.fromfile(os.path.join(d, "scales.bin"), dtype="<f4").reshape(groups, n_out)
    g_idx = np.fromfile(os.path.join(d, "g_idx.bin"), dtype="<i4")

    codes = unpack_along_rows(qweight, bits)                      # [in, out]
    zeros = unpack_along_rows(np.ascontiguousarray(qzeros.T), bits).T + 1  # [groups, out]
    weight = scales[g_idx] * (codes - zeros[g_idx]).astype(np.float32)     # [in, out]

    codes.T.astype("<i4").tofile(os.path.join(d, "codes.bin"))
    np.ascontiguousarray(zeros).astype("<i4").tofile(os.path.join(d, "zeros.bin"))
    np.ascontiguousarray(weight.T).astype("<f4").tofile(os.path.join(d, "weight.bin"))


if __name__ == "__main__":
    for directory in sys.argv[1:]:
        decode(directory)
