import SparrowFormat
import SparrowQuant

#if canImport(Glibc)
    import Glibc
#endif

/// Finds a model's tensors in a checkpoint under the architecture's names and checks their
/// shapes and types.
struct TensorResolver {
    let checkpoint: SafeTensorsCheckpoint
    let spec: any ArchitectureSpec.Type
    let directory: String
    /// Block scales of an FP8 checkpoint (`quantization_config.quant_method: fp8`), nil otherwise.
    var fp8: FP8Blocks? = nil

    func lookup(_ names: [String]) -> (SafeTensorsFile, SafeTensorInfo)? {
        for n in names { if let hit = checkpoint.info(n) { return hit } }
        return nil
    }

    func check(_ hit: (SafeTensorsFile, SafeTensorInfo), shape: [Int]) throws(SparrowError) {
        let info = hit.1
        if info.dtypeName == FP8Blocks.dtypeName, let fp8 {
            _ = try fp8.scales(of: hit, in: checkpoint)
        } else if info.dtype == nil {
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

    /// The checkpoint tensor for `name`, checked against `shape` (twice as wide where the
    /// architecture takes every other column of it).
    func find(_ name: TensorName, shape: [Int]) throws(SparrowError) -> (SafeTensorsFile, SafeTensorInfo) {
        let names = spec.checkpointNames(for: name)
        guard let hit = lookup(names) else {
            throw .format(.missingTensor(path: directory, name: names.first ?? name.description))
        }
        let stored = spec.denseTransform(for: name) == .none ? shape : [shape[0], 2 * shape[1]]
        try check(hit, shape: stored)
        return hit
    }

    /// Sparrow's tensor `name` (`count` values) as f32 from the checkpoint tensor `hit` — decoded
    /// (FP8) and/or gathered (every other column) — or nil when it is taken as it is. The caller
    /// deallocates.
    func gather(_ name: TensorName, _ hit: (SafeTensorsFile, SafeTensorInfo), count: Int) throws(SparrowError)
        -> UnsafeMutablePointer<Float>?
    {
        let transform = spec.denseTransform(for: name)
        guard transform != .none || hit.1.dtypeName == FP8Blocks.dtypeName else { return nil }
        let all = UnsafeMutablePointer<Float>.allocate(capacity: hit.1.elementCount)
        do { try decode(hit, into: all) } catch {
            all.deallocate()
            throw error
        }
        guard transform != .none else { return all }
        defer { all.deallocate() }
        let out = UnsafeMutablePointer<Float>.allocate(capacity: count)
        let first = transform == .evenColumns ? 0 : 1
        for k in 0..<count { out[k] = all[2 * k + first] }
        return out
    }

    /// Where a MoE layer's expert weights are: one tensor per expert and projection, or fused
    /// tensors in the architecture's layout (float, or MXFP4 blocks and scales).
    func expertSource(layer: Int, config c: ModelConfig) throws(SparrowError) -> ExpertSource {
        let i = c.expertIntermediateSize
        let h = c.hiddenSize
        let e = c.expertCount
        let fused = spec.fusedExpertNames(layer: layer)
        if let gu = checkpoint.info(fused.gateUp + "_blocks") {
            let gus = try mxfp4Part(gu, scales: fused.gateUp + "_scales", rows: 2 * i, cols: h, experts: e)
            guard let d = checkpoint.info(fused.down + "_blocks") else {
                throw .format(.missingTensor(path: directory, name: fused.down + "_blocks"))
            }
            let ds = try mxfp4Part(d, scales: fused.down + "_scales", rows: h, cols: i, experts: e)
            return .mxfp4(gateUp: (gu, gus), down: (d, ds), i: i, h: h)
        }
        if let gu = checkpoint.info(fused.gateUp), let d = checkpoint.info(fused.down) {
            switch spec.fusedExpertLayout {
            case .stackedRows:
                try check(gu, shape: [e, 2 * i, h])
                try check(d, shape: [e, h, i])
                return .fused(gateUp: gu, down: d, i: i, h: h)
            case .interleavedColumns:
                try check(gu, shape: [e, h, 2 * i])
                try check(d, shape: [e, i, h])
                return .interleaved(gateUp: gu, down: d, i: i, h: h)
            }
        }
        var parts: [[(SafeTensorsFile, SafeTensorInfo)]] = []
        for x in 0..<e {
            let n = spec.expertNames(layer: layer, expert: x)
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

    /// Checks MXFP4 blocks `[E, rows, cols/32, 16]` (U8) and finds their scales `[E, rows, cols/32]`.
    private func mxfp4Part(
        _ blocks: (SafeTensorsFile, SafeTensorInfo), scales name: String, rows: Int, cols: Int, experts: Int
    )
        throws(SparrowError) -> (SafeTensorsFile, SafeTensorInfo)
    {
        guard cols % MXFP4.blockSize == 0 else {
            throw .format(
                .badTensor(
                    path: blocks.0.file.path, name: blocks.1.name,
                    problem: "MXFP4 rows of \(cols) values are not whole blocks of \(MXFP4.blockSize)"))
        }
        guard let scales = checkpoint.info(name) else { throw .format(.missingTensor(path: directory, name: name)) }
        let g = cols / MXFP4.blockSize
        for (hit, shape) in [(blocks, [experts, rows, g, 16]), (scales, [experts, rows, g])] {
            guard hit.1.dtypeName == "U8", hit.1.shape == shape, hit.1.range.count == shape.reduce(1, *) else {
                throw .format(
                    .badTensor(
                        path: hit.0.file.path, name: hit.1.name,
                        problem: "\(hit.1.dtypeName) \(hit.1.shape), expected U8 \(shape) (MXFP4)"))
            }
        }
        return scales
    }
}

/// The checkpoint tensors that hold one MoE layer's experts.
enum ExpertSource {
    typealias Tensor = (SafeTensorsFile, SafeTensorInfo)
    case perExpert([[Tensor]])
    /// `gate_up [E, 2I, H]` (gate rows then up rows), `down [E, H, I]`.
    case fused(gateUp: Tensor, down: Tensor, i: Int, h: Int)
    /// `gate_up [E, H, 2I]` (gate and up in alternate columns), `down [E, I, H]`.
    case interleaved(gateUp: Tensor, down: Tensor, i: Int, h: Int)
    /// MXFP4 (blocks, scales): gate and up in alternate rows of `[E, 2I, H]`, down `[E, H, I]`.
    case mxfp4(gateUp: (Tensor, Tensor), down: (Tensor, Tensor), i: Int, h: Int)

    /// Projection k (0 gate `[I, H]`, 1 up `[I, H]`, 2 down `[H, I]`) of expert `e` as f32 in `out`.
    func load(_ k: Int, expert e: Int, into out: UnsafeMutablePointer<Float>, resolver: TensorResolver)
        throws(SparrowError)
    {
        switch self {
        case .perExpert(let parts):
            try resolver.decode(parts[e][k], into: out)
        case .fused(let gu, let d, let i, let h):
            let (t, offset) = k == 2 ? (d, e * h * i) : (gu, e * 2 * i * h + k * i * h)
            let src = t.0.bytes(of: t.1).baseAddress! + t.1.dtype!.bytes(count: offset)
            DTypeConversion.convert(src, from: t.1.dtype!, to: .f32, count: i * h, into: out)
        case .interleaved(let gu, let d, let i, let h):
            // Transposed in the checkpoint: gather through one f32 copy of the expert's slice.
            let (t, rows, cols, stride, first) = k == 2 ? (d, h, i, h, 0) : (gu, i, h, 2 * i, k)
            let slice = UnsafeMutablePointer<Float>.allocate(capacity: cols * stride)
            defer { slice.deallocate() }
            let src = t.0.bytes(of: t.1).baseAddress! + t.1.dtype!.bytes(count: e * cols * stride)
            DTypeConversion.convert(src, from: t.1.dtype!, to: .f32, count: cols * stride, into: slice)
            for r in 0..<rows {
                let column = k == 2 ? r : 2 * r + first
                for c in 0..<cols { out[r * cols + c] = slice[c * stride + column] }
            }
        case .mxfp4(let gu, let d, let i, let h):
            let (t, rows, cols) = k == 2 ? (d, h, i) : (gu, i, h)
            let g = cols / MXFP4.blockSize
            let blocks = t.0.0.bytes(of: t.0.1).baseAddress!.assumingMemoryBound(to: UInt8.self)
            let scales = t.1.0.bytes(of: t.1.1).baseAddress!.assumingMemoryBound(to: UInt8.self)
            let stored = k == 2 ? h : 2 * i
            for r in 0..<rows {
                let row = e * stored + (k == 2 ? r : 2 * r + k)
                // E8M0 255 encodes NaN (the OCP format): refused rather than turned into infinite weights.
                if UnsafeBufferPointer(start: scales + row * g, count: g).contains(0xFF) {
                    throw .format(
                        .badTensor(path: t.1.0.file.path, name: t.1.1.name, problem: "an MXFP4 scale is 255 (NaN)"))
                }
                MXFP4.dequantize(
                    blocks: blocks + row * g * 16, scales: scales + row * g, blockCount: g, into: out + r * cols)
            }
        }
    }

    /// Lets the kernel drop the layer's source pages (the converter never needs them again).
    func release() {
        func drop(_ t: Tensor) { t.0.file.advise(offset: t.1.range.lowerBound, length: t.1.range.count, MADV_DONTNEED) }
        switch self {
        case .perExpert(let parts): for row in parts { row.forEach(drop) }
        case .fused(let gu, let d, _, _), .interleaved(let gu, let d, _, _): [gu, d].forEach(drop)
        case .mxfp4(let gu, let d, _, _): [gu.0, gu.1, d.0, d.1].forEach(drop)
        }
    }
}
