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
    public var architecture: Architecture
    public var hiddenSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var vocabSize: Int
    public var expertCount: Int
    public var expertsPerToken: Int
    /// Intermediate size of each routed expert.
    public var expertIntermediateSize: Int
    /// Intermediate size of dense MLP layers (layers that are not MoE), 0 if none.
    public var denseIntermediateSize: Int
    /// Intermediate size of the shared expert, 0 when the architecture has none.
    public var sharedExpertIntermediateSize: Int
    /// Whether the top-k routing weights are renormalised to sum to 1.
    public var normalizeTopK: Bool
    public var rmsNormEps: Float
    public var ropeTheta: Double
    public var qkNorm: QKNorm
    /// Whether q, k, v projections carry a bias.
    public var qkvBias: Bool
    /// Whether the attention output projection carries a bias.
    public var outputBias: Bool
    /// Clamp q, k, v to ±clipQKV (OLMoE), nil for none.
    public var clipQKV: Float?
    /// Attention window (Mixtral), nil for full causal attention.
    public var slidingWindow: Int?
    public var tieWordEmbeddings: Bool
    /// Per layer: true for a sparse MoE block, false for a dense MLP.
    public var moeLayers: [Bool]
    public var maxPositions: Int
    public var eosTokenIds: [Int]
    public var bosTokenId: Int?

    /// Number of MoE layers.
    public var moeLayerCount: Int { moeLayers.filter { $0 }.count }
}
