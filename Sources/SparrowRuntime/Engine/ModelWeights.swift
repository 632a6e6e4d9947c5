import SparrowFormat
import SparrowKernels

/// Pointers to one layer's dense weights inside the mapped file.
struct LayerWeights: @unchecked Sendable {
    var attnNorm: UnsafePointer<Float>
    var q, k, v, o: WeightMatrix
    var qBias, kBias, vBias, oBias: UnsafePointer<Float>?
    var qNorm, kNorm: UnsafePointer<Float>?
    var ffnNorm: UnsafePointer<Float>
    /// MoE layers: the router `[E, H]`.
    var router: WeightMatrix?
    /// Qwen2-MoE: the shared expert and its `[1, H]` gate.
    var shared: MLPWeights?
    var sharedGate: WeightMatrix?
    /// Dense layers: the MLP.
    var mlp: MLPWeights?
}

/// A SwiGLU MLP: down(silu(gate·x) ⊙ up·x).
struct MLPWeights: @unchecked Sendable {
    var gate, up, down: WeightMatrix
}

/// All dense weights of a model, resolved once at open.
struct ModelWeights: @unchecked Sendable {
    var embedding: WeightMatrix
    var layers: [LayerWeights]
    var finalNorm: UnsafePointer<Float>
    var lmHead: WeightMatrix

    init(file: SPWFile, config c: ModelConfig) throws(SparrowError) {
        var table: [String: TensorEntry] = [:]
        for item in DenseLayout.items(c) {
            let name = item.name.description
            guard let t = file.tensor(name) else { throw .format(.missingTensor(path: file.path, name: name)) }
            guard t.shape == item.shape else {
                throw .format(.badTensor(path: file.path, name: name, problem: "shape \(t.shape), expected \(item.shape)"))
            }
            if item.isVector && t.dtype != .f32 {
                throw .format(.badTensor(path: file.path, name: name, problem: "vectors must be stored as f32"))
            }
            table[name] = t
        }
        func matrix(_ n: TensorName) -> WeightMatrix {
            let t = table[n.description]!
            return WeightMatrix(
                base: file.bytes(of: t).baseAddress!, type: t.dtype.kernelType, rows: t.shape[0], cols: t.shape[1])
        }
        func vector(_ n: TensorName) -> UnsafePointer<Float>? {
            table[n.description].map { file.bytes(of: $0).baseAddress!.assumingMemoryBound(to: Float.self) }
        }
        embedding = matrix(.embedding)
        finalNorm = vector(.finalNorm)!
        lmHead = c.tieWordEmbeddings ? embedding : matrix(.lmHead)
        layers = (0..<c.layerCount).map { l in
            var w = LayerWeights(
                attnNorm: vector(.attnNorm(l))!, q: matrix(.q(l)), k: matrix(.k(l)), v: matrix(.v(l)), o: matrix(.o(l)),
                qBias: vector(.qBias(l)), kBias: vector(.kBias(l)), vBias: vector(.vBias(l)), oBias: vector(.oBias(l)),
                qNorm: vector(.qNorm(l)), kNorm: vector(.kNorm(l)), ffnNorm: vector(.ffnNorm(l))!)
            if c.moeLayers[l] {
                w.router = matrix(.router(l))
                if c.sharedExpertIntermediateSize > 0 {
                    w.shared = MLPWeights(gate: matrix(.sharedGate(l)), up: matrix(.sharedUp(l)), down: matrix(.sharedDown(l)))
                    w.sharedGate = matrix(.sharedExpertGate(l))
                }
            } else {
                w.mlp = MLPWeights(gate: matrix(.mlpGate(l)), up: matrix(.mlpUp(l)), down: matrix(.mlpDown(l)))
            }
            return w
        }
    }
}
