/// The model families Sparrow runs. Each has a file under `Architectures/` that maps its
/// Hugging Face config and tensor names onto Sparrow's.
public enum Architecture: String, Codable, Sendable, CaseIterable {
    case qwen3Moe = "qwen3_moe"
    case qwen2Moe = "qwen2_moe"
    case mixtral = "mixtral"
    case olmoe = "olmoe"
    case gptOss = "gpt_oss"
    case deepseekV2 = "deepseek_v2"
    case deepseekV3 = "deepseek_v3"

    /// Recognises a config.json by `model_type`, or failing that by `architectures[0]`.
    package init?(modelType: String?, architectures: [String]?) {
        if let m = modelType, let a = Architecture(rawValue: m) {
            self = a
            return
        }
        switch architectures?.first {
        case "Qwen3MoeForCausalLM": self = .qwen3Moe
        case "Qwen2MoeForCausalLM": self = .qwen2Moe
        case "MixtralForCausalLM": self = .mixtral
        case "OlmoeForCausalLM": self = .olmoe
        case "GptOssForCausalLM": self = .gptOss
        case "DeepseekV2ForCausalLM": self = .deepseekV2
        case "DeepseekV3ForCausalLM": self = .deepseekV3
        default: return nil
        }
    }

    /// The per-family description.
    var spec: any ArchitectureSpec.Type {
        switch self {
        case .qwen3Moe: return Qwen3MoE.self
        case .qwen2Moe: return Qwen2MoE.self
        case .mixtral: return Mixtral.self
        case .olmoe: return OLMoE.self
        case .gptOss: return GptOss.self
        case .deepseekV2: return DeepSeekV2.self
        case .deepseekV3: return DeepSeekV3.self
        }
    }
}

/// What the converter needs to know about one model family.
protocol ArchitectureSpec {
    /// Reads the family's config.json into a `ModelConfig`.
    static func config(from hf: HFConfig) throws(SparrowError) -> ModelConfig
    /// Candidate checkpoint names of a Sparrow tensor name (first one present wins).
    static func checkpointNames(for name: TensorName) -> [String]
    /// Names of one expert's (gate, up, down) projections in the per-expert layout.
    static func expertNames(layer: Int, expert: Int) -> (gate: [String], up: [String], down: [String])
    /// Names of a layer's fused expert tensors (`gate_up_proj` [E, 2I, H], `down_proj` [E, H, I]),
    /// the layout transformers 5 uses in memory and some checkpoints store.
    static func fusedExpertNames(layer: Int) -> (gateUp: String, down: String)
    /// How a dense tensor is taken from its checkpoint tensor (most are as they are).
    static func denseTransform(for name: TensorName) -> DenseTransform
    /// How the fused expert tensors are laid out.
    static var fusedExpertLayout: FusedExpertLayout { get }
}

/// The layouts of fused expert tensors in checkpoints.
enum FusedExpertLayout {
    /// `gate_up_proj [E, 2I, H]` (gate rows, then up rows), `down_proj [E, H, I]` (transformers 5).
    case stackedRows
    /// `gate_up_proj [E, H, 2I]` with gate and up in alternate columns, `down_proj [E, I, H]`
    /// (gpt-oss); or as MXFP4 `*_blocks [E, 2I, H/32, 16]` + `*_scales [E, 2I, H/32]` with gate
    /// and up in alternate rows, `down_proj_blocks [E, H, I/32, 16]`.
    case interleavedColumns
}

/// A gather the converter applies to a checkpoint tensor to get Sparrow's dense tensor.
enum DenseTransform: Equatable {
    case none
    /// Even (or odd) columns of a `[rows, 2 · cols]` tensor: one half of an interleaved pair.
    case evenColumns, oddColumns
}

