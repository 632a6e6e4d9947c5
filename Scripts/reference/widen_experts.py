#!/usr/bin/env python3
"""Widens a trained MoE checkpoint's experts without changing what they compute, so that a small
trained model gets realistic expert sizes while keeping its trained routing.

    python3 Scripts/reference/widen_experts.py SRC DST --factor F [--noise 0.005] [--seed S]

Every SwiGLU expert neuron j (gate row g_j, up row u_j, down column d_j) becomes F neurons
c = 1..F: gate g_j (plus a tiny noise, `--noise` × the row's standard deviation, so no two rows are
byte-identical and a compressor finds nothing), up a_c·u_j and down (w_c / a_c)·d_j, with random
scales a_c > 0 (log-uniform in [1/2, 2]) and random shares w_c ≥ 0 summing to 1. Since
silu(g·x)·(a u·x)·(w/a) d = w · silu(g·x)(u·x) d, the copies add up to the original neuron's output
(exactly, but for the gate noise and the rounding of the stored type). The new rows are then
permuted inside each expert (down columns alike). The expert intermediate size grows F-fold in the
config; nothing else changes. Qwen2-MoE's shared expert is widened the same way.

Layouts: Qwen3-MoE, Qwen2-MoE (and its shared expert), OLMoE (`mlp.experts.E.{gate,up,down}_proj`),
Mixtral (`block_sparse_moe.experts.E.{w1,w3,w2}`), and fused expert tensors
(`mlp.experts.gate_up_proj` [E, 2I, H], `mlp.experts.down_proj` [E, H, I]). Types bf16, f16, f32,
kept as they are. Needs numpy only (safetensors files are read and written here); tensors are
processed one at a time, so memory stays near one expert's projections.
"""
import argparse
import json
import os
import re
import shutil
import struct
import sys

import numpy as np

DTYPES = {"BF16": 2, "F16": 2, "F32": 4}

# model_type → the config keys of the routed experts' and the shared expert's intermediate size.
INTERMEDIATE_KEYS = {
    "qwen3_moe": ("moe_intermediate_size", None),
    "qwen2_moe": ("moe_intermediate_size", "shared_expert_intermediate_size"),
    "olmoe": ("intermediate_size", None),
    "mixtral": ("intermediate_size", None),
}

# A projection's role from its name: (kind, role) with kind "expert" or "shared", role gate/up/down,
# or ("fused", "gate_up"/"down").
PATTERNS = [
    (re.compile(r"^model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight$"), "expert", None),
    (re.compile(r"^model\.layers\.(\d+)\.block_sparse_moe\.experts\.(\d+)\.(w1|w3|w2)\.weight$"), "expert",
     {"w1": "gate", "w3": "up", "w2": "down"}),
    (re.compile(r"^model\.layers\.(\d+)\.mlp\.shared_expert\.(gate|up|down)_proj\.weight$"), "shared", None),
    (re.compile(r"^model\.layers\.(\d+)\.mlp\.experts\.(gate_up|down)_proj$"), "fused", None),
]


def role(name):
    """(kind, layer, expert, projection) for an expert tensor, None for any other tensor."""
    for pattern, kind, rename in PATTERNS:
        m = pattern.match(name)
        if not m:
            continue
        if kind == "expert":
            proj = m.group(3)
            return kind, int(m.group(1)), int(m.group(2)), rename[proj] if rename else proj
        if kind == "shared":
            return kind, int(m.group(1)), -1, m.group(2)
        return kind, int(m.group(1)), None, m.group(2)
    return None


def read_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return header, 8 + n


def to_f32(raw, dtype):
    if dtype == "BF16":
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    if dtype == "F16":
        return raw.view(np.float16).astype(np.float32)
    return raw.view(np.float32).copy()


def from_f32(x, dtype):
    x = np.ascontiguousarray(x, dtype=np.float32)
    if dtype == "BF16":
        u = x.view(np.uint32)
        rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # round to nearest even
        return rounded.astype(np.uint16).tobytes()
    if dtype == "F16":
        return x.astype(np.float16).tobytes()
    return x.tobytes()


class Widening:
    """The random choices for one expert (layer, expert): per original neuron F scales and shares,
    the permutation of the F·I new neurons, and the gate noise generator; the same whichever of
    the expert's projections asks first."""

    def __init__(self, seed, layer, expert, intermediate, factor):
        rng = np.random.default_rng([seed, layer, expert + 1])
        self.factor = factor
        self.scale = np.exp(rng.uniform(np.log(0.5), np.log(2.0), size=(intermediate, factor))).astype(np.float32)
        self.share = rng.dirichlet(np.ones(factor), size=intermediate).astype(np.float32)
        self.order = rng.permutation(intermediate * factor)
        self.noise_seed = int(rng.integers(1 << 62))

    def rows(self, m, multiplier):
        """`m` [I, H] → [F·I, H]: row j copied F times, copy c times multiplier[j, c], permuted."""
        out = m[:, None, :] * multiplier[:, :, None]
        return out.reshape(-1, m.shape[1])[self.order]

    def gate(self, g, noise):
        out = self.rows(g, np.ones_like(self.scale))
        if noise > 0:
            rng = np.random.default_rng(self.noise_seed)
            std = g.std(axis=1, keepdims=True)
            out += (noise * np.repeat(std, self.factor, axis=0)[self.order]
                    * rng.standard_normal(out.shape).astype(np.float32))
        return out

    def up(self, u):
        return self.rows(u, self.scale)

    def down(self, d):
        return self.rows(d.T, self.share / self.scale).T


