import CSparrowKernels
import SparrowKernels

/// For each MoE layer, the routers of the MoE layers 2…depth ahead of it copied one after another
/// into one matrix, so that a single matmul of the token's hidden state scores the experts of all
/// of them (prefetch beyond the next layer). Rows `k·E ..< (k+1)·E` belong to `layers[l][k]`.
/// Costs depth − 1 routers' bytes per layer of resident memory (in the routers' own float type).
final class StackedRouters {
    /// Per layer: the stacked matrix, nil when no layer lies 2 or more ahead.
    let matrices: [WeightMatrix?]
    /// Per layer: the layers whose routers the matrix holds, nearest first.
    let layers: [[Int]]
    private let storage: [UnsafeMutableRawPointer]

    init(weights: ModelWeights, config c: ModelConfig, depth: Int) {
        let routers = weights.layers.map(\.router)
        // The routers' common float type (the converter keeps them float), else f32.
        var types = Set<UInt32>()
        for case let r? in routers {
            if case .float(_, let t) = r.storage { types.insert(t.rawValue) } else { types.insert(UInt32.max) }
        }
        let type = types.count == 1 && types.first != UInt32.max ? spk_dtype(rawValue: types.first!) : SPK_F32
        let size = WeightMatrix.elementSize(type)
        var matrices: [WeightMatrix?] = []
        var layers: [[Int]] = []
        var storage: [UnsafeMutableRawPointer] = []
        for l in 0..<c.layerCount {
            let ahead = depth >= 2 ? (l + 2...l + depth).filter { $0 < c.layerCount && routers[$0] != nil } : []
            layers.append(ahead)
            guard routers[l] != nil, !ahead.isEmpty else {
                matrices.append(nil)
                continue
            }
            let rowBytes = c.hiddenSize * size
            let base = UnsafeMutableRawPointer.allocate(
                byteCount: ahead.count * c.expertCount * rowBytes, alignment: 64)
            for (k, t) in ahead.enumerated() {
                let r = routers[t]!
                let dest = base + k * c.expertCount * rowBytes
                if case .float(let src, let st) = r.storage, st == type {
                    dest.copyMemory(from: src, byteCount: c.expertCount * rowBytes)
                } else {
                    let f = dest.bindMemory(to: Float.self, capacity: c.expertCount * c.hiddenSize)
                    for row in 0..<c.expertCount { r.row(row, into: f + row * c.hiddenSize) }
                }
            }
            storage.append(base)
            matrices.append(WeightMatrix(base: base, type: type, rows: ahead.count * c.expertCount, cols: c.hiddenSize))
        }
        self.matrices = matrices
        self.layers = layers
        self.storage = storage
    }

    deinit { for p in storage { p.deallocate() } }
}
