/// Qwen3-MoE: GQA with per-head RMSNorm on q and k, no attention bias, softmax → top-k router with
/// optional renormalisation, SwiGLU experts, no shared expert; some layers may be dense MLPs
/// (`mlp_only_layers`, `decoder_sparse_step`).
enum Qwen3MoE: ArchitectureSpec {
    static func config(from hf: HFConfig) throws(SparrowError) -> ModelConfig {
        var c = try hf.baseConfig(architecture: .qwen3Moe)
        try QwenMoELayers.apply(hf, to: &c)
        c.qkNorm = .perHead
        c.qkvBias = try hf.bool("attention_bias", default: false)
        c.outputBias = c.qkvBias
        return c
    }
}

/// The expert and layer-pattern keys the Qwen MoE families share.
enum QwenMoELayers {
    static func apply(_ hf: HFConfig, to c: inout ModelConfig) throws(SparrowError) {
        c.expertCount = try hf.int(anyOf: ["num_experts", "num_local_experts"])
        c.expertsPerToken = try hf.int("num_experts_per_tok")
        c.expertIntermediateSize = try hf.int("moe_intermediate_size")
        c.denseIntermediateSize = try hf.int("intermediate_size", default: 0)
        c.normalizeTopK = try hf.bool("norm_topk_prob", default: false)
        try hf.checkExperts(c)
        let step = try hf.int("decoder_sparse_step", default: 1)
        guard step > 0 else { throw .config(path: hf.path, problem: "decoder_sparse_step must be positive") }
        let denseOnly = Set(try hf.intList("mlp_only_layers"))
        c.moeLayers = (0..<c.layerCount).map { !denseOnly.contains($0) && ($0 + 1) % step == 0 }
        if c.moeLayers.contains(false) && c.denseIntermediateSize <= 0 {
            throw .config(path: hf.path, problem: "dense MLP layers need a positive intermediate_size")
        }
        if try hf.bool("use_sliding_window", default: false) {
            throw .config(path: hf.path, problem: "use_sliding_window=true is not supported yet")
        }
    }
}
