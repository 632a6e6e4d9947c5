import SparrowFormat

#if canImport(Glibc)
    import Glibc
#endif

/// Finds a model's tensors in a checkpoint under the architecture's names and checks their
/// shapes and types.
struct TensorResolver {
    let checkpoint: SafeTensorsCheckpoint
    let spec: any ArchitectureSpec.Type
    let directory: String

    func lookup(_ names: [String]) -> (SafeTensorsFile, SafeTensorInfo)? {
        for n in names { if let hit = checkpoint.info(n) { return hit } }
        return nil
    }

    func check(_ hit: (SafeTensorsFile, SafeTensorInfo), shape: [Int]) throws(SparrowError) {
        let info = hit.1
        guard info.dtype != nil else {
            throw .format(
                .badTensor(
                    path: hit.0.file.path, name: info.name,
                    problem: "dtype \(info.dtypeName) is not supported (F32, F16, BF16)"))
        }
        let matches = info.shape == shape || (shape.count == 1 && info.shape == [1, shape[0]])
        guard matches else {
            throw .format(
                .badTensor(path: hit.0.file.path, name: info.name, problem: "shape \(info.shape), expected \(shape)"))
        }
    }

    /// The checkpoint tensor for `name`, checked against `shape`.
    func find(_ name: TensorName, shape: [Int]) throws(SparrowError) -> (SafeTensorsFile, SafeTensorInfo) {
        let names = spec.checkpointNames(for: name)
        guard let hit = lookup(names) else {
            throw .format(.missingTensor(path: directory, name: names.first ?? name.description))
        }
        try check(hit, shape: shape)
        return hit
    }

    /// Where a MoE layer's expert weights are: one tensor per expert and projection, or fused
    /// `[E, 2I, H]` / `[E, H, I]` tensors.
    func expertSource(layer: Int, config c: ModelConfig) throws(SparrowError) -> ExpertSource {
        let i = c.expertIntermediateSize
        let h = c.hiddenSize
        let fused = spec.fusedExpertNames(layer: layer)
        if let gu = checkpoint.info(fused.gateUp), let d = checkpoint.info(fused.down) {
            try check(gu, shape: [c.expertCount, 2 * i, h])
            try check(d, shape: [c.expertCount, h, i])
            return .fused(gateUp: gu, down: d, i: i, h: h)
        }
        var parts: [[(SafeTensorsFile, SafeTensorInfo)]] = []
        for e in 0..<c.expertCount {
            let n = spec.expertNames(layer: layer, expert: e)
            var row: [(SafeTensorsFile, SafeTensorInfo)] = []
            for (names, shape) in [(n.gate, [i, h]), (n.up, [i, h]), (n.down, [h, i])] {
                guard let hit = lookup(names) else {
                    throw .format(.missingTensor(path: directory, name: names.first!))
                }
                try check(hit, shape: shape)
                row.append(hit)
            }
            parts.append(row)
        }
        return .perExpert(parts)
    }
}

/// The checkpoint tensors that hold one MoE layer's experts.
enum ExpertSource {
    case perExpert([[(SafeTensorsFile, SafeTensorInfo)]])
    case fused(gateUp: (SafeTensorsFile, SafeTensorInfo), down: (SafeTensorsFile, SafeTensorInfo), i: Int, h: Int)

    /// Part k (0 gate, 1 up, 2 down) of `expert`: the tensor and the element offset where it starts.
    func part(_ k: Int, expert e: Int) throws(SparrowError) -> (SafeTensorsFile, SafeTensorInfo, Int) {
        switch self {
        case .perExpert(let parts):
            return (parts[e][k].0, parts[e][k].1, 0)
        case .fused(let gu, let d, let i, let h):
            switch k {
            case 0: return (gu.0, gu.1, e * 2 * i * h)
            case 1: return (gu.0, gu.1, e * 2 * i * h + i * h)
            default: return (d.0, d.1, e * h * i)
            }
        }
    }

    /// Lets the kernel drop the layer's source pages (the converter never needs them again).
    func release() {
        switch self {
        case .perExpert(let parts):
            for row in parts {
                for (f, t) in row { f.file.advise(offset: t.range.lowerBound, length: t.range.count, MADV_DONTNEED) }
            }
        case .fused(let gu, let d, _, _):
            gu.0.file.advise(offset: gu.1.range.lowerBound, length: gu.1.range.count, MADV_DONTNEED)
            d.0.file.advise(offset: d.1.range.lowerBound, length: d.1.range.count, MADV_DONTNEED)
        }
    }
}
