import SparrowFormat

/// The dense (always resident) tensors a model of a given config has, with their shapes.
/// The converter writes exactly these; the model loader expects exactly these.
enum DenseLayout {
    struct Item {
        let name: TensorName
        let shape: [Int]
        /// Vectors (norm weights, biases) are stored as f32 whatever the weight type.
        var isVector: Bool { shape.count == 1 }
    }

    static func items(_ c: ModelConfig) -> [Item] {
        let h = c.hiddenSize
        let qDim = c.headCount * c.headDim
        let kvDim = c.kvHeadCount * c.headDim
        var out: [Item] = [Item(name: .embedding, shape: [c.vocabSize, h])]
        for l in 0..<c.layerCount {
            out.append(Item(name: .attnNorm(l), shape: [h]))
            out.append(Item(name: .q(l), shape: [qDim, h]))
            out.append(Item(name: .k(l), shape: [kvDim, h]))
            out.append(Item(name: .v(l), shape: [kvDim, h]))
            out.append(Item(name: .o(l), shape: [h, qDim]))
            if c.qkvBias {
                out.append(Item(name: .qBias(l), shape: [qDim]))
                out.append(Item(name: .kBias(l), shape: [kvDim]))
                out.append(Item(name: .vBias(l), shape: [kvDim]))
            }
            if c.outputBias { out.append(Item(name: .oBias(l), shape: [h])) }
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
            if c.moeLayers[l] {
                out.append(Item(name: .router(l), shape: [c.expertCount, h]))
                let s = c.sharedExpertIntermediateSize
                if s > 0 {
                    out.append(Item(name: .sharedGate(l), shape: [s, h]))
                    out.append(Item(name: .sharedUp(l), shape: [s, h]))
                    out.append(Item(name: .sharedDown(l), shape: [h, s]))
                    out.append(Item(name: .sharedExpertGate(l), shape: [1, h]))
                }
            } else {
                let d = c.denseIntermediateSize
                out.append(Item(name: .mlpGate(l), shape: [d, h]))
                out.append(Item(name: .mlpUp(l), shape: [d, h]))
                out.append(Item(name: .mlpDown(l), shape: [h, d]))
            }
        }
        out.append(Item(name: .finalNorm, shape: [h]))
        if !c.tieWordEmbeddings { out.append(Item(name: .lmHead, shape: [c.vocabSize, h])) }
        return out
    }

    /// Layout of one expert record's single unquantized level: gate [I, H], up [I, H], down [H, I].
    static func expertLevel(_ c: ModelConfig, type: DType) -> ExpertLevelLayout {
        let i = c.expertIntermediateSize
        let h = c.hiddenSize
        let n = i * h * type.size
        let a = SPW.tensorAlignment
        let upOffset = SPW.align(n, a)
        let downOffset = SPW.align(upOffset + n, a)
        return ExpertLevelLayout(
            bits: type.size * 8,
            components: [
                .init(name: "gate", dtype: type, shape: [i, h], offset: 0, length: n),
                .init(name: "up", dtype: type, shape: [i, h], offset: upOffset, length: n),
                .init(name: "down", dtype: type, shape: [h, i], offset: downOffset, length: n),
            ])
    }
}
