/// gpt-oss: GQA with q/k/v/o biases and a learned sink logit per head, sliding-window layers
/// alternating with full ones (`layer_types`), YaRN RoPE; a biased router whose top-k logits are
/// softmaxed; experts with biases and a clamped SwiGLU, stored fused (`gate_up_proj` [E, H, 2I] with
/// gate and up interleaved, `down_proj` [E, I, H]) or as MXFP4 blocks and scales.
enum GptOss: ArchitectureSpec {
    static func config(from hf: HFConfig) throws(SparrowError) -> ModelConfig {
        var c = try hf.baseConfig(architecture: .gptOss)
        c.expertCount = try hf.int(anyOf: ["num_local_experts", "num_experts"])
        c.expertsPerToken = try hf.int(anyOf: ["num_experts_per_tok", "experts_per_token"])
        c.expertIntermediateSize = try hf.int("intermediate_size")
        try hf.checkExperts(c)
        c.qkvBias = try hf.bool("attention_bias", default: true)
        c.outputBias = c.qkvBias
        c.attentionSinks = true
        c.routerBias = true
        c.routerScoring = .topKThenSoftmax
        c.expertBias = true
        let limit = try hf.double("swiglu_limit", default: 7)
        let alpha = try hf.double("swiglu_alpha", default: 1.702)
        guard limit > 0, alpha > 0 else {
            throw .config(path: hf.path, problem: "swiglu_limit and swiglu_alpha must be positive")
        }
        c.expertActivation = .clampedSwiGLU(limit: Float(limit), alpha: Float(alpha))
        try slidingLayers(hf, into: &c)
        if let q = hf.json["quantization_config"] as? [String: Any] {
            let method = q["quant_method"] as? String ?? "(none)"
            guard method == "mxfp4" else {
                throw .config(path: hf.path, problem: "quantization_config.quant_method '\(method)' is not supported")
            }
        }
        return c
    }

    /// `layer_types` (or, as transformers defaults it, even layers sliding) and `sliding_window`.
    private static func slidingLayers(_ hf: HFConfig, into c: inout ModelConfig) throws(SparrowError) {
        var types = (0..<c.layerCount).map { $0 % 2 == 0 ? "sliding_attention" : "full_attention" }
        if hf.has("layer_types") {
            guard let t = hf.json["layer_types"] as? [String], t.count == c.layerCount else {
                throw .config(path: hf.path, problem: "'layer_types' must list one string per layer")
            }
            types = t
        }
        for t in types where t != "sliding_attention" && t != "full_attention" {
            throw .config(path: hf.path, problem: "layer_types entry '\(t)' is not supported")
        }
        let sliding = types.map { $0 == "sliding_attention" }
        guard sliding.contains(true) else { return }
        guard hf.has("sliding_window") else {
            throw .config(path: hf.path, problem: "sliding_attention layers need 'sliding_window'")
        }
        c.slidingWindow = try hf.positive("sliding_window")
        c.slidingLayers = sliding
    }

    static func checkpointNames(for name: TensorName) -> [String] {
        switch name {
        case .router(let l): return ["model.layers.\(l).mlp.router.weight"]
        default: return LlamaStyleNames.names(name)
        }
    }

    static func denseTransform(for name: TensorName) -> DenseTransform {
        switch name {
        case .expertGateBias: return .evenColumns
        case .expertUpBias: return .oddColumns
        default: return .none
        }
    }

    static var fusedExpertLayout: FusedExpertLayout { .interleavedColumns }
}
