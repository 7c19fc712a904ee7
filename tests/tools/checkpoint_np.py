"""Reading safetensors checkpoints with json + numpy only, for the independent decoders
(decode_gptq_checkpoint.py, decode_compressed_tensors.py): raw tensors by name, shards joined
through model.safetensors.index.json, and the check that everything a quantized checkpoint did
not quantize is copied from its source unchanged."""
import json
import os
import struct

import numpy as np

DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # raw; bf16_to_f32 decodes it
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("u1"),
}


class CheckpointError(Exception):
    pass


def read_safetensors(path):
    """-> {name: (dtype_str, shape tuple, raw bytes)}"""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise CheckpointError(f"{path}: too short")
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype, shape = info["dtype"], tuple(info["shape"])
        if dtype not in DTYPES:
            raise CheckpointError(f"{path}: tensor {name}: unknown dtype {dtype}")
        if int(np.prod(shape, dtype=np.int64)) * DTYPES[dtype].itemsize != end - begin:
            raise CheckpointError(f"{path}: tensor {name}: byte range does not match shape")
        out[name] = (dtype, shape, data[begin:end])
    return out


def read_checkpoint(d):
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    else:
        shards = ["model.safetensors"]
    tensors = {}
    for s in shards:
        for name, t in read_safetensors(os.path.join(d, s)).items():
            if name in tensors:
                raise CheckpointError(f"{d}: tensor {name} appears twice")
            tensors[name] = t
    return tensors


def as_array(t):
    dtype, shape, raw = t
    return np.frombuffer(raw, dtype=DTYPES[dtype]).reshape(shape)


def bf16_to_f32(raw_u16):
    return (raw_u16.astype(np.uint32) << np.uint32(16)).view(np.float32)


def check_source(tensors, source_dir, bases, linear_suffixes):
    """Problems with `tensors` (a quantized checkpoint whose linears `bases` are stored as
    base + each of `linear_suffixes`) against the source checkpoint: every other tensor must
    be the source's, byte for byte, and none may be missing. -> (problems, tensors copied)"""
    src = read_checkpoint(source_dir)
    linear_parts = {b + s for b in bases for s in linear_suffixes}
    problems = []
    for b in bases:
        if b + ".weight" in tensors:
            problems.append(f"{b}.weight is still present next to the packed tensors")
        if b + ".weight" not in src:
            problems.append(f"{b} is not a linear of the source checkpoint")
    for name, t in tensors.items():
        if name in linear_parts:
            continue
        if name not in src:
            problems.append(f"tensor {name} is not in the source checkpoint")
        elif src[name] != t:
            problems.append(f"tensor {name} differs from the source ({t[0]} {list(t[1])} vs "
                            f"{src[name][0]} {list(src[name][1])})")
    packed = set(bases)
    for name in src:
        if name.endswith(".weight") and name[:-len(".weight")] in packed:
            continue
        if name not in tensors:
            problems.append(f"source tensor {name} is missing")
    return problems, len([n for n in tensors if n not in linear_parts])