/// Most families use the Llama-style checkpoint names; a family overrides what differs.
extension ArchitectureSpec {
    static func checkpointNames(for name: TensorName) -> [String] { LlamaStyleNames.names(name) }
    static func expertNames(layer: Int, expert: Int) -> (gate: [String], up: [String], down: [String]) {
        LlamaStyleNames.expertNames(layer: layer, expert: expert)
    }
    static func fusedExpertNames(layer: Int) -> (gateUp: String, down: String) {
        LlamaStyleNames.fusedExpertNames(layer: layer)
    }
    static func denseTransform(for name: TensorName) -> DenseTransform { .none }
    static var fusedExpertLayout: FusedExpertLayout { .stackedRows }
}

/// Sparrow's own names for the dense tensors of a model, independent of the checkpoint's.
package enum TensorName: Hashable, Sendable, CustomStringConvertible {
    case embedding, finalNorm, lmHead
    case attnNorm(Int), ffnNorm(Int)
    case q(Int), k(Int), v(Int), o(Int)
    case qBias(Int), kBias(Int), vBias(Int), oBias(Int)
    case qNorm(Int), kNorm(Int)
    case router(Int)
    case sharedGate(Int), sharedUp(Int), sharedDown(Int), sharedExpertGate(Int)
    case mlpGate(Int), mlpUp(Int), mlpDown(Int)
    case sinks(Int), routerBias(Int)
    case expertGateBias(Int), expertUpBias(Int), expertDownBias(Int)
    case qA(Int), qANorm(Int), qB(Int), kvA(Int), kvANorm(Int), kvB(Int), routerCorrectionBias(Int)

    /// The name stored in the `.spw` tensor directory.
    package var description: String {
        switch self {
        case .embedding: return "embedding"
        case .finalNorm: return "final_norm"
        case .lmHead: return "lm_head"
        case .attnNorm(let l): return "layers.\(l).attn_norm"
        case .ffnNorm(let l): return "layers.\(l).ffn_norm"
        case .q(let l): return "layers.\(l).q"
        case .k(let l): return "layers.\(l).k"
        case .v(let l): return "layers.\(l).v"
        case .o(let l): return "layers.\(l).o"
        case .qBias(let l): return "layers.\(l).q_bias"
        case .kBias(let l): return "layers.\(l).k_bias"
        case .vBias(let l): return "layers.\(l).v_bias"
        case .oBias(let l): return "layers.\(l).o_bias"
        case .qNorm(let l): return "layers.\(l).q_norm"
        case .kNorm(let l): return "layers.\(l).k_norm"
        case .router(let l): return "layers.\(l).router"
        case .sharedGate(let l): return "layers.\(l).shared_gate"
        case .sharedUp(let l): return "layers.\(l).shared_up"
        case .sharedDown(let l): return "layers.\(l).shared_down"
        case .sharedExpertGate(let l): return "layers.\(l).shared_expert_gate"
        case .mlpGate(let l): return "layers.\(l).mlp_gate"
        case .mlpUp(let l): return "layers.\(l).mlp_up"
        case .mlpDown(let l): return "layers.\(l).mlp_down"
        case .sinks(let l): return "layers.\(l).sinks"
        case .routerBias(let l): return "layers.\(l).router_bias"
        case .expertGateBias(let l): return "layers.\(l).expert_gate_bias"
        case .expertUpBias(let l): return "layers.\(l).expert_up_bias"
        case .expertDownBias(let l): return "layers.\(l).expert_down_bias"
        case .qA(let l): return "layers.\(l).q_a"
        case .qANorm(let l): return "layers.\(l).q_a_norm"
        case .qB(let l): return "layers.\(l).q_b"
        case .kvA(let l): return "layers.\(l).kv_a"
        case .kvANorm(let l): return "layers.\(l).kv_a_norm"
        case .kvB(let l): return "layers.\(l).kv_b"
        case .routerCorrectionBias(let l): return "layers.\(l).router_correction_bias"
        }
    }

    /// Per-expert bias tables `[E, n]`: kept f32 like vectors, never quantized.
    var isBiasTable: Bool {
        switch self {
        case .expertGateBias, .expertUpBias, .expertDownBias: return true
        default: return false
        }
    }
}

