/// OLMoE: GQA with RMSNorm over the whole q and k projections (not per head), optional clamp of
/// q/k/v (`clip_qkv`), softmax → top-k router (renormalised only if `norm_topk_prob`), SwiGLU experts.
enum OLMoE: ArchitectureSpec {
    static func config(from hf: HFConfig) throws(SparrowError) -> ModelConfig {
        var c = try hf.baseConfig(architecture: .olmoe)
        c.expertCount = try hf.int(anyOf: ["num_experts", "num_local_experts"])
        c.expertsPerToken = try hf.int("num_experts_per_tok")
        c.expertIntermediateSize = try hf.int("intermediate_size")
        c.normalizeTopK = try hf.bool("norm_topk_prob", default: false)
        c.qkNorm = .full
        c.qkvBias = try hf.bool("attention_bias", default: false)
        c.outputBias = c.qkvBias
        if hf.has("clip_qkv") { c.clipQKV = Float(try hf.double("clip_qkv")) }
        try hf.checkExperts(c)
        return c
    }
}
