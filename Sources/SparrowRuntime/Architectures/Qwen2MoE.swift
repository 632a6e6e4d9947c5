/// Qwen2-MoE: GQA with q/k/v bias, softmax → top-k router (renormalised only if `norm_topk_prob`),
/// SwiGLU experts plus a shared expert whose output is scaled by sigmoid(shared_expert_gate · x).
enum Qwen2MoE: ArchitectureSpec {
    static func config(from hf: HFConfig) throws(SparrowError) -> ModelConfig {
        var c = try hf.baseConfig(architecture: .qwen2Moe)
        try QwenMoELayers.apply(hf, to: &c)
        c.qkvBias = try hf.bool("qkv_bias", default: true)
        c.sharedExpertIntermediateSize = try hf.int("shared_expert_intermediate_size", default: 0)
        return c
    }
}
