import SparrowFormat
import SparrowKernels
import SparrowQuant

/// Pointers to one layer's dense weights inside the mapped file.
struct LayerWeights: @unchecked Sendable {
    var attnNorm: UnsafePointer<Float>
    /// Grouped-query attention: q, k, v (nil with latent attention, whose query may come through
    /// `latent.queryA` / `queryB` instead of q).
    var q, k, v: WeightMatrix?
    var o: WeightMatrix
    /// Multi-head latent attention (DeepSeek).
    var latent: LatentWeights?
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
    /// gpt-oss: each head's sink logit `[heads]`, the router's bias `[E]` and the experts' biases.
    var sinks: UnsafePointer<Float>?
    var routerBias: UnsafePointer<Float>?
    var expertBias: ExpertBiases?
    /// DeepSeek-V3: the router's selection-only bias `[E]`.
    var routerCorrection: UnsafePointer<Float>?
}

/// A latent-attention layer's projections besides the output (see `LatentAttention`).
struct LatentWeights: @unchecked Sendable {
    /// The query bottleneck `[queryRank, H]`, its norm and `[heads · (nope + rope), queryRank]`.
    var queryA: WeightMatrix?
    var queryANorm: UnsafePointer<Float>?
    var queryB: WeightMatrix?
    /// `[kvRank + rope, H]`: the latent and the rotary key; the latent's norm `[kvRank]`.
    var kvA: WeightMatrix
    var kvANorm: UnsafePointer<Float>
    /// Keys' and values' up-projection `[heads · (nope + value), kvRank]`.
    var kvB: WeightMatrix
}

/// The biases of a layer's routed experts: gate and up `[E, I]`, down `[E, H]` (f32, resident).
struct ExpertBiases: @unchecked Sendable {
    var gate, up, down: UnsafePointer<Float>
    var intermediate, hidden: Int

    /// Expert `e`'s three bias vectors.
    func of(_ e: Int) -> MLPBias {
        MLPBias(gate: gate + e * intermediate, up: up + e * intermediate, down: down + e * hidden)
    }
}

/// Biases added to an MLP's gate, up and down projections.
struct MLPBias {
    var gate, up, down: UnsafePointer<Float>
}

/// A gated MLP: down(act(gate·x) ⊙ up·x), SwiGLU unless `activation` says otherwise, with
/// biases where `bias` has them.
struct MLPWeights: @unchecked Sendable {
    var gate, up, down: WeightMatrix
    var bias: MLPBias? = nil
    var activation: GatedActivation = .silu

    /// The SwiGLU forward of `rows` rows of `x`: `out = down(silu(gate·x) ⊙ up·x)`. `gate` and `up`
    /// are caller scratch of `rows × gate.rows` floats (`gate` ends up holding the down projection's
    /// input). `act` quantizes x and `actMid` the down projection's input for the integer kernels,
    /// from activation row `actRow`; nil for either takes the float path for those matrices.
    func forward(
        _ x: UnsafePointer<Float>, rows: Int, gate g: UnsafeMutablePointer<Float>, up u: UnsafeMutablePointer<Float>,
        into out: UnsafeMutablePointer<Float>, threads: Int, act: ActivationBuffer?, actMid: ActivationBuffer?,
        actRow: Int = 0
    ) {
        Ops.matmul(gate, x, n: rows, into: g, threads: threads, act: act, actRow: actRow)
        Ops.matmul(up, x, n: rows, into: u, threads: threads, act: act, actRow: actRow)
        let width = gate.rows
        if let b = bias {
            Ops.addBias(g, b.gate, rows: rows, dim: width)
            Ops.addBias(u, b.up, rows: rows, dim: width)
        }
        switch activation {
        case .silu: Ops.swiglu(g, u, rows * width)
        case .clampedSwiGLU(let limit, let alpha): Ops.clampedSwiglu(g, u, rows * width, limit: limit, alpha: alpha)
        }
        Ops.matmul(down, g, n: rows, into: out, threads: threads, act: actMid, actRow: actRow)
        if let b = bias { Ops.addBias(out, b.down, rows: rows, dim: down.rows) }
    }
}

