#!/usr/bin/env python3
"""A large random-weight Qwen3-MoE checkpoint (about 1.7 GB in bf16) for bandwidth-bound benchmarks
and for measuring the converter's streaming. Random weights: its routing is degenerate rather than
trained — on real text a quarter of the expert bytes serve 93 % of expert uses and some experts are
never chosen (`sparrow profile`), so budgets of 25 % and more barely bind, and its next-layer
prediction (61 %) says little about a trained model's.

    venv/bin/python Scripts/reference/make_large.py OUT_DIR
"""
import os
import shutil
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(out):
    torch.manual_seed(4321)
    cfg = AutoConfig.for_model(
        model_type="qwen3_moe", architectures=["Qwen3MoeForCausalLM"], vocab_size=32000, hidden_size=1024,
        num_hidden_layers=12, num_attention_heads=16, num_key_value_heads=4, head_dim=64,
        num_experts=40, num_experts_per_tok=4, moe_intermediate_size=512, intermediate_size=2048,
        norm_topk_prob=True, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
        max_position_embeddings=4096, initializer_range=0.02)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True, max_shard_size="1GB")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(ROOT, "Models", "tiny-qwen3moe", f), out)
    n = sum(p.numel() for p in model.parameters())
    print(f"{out}: {n / 1e9:.3f} B parameters")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "out", "large-qwen3moe"))
