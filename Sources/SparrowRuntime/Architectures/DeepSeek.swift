/// DeepSeek-V2 (and V2-Lite): multi-head latent attention, the first `first_k_dense_replace`
/// layers dense, shared experts without a gate, a softmax router choosing greedily or within the
/// best groups (`topk_method`), weights × `routed_scaling_factor` (transformers does not renormalise
/// them, whatever `norm_topk_prob` says), RoPE on interleaved pairs, DeepSeek's YaRN.
enum DeepSeekV2: ArchitectureSpec {
    static func config(from hf: HFConfig) throws(SparrowError) -> ModelConfig {
        var c = try DeepSeekLayers.config(hf, architecture: .deepseekV2, interleavedRope: true)
        if let f = hf.string("scoring_func"), f != "softmax" {
            throw .config(path: hf.path, problem: "scoring_func '\(f)' is not supported for deepseek_v2 (softmax)")
        }
        switch hf.string("topk_method") ?? "greedy" {
        case "greedy": break
        case "group_limited_greedy": c.routerGroups = try DeepSeekLayers.groups(hf, experts: c.expertCount)
        case let m: throw .config(path: hf.path, problem: "topk_method '\(m)' is not supported for deepseek_v2")
        }
        c.routedScalingFactor = Float(try hf.double("routed_scaling_factor", default: 1))
        return c
    }

    static func checkpointNames(for name: TensorName) -> [String] { DeepSeekLayers.names(name) }
}

/// DeepSeek-V3 (R1, Kimi-K2, Moonlight): V2's attention and layer pattern with a sigmoid router
/// whose correction bias (`e_score_correction_bias`) steers the choice only, group-limited over each
/// group's best two, `norm_topk_prob` either way; RoPE on pairs or halves (`rope_interleave`).
enum DeepSeekV3: ArchitectureSpec {
    static func config(from hf: HFConfig) throws(SparrowError) -> ModelConfig {
        var c = try DeepSeekLayers.config(
            hf, architecture: .deepseekV3, interleavedRope: try hf.bool("rope_interleave", default: true))
        if let f = hf.string("scoring_func"), f != "sigmoid" {
            throw .config(path: hf.path, problem: "scoring_func '\(f)' is not supported for deepseek_v3 (sigmoid)")
        }
        if let m = hf.string("topk_method"), m != "noaux_tc" {
            throw .config(path: hf.path, problem: "topk_method '\(m)' is not supported for deepseek_v3 (noaux_tc)")
        }
        c.routerScoring = .sigmoid
        c.routerCorrectionBias = true
        c.normalizeTopK = try hf.bool("norm_topk_prob", default: true)
        c.routerGroups = try DeepSeekLayers.groups(hf, experts: c.expertCount, defaults: (8, 4))
        c.routedScalingFactor = Float(try hf.double("routed_scaling_factor", default: 2.5))
        return c
    }

    static func checkpointNames(for name: TensorName) -> [String] { DeepSeekLayers.names(name) }
}

/// What DeepSeek-V2 and V3 share: the latent attention's shape, the layer pattern, the experts.
enum DeepSeekLayers {
    static func config(_ hf: HFConfig, architecture: Architecture, interleavedRope: Bool) throws(SparrowError)
        -> ModelConfig
    {
        var c = try hf.baseConfig(architecture: architecture)
        c.kvHeadCount = c.headCount
        let qRank = hf.has("q_lora_rank") ? try hf.positive("q_lora_rank") : 0
        let rope = try hf.positive("qk_rope_head_dim")
        guard rope % 2 == 0 else { throw .config(path: hf.path, problem: "qk_rope_head_dim \(rope) must be even") }
        var mla = LatentAttention(
            queryRank: qRank, kvRank: try hf.positive("kv_lora_rank"), nopeDim: try hf.positive("qk_nope_head_dim"),
            ropeDim: rope, valueDim: try hf.positive("v_head_dim"), interleavedRope: interleavedRope, scoreScale: 1)
        if c.ropeScaling != nil, let p = (hf.json["rope_parameters"] ?? hf.json["rope_scaling"]) as? [String: Any],
            let all = p["mscale_all_dim"].flatMap(HFConfig.number)?.doubleValue, all != 0
        {
            let m = RopeScaling.mscale(factor: c.ropeScaling!.factor, all)
            mla.scoreScale = m * m
        }
        c.headDim = mla.nopeDim + mla.ropeDim
        c.latentAttention = mla
        if let q = hf.json["quantization_config"] as? [String: Any], q["quant_method"] as? String != "fp8" {
            // DeepSeek-V3/R1's FP8 blocks are read (`FP8Blocks`); nothing else.
            let method = q["quant_method"] as? String ?? "(none)"
            throw .config(path: hf.path, problem: "quantization_config.quant_method '\(method)' is not supported (fp8)")
        }
        if try hf.bool("attention_bias", default: false) {
            throw .config(path: hf.path, problem: "attention_bias=true is not supported for \(architecture.rawValue)")
        }
        c.expertCount = try hf.int(anyOf: ["n_routed_experts", "num_experts"])
        c.expertsPerToken = try hf.int("num_experts_per_tok")
        c.expertIntermediateSize = try hf.int("moe_intermediate_size")
        try hf.checkExperts(c)
        c.denseIntermediateSize = try hf.int("intermediate_size", default: 0)
        c.sharedExpertIntermediateSize = c.expertIntermediateSize * (try hf.int("n_shared_experts", default: 0))
        c.sharedExpertGated = false
        let dense = try hf.int("first_k_dense_replace", default: 0)
        guard dense >= 0 else { throw .config(path: hf.path, problem: "first_k_dense_replace must not be negative") }
        if try hf.int("moe_layer_freq", default: 1) != 1 {
            throw .config(path: hf.path, problem: "moe_layer_freq other than 1 is not supported")
        }
        c.moeLayers = (0..<c.layerCount).map { $0 >= dense }
        if c.moeLayers.contains(false) && c.denseIntermediateSize <= 0 {
            throw .config(
                path: hf.path, problem: "dense layers (first_k_dense_replace) need a positive intermediate_size")
        }
        return c
    }

    /// `n_group` / `topk_group`, checked against the expert count; nil when there is one group.
    static func groups(_ hf: HFConfig, experts: Int, defaults: (Int, Int) = (1, 1)) throws(SparrowError)
        -> RouterGroups?
    {
        let count = try hf.int("n_group", default: defaults.0)
        let chosen = try hf.int("topk_group", default: defaults.1)
        guard count > 0, experts % count == 0, chosen > 0, chosen <= count else {
            throw .config(
                path: hf.path,
                problem:
                    "n_group \(count) must divide the \(experts) experts and topk_group \(chosen) be in 1...n_group")
        }
        return count == 1 ? nil : RouterGroups(count: count, chosen: chosen)
    }

    static func names(_ name: TensorName) -> [String] {
        let p = { (l: Int) in "model.layers.\(l).mlp.shared_experts." }
        switch name {
        case .sharedGate(let l): return [p(l) + "gate_proj.weight"]
        case .sharedUp(let l): return [p(l) + "up_proj.weight"]
        case .sharedDown(let l): return [p(l) + "down_proj.weight"]
        default: return LlamaStyleNames.names(name)
        }
    }
}