/// All dense weights of a model, resolved once at open.
struct ModelWeights: @unchecked Sendable {
    /// A dense matrix stored as a float tensor `NAME` or quantized as `NAME.scales` + `NAME.plane*`.
    static func matrix(_ file: SPWFile, name: String, shape: [Int]) throws(SparrowError) -> WeightMatrix {
        if let t = file.tensor(name) {
            guard t.shape == shape, t.dtype.isFloat else {
                throw .format(
                    .badTensor(
                        path: file.path, name: name,
                        problem: "expected a float \(shape) matrix, found \(t.dtype) \(t.shape)"))
            }
            return WeightMatrix(
                base: file.bytes(of: t).baseAddress!, type: t.dtype.kernelType, rows: shape[0], cols: shape[1])
        }
        guard let scales = file.tensor(QuantLayout.scalesName(name)) else {
            throw .format(.missingTensor(path: file.path, name: name))
        }
        var planes: [(UnsafeRawPointer, DType)] = []
        while let p = file.tensor(QuantLayout.planeName(name, planes.count)) {
            guard p.shape == shape, !p.dtype.isFloat else {
                throw .format(
                    .badTensor(path: file.path, name: p.name, problem: "plane shape \(p.shape) or type \(p.dtype)"))
            }
            planes.append((file.bytes(of: p).baseAddress!, p.dtype))
        }
        let bits = planes.reduce(0) { $0 + $1.1.bits }
        guard !planes.isEmpty, bits <= 8, scales.shape.count == 3, scales.shape[0] == shape[0], scales.shape[2] == 2,
            scales.shape[1] > 0, shape[1] % scales.shape[1] == 0
        else { throw .format(.badTensor(path: file.path, name: name, problem: "inconsistent quantized layout")) }
        return WeightMatrix(
            scales: file.bytes(of: scales).baseAddress!, planes: planes.map(\.0), widths: planes.map(\.1.bits),
            rows: shape[0], cols: shape[1], group: shape[1] / scales.shape[1])
    }

    var embedding: WeightMatrix
    var layers: [LayerWeights]
    var finalNorm: UnsafePointer<Float>
    var lmHead: WeightMatrix

    init(file: SPWFile, config c: ModelConfig) throws(SparrowError) {
        var table: [TensorName: WeightMatrix] = [:]
        var vectors: [TensorName: UnsafePointer<Float>] = [:]
        for item in DenseLayout.items(c) {
            let name = item.name.description
            if item.isF32 {
                guard let t = file.tensor(name) else { throw .format(.missingTensor(path: file.path, name: name)) }
                guard t.shape == item.shape, t.dtype == .f32 else {
                    throw .format(
                        .badTensor(
                            path: file.path, name: name,
                            problem: "expected f32 \(item.shape), found \(t.dtype) \(t.shape)"))
                }
                vectors[item.name] = file.bytes(of: t).baseAddress!.assumingMemoryBound(to: Float.self)
            } else {
                table[item.name] = try Self.matrix(file, name: name, shape: item.shape)
            }
        }
        func matrix(_ n: TensorName) -> WeightMatrix { table[n]! }
        func vector(_ n: TensorName) -> UnsafePointer<Float>? { vectors[n] }
        embedding = matrix(.embedding)
        finalNorm = vector(.finalNorm)!
        lmHead = c.tieWordEmbeddings ? embedding : matrix(.lmHead)
        layers = (0..<c.layerCount).map { l in
            var w = LayerWeights(
                attnNorm: vector(.attnNorm(l))!, q: table[.q(l)], k: table[.k(l)], v: table[.v(l)], o: matrix(.o(l)),
                qBias: vector(.qBias(l)), kBias: vector(.kBias(l)), vBias: vector(.vBias(l)), oBias: vector(.oBias(l)),
                qNorm: vector(.qNorm(l)), kNorm: vector(.kNorm(l)), ffnNorm: vector(.ffnNorm(l))!)
            if c.latentAttention != nil {
                w.latent = LatentWeights(
                    queryA: table[.qA(l)], queryANorm: vector(.qANorm(l)), queryB: table[.qB(l)], kvA: matrix(.kvA(l)),
                    kvANorm: vector(.kvANorm(l))!, kvB: matrix(.kvB(l)))
            }
            w.sinks = vector(.sinks(l))
            if c.moeLayers[l] {
                w.router = matrix(.router(l))
                w.routerBias = vector(.routerBias(l))
                w.routerCorrection = vector(.routerCorrectionBias(l))
                if let g = vector(.expertGateBias(l)), let u = vector(.expertUpBias(l)),
                    let d = vector(.expertDownBias(l))
                {
                    w.expertBias = ExpertBiases(
                        gate: g, up: u, down: d, intermediate: c.expertIntermediateSize, hidden: c.hiddenSize)
                }
                if c.sharedExpertIntermediateSize > 0 {
                    w.shared = MLPWeights(
                        gate: matrix(.sharedGate(l)), up: matrix(.sharedUp(l)), down: matrix(.sharedDown(l)))
                    w.sharedGate = table[.sharedExpertGate(l)]
                }
            } else {
                w.mlp = MLPWeights(gate: matrix(.mlpGate(l)), up: matrix(.mlpUp(l)), down: matrix(.mlpDown(l)))
            }
            return w
        }
    }
}