/// The names most Llama-style checkpoints share (`model.layers.N.self_attn.q_proj.weight`, ...).
enum LlamaStyleNames {
    static func names(_ n: TensorName, mlp: String = "mlp") -> [String] {
        func p(_ l: Int) -> String { "model.layers.\(l)." }
        switch n {
        case .embedding: return ["model.embed_tokens.weight"]
        case .finalNorm: return ["model.norm.weight"]
        case .lmHead: return ["lm_head.weight"]
        case .attnNorm(let l): return [p(l) + "input_layernorm.weight"]
        case .ffnNorm(let l): return [p(l) + "post_attention_layernorm.weight"]
        case .q(let l): return [p(l) + "self_attn.q_proj.weight"]
        case .k(let l): return [p(l) + "self_attn.k_proj.weight"]
        case .v(let l): return [p(l) + "self_attn.v_proj.weight"]
        case .o(let l): return [p(l) + "self_attn.o_proj.weight"]
        case .qBias(let l): return [p(l) + "self_attn.q_proj.bias"]
        case .kBias(let l): return [p(l) + "self_attn.k_proj.bias"]
        case .vBias(let l): return [p(l) + "self_attn.v_proj.bias"]
        case .oBias(let l): return [p(l) + "self_attn.o_proj.bias"]
        case .qNorm(let l): return [p(l) + "self_attn.q_norm.weight"]
        case .kNorm(let l): return [p(l) + "self_attn.k_norm.weight"]
        case .router(let l): return [p(l) + "\(mlp).gate.weight"]
        case .sharedGate(let l): return [p(l) + "\(mlp).shared_expert.gate_proj.weight"]
        case .sharedUp(let l): return [p(l) + "\(mlp).shared_expert.up_proj.weight"]
        case .sharedDown(let l): return [p(l) + "\(mlp).shared_expert.down_proj.weight"]
        case .sharedExpertGate(let l): return [p(l) + "\(mlp).shared_expert_gate.weight"]
        case .mlpGate(let l): return [p(l) + "mlp.gate_proj.weight"]
        case .mlpUp(let l): return [p(l) + "mlp.up_proj.weight"]
        case .mlpDown(let l): return [p(l) + "mlp.down_proj.weight"]
        case .sinks(let l): return [p(l) + "self_attn.sinks"]
        case .routerBias(let l): return [p(l) + "\(mlp).router.bias"]
        case .expertGateBias(let l), .expertUpBias(let l): return [p(l) + "\(mlp).experts.gate_up_proj_bias"]
        case .expertDownBias(let l): return [p(l) + "\(mlp).experts.down_proj_bias"]
        case .qA(let l): return [p(l) + "self_attn.q_a_proj.weight"]
        case .qANorm(let l): return [p(l) + "self_attn.q_a_layernorm.weight"]
        case .qB(let l): return [p(l) + "self_attn.q_b_proj.weight"]
        case .kvA(let l): return [p(l) + "self_attn.kv_a_proj_with_mqa.weight"]
        case .kvANorm(let l): return [p(l) + "self_attn.kv_a_layernorm.weight"]
        case .kvB(let l): return [p(l) + "self_attn.kv_b_proj.weight"]
        case .routerCorrectionBias(let l): return [p(l) + "\(mlp).gate.e_score_correction_bias"]
        }
    }

    static func expertNames(layer: Int, expert: Int, mlp: String = "mlp") -> (
        gate: [String], up: [String], down: [String]
    ) {
        let p = "model.layers.\(layer).\(mlp).experts.\(expert)."
        return ([p + "gate_proj.weight"], [p + "up_proj.weight"], [p + "down_proj.weight"])
    }

    static func fusedExpertNames(layer: Int) -> (gateUp: String, down: String) {
        let p = "model.layers.\(layer).mlp.experts."
        return (p + "gate_up_proj", p + "down_proj")
    }
}
