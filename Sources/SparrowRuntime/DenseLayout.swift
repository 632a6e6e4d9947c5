import SparrowFormat
import SparrowQuant

/// The dense (always resident) tensors a model of a given config has, with their shapes.
/// The converter writes exactly these; the model loader expects exactly these.
enum DenseLayout {
    struct Item {
        let name: TensorName
        let shape: [Int]
        /// Vectors (norm weights, biases) and per-expert bias tables are stored as f32 whatever the
        /// weight type.
        var isF32: Bool { shape.count == 1 || name.isBiasTable }
        /// Whether `--dense q8|q4` quantizes it (routers stay float so routing is not perturbed).
        var isQuantizable: Bool {
            switch name {
            case .router, .sharedExpertGate: return false
            default: return shape.count == 2 && !name.isBiasTable
            }
        }
        /// Embeddings and the output head keep 8 bits when the rest of the dense part goes lower.
        var isVocabulary: Bool {
            switch name {
            case .embedding, .lmHead: return true
            default: return false
            }
        }
    }

    static func items(_ c: ModelConfig) -> [Item] {
        let h = c.hiddenSize
        let qDim = c.headCount * c.headDim
        let kvDim = c.kvHeadCount * c.headDim
        var out: [Item] = [Item(name: .embedding, shape: [c.vocabSize, h])]
        for l in 0..<c.layerCount {
            out.append(Item(name: .attnNorm(l), shape: [h]))
            if let mla = c.latentAttention {
                out += latentAttention(mla, layer: l, config: c)
            } else {
                out.append(Item(name: .q(l), shape: [qDim, h]))
                out.append(Item(name: .k(l), shape: [kvDim, h]))
                out.append(Item(name: .v(l), shape: [kvDim, h]))
                out.append(Item(name: .o(l), shape: [h, qDim]))
            }
            if c.qkvBias {
                out.append(Item(name: .qBias(l), shape: [qDim]))
                out.append(Item(name: .kBias(l), shape: [kvDim]))
                out.append(Item(name: .vBias(l), shape: [kvDim]))
            }
            if c.outputBias { out.append(Item(name: .oBias(l), shape: [h])) }
            if c.attentionSinks == true { out.append(Item(name: .sinks(l), shape: [c.headCount])) }
            switch c.qkNorm {
            case .none: break
            case .perHead:
                out.append(Item(name: .qNorm(l), shape: [c.headDim]))
                out.append(Item(name: .kNorm(l), shape: [c.headDim]))
            case .full:
                out.append(Item(name: .qNorm(l), shape: [qDim]))
                out.append(Item(name: .kNorm(l), shape: [kvDim]))
            }
            out.append(Item(name: .ffnNorm(l), shape: [h]))
            out += c.moeLayers[l] ? moeItems(layer: l, config: c) : denseMLPItems(layer: l, config: c)
        }
        out.append(Item(name: .finalNorm, shape: [h]))
        if !c.tieWordEmbeddings { out.append(Item(name: .lmHead, shape: [c.vocabSize, h])) }
        return out
    }

    /// A MoE layer's router (with its biases) and shared expert, and the routed experts' biases.
    private static func moeItems(layer l: Int, config c: ModelConfig) -> [Item] {
        let h = c.hiddenSize
        var out = [Item(name: .router(l), shape: [c.expertCount, h])]
        if c.routerBias == true { out.append(Item(name: .routerBias(l), shape: [c.expertCount])) }
        if c.routerCorrectionBias == true { out.append(Item(name: .routerCorrectionBias(l), shape: [c.expertCount])) }
        if c.expertBias == true {
            let i = c.expertIntermediateSize
            out.append(Item(name: .expertGateBias(l), shape: [c.expertCount, i]))
            out.append(Item(name: .expertUpBias(l), shape: [c.expertCount, i]))
            out.append(Item(name: .expertDownBias(l), shape: [c.expertCount, h]))
        }
        let s = c.sharedExpertIntermediateSize
        if s > 0 {
            out.append(Item(name: .sharedGate(l), shape: [s, h]))
            out.append(Item(name: .sharedUp(l), shape: [s, h]))
            out.append(Item(name: .sharedDown(l), shape: [h, s]))
            if c.sharedExpertGated ?? true { out.append(Item(name: .sharedExpertGate(l), shape: [1, h])) }
        }
        return out
    }

    /// A dense layer's MLP.
    private static func denseMLPItems(layer l: Int, config c: ModelConfig) -> [Item] {
        let d = c.denseIntermediateSize
        let h = c.hiddenSize
        return [
            Item(name: .mlpGate(l), shape: [d, h]), Item(name: .mlpUp(l), shape: [d, h]),
            Item(name: .mlpDown(l), shape: [h, d])
        ]
    }

    /// A latent-attention layer's tensors: the query (direct, or through its normalised
    /// bottleneck), the latent's down-projection with the rotary key and its norm, the keys' and
    /// values' up-projection `[heads · (nope + value), kvRank]`, the output.
    private static func latentAttention(_ mla: LatentAttention, layer l: Int, config c: ModelConfig) -> [Item] {
        let h = c.hiddenSize
        let heads = c.headCount
        var out: [Item] = []
        if mla.queryRank > 0 {
            out.append(Item(name: .qA(l), shape: [mla.queryRank, h]))
            out.append(Item(name: .qANorm(l), shape: [mla.queryRank]))
            out.append(Item(name: .qB(l), shape: [heads * c.headDim, mla.queryRank]))
        } else {
            out.append(Item(name: .q(l), shape: [heads * c.headDim, h]))
        }
        out.append(Item(name: .kvA(l), shape: [mla.kvRank + mla.ropeDim, h]))
        out.append(Item(name: .kvANorm(l), shape: [mla.kvRank]))
        out.append(Item(name: .kvB(l), shape: [heads * (mla.nopeDim + mla.valueDim), mla.kvRank]))
        out.append(Item(name: .o(l), shape: [h, heads * mla.valueDim]))
        return out
    }

    /// The level layouts of an expert record. Unquantized: one level holding gate `[I, H]`,
    /// up `[I, H]`, down `[H, I]` in `type`. Quantized: level k holds the planes it adds for the three
    /// projections (level 0 also their scales), so level k is a byte prefix of level k+1.
    static func expertLevels(_ c: ModelConfig, type: DType, scheme: MatryoshkaScheme?) -> [ExpertLevelLayout] {
        let i = c.expertIntermediateSize
        let h = c.hiddenSize
        let shapes = Projection.allCases.map { ($0.rawValue, $0.shape(intermediate: i, hidden: h)) }
        var offset = 0
        func place(_ name: String, _ dtype: DType, _ shape: [Int]) -> ExpertComponent {
            let length = dtype.bytes(count: shape.reduce(1, *))
            offset = SPW.align(offset, SPW.tensorAlignment)
            defer { offset += length }
            return ExpertComponent(name: name, dtype: dtype, shape: shape, offset: offset, length: length)
        }
        guard let scheme else {
            return [ExpertLevelLayout(bits: type.bits, components: shapes.map { place($0.0, type, $0.1) })]
        }
        return scheme.levels.indices.map { level in
            var comps: [ExpertComponent] = []
            for (name, shape) in shapes {
                for part in QuantLayout.components(name, rows: shape[0], cols: shape[1], scheme: scheme, level: level) {
                    comps.append(place(part.name, part.dtype, part.shape))
                }
            }
            return ExpertLevelLayout(bits: scheme.levels[level], components: comps)
        }
    }
}
