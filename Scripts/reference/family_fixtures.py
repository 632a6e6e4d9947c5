"""The fixtures of the families with layouts of their own (gpt-oss; DeepSeek-V2/V3), as hooks for
make_fixtures.py: each entry has the config, the storage dtype, a `prepare` step run on the
random-init model before it is saved, the family's tokenizer.json, and variants of the checkpoint
(gpt-oss's MXFP4 experts as the hub stores them)."""
import json
import os
import shutil

import numpy as np
import torch
import tokenizers
from tokenizers import Regex, decoders, models, pre_tokenizers, trainers

import mxfp4

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "SparrowTests", "Fixtures")
DEMO = os.path.join(ROOT, "Models", "tiny-qwen3moe")

# tiktoken's o200k_base pattern, as gpt-oss's tokenizer.json splits with it before ByteLevel.
O200K = "|".join([
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"\p{N}{1,3}",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    r"\s*[\r\n]+",
    r"\s+(?!\S)",
    r"\s+",
])
# DeepSeek-V2/V3: digits in threes, runs of CJK, then punctuation-aware words, before ByteLevel.
DEEPSEEK = [
    r"\p{N}{1,3}",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+",
]
FAMILY_SPECIALS = {
    "o200k": ["<|startoftext|>", "<|endoftext|>", "<|return|>", "<|start|>", "<|end|>", "<|message|>"],
    "deepseek": ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"],
}


def family_tokenizer(style, vocab_size=3000):
    """A byte-level BPE trained on the demo's text with the pre-tokenizer of `style`."""
    tok = tokenizers.Tokenizer(models.BPE())
    if style == "o200k":
        splits = [pre_tokenizers.Split(Regex(O200K), behavior="isolated")]
    else:
        splits = [pre_tokenizers.Split(Regex(p), behavior="isolated") for p in DEEPSEEK]
    tok.pre_tokenizer = pre_tokenizers.Sequence(splits + [pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                                     use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=FAMILY_SPECIALS[style],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    text = open(os.path.join(DEMO, "eval-text.txt"), encoding="utf-8").read()
    tok.train_from_iterator([text[i:i + 4000] for i in range(0, len(text), 4000)], trainer)
    return tok


def save_tokenizer(style):
    def save(out):
        tok = family_tokenizer(style)
        tok.save(os.path.join(out, "tokenizer.json"))
        specials = FAMILY_SPECIALS[style]
        json.dump(dict(bos_token=specials[0], eos_token=specials[1], add_bos_token=style == "deepseek"),
                  open(os.path.join(out, "tokenizer_config.json"), "w"), ensure_ascii=False, indent=1)
    return save


def experts_on_mxfp4_grid(model):
    """gpt-oss expert weights rounded to MXFP4 (what the hub ships)."""
    with torch.no_grad():
        for layer in model.model.layers:
            for name in ("gate_up_proj", "down_proj"):
                w = getattr(layer.mlp.experts, name)  # [E, in, out]: MXFP4 blocks run along `in`
                b, s = mxfp4.quantize(w.float().transpose(1, 2).numpy())
                w.copy_(torch.from_numpy(mxfp4.dequantize(b, s)).transpose(1, 2).to(w.dtype))


def gpt_oss_prepare(model):
    """Expert weights on the MXFP4 grid (what the hub ships), and biases, sinks and router bias
    non-zero so every term is exercised."""
    experts_on_mxfp4_grid(model)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for layer in model.model.layers:
            ex = layer.mlp.experts
            ex.gate_up_proj_bias.copy_(torch.randn(ex.gate_up_proj_bias.shape, generator=g) * 0.5)
            ex.down_proj_bias.copy_(torch.randn(ex.down_proj_bias.shape, generator=g) * 0.05)
            layer.self_attn.sinks.copy_(torch.randn(layer.self_attn.sinks.shape, generator=g))


def gpt_oss_mxfp4_variant(src):
    """The same weights with the experts as `*_blocks` / `*_scales` (uint8) and a transformers-4
    style config (`rope_scaling`, `quantization_config`), as openai/gpt-oss-* are published."""
    from safetensors.torch import load_file, save_file
    tensors = load_file(os.path.join(src, "model.safetensors"))
    out = os.path.join(OUT, "variants", "gpt_oss_mxfp4")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    packed = {}
    for k, v in tensors.items():
        if k.endswith(".experts.gate_up_proj") or k.endswith(".experts.down_proj"):
            b, s = mxfp4.quantize(v.float().transpose(1, 2).numpy())  # [E, out, in]
            assert np.array_equal(mxfp4.dequantize(b, s), v.float().transpose(1, 2).numpy())
            packed[k + "_blocks"] = torch.from_numpy(b)
            packed[k + "_scales"] = torch.from_numpy(s)
        else:
            packed[k] = v
    save_file({k: v.contiguous() for k, v in packed.items()}, os.path.join(out, "model.safetensors"))
    cfg = json.load(open(os.path.join(src, "config.json")))
    rope = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = rope
    cfg["quantization_config"] = dict(
        quant_method="mxfp4",
        modules_to_not_convert=["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens",
                                "lm_head"])
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=1)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(src, f), out)
    print("variant: gpt_oss_mxfp4")


