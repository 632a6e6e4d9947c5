#!/usr/bin/env python3
"""Trains a small model of a fixture's architecture on the demo's text, for measurements that a
random-init model cannot give (what quantization costs a trained model: random-init models are
near-uniform, their routers sit on near ties, and every perturbation shows).

The fixture gives the architecture (its config.json, with the standard initializer range) and the
tokenizer; the text is the demo's held-out Python documentation, cut in two: the first
`1 - held_out` of it to train on, the rest never seen in training. OUT gets the checkpoint (f32
safetensors, transformers' layout), the fixture's tokenizer files, `held-out.npy` (the held-out
text's token ids), `samples.npy` (texts the trained model sampled itself, one per row) and
`train.json` (steps, losses, the held-out perplexity transformers computes).
gpt-oss: with --mxfp4-experts the trained experts are put on the MXFP4 grid afterwards, as the hub
ships them (the float reference is then that model).

  python3 Scripts/reference/train_tiny.py Tests/SparrowTests/Fixtures/gpt_oss out/trained-gpt-oss \\
      --steps 600 --mxfp4-experts
"""
import argparse
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import tokenizers
import torch
from transformers import AutoConfig, AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from family_fixtures import deepseek_prepare, experts_on_mxfp4_grid  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXT = os.path.join(ROOT, "Models", "tiny-qwen3moe", "eval-text.txt")


def held_out_perplexity(model, ids, window):
    """exp of the mean next-token loss over non-overlapping windows of `window` tokens."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(ids) - 1, window):
            chunk = torch.tensor(ids[s:s + window + 1])[None]
            if chunk.shape[1] < 2:
                break
            logits = model(chunk[:, :-1]).logits[0].double()
            total += torch.nn.functional.cross_entropy(logits, chunk[0, 1:], reduction="sum").item()
            count += chunk.shape[1] - 1
    model.train()
    return math.exp(total / count)


def sample_windows(model, held, count, length, seed):
    """`count` texts of `length` tokens the model samples itself at temperature 1 (no top-k/p),
    each after one held-out token: the text on which a perturbed model's perplexity can only
    rise in expectation (its excess is the KL divergence from the float model)."""
    model.eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        starts = torch.tensor(held[:count * 97:97][:count])[:, None]
        out = model.generate(starts, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=length - 1,
                             min_new_tokens=length - 1, pad_token_id=0)
    return out.numpy().astype(np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("fixture")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--held-out", type=float, default=0.1, help="share of the text kept out of training")
    ap.add_argument("--eval-tokens", type=int, default=0, help="held-out tokens saved and scored (0: all)")
    ap.add_argument("--mxfp4-experts", action="store_true")
    ap.add_argument("--samples", type=int, default=8, help="self-sampled texts saved as samples.npy")
    ap.add_argument("--sample-length", type=int, default=512)
    ap.add_argument("--sample-only", action="store_true", help="sample from the model already in OUT")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.sample_only:
        model = AutoModelForCausalLM.from_pretrained(a.out, dtype=torch.float32)
        held = np.load(os.path.join(a.out, "held-out.npy"))
        np.save(os.path.join(a.out, "samples.npy"), sample_windows(model, held, a.samples, a.sample_length, a.seed))
        return
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    tok = tokenizers.Tokenizer.from_file(os.path.join(a.fixture, "tokenizer.json"))
    text = open(TEXT, encoding="utf-8").read()
    cut = int(len(text) * (1 - a.held_out))
    cut = text.index("\n", cut) + 1  # at a line break, so no token straddles the cut
    train = np.array(tok.encode(text[:cut], add_special_tokens=False).ids, dtype=np.int64)
    held = np.array(tok.encode(text[cut:], add_special_tokens=False).ids, dtype=np.int64)
    held = held[:a.eval_tokens] if a.eval_tokens > 0 else held

    cfg = AutoConfig.from_pretrained(a.fixture)
    cfg.initializer_range = 0.02
    cfg.output_router_logits = True  # the load-balancing loss keeps every expert in use
    cfg.dtype = "float32"
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    if hasattr(cfg, "n_group"):
        deepseek_prepare(model)  # V3's correction bias is not learned by gradient: keep it non-zero
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(s, a.steps) / a.steps)))
    losses, start = [], time.time()
    for step in range(a.steps):
        starts = rng.integers(0, len(train) - a.seq - 1, a.batch)
        x = torch.from_numpy(np.stack([train[s:s + a.seq + 1] for s in starts]))
        out = model(x[:, :-1])
        loss = torch.nn.functional.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]), x[:, 1:].reshape(-1))
        aux = getattr(out, "aux_loss", None)
        opt.zero_grad()
        (loss if aux is None else loss + cfg.router_aux_loss_coef * aux).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == a.steps - 1:
            print(f"step {step:5d}  loss {np.mean(losses[-50:]):.3f}  {time.time() - start:.0f} s", flush=True)

    if a.mxfp4_experts:
        experts_on_mxfp4_grid(model)
    model.config.output_router_logits = False
    ppl = held_out_perplexity(model, held.tolist(), 512)
    print(f"held-out perplexity (transformers, f32, windows of 512): {ppl:.4f}")
    shutil.rmtree(a.out, ignore_errors=True)
    model.save_pretrained(a.out, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(a.fixture, f)):
            shutil.copy(os.path.join(a.fixture, f), a.out)
    np.save(os.path.join(a.out, "held-out.npy"), held)
    np.save(os.path.join(a.out, "samples.npy"), sample_windows(model, held, a.samples, a.sample_length, a.seed))
    json.dump(dict(fixture=os.path.basename(a.fixture.rstrip("/")), steps=a.steps, seq=a.seq, batch=a.batch,
                   lr=a.lr, train_tokens=int(len(train)), final_loss=float(np.mean(losses[-50:])),
                   held_out_tokens=int(len(held)), held_out_perplexity=ppl, mxfp4_experts=a.mxfp4_experts,
                   seconds=time.time() - start),
              open(os.path.join(a.out, "train.json"), "w"), indent=1)


if __name__ == "__main__":
    sys.exit(main())
