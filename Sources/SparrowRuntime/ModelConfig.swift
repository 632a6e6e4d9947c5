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

    /// Number of MoE layers.
    public var moeLayerCount: Int { moeLayers.filter { $0 }.count }
}