def deepseek_prepare(model):
    """DeepSeek-V3's selection-only correction bias, non-zero so it changes choices."""
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for layer in model.model.layers:
            gate = getattr(layer.mlp, "gate", None)
            if gate is not None and hasattr(gate, "e_score_correction_bias"):
                gate.e_score_correction_bias.copy_(torch.randn(gate.e_score_correction_bias.shape, generator=g) * 0.1)


def family_tokenizer_corpus():
    """The tokenizer corpus (made by make_fixtures.py) as each family fixture's tokenizer.json
    encodes it with `tokenizers`: o200k's and DeepSeek's pre-tokenizers differ from Qwen2's."""
    out = os.path.join(OUT, "tokenizer")
    corpus = open(os.path.join(out, "corpus.txt"), encoding="utf-8", newline="").read()
    cases = json.load(open(os.path.join(out, "cases.json"), encoding="utf-8"))["cases"]
    for arch in ("gpt_oss", "deepseek_v3"):
        tok = tokenizers.Tokenizer.from_file(os.path.join(OUT, arch, "tokenizer.json"))
        ids = tok.encode(corpus, add_special_tokens=True).ids
        np.save(os.path.join(out, f"corpus-ids-{arch}.npy"), np.array(ids, dtype=np.int32))
        extra = ["don't STOP 123456 x1y22z333", "日本語テキスト漢字カタカナ", "a.b,c!d?e  f\n\ng", "<think>\n</think>"]
        with open(os.path.join(out, f"cases-{arch}.json"), "w", encoding="utf-8") as f:
            json.dump(dict(tokenizers=tokenizers.__version__,
                           cases=[dict(text=c["text"], ids=tok.encode(c["text"]).ids) for c in cases]
                           + [dict(text=t, ids=tok.encode(t).ids) for t in extra]), f, ensure_ascii=False, indent=1)
        print(f"{arch} tokenizer: {len(ids)} ids over the corpus")


def deepseek_fp8_variant(src):
    """DeepSeek-V3/R1's published form: every linear weight but the router's, the embedding's and
    the output head's as F8_E4M3 with an f32 `weight_scale_inv` per 128 × 128 block (partial
    blocks at the edges), and `quantization_config.quant_method: fp8`. Its reference logits are
    transformers' on the dequantized weights (`logits.npy` next to it)."""
    from safetensors.torch import load_file, save_file
    tensors = load_file(os.path.join(src, "model.safetensors"))
    out = os.path.join(OUT, "variants", "deepseek_v3_fp8")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    block = 128
    packed, dequantized = {}, {}
    for k, v in tensors.items():
        quantize = (v.dim() == 2 and k.endswith("proj.weight") and "embed" not in k)
        if not quantize:
            packed[k] = v
            continue
        w = v.float()
        rows, cols = w.shape
        sr, sc = (rows + block - 1) // block, (cols + block - 1) // block
        scale = torch.zeros(sr, sc)
        codes = torch.zeros(rows, cols, dtype=torch.float8_e4m3fn)
        deq = torch.zeros(rows, cols)
        for i in range(sr):
            for j in range(sc):
                tile = w[i * block:(i + 1) * block, j * block:(j + 1) * block]
                s = max(float(tile.abs().max()) / 448.0, 1e-12)
                c = (tile / s).to(torch.float8_e4m3fn)
                scale[i, j] = s
                codes[i * block:(i + 1) * block, j * block:(j + 1) * block] = c
                deq[i * block:(i + 1) * block, j * block:(j + 1) * block] = c.float() * torch.tensor(s)
        packed[k] = codes
        packed[k + "_scale_inv"] = scale
        dequantized[k] = deq
    save_file({k: v.contiguous() for k, v in packed.items()}, os.path.join(out, "model.safetensors"))
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg["quantization_config"] = dict(quant_method="fp8", fmt="e4m3", activation_scheme="dynamic",
                                      weight_block_size=[block, block])
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=1)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(src, f), out)
    from transformers import AutoModelForCausalLM
    ref = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager").eval()
    state = ref.state_dict()
    with torch.no_grad():
        for k, v in dequantized.items():
            if k in state:
                state[k].copy_(v)
                continue
            # transformers 5 holds the experts fused: gate_up_proj [E, 2I, H], down_proj [E, H, I]
            prefix, expert, proj = k.rsplit(".", 3)[0], int(k.split(".")[-3]), k.split(".")[-2]
            fused = state[prefix + (".down_proj" if proj == "down_proj" else ".gate_up_proj")]
            inter = v.shape[0]
            if proj == "gate_proj":
                fused[expert, :inter].copy_(v)
            elif proj == "up_proj":
                fused[expert, inter:].copy_(v)
            else:
                fused[expert].copy_(v)
    ids = torch.tensor([json.load(open(os.path.join(src, "reference.json")))["token_ids"]])
    with torch.no_grad():
        logits = ref(ids, use_cache=False).logits[0].numpy()
    np.save(os.path.join(out, "logits.npy"), logits.astype(np.float32))
    print(f"variant: deepseek_v3_fp8, {len(dequantized)} FP8 matrices, max|logit| {np.abs(logits).max():.3f}")


