#!/usr/bin/env python3
"""Writes the seed corpus of safetensors_header_fuzzer: a few tiny, valid safetensors files
(plus two near-misses) covering every dtype, scalars, empty tensors and metadata.
Run from anywhere; the files land next to this script in safetensors/."""
import json
import os
import struct

DTYPE_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
              "U8": 1, "BOOL": 1}


def image(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, data bytes or None for a counting pattern)."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, payload in tensors:
        numel = 1
        for d in shape:
            numel *= d
        if payload is None:
            payload = bytes((i * 37 + 11) % 256 for i in range(numel * DTYPE_SIZE[dtype]))
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def seeds():
    f32 = struct.pack("<4f", 1.0, -2.5, 0.125, 3.0e-3)
    yield "f32_matrix", image([("w", "F32", [2, 2], f32)], {"format": "pt"})
    yield "half_types", image([
        ("model.embed_tokens.weight", "BF16", [4, 3], None),
        ("model.norm.weight", "F16", [3], struct.pack("<3H", 0x3C00, 0x7BFF, 0x0001)),
    ], {"format": "pt"})
    yield "all_dtypes", image([(f"t.{d.lower()}", d, [2], None) for d in DTYPE_SIZE])
    yield "scalar_and_empty", image([
        ("scalar", "F64", [], struct.pack("<d", 0.5)),
        ("empty", "I32", [0, 3], b""),
        ("mask", "BOOL", [3], b"\x00\x01\x00"),
    ], pad=False)
    yield "layer", image([
        ("model.layers.0.self_attn.q_proj.weight", "BF16", [2, 4], None),
        ("model.layers.0.self_attn.k_proj.weight", "BF16", [1, 4], None),
        ("model.layers.0.mlp.down_proj.weight", "BF16", [4, 2], None),
    ], {"format": "pt", "quant": "none"})
    # Near-misses: a hole between two tensors and a non-string metadata value.
    good = image([("a", "U8", [4], b"abcd"), ("b", "U8", [2], b"ef")])
    yield "bad_hole", good.replace(b'"data_offsets":[4,6]', b'"data_offsets":[5,7]') + b"g"
    yield "bad_metadata", image([("a", "I8", [1], b"\x7f")], {"n": "1"}).replace(b'"1"', b'1  ')


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "safetensors")
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(out, name + ".safetensors"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
