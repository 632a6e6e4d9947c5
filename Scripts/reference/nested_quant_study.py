#!/usr/bin/env python3
"""Compares the two nested (matryoshka) expert quantizations of DESIGN.md §4 on a trained checkpoint,
by perplexity computed with Hugging Face transformers (the reference implementation).

  bit truncation (Sparrow's default): one 8-bit code per weight on a per-group grid
      d = (max - min) / 240, m = min - 7.5 d (f16); the b-bit level keeps the top b bits and
      reconstructs at the centre of its bucket. Bits/weight: b + 32/group.
  base + residual sign planes (D²MoE's MWQ): a per-group asymmetric 2-bit base, then 1-bit planes
      sign(W - Ŵ) each with its own per-group f16 scale; the b-bit level is the base + (b - 2) planes. Bits/weight: b + (32 + 16 (b - 2)) / group.
      Scales fitted by least squares: on the weights (mean |r|), or on calibration activations
      (diagonal of E[x xᵀ] of each expert's input, gathered on the first windows of the text, which
      the perplexity then still counts: a slight advantage to this variant).

Only expert weights are quantized; everything else stays as stored (bf16, upcast to fp32).
Perplexity follows the fixture's eval.json protocol (non-overlapping windows, each from position 0).

  python nested_quant_study.py CHECKPOINT_DIR [--group 64] [--windows N] [--json OUT]
"""
import argparse
import json
import os
import re
import shutil
import tempfile
import time

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

EXPERT = re.compile(r"layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight$")


def to_f16(x):
    return x.to(torch.float16).to(torch.float32)


def truncation(w, bits, group):
    r, c = w.shape
    g = w.reshape(r, c // group, group)
    lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
    d = to_f16((hi - lo) / 240)
    m = to_f16(lo - 7.5 * d)
    inv = torch.where(d > 0, 1 / d, torch.zeros_like(d))
    q = torch.clamp(torch.round((g - m) * inv), 0, 255)
    step = float(1 << (8 - bits))
    top = torch.floor(q / step) * step
    return (m + d * (top + (step - 1) * 0.5)).reshape(r, c)


def residual_planes(w, bits, group, h=None):
    """D²MoE: asymmetric 2-bit base + (bits - 2) sign planes with fitted per-group scales.
    h: per-column weights (diagonal of the input second moment) for output-aware scale fitting."""
    r, c = w.shape
    g = w.reshape(r, c // group, group)
    lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
    s = to_f16((hi - lo) / 3)
    lo = to_f16(lo)
    inv = torch.where(s > 0, 1 / s, torch.zeros_like(s))
    approx = lo + s * torch.clamp(torch.round((g - lo) * inv), 0, 3)
    hw = None if h is None else h.reshape(1, c // group, group)
    for _ in range(bits - 2):
        res = g - approx
        sign = torch.where(res >= 0, 1.0, -1.0)
        if hw is None:
            alpha = res.abs().mean(-1, keepdim=True)
        else:
            alpha = (hw * res.abs()).sum(-1, keepdim=True) / hw.sum(-1, keepdim=True).clamp_min(1e-12)
        approx = approx + to_f16(alpha) * sign
    return approx.reshape(r, c)


def bits_per_weight(method, bits, group):
    return bits + (32 if method == "truncation" else 32 + 16 * (bits - 2)) / group


def perplexity(model, tokens, window, windows):
    nll, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, windows, 16):
            ids = torch.tensor(
                np.stack([tokens[i * window:(i + 1) * window] for i in range(start, min(windows, start + 16))]),
                dtype=torch.long)
            logits = model(ids).logits.float()
            lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])
            nll -= lp.sum().item()
            count += lp.numel()
    return float(np.exp(nll / count))