FAMILIES = {
    # Sliding window 8 so the 29-token sequence runs past it; YaRN with the hub's parameters but a
    # small original context; head_dim differs from hidden / heads; 3 of every layer type.
    "gpt_oss": dict(
        dtype=torch.bfloat16, prepare=gpt_oss_prepare, tokenizer=save_tokenizer("o200k"),
        variants=gpt_oss_mxfp4_variant, greedy=True,
        config=dict(
            model_type="gpt_oss", architectures=["GptOssForCausalLM"], vocab_size=3001, hidden_size=128,
            intermediate_size=96, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=48,
            num_local_experts=16, num_experts_per_tok=4, sliding_window=8, rms_norm_eps=1e-5,
            layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
            rope_parameters=dict(rope_type="yarn", rope_theta=150000.0, factor=32.0, beta_fast=32.0,
                                 beta_slow=1.0, truncate=False, original_max_position_embeddings=64),
            max_position_embeddings=2048, tie_word_embeddings=False, attention_bias=True, swiglu_limit=7.0,
            initializer_range=0.1, eos_token_id=1, bos_token_id=0, pad_token_id=1)),
    # V2-Lite's shape at tiny width: no q LoRA, first layer dense, two shared experts, complex
    # (interleaved) RoPE with DeepSeek's YaRN (mscale = mscale_all_dim), group-limited greedy routing.
    "deepseek_v2": dict(
        dtype=torch.bfloat16, tokenizer=save_tokenizer("deepseek"), greedy=True,
        config=dict(
            model_type="deepseek_v2", architectures=["DeepseekV2ForCausalLM"], vocab_size=3001, hidden_size=128,
            intermediate_size=96, moe_intermediate_size=32, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16,
            v_head_dim=24, n_routed_experts=16, num_experts_per_tok=4, n_shared_experts=2,
            first_k_dense_replace=1, topk_method="group_limited_greedy", n_group=4, topk_group=2,
            routed_scaling_factor=1.5, norm_topk_prob=False, rms_norm_eps=1e-6,
            rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=40.0, beta_fast=32.0,
                                 beta_slow=1.0, mscale=0.707, mscale_all_dim=0.707,
                                 original_max_position_embeddings=64),
            max_position_embeddings=2560, tie_word_embeddings=False, initializer_range=0.1,
            bos_token_id=0, eos_token_id=1)),
    # V3's routing (sigmoid, correction bias, group-limited over top-2 sums, renormalised, scaled),
    # q LoRA, one shared expert, NeoX-style RoPE (rope_interleave off), YaRN whose mscale differs
    # from mscale_all_dim (so both the rotation and the softmax are rescaled).
    "deepseek_v3": dict(
        dtype=torch.float32, tokenizer=save_tokenizer("deepseek"), greedy=True, prepare=deepseek_prepare,
        variants=deepseek_fp8_variant,
        config=dict(
            model_type="deepseek_v3", architectures=["DeepseekV3ForCausalLM"], vocab_size=3001, hidden_size=128,
            intermediate_size=96, moe_intermediate_size=32, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=4, q_lora_rank=48, kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16,
            v_head_dim=24, n_routed_experts=16, num_experts_per_tok=4, n_shared_experts=1,
            first_k_dense_replace=1, n_group=4, topk_group=2, routed_scaling_factor=2.5, norm_topk_prob=True,
            rope_interleave=False, rms_norm_eps=1e-6,
            rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=40.0, beta_fast=32.0,
                                 beta_slow=1.0, mscale=1.0, mscale_all_dim=0.8,
                                 original_max_position_embeddings=64),
            max_position_embeddings=2560, tie_word_embeddings=False, initializer_range=0.1,
            bos_token_id=0, eos_token_id=1)),
}
