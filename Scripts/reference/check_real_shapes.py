#!/usr/bin/env python3
"""Conformance at the real models' attention shapes, which the committed fixtures only scale down:
random-init DeepSeek-V3 (16 heads, q LoRA 1536, KV LoRA 512, RoPE 64 interleaved, 64 experts top-8
in 8 groups), DeepSeek-V2-Lite (no q LoRA, 2 shared experts, mscale 0.707) and gpt-oss-20b (64
heads, 8 KV heads, window 128) layers at a small hidden width, 300 tokens (past the window).
Each is saved by transformers, converted by Sparrow, and the fp32 logits compared. Run by hand
with the reference venv (Scripts/reference/requirements.txt); nothing is committed.

  venv/bin/python Scripts/reference/check_real_shapes.py --sparrow .build/release/sparrow
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM

import family_fixtures

HERE = os.path.dirname(os.path.abspath(__file__))
YARN = dict(rope_type="yarn", rope_theta=10000.0, factor=40.0, beta_fast=32.0, beta_slow=1.0,
            original_max_position_embeddings=4096)
SHAPES = {
    "deepseek_v3": dict(
        architectures=["DeepseekV3ForCausalLM"], hidden_size=256, intermediate_size=512, moe_intermediate_size=64,
        num_hidden_layers=4, num_attention_heads=16, num_key_value_heads=16, q_lora_rank=1536, kv_lora_rank=512,
        qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, n_routed_experts=64, num_experts_per_tok=8,
        n_shared_experts=1, first_k_dense_replace=1, n_group=8, topk_group=4, routed_scaling_factor=2.5,
        norm_topk_prob=True, rope_interleave=True, rope_parameters=dict(YARN, mscale=1.0, mscale_all_dim=1.0),
        max_position_embeddings=163840),
    "deepseek_v2": dict(
        architectures=["DeepseekV2ForCausalLM"], hidden_size=256, intermediate_size=512, moe_intermediate_size=64,
        num_hidden_layers=3, num_attention_heads=16, num_key_value_heads=16, q_lora_rank=None, kv_lora_rank=512,
        qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, n_routed_experts=64, num_experts_per_tok=6,
        n_shared_experts=2, first_k_dense_replace=1, topk_method="greedy",
        rope_parameters=dict(YARN, mscale=0.707, mscale_all_dim=0.707), max_position_embeddings=163840),
    "gpt_oss": dict(
        architectures=["GptOssForCausalLM"], hidden_size=320, intermediate_size=320, num_hidden_layers=4,
        num_attention_heads=64, num_key_value_heads=8, head_dim=64, num_local_experts=32, num_experts_per_tok=4,
        sliding_window=128, max_position_embeddings=131072),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sparrow", default=".build/release/sparrow")
    ap.add_argument("--tokens", type=int, default=300)
    a = ap.parse_args()
    tokenizer = os.path.join(HERE, "..", "..", "Tests", "SparrowTests", "Fixtures", "deepseek_v3", "tokenizer.json")
    with tempfile.TemporaryDirectory() as tmp:
        for arch, shape in SHAPES.items():
            out = os.path.join(tmp, arch)
            torch.manual_seed(3)
            cfg = AutoConfig.for_model(model_type=arch, vocab_size=3001, initializer_range=0.02, **shape)
            model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").to(torch.bfloat16)
            (family_fixtures.gpt_oss_prepare if arch == "gpt_oss" else family_fixtures.deepseek_prepare)(model)
            model.save_pretrained(out)
            shutil.copy(tokenizer, out)
            ref = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
            ids = torch.randint(0, cfg.vocab_size, (1, a.tokens), generator=torch.Generator().manual_seed(1))
            with torch.no_grad():
                want = ref(ids, use_cache=False).logits[0].numpy()
            spw, got = os.path.join(tmp, arch + ".spw"), os.path.join(tmp, arch + ".npy")
            subprocess.run([a.sparrow, "convert", out, "-o", spw, "--expert-levels", "none", "--force"], check=True,
                           capture_output=True)
            subprocess.run([a.sparrow, "logits", "-m", spw, "--tokens", ",".join(map(str, ids[0].tolist())),
                            "--out", got], check=True, capture_output=True)
            g = np.load(got)
            err = float(np.abs(g - want).max() / np.abs(want).max())
            agree = float((g.argmax(-1) == want.argmax(-1)).mean())
            print(json.dumps(dict(architecture=arch, tokens=a.tokens, relative_max_error=err, argmax_agreement=agree)))


if __name__ == "__main__":
    main()
