import Foundation
import SparrowSync
import SparrowFormat
import SparrowKernels
import SparrowQuant

/// Where a resident forward pass gets an expert's weights from: the mapped file. (A budgeted session
/// reads experts through its ExpertCache instead, which does not conform to this protocol.)
protocol ExpertStore: AnyObject, Sendable {
    /// The expert's gate, up and down matrices at `level`, valid until the next call for this layer.
    func weights(layer: Int, expert: Int, level: Int) throws(SparrowError) -> MLPWeights
}

/// Experts read straight from the memory-mapped file (the whole model resident or paged by the
/// kernel). Each record level is checked against its checksum the first time it is used, so a
/// corrupt record is an error naming the layer and expert rather than garbage logits. A record with
/// zstd levels is decoded into memory of its own on first use and kept.
final class MappedExpertStore: ExpertStore, @unchecked Sendable {
    private let file: SPWFile
    private let levels: [ExpertLevelLayout]
    private let expertCount: Int
    /// What uses have resolved so far, per (layer, expert, level).
    private struct Resolved {
        /// The matrices: resolved once, the token loop only looks them up.
        var table: [MLPWeights?]
        /// Whether the record's levels through this one have been checked.
        var verified: [Bool]
        /// Decoded copies of records stored with zstd levels.
        var decoded: [UnsafeMutableRawBufferPointer] = []
    }
    private let resolved: Locked<Resolved>

    deinit { resolved.withLock { for d in $0.decoded { d.deallocate() } } }

    init(file: SPWFile, config: ModelConfig) throws(SparrowError) {
        self.file = file
        self.levels = file.directory.expertLevels
        self.expertCount = config.expertCount
        let count = config.layerCount * config.expertCount * max(1, levels.count)
        let table =
            config.moeLayerCount > 0
            ? try Self.mappedRecords(file: file, config: config) : Array(repeating: nil, count: count)
        resolved = Locked(Resolved(table: table, verified: Array(repeating: false, count: count)))
    }

    /// Checks that every MoE layer has all its records, with the model's shapes and every level,
    /// and resolves the matrices of the raw (uncompressed) levels in the mapping: per (layer,
    /// expert, level), nil where a level is stored with zstd (decoded on first use).
    private static func mappedRecords(file: SPWFile, config: ModelConfig) throws(SparrowError) -> [MLPWeights?] {
        let levels = file.directory.expertLevels
        let expertCount = config.expertCount
        var table = [MLPWeights?](repeating: nil, count: config.layerCount * expertCount * max(1, levels.count))
        for l in 0..<config.layerCount where config.moeLayers[l] {
            for e in 0..<config.expertCount where file.expert(layer: l, expert: e) == nil {
                throw .format(.corrupt(path: file.path, what: "no record for layer \(l) expert \(e)"))
            }
        }
        let i = config.expertIntermediateSize
        let h = config.hiddenSize
        guard !levels.isEmpty else { throw .format(.corrupt(path: file.path, what: "expert records have no levels")) }
        for level in levels.indices {
            for p in Projection.allCases {
                let name = p.rawValue
                guard shape(of: name, in: levels, upTo: level) == p.shape(intermediate: i, hidden: h) else {
                    throw .format(
                        .corrupt(
                            path: file.path, what: "expert '\(name)' at level \(level) does not match the model's shape"
                        ))
                }
            }
        }
        for l in 0..<config.layerCount where config.moeLayers[l] {
            for e in 0..<config.expertCount {
                let entry = file.expert(layer: l, expert: e)!
                guard entry.levels.count == levels.count else {
                    throw .format(.corrupt(path: file.path, what: "expert record layer \(l) expert \(e) level count"))
                }
                for level in levels.indices where file.isRaw(entry, upTo: level) {
                    let base = file.mappedExpert(entry, level: level).baseAddress!
                    table[(l * expertCount + e) * levels.count + level] = MLPWeights(
                        base: base, levels: levels, level: level)
                }
            }
        }
        return table
    }

