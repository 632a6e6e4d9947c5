#!/usr/bin/env python3
"""Builds Sparrow's reference fixtures with Hugging Face transformers (the reference implementation).

For each supported architecture: a small random-weight checkpoint (odd sizes on purpose), a fixed
sequence of token ids, the fp32 logits transformers computes for it, and the top-k experts each MoE
layer selects. Plus a tokenizer-parity corpus with the ids the `tokenizers` library gives.

Output goes to Tests/SparrowTests/Fixtures/. Deterministic for a given torch version and CPU.
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
import transformers
import tokenizers
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "SparrowTests", "Fixtures")
DEMO = os.path.join(ROOT, "Models", "tiny-qwen3moe")

# Odd sizes: vocab not a multiple of 64, head_dim 64 and 128 (and one that differs from hidden/heads),
# 8 to 64 experts, top-1 to top-8, tied and untied embeddings, f32/bf16/f16 storage, dense MLP layers
# between MoE layers, a shared expert, q/k norms per head and over the whole projection, clip_qkv.
ARCHS = {
    "qwen3_moe": dict(
        dtype=torch.float32,
        config=dict(
            model_type="qwen3_moe", architectures=["Qwen3MoeForCausalLM"], vocab_size=4099, hidden_size=128,
            num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=64,
            num_experts=32, num_experts_per_tok=8, moe_intermediate_size=48, intermediate_size=96,
            mlp_only_layers=[1], norm_topk_prob=True, rms_norm_eps=1e-6, rope_theta=1000000.0,
            tie_word_embeddings=False, max_position_embeddings=512, initializer_range=0.1)),
    "qwen2_moe": dict(
        dtype=torch.bfloat16,
        config=dict(
            model_type="qwen2_moe", architectures=["Qwen2MoeForCausalLM"], vocab_size=4111, hidden_size=128,
            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
            num_experts=8, num_experts_per_tok=2, moe_intermediate_size=64, intermediate_size=96,
            shared_expert_intermediate_size=80, norm_topk_prob=False, qkv_bias=True, rms_norm_eps=1e-6,
            rope_theta=10000.0, tie_word_embeddings=True, max_position_embeddings=512, initializer_range=0.1)),
    "mixtral": dict(
        dtype=torch.float16,
        config=dict(
            model_type="mixtral", architectures=["MixtralForCausalLM"], vocab_size=4103, hidden_size=256,
            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, num_local_experts=8,
            num_experts_per_tok=2, intermediate_size=96, rms_norm_eps=1e-5, rope_theta=1000000.0,
            sliding_window=None, tie_word_embeddings=False, max_position_embeddings=512,
            initializer_range=0.1)),
    "olmoe": dict(
        dtype=torch.float32,
        config=dict(
            model_type="olmoe", architectures=["OlmoeForCausalLM"], vocab_size=4097, hidden_size=128,
            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, num_experts=64,
            num_experts_per_tok=1, intermediate_size=16, norm_topk_prob=False, clip_qkv=0.6,
            rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, max_position_embeddings=512,
            initializer_range=0.1)),
}

SEQ_LEN = 29
GREEDY_PROMPT = 16
GREEDY_NEW = 12
SAMPLE_LEN = 512

from family_fixtures import FAMILIES  # noqa: E402  (gpt-oss, DeepSeek: hooks for their own layouts)
ARCHS.update(FAMILIES)


def make_arch(name, spec):
    torch.manual_seed(1234)
    out = os.path.join(OUT, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    cfg = AutoConfig.for_model(**spec["config"])
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").to(spec["dtype"])
    if "prepare" in spec:
        spec["prepare"](model)
    model.save_pretrained(out, safe_serialization=True)
    if "tokenizer" in spec:
        spec["tokenizer"](out)
    else:
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(DEMO, f), out)

    # The reference: reload what was saved, upcast to fp32, one forward pass over the whole sequence.
    ref = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    g = torch.Generator().manual_seed(99)
    ids = torch.randint(0, cfg.vocab_size, (1, SEQ_LEN), generator=g)
    ids[0, -1] = cfg.vocab_size - 1
    # Routers that choose by more than the top softmax (DeepSeek's groups, V3's correction bias)
    # return their choice: record it as they make it (ids sorted, their order is unspecified).
    chosen = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: chosen.append(torch.sort(out[2], dim=-1).values))
             for m in ref.modules() if type(m).__name__.endswith("TopkRouter") and "Deepseek" in type(m).__name__]
    with torch.no_grad():
        res = ref(ids, output_router_logits=True, use_cache=False)
    for h in hooks:
        h.remove()
    logits = res.logits[0].float().numpy()
    k = cfg.num_experts_per_tok
    topk = []
    for rl in ([] if hooks else res.router_logits):
        probs = torch.softmax(rl.float(), dim=-1)
        topk.append(torch.topk(probs, k, dim=-1).indices.numpy().astype(np.int32))
    topk += [c.numpy().astype(np.int32) for c in chosen]
    np.save(os.path.join(out, "logits.npy"), logits.astype(np.float32))
    np.save(os.path.join(out, "router_topk_ids.npy"), np.stack(topk).astype(np.int32))
    keys = sorted(json.load(open(os.path.join(out, "model.safetensors.index.json")))["weight_map"]) \
        if os.path.exists(os.path.join(out, "model.safetensors.index.json")) else None
    extra = {}
    if spec.get("greedy"):
        # Greedy continuation through transformers' own KV cache (sliding layers' cache included).
        with torch.no_grad():
            gen = ref.generate(ids[:, :GREEDY_PROMPT], max_new_tokens=GREEDY_NEW, do_sample=False,
                               min_new_tokens=GREEDY_NEW, eos_token_id=None, pad_token_id=0)
        extra["greedy"] = dict(prompt_length=GREEDY_PROMPT, tokens=gen[0, GREEDY_PROMPT:].tolist())
        # The model's own text (sampled at temperature 1): a random-init model's perplexity on it
        # measures what quantization costs, where on real text every random model is near-uniform.
        torch.manual_seed(0)
        with torch.no_grad():
            sample = ref.generate(ids[:, :4], max_new_tokens=SAMPLE_LEN - 4, do_sample=True, temperature=1.0,
                                  top_k=0, top_p=1.0, min_new_tokens=SAMPLE_LEN - 4, eos_token_id=None,
                                  pad_token_id=0)
        np.save(os.path.join(out, "samples.npy"), sample[0].numpy().astype(np.int32))
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(dict(
            architecture=name, token_ids=ids[0].tolist(), storage_dtype=str(spec["dtype"]),
            logits_shape=list(logits.shape), router_layers=len(topk), top_k=k,
            max_abs_logit=float(np.abs(logits).max()), **extra,
            versions=dict(torch=torch.__version__, transformers=transformers.__version__)), f, indent=1)
    if "variants" in spec:
        spec["variants"](out)
    size = sum(os.path.getsize(os.path.join(out, x)) for x in os.listdir(out))
    print(f"{name}: {size / 1e6:.2f} MB, max|logit| {np.abs(logits).max():.3f}, sharded={keys is not None}")


def make_tokenizer_corpus():
    """>=100 KB mixing source code, many scripts, emoji, decomposed accents (NFC), odd whitespace
    and special tokens; ids from the `tokenizers` library."""
    text = open(os.path.join(DEMO, "eval-text.txt"), encoding="utf-8").read()
    rng = np.random.default_rng(7)
    parts = [text[:60000]]
    samples = [
        "Grüße aus Köln — naïve café, façade, coöperate; ΑΒΓ αβγ; Привет, мир!",
        "日本語のテキストと漢字、한국어 문장, 中文句子。",
        "مرحبا بالعالم — שלום עולם — नमस्ते दुनिया — สวัสดีชาวโลก",
        "emoji: 👩‍👩‍👧‍👦 🇩🇪 👍🏽 ✨🔥💯 and symbols ∑∫√∞ ≠ ≤ ≥ ±",
        "decomposed: e\u0301 a\u0308 o\u0302 n\u0303 (NFC should compose these)",
        "tabs\t\tand   runs of     spaces\n\n\n   trailing   \r\n\r\nwindows lines\r\n",
        "vertical\u000btab, next-line\u0085char, nbsp\u00a0here, ideographic\u3000space, thin\u2009space",
        "<|endoftext|>special at start, middle <|endoftext|> and glued<|endoftext|>end<|endoftext|>",
        "numbers 1234567890 3.14159 -42 1e10 0x1F 0b1010 1_000_000",
        "contractions: it's we're they've I'm you'll he'd IT'S WE'RE",
        "    def f(x):\n        return x ** 2  # comment\n\n\n",
    ]
    while sum(len(p.encode()) for p in parts) < 120_000:
        parts.append(samples[rng.integers(len(samples))])
        if rng.random() < 0.5:
            start = int(rng.integers(60000, len(text) - 2000))
            parts.append(text[start:start + int(rng.integers(200, 2000))])
        parts.append(" " * int(rng.integers(0, 4)) + "\n" * int(rng.integers(0, 3)))
    corpus = "".join(parts)
    tok = tokenizers.Tokenizer.from_file(os.path.join(DEMO, "tokenizer.json"))
    ids = tok.encode(corpus, add_special_tokens=True).ids
    out = os.path.join(OUT, "tokenizer")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "corpus.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(corpus)
    np.save(os.path.join(out, "corpus-ids.npy"), np.array(ids, dtype=np.int32))
    cases = [dict(text=s, ids=tok.encode(s).ids) for s in samples + ["", " ", "\n", "a", "  \n  x"]]
    with open(os.path.join(out, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(dict(tokenizers=tokenizers.__version__, cases=cases), f, ensure_ascii=False, indent=1)
    print(f"tokenizer corpus: {len(corpus.encode())} bytes, {len(ids)} ids")


if __name__ == "__main__":
    torch.set_num_threads(1)
    only = sys.argv[1:]
    for name, spec in ARCHS.items():
        if not only or name in only:
            make_arch(name, spec)
    if not only or "tokenizer" in only:
        make_tokenizer_corpus()
    if not only or "tokenizer" in only or "family-tokenizers" in only:
        from family_fixtures import family_tokenizer_corpus
        family_tokenizer_corpus()


def make_layout_variants():
    """The qwen2_moe fixture re-saved in two other layouts a converter meets in the wild: experts
    fused into `gate_up_proj [E, 2I, H]` / `down_proj [E, H, I]` (transformers 5's in-memory layout),
    and split over two shards with `model.safetensors.index.json`. Same weights, so the qwen2_moe
    reference logits apply."""
    from safetensors.torch import load_file, save_file
    src = os.path.join(OUT, "qwen2_moe")
    tensors = load_file(os.path.join(src, "model.safetensors"))
    cfg = json.load(open(os.path.join(src, "config.json")))

    fused = {k: v for k, v in tensors.items() if ".mlp.experts." not in k}
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}.mlp.experts."
        n = cfg["num_experts"]
        fused[p + "gate_up_proj"] = torch.stack([
            torch.cat([tensors[f"{p}{e}.gate_proj.weight"], tensors[f"{p}{e}.up_proj.weight"]]) for e in range(n)])
        fused[p + "down_proj"] = torch.stack([tensors[f"{p}{e}.down_proj.weight"] for e in range(n)])
    out = os.path.join(OUT, "variants", "qwen2_moe_fused")
    os.makedirs(out, exist_ok=True)
    save_file({k: v.contiguous() for k, v in fused.items()}, os.path.join(out, "model.safetensors"))
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(src, f), out)

    out = os.path.join(OUT, "variants", "qwen2_moe_sharded")
    os.makedirs(out, exist_ok=True)
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    weight_map = {}
    for fname, keys in shards.items():
        save_file({k: tensors[k].contiguous() for k in keys}, os.path.join(out, fname))
        weight_map.update({k: fname for k in keys})
    json.dump({"metadata": {}, "weight_map": weight_map}, open(os.path.join(out, "model.safetensors.index.json"), "w"), indent=1)
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(src, f), out)
    print("layout variants: fused, sharded")


if __name__ == "__main__" and (not sys.argv[1:] or "variants" in sys.argv[1:]):
    make_layout_variants()