def expert_input_moments(model, tokens, window, windows):
    """E[x²] per input column of each expert's gate/up (routed tokens) and down projections."""
    moments = {}
    cfg = model.config
    top_k = cfg.num_experts_per_tok
    hooks = []

    def on_moe(layer):
        def hook(module, args):
            x = args[0].reshape(-1, args[0].shape[-1]).float()
            router = module.gate
            logits = torch.nn.functional.linear(x, router.weight)
            picked = logits.topk(top_k, -1).indices
            state = dict(model.state_dict_cache[layer])
            for e in range(cfg.num_experts):
                rows = (picked == e).any(-1)
                if not rows.any():
                    continue
                xe = x[rows]
                gate, up, down = state[e]
                inter = torch.nn.functional.silu(xe @ gate.T) * (xe @ up.T)
                for name, v in (("gate", xe), ("up", xe), ("down", inter)):
                    key = (layer, e, name)
                    s, n = moments.get(key, (0, 0))
                    moments[key] = (s + (v * v).sum(0), n + v.shape[0])
        return hook

    for i, layer in enumerate(model.model.layers):
        hooks.append(layer.mlp.register_forward_pre_hook(on_moe(i)))
    perplexity(model, tokens, window, windows)
    for h in hooks:
        h.remove()
    return {k: s / max(n, 1) for k, (s, n) in moments.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--group", type=int, default=64)
    ap.add_argument("--windows", type=int, default=0, help="0 = all")
    ap.add_argument("--calibration-windows", type=int, default=32)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    meta = json.load(open(os.path.join(a.checkpoint, "eval.json")))["eval"]
    window = meta["window_len"]
    tokens = np.load(os.path.join(a.checkpoint, "eval-tokens.npy")).astype(np.int64)
    windows = a.windows or len(tokens) // window
    weights = {k: v.float() for k, v in load_file(os.path.join(a.checkpoint, "model.safetensors")).items()}
    experts = {k: EXPERT.search(k).groups() for k in weights if EXPERT.search(k)}

    work = tempfile.mkdtemp(prefix="nested-quant-")
    for f in os.listdir(a.checkpoint):
        if f.endswith(".json") and f != "eval.json":
            shutil.copy(os.path.join(a.checkpoint, f), work)

    def load(variant):
        save_file({k: v.contiguous() for k, v in variant.items()}, os.path.join(work, "model.safetensors"))
        return AutoModelForCausalLM.from_pretrained(work, dtype=torch.float32).eval()

    results = []

    def run(name, method, bits, quantize):
        t = time.time()
        variant = dict(weights)
        err, norm = 0.0, 0.0
        for k, (layer, e, proj) in experts.items():
            q = quantize(weights[k], int(layer), int(e), proj)
            err += float(((q - weights[k]) ** 2).sum())
            norm += float((weights[k] ** 2).sum())
            variant[k] = q
        ppl = perplexity(load(variant), tokens, window, windows)
        row = dict(name=name, method=method, bits=bits, bits_per_weight=bits_per_weight(method, bits, a.group) if bits else 16,
                   perplexity=round(ppl, 4), relative_weight_rmse=round((err / norm) ** 0.5, 5) if norm else 0.0)
        results.append(row)
        print(json.dumps(row), f"({time.time() - t:.0f} s)", flush=True)

    run("bf16", "none", 0, lambda w, *_: w)
    for bits in (2, 4, 8):
        run(f"truncation {bits}", "truncation", bits, lambda w, *_, b=bits: truncation(w, b, a.group))
    for bits in (2, 4, 8):
        run(f"residual {bits} (weight fit)", "residual", bits, lambda w, *_, b=bits: residual_planes(w, b, a.group))

    # Output-aware scale fitting: second moments of each expert's inputs on calibration windows.
    model = load(weights)
    by_layer = {}
    for k, (layer, e, proj) in experts.items():
        by_layer.setdefault(int(layer), {}).setdefault(int(e), {})[proj] = weights[k]
    model.state_dict_cache = {l: {e: (p["gate"], p["up"], p["down"]) for e, p in es.items()} for l, es in by_layer.items()}
    h = expert_input_moments(model, tokens, window, min(windows, a.calibration_windows))
    for bits in (4, 8):
        run(f"residual {bits} (calibration fit)", "residual", bits,
            lambda w, layer, e, proj, b=bits: residual_planes(w, b, a.group, h.get((layer, e, proj))))
    shutil.rmtree(work)
    if a.json:
        json.dump(dict(checkpoint=a.checkpoint, group=a.group, windows=windows, results=results), open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