    /// The logical shape of projection `name` at `level`: its float component's, or, when it is
    /// quantized, its planes' (all of levels 0...level present, with scales); nil if incomplete.
    private static func shape(of name: String, in levels: [ExpertLevelLayout], upTo level: Int) -> [Int]? {
        let all = levels[0...level].flatMap(\.components)
        if let c = all.first(where: { $0.name == name }) { return c.shape }
        guard let scales = all.first(where: { $0.name == QuantLayout.scalesName(name) }),
            let p0 = all.first(where: { $0.name == QuantLayout.planeName(name, 0) }), p0.shape.count == 2
        else { return nil }
        var bits = 0
        for l in 0...level {
            guard let p = all.first(where: { $0.name == QuantLayout.planeName(name, l) }), p.shape == p0.shape,
                [2, 4, 8].contains(p.dtype.bits)
            else { return nil }
            bits += p.dtype.bits
        }
        let (rows, cols) = (p0.shape[0], p0.shape[1])
        guard bits <= 8, scales.dtype == .f16, scales.shape.count == 3, scales.shape[0] == rows,
            scales.shape[2] == 2, scales.shape[1] > 0, cols % scales.shape[1] == 0
        else { return nil }
        if let shifts = all.first(where: { $0.name == QuantLayout.shiftsName(name) }) {
            // E2M1 codes: groups of 64 or 32, one shift byte per group, every level 2 or 4 bits.
            guard shifts.dtype == .u8, shifts.shape == [rows, scales.shape[1]],
                [32, 64].contains(cols / scales.shape[1]),
                bits == 2 || bits == 4
            else { return nil }
        }
        return p0.shape
    }

    func weights(layer: Int, expert: Int, level: Int) throws(SparrowError) -> MLPWeights {
        let key = (layer * expertCount + expert) * levels.count + level
        guard level >= 0, level < levels.count, layer >= 0, expert >= 0, expert < expertCount,
            let entry = file.expert(layer: layer, expert: expert)
        else { throw .invalidArgument("no expert record for layer \(layer) expert \(expert) level \(level)") }
        return try resolved.withLock { (r) throws(SparrowError) -> MLPWeights in
            try resolve(&r, key: key, entry: entry, layer: layer, expert: expert, level: level)
        }
    }

    /// The matrices of `key` (= layer, expert, level), checking or decoding the record the first
    /// time (the store's state held).
    private func resolve(
        _ r: inout Resolved, key: Int, entry: ExpertRecordEntry, layer: Int, expert: Int, level: Int
    ) throws(SparrowError) -> MLPWeights {
        guard key < r.table.count else {
            throw .invalidArgument("no expert record for layer \(layer) expert \(expert)")
        }
        if r.verified[key], let w = r.table[key] { return w }
        if let w = r.table[key] {
            do { for k in 0...level { try file.verifyExpert(entry, level: k) } } catch { throw .format(error) }
            r.verified[key] = true
            return w
        }
        // Stored with zstd: decode the whole record once (checksums checked while decoding).
        let top = levels.count - 1
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: file.decodedLength(level: top), alignment: 64)
        do {
            try file.decodeExpert(entry, levels: 0...top, stored: file.mappedExpert(entry, level: top), into: out)
        } catch {
            out.deallocate()
            throw .format(error)
        }
        r.decoded.append(out)
        let first = (layer * expertCount + expert) * levels.count
        for k in levels.indices {
            r.table[first + k] = MLPWeights(base: UnsafeRawPointer(out.baseAddress!), levels: levels, level: k)
            r.verified[first + k] = true
        }
        return r.table[key]!
    }

}

extension MLPWeights {
    /// The gate, up and down matrices of a decoded record prefix at `base`, at `level`.
    init(base: UnsafeRawPointer, levels: [ExpertLevelLayout], level: Int) {
        self.init(
            gate: Self.matrix(Projection.gate.rawValue, base: base, levels: levels, level: level),
            up: Self.matrix(Projection.up.rawValue, base: base, levels: levels, level: level),
            down: Self.matrix(Projection.down.rawValue, base: base, levels: levels, level: level))
    }

    /// Projection `name` of a record whose prefix up to `level` is at `base`: the float component of
    /// that name, or its scales and planes 0...level.
    static func matrix(_ name: String, base: UnsafeRawPointer, levels: [ExpertLevelLayout], level: Int) -> WeightMatrix
    {
        var scales: ExpertComponent?
        var shifts: ExpertComponent?
        var planes: [(UnsafeRawPointer, DType)] = []
        var shape: [Int] = []
        for l in 0...level {
            for c in levels[l].components {
                if c.name == name {
                    return WeightMatrix(
                        base: base + c.offset, type: c.dtype.kernelType, rows: c.shape[0], cols: c.shape[1])
                }
                if c.name == QuantLayout.scalesName(name) { scales = c }
                if c.name == QuantLayout.shiftsName(name) { shifts = c }
                if c.name == QuantLayout.planeName(name, l) {
                    planes.append((base + c.offset, c.dtype))
                    shape = c.shape
                }
            }
        }
        let s = scales!
        return WeightMatrix(
            scales: base + s.offset, planes: planes.map(\.0), widths: planes.map(\.1.bits), rows: shape[0],
            cols: shape[1], group: shape[1] / s.shape[1], shifts: shifts.map { base + $0.offset })
    }
}
