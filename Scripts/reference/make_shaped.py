#!/usr/bin/env python3
"""A random-weight Qwen3-MoE checkpoint with the *shape* of a big MoE at tiny width: as many layers,
experts and experts per token as the real model (default 48 layers × 128 experts top-8, like
Qwen3-30B-A3B: 6 144 expert records), each small. It checks that nothing in the converter, the
format, the directory, the cache or the scheduler grows faster than the number of records
(docs/FORMAT.md; RESULTS.md has the timings). numpy only; bf16 tensors, one expert per tensor as the
hub stores Qwen3-MoE; the demo model's tokenizer.

    python3 Scripts/reference/make_shaped.py OUT_DIR [--layers 48] [--experts 128] [--top-k 8]
        [--hidden 64] [--moe-intermediate 64] [--seed 1]
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "Models", "tiny-qwen3moe")


def bf16(x):
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16).tobytes()


def tensors(args, rng):
    """(name, shape, bytes) in file order."""
    h, hd, heads, kv = args.hidden, args.head_dim, args.heads, args.kv_heads
    vocab, inter = args.vocab, args.moe_intermediate

    def normal(*shape, std=0.02):
        return bf16(rng.standard_normal(shape, dtype=np.float32) * std)

    def ones(n):
        return bf16(np.ones(n, dtype=np.float32))

    yield "model.embed_tokens.weight", [vocab, h], normal(vocab, h)
    for l in range(args.layers):
        p = f"model.layers.{l}."
        yield p + "input_layernorm.weight", [h], ones(h)
        yield p + "post_attention_layernorm.weight", [h], ones(h)
        yield p + "self_attn.q_proj.weight", [heads * hd, h], normal(heads * hd, h)
        yield p + "self_attn.k_proj.weight", [kv * hd, h], normal(kv * hd, h)
        yield p + "self_attn.v_proj.weight", [kv * hd, h], normal(kv * hd, h)
        yield p + "self_attn.o_proj.weight", [h, heads * hd], normal(h, heads * hd)
        yield p + "self_attn.q_norm.weight", [hd], ones(hd)
        yield p + "self_attn.k_norm.weight", [hd], ones(hd)
        # A router with a spread of preferences, so routing uses many experts.
        yield p + "mlp.gate.weight", [args.experts, h], normal(args.experts, h, std=0.5)
        for e in range(args.experts):
            q = f"{p}mlp.experts.{e}."
            yield q + "gate_proj.weight", [inter, h], normal(inter, h, std=0.1)
            yield q + "up_proj.weight", [inter, h], normal(inter, h, std=0.1)
            yield q + "down_proj.weight", [h, inter], normal(h, inter, std=0.1)
    yield "model.norm.weight", [h], ones(h)
    yield "lm_head.weight", [vocab, h], normal(vocab, h)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=48)
    ap.add_argument("--experts", type=int, default=128)
    ap.add_argument("--top-k", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--moe-intermediate", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    with open(os.path.join(DEMO, "config.json")) as f:
        base = json.load(f)
    args.vocab = base["vocab_size"]
    os.makedirs(args.out, exist_ok=True)
    config = dict(base)
    config.update(
        hidden_size=args.hidden, num_hidden_layers=args.layers, num_experts=args.experts,
        num_experts_per_tok=args.top_k, moe_intermediate_size=args.moe_intermediate,
        intermediate_size=4 * args.hidden, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        head_dim=args.head_dim, mlp_only_layers=[], decoder_sparse_step=1)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(DEMO, name), args.out)

    rng = np.random.default_rng(args.seed)
    header, offset, blobs = {}, 0, []
    for name, shape, data in tensors(args, rng):
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    meta = json.dumps(header, separators=(",", ":")).encode()
    meta += b" " * (-len(meta) % 8)
    with open(os.path.join(args.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(meta)) + meta)
        for b in blobs:
            f.write(b)
    records = args.layers * args.experts
    print(f"{args.out}: {args.layers} layers × {args.experts} experts top-{args.top_k} "
          f"({records} expert records), {offset / 2**20:.1f} MiB of bf16")


if __name__ == "__main__":
    main()