def widen(kind_role, x, args, cache):
    kind, layer, expert, proj = kind_role
    if kind == "fused":
        experts = x.shape[0]
        out = []
        for e in range(experts):
            if proj == "gate_up":
                i = x.shape[1] // 2
                w = cache(layer, e, i)
                out.append(np.concatenate([w.gate(x[e, :i], args.noise), w.up(x[e, i:])], axis=0))
            else:
                w = cache(layer, e, x.shape[2])
                out.append(w.down(x[e]))
        return np.stack(out)
    intermediate = x.shape[1] if proj == "down" else x.shape[0]
    w = cache(layer, expert, intermediate)
    return {"gate": lambda: w.gate(x, args.noise), "up": lambda: w.up(x), "down": lambda: w.down(x)}[proj]()


def widened_shape(kind_role, shape, factor):
    kind, _, _, proj = kind_role
    if kind == "fused":
        return [shape[0], shape[1] * factor, shape[2]] if proj == "gate_up" else [shape[0], shape[1], shape[2] * factor]
    return [shape[0], shape[1] * factor] if proj == "down" else [shape[0] * factor, shape[1]]


def widen_file(src, dst, args):
    header, data_start = read_header(src)
    meta = header.pop("__metadata__", None)
    names = sorted(header, key=lambda n: header[n]["data_offsets"][0])
    out_header, offset = {}, 0
    for name in names:
        info = header[name]
        if info["dtype"] not in DTYPES:
            raise SystemExit(f"{src}: tensor {name} has dtype {info['dtype']} (bf16, f16 or f32 only)")
        r = role(name)
        shape = widened_shape(r, info["shape"], args.factor) if r else info["shape"]
        size = int(np.prod(shape)) * DTYPES[info["dtype"]]
        out_header[name] = {"dtype": info["dtype"], "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    if meta is not None:
        out_header["__metadata__"] = meta
    blob = json.dumps(out_header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    widenings = {}

    def cache(layer, expert, intermediate):
        key = (layer, expert)
        if key not in widenings:
            widenings.clear()  # tensors come expert by expert: keep one
            widenings[key] = Widening(args.seed, layer, expert, intermediate, args.factor)
        return widenings[key]

    with open(src, "rb") as f, open(dst, "wb") as out:
        out.write(struct.pack("<Q", len(blob)) + blob)
        for name in names:
            info = header[name]
            start, end = info["data_offsets"]
            f.seek(data_start + start)
            raw = np.frombuffer(f.read(end - start), dtype=np.uint8)
            r = role(name)
            if r is None:
                out.write(raw.tobytes())
                continue
            x = to_f32(raw, info["dtype"]).reshape(info["shape"])
            out.write(from_f32(widen(r, x, args, cache), info["dtype"]))
    return offset


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--factor", type=int, required=True, help="copies of each expert neuron (≥ 2)")
    p.add_argument("--noise", type=float, default=0.005, help="gate noise, times the row's standard deviation")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.factor < 2:
        raise SystemExit("--factor must be at least 2")
    config_path = os.path.join(args.src, "config.json")
    with open(config_path) as f:
        config = json.load(f)
    model_type = config.get("model_type")
    if model_type not in INTERMEDIATE_KEYS:
        raise SystemExit(f"{config_path}: model_type {model_type!r} is not one of {', '.join(INTERMEDIATE_KEYS)}")
    if os.path.exists(args.dst) and os.listdir(args.dst):
        raise SystemExit(f"{args.dst} exists and is not empty")
    os.makedirs(args.dst, exist_ok=True)
    shards = sorted(n for n in os.listdir(args.src) if n.endswith(".safetensors"))
    if not shards:
        raise SystemExit(f"{args.src}: no .safetensors files")
    widened = 0
    total = 0
    for n in shards:
        total += widen_file(os.path.join(args.src, n), os.path.join(args.dst, n), args)
        header, _ = read_header(os.path.join(args.src, n))
        widened += sum(1 for name in header if name != "__metadata__" and role(name))
    if widened == 0:
        raise SystemExit(f"{args.src}: no expert tensors of a known layout found")
    for n in os.listdir(args.src):
        source = os.path.join(args.src, n)
        if n.endswith(".safetensors") or n == "config.json" or not os.path.isfile(source):
            continue
        if n.endswith(".safetensors.index.json"):
            with open(source) as f:
                index = json.load(f)
            index.setdefault("metadata", {})["total_size"] = total
            with open(os.path.join(args.dst, n), "w") as f:
                json.dump(index, f, indent=2)
        else:
            shutil.copy(source, args.dst)
    routed, shared = INTERMEDIATE_KEYS[model_type]
    config[routed] *= args.factor
    if shared and config.get(shared):
        config[shared] *= args.factor
    with open(os.path.join(args.dst, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"{args.dst}: {widened} expert tensors widened {args.factor}×, {routed} = {config[routed]}", file=sys.stderr)


if __name__ == "__main__":
    main()
