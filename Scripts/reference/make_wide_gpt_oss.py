#!/usr/bin/env python3
"""A gpt-oss checkpoint in the hub's MXFP4 layout with wide random weights: the gpt-oss fixture's
layout, heads and tokenizer at hidden size `--hidden`, with `--experts` random experts of
`--intermediate` neurons stored as MXFP4 `*_blocks`/`*_scales` as the hub ships gpt-oss. For the speed of the MXFP4 level against the uniform levels at a realistic expert size
(Benchmarks/RESULTS.md); the model computes nothing meaningful.

    python3 Scripts/reference/make_wide_gpt_oss.py OUT_DIR [--hidden 1024] [--intermediate 2048]
        [--experts 16] [--seed 1]
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch
from safetensors import safe_open

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(ROOT, "Tests", "SparrowTests", "Fixtures", "variants", "gpt_oss_mxfp4")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxfp4  # noqa: E402


def bf16(x):
    """float32 -> bf16 bit patterns (round to nearest even) as uint16."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--intermediate", type=int, default=2048)
    ap.add_argument("--experts", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    with open(os.path.join(SOURCE, "config.json")) as f:
        config = json.load(f)
    assert config["hidden_size"] == 128
    h, i, e = a.hidden, a.intermediate, a.experts
    config.update(hidden_size=h, intermediate_size=i, num_local_experts=e, num_experts_per_tok=min(4, e))
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(SOURCE, name), a.out)
    rng = np.random.default_rng(a.seed)
    tensors = {}
    with safe_open(os.path.join(SOURCE, "model.safetensors"), "pt") as src:
        for name in src.keys():
            if ".mlp.experts." in name or ".mlp.router." in name:
                continue
            # bf16 tensors travel as their bit patterns (numpy has no bf16); a new hidden size
            # gives every tensor of that dimension random values of its new shape.
            t = src.get_tensor(name).view(torch.int16).numpy().view(np.uint16)
            # The fixture's hidden size is 128, and no other of its dimensions is (asserted above).
            shape = [h if n == 128 else n for n in t.shape]
            if list(t.shape) != shape:
                if name.endswith("norm.weight"):
                    t = bf16(np.ones(shape, dtype=np.float32))
                elif name.endswith(".bias"):
                    t = bf16(np.zeros(shape, dtype=np.float32))
                else:
                    t = bf16(rng.standard_normal(shape, dtype=np.float32) * 0.02)
            tensors[name] = t
    for l in range(config["num_hidden_layers"]):
        p = f"model.layers.{l}.mlp."
        tensors[p + "router.weight"] = bf16(rng.standard_normal((e, h), dtype=np.float32) * 0.5)
        tensors[p + "router.bias"] = bf16(np.zeros(e, dtype=np.float32))
        for part, shape, std in (("gate_up_proj", (2 * i, h), 1 / np.sqrt(h)), ("down_proj", (h, i), 1 / np.sqrt(i))):
            pieces = [mxfp4.quantize(rng.standard_normal(shape, dtype=np.float32) * std) for _ in range(e)]
            tensors[p + f"experts.{part}_blocks"] = np.stack([b for b, _ in pieces])
            tensors[p + f"experts.{part}_scales"] = np.stack([s for _, s in pieces])
        tensors[p + "experts.gate_up_proj_bias"] = bf16(np.zeros((e, 2 * i), dtype=np.float32))
        tensors[p + "experts.down_proj_bias"] = bf16(np.zeros((e, h), dtype=np.float32))
    path = os.path.join(a.out, "model.safetensors")
    write(path, tensors)
    print(f"{a.out}: gpt-oss, {config['num_hidden_layers']} layers × {e} experts of {i} (MXFP4), "
          f"{os.path.getsize(path) / 2**20:.1f} MiB")


def write(path, tensors):
    """A safetensors file: uint16 arrays are bf16 bit patterns, uint8 arrays U8."""
    header, offset = {}, 0
    for k, v in tensors.items():
        header[k] = {"dtype": "BF16" if v.dtype == np.uint16 else "U8", "shape": list(v.shape),
                     "data_offsets": [offset, offset + v.nbytes]}
        offset += v.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for v in tensors.values():
            f.write(np.ascontiguousarray(v).tobytes())


if __name__ == "__main__":
    main()
