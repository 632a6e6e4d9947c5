import Foundation

/// How q and k are normalised before RoPE.
public enum QKNorm: String, Codable, Sendable {
    /// No normalisation (Mixtral, Qwen2-MoE).
    case none
    /// RMSNorm over each head's `headDim` values (Qwen3-MoE).
    case perHead
    /// RMSNorm over the whole projection, `heads × headDim` values (OLMoE).
    case full
}

/// The hyper-parameters the forward pass needs, independent of the source checkpoint's naming.
/// Stored in the `.spw` meta.
public struct ModelConfig: Codable, Sendable, Equatable {
    /// The model family, which decides the tensor names and the forward pass details.
    public var architecture: Architecture
    /// Width of the residual stream.
    public var hiddenSize: Int
    /// Transformer layers (MoE and dense).
    public var layerCount: Int
    /// Attention (query) heads.
    public var headCount: Int
    /// Key/value heads (fewer than `headCount` with grouped-query attention).
    public var kvHeadCount: Int
    /// Values per attention head.
    public var headDim: Int
    /// Rows of the embedding and of the output head.
    public var vocabSize: Int
    /// Routed experts per MoE layer.
    public var expertCount: Int
    /// Experts each token is routed to (top-k).
    public var expertsPerToken: Int
    /// Intermediate size of each routed expert.
    public var expertIntermediateSize: Int
    /// Intermediate size of dense MLP layers (layers that are not MoE), 0 if none.
    public var denseIntermediateSize: Int
    /// Intermediate size of the shared expert, 0 when the architecture has none.
    public var sharedExpertIntermediateSize: Int
    /// Whether the top-k routing weights are renormalised to sum to 1.
    public var normalizeTopK: Bool
    /// Epsilon of every RMSNorm.
    public var rmsNormEps: Float
    /// Base of the rotary position embedding.
    public var ropeTheta: Double
    /// How q and k are normalised before RoPE.
    public var qkNorm: QKNorm
    /// Whether q, k, v projections carry a bias.
    public var qkvBias: Bool
    /// Whether the attention output projection carries a bias.
    public var outputBias: Bool
    /// Clamp q, k, v to ±clipQKV (OLMoE), nil for none.
    public var clipQKV: Float?
    /// Attention window (Mixtral), nil for full causal attention.
    public var slidingWindow: Int?
    /// Whether the output head is the embedding table.
    public var tieWordEmbeddings: Bool
    /// Per layer: true for a sparse MoE block, false for a dense MLP.
    public var moeLayers: [Bool]
    /// Longest context the model was trained for (`max_position_embeddings`).
    public var maxPositions: Int
    /// Tokens that end generation.
    public var eosTokenIds: [Int]
    /// The beginning-of-sequence token, when the model has one.
    public var bosTokenId: Int?

    /// Per layer: whether `slidingWindow` applies (gpt-oss alternates sliding and full layers);
    /// nil: every layer, when there is a window.
    public var slidingLayers: [Bool]? = nil
    /// Whether each attention head has a learned sink logit in its softmax (gpt-oss).
    public var attentionSinks: Bool? = nil
    /// Scaled RoPE (YaRN), nil for plain RoPE.
    public var ropeScaling: RopeScaling? = nil
    /// How router logits become expert weights; nil is `.softmaxThenTopK`.
    public var routerScoring: RouterScoring? = nil
    /// Whether the router has a bias (gpt-oss).
    public var routerBias: Bool? = nil
    /// Whether each routed expert's projections have biases (gpt-oss).
    public var expertBias: Bool? = nil
    /// The routed experts' gated activation; nil is SwiGLU.
    public var expertActivation: GatedActivation? = nil
    /// Multi-head latent attention (DeepSeek-V2/V3), nil for grouped-query attention.
    public var latentAttention: LatentAttention? = nil
    /// Whether the shared expert's output is scaled by sigmoid(gate · x) (Qwen2-MoE); nil: gated.
    public var sharedExpertGated: Bool? = nil
    /// Group-limited routing: only the best `chosen` of `count` expert groups compete (DeepSeek).
    public var routerGroups: RouterGroups? = nil
    /// What the routing weights are multiplied by (DeepSeek's `routed_scaling_factor`); nil is 1.
    public var routedScalingFactor: Float? = nil
    /// Whether the router has a bias added to the scores for selection only (DeepSeek-V3's
    /// `e_score_correction_bias`).
    public var routerCorrectionBias: Bool? = nil

    /// Number of MoE layers.
    public var moeLayerCount: Int { moeLayers.filter { $0 }.count }

    /// The attention window of layer `l`: nil for full causal attention.
    public func window(layer l: Int) -> Int? {
        guard let w = slidingWindow else { return nil }
        return slidingLayers.map { $0[l] ? w : nil } ?? w
    }
}

/// YaRN RoPE scaling (`rope_type: yarn`): inverse frequencies blended between interpolated and
/// extrapolated by a linear ramp over the dimensions, and q·k scaled by `attentionFactor²`.
public struct RopeScaling: Codable, Sendable, Equatable {
    /// Context extension factor.
    public var factor: Double
    /// The context the model was pre-trained with.
    public var originalMaxPositions: Int
    /// Rotations bounding the ramp on the extrapolated side.
    public var betaFast: Double
    /// Rotations bounding the ramp on the interpolated side.
    public var betaSlow: Double
    /// Whether the ramp's ends are rounded to whole dimensions.
    public var truncate: Bool
    /// What cos and sin are multiplied by (so q·k by its square).
    public var attentionFactor: Double

    /// YaRN's magnitude scale `0.1 · m · ln(factor) + 1` (1 when the context is not extended).
    static func mscale(factor: Double, _ m: Double) -> Double { factor <= 1 ? 1 : 0.1 * m * log(factor) + 1 }

    /// The `headDim / 2` inverse frequencies for `theta`.
    public func inverseFrequencies(theta: Double, headDim dim: Int) -> [Float] {
        func correction(_ rotations: Double) -> Double {
            Double(dim) * log(Double(originalMaxPositions) / (rotations * 2 * .pi)) / (2 * log(theta))
        }
        var low = correction(betaFast)
        var high = correction(betaSlow)
        if truncate { (low, high) = (low.rounded(.down), high.rounded(.up)) }
        low = max(low, 0)
        high = min(high, Double(dim - 1))
        if low == high { high += 0.001 }
        return (0..<(dim / 2)).map { i in
            // In f32 as transformers computes them.
            let base = powf(Float(theta), Float(2 * i) / Float(dim))
            let extrapolated = 1 / base
            let interpolated = 1 / (Float(factor) * base)
            let ramp = min(max((Float(i) - Float(low)) / (Float(high) - Float(low)), 0), 1)
            let extrapolation = 1 - ramp
            return interpolated * (1 - extrapolation) + extrapolated * extrapolation
        }
    }
}

/// How a MoE router turns its logits into the chosen experts and their weights.
public enum RouterScoring: String, Codable, Sendable {
    /// Softmax over all experts, then the top k (renormalised if `normalizeTopK`).
    case softmaxThenTopK
    /// The top k logits, then a softmax over those k (gpt-oss).
    case topKThenSoftmax
    /// Sigmoid of each logit; the top k of sigmoid + correction bias are chosen and weigh their
    /// sigmoid (renormalised if `normalizeTopK`) (DeepSeek-V3's `noaux_tc`).
    case sigmoid
}

/// Group-limited routing: experts are split into `count` equal groups, each scored (softmax
/// routers: its best expert; sigmoid: the sum of its best two), and only experts of the best
/// `chosen` groups can be selected.
public struct RouterGroups: Codable, Sendable, Equatable {
    /// Groups the experts are split into.
    public var count: Int
    /// Groups whose experts compete.
    public var chosen: Int

    /// `chosen` of `count` groups.
    public init(count: Int, chosen: Int) {
        self.count = count
        self.chosen = chosen
    }
}

/// DeepSeek's multi-head latent attention: keys and values are up-projected from a per-token
/// latent of `kvRank` values (RMS-normalised) plus one shared `ropeDim`-wide rotary key; queries
/// come through an optional low-rank `queryRank` bottleneck. The KV cache holds only the latent and
/// the rotary key; decode absorbs the key up-projection into the query and the value
/// up-projection into the output.
public struct LatentAttention: Codable, Sendable, Equatable {
    /// Width of the query bottleneck (`q_lora_rank`), 0 for a direct query projection.
    public var queryRank: Int
    /// Width of the key/value latent (`kv_lora_rank`).
    public var kvRank: Int
    /// Per-head query/key dims without position (`qk_nope_head_dim`).
    public var nopeDim: Int
    /// Rotary dims per head (`qk_rope_head_dim`), shared by all heads on the key side.
    public var ropeDim: Int
    /// Value dims per head (`v_head_dim`).
    public var valueDim: Int
    /// Whether RoPE rotates adjacent pairs (DeepSeek's complex / interleaved layout) rather than
    /// the two halves.
    public var interleavedRope: Bool
    /// What the softmax scale 1/√(nope + rope) is multiplied by (YaRN's `mscale_all_dim`²).
    public var scoreScale: Double

    /// Floats the KV cache keeps per token and layer.
    public var cachedWidth: Int { kvRank + ropeDim }
}

/// The gated activation of an MLP's intermediate: `act(gate) ⊙ up`.
public enum GatedActivation: Codable, Sendable, Equatable {
    /// silu(g) · u.
    case silu
    /// gpt-oss: g' = min(g, limit), u' = clamp(u, ±limit); g' · sigmoid(alpha · g') · (u' + 1).
    case clampedSwiGLU(limit: Float, alpha: Float)
}
