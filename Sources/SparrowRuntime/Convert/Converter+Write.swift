import Foundation
import SparrowFormat
import SparrowQuant

/// What a conversion has written so far, and its progress.
struct ConversionTally {
    let total: Int
    let progress: ((Int, Int) -> Void)?
    var done = 0
    var denseBytes = 0
    var expertBytes = 0
    var compressedLevels = 0
    var compressionSaved = 0

    init(total: Int, progress: ((Int, Int) -> Void)?) {
        self.total = total
        self.progress = progress
    }

    /// One tensor or record written.
    mutating func step() {
        done += 1
        progress?(done, total)
    }
}

/// Writing the planned tensors: dense ones (float, or quantized), then every expert record with its
/// levels (raw, or zstd where that saves enough).
extension Converter {
    /// Writes the dense tensors, each read through the checkpoint's mapping, converted in `scratch`
    /// and dropped from the page cache once written.
    func writeDense(
        _ plan: ConversionPlan, to writer: SPWWriter, scratch: UnsafeMutableRawBufferPointer,
        tally: inout ConversionTally
    ) throws(SparrowError) {
        for (item, scheme) in zip(plan.dense, plan.denseSchemes) {
            let (file, info) = try plan.resolver.find(item.name, shape: item.shape)
            let count = item.shape.reduce(1, *)
            let gathered = try plan.resolver.gather(item.name, (file, info), count: count)
            defer { gathered?.deallocate() }
            let src = gathered.map { UnsafeRawPointer($0) } ?? file.bytes(of: info).baseAddress!
            let srcType = gathered == nil ? info.dtype! : .f32
            if let scheme {
                let q = quantizeChunked(
                    src, from: srcType, rows: item.shape[0], cols: item.shape[1], scheme: scheme)
                try writeQuantized(q, name: item.name.description, to: writer)
                tally.denseBytes += q.scales.count * 2 + q.planes.reduce(0) { $0 + $1.count }
            } else {
                let type = item.isF32 ? .f32 : plan.weightType
                let n = type.bytes(count: count)
                DTypeConversion.convert(src, from: srcType, to: type, count: count, into: scratch.baseAddress!)
                try formatCall { () throws(FormatError) in
                    try writer.addDense(
                        name: item.name.description, dtype: type, shape: item.shape,
                        bytes: UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
                }
                tally.denseBytes += n
            }
            file.file.advise(offset: info.range.lowerBound, length: info.range.count, MADV_DONTNEED)
            tally.step()
        }
    }

    /// Writes every expert record of the MoE layers, assembled in `record` (room for one).
    func writeExperts(
        _ plan: ConversionPlan, to writer: SPWWriter, record: UnsafeMutableRawPointer, tally: inout ConversionTally
    ) throws(SparrowError) {
        let c = plan.config
        let expertF32 = UnsafeMutablePointer<Float>.allocate(capacity: max(1, c.expertIntermediateSize * c.hiddenSize))
        defer { expertF32.deallocate() }
        writer.beginExperts(levels: plan.levels)
        for l in plan.moeLayers {
            let source = try plan.resolver.expertSource(layer: l, config: c)
            for e in 0..<c.expertCount {
                record.initializeMemory(as: UInt8.self, repeating: 0, count: plan.recordSize)
                for (k, projection) in Projection.allCases.enumerated() {
                    let shape = projection.shape(intermediate: c.expertIntermediateSize, hidden: c.hiddenSize)
                    try source.load(k, expert: e, into: expertF32, resolver: plan.resolver)
                    if let scheme = plan.scheme {
                        let q = MatryoshkaQuantizer.quantize(expertF32, rows: shape[0], cols: shape[1], scheme: scheme)
                        copy(q, base: projection.rawValue, levels: plan.levels, into: record)
                    } else {
                        let at = record + plan.levels[0].components[k].offset
                        DTypeConversion.convert(
                            expertF32, from: .f32, to: plan.weightType, count: shape[0] * shape[1], into: at)
                    }
                }
                try store(record, layer: l, expert: e, plan: plan, to: writer, tally: &tally)
                tally.expertBytes += plan.recordSize
                tally.step()
            }
            source.release()
        }
    }

    /// Writes the assembled record of (layer, expert): each level raw, or zstd-compressed where
    /// that saves at least `zstdMinSaving` of its bytes.
    private func store(
        _ record: UnsafeMutableRawPointer, layer l: Int, expert e: Int, plan: ConversionPlan, to writer: SPWWriter,
        tally: inout ConversionTally
    ) throws(SparrowError) {
        let parts = plan.levelRanges.map { UnsafeRawBufferPointer(start: record + $0.lowerBound, count: $0.count) }
        guard let minSaving = options.zstdMinSaving else {
            try formatCall { () throws(FormatError) in try writer.addExpert(layer: l, expert: e, levels: parts) }
            return
        }
        var stored: [[UInt8]] = []
        var codecs: [LevelCodec] = []
        for part in parts {
            let z = try formatValue { () throws(FormatError) in try Zstd.compress(part, level: Self.zstdLevel) }
            if Double(part.count - z.count) >= minSaving * Double(part.count) && z.count < part.count {
                stored.append(z)
                codecs.append(.zstd)
                tally.compressedLevels += 1
                tally.compressionSaved += part.count - z.count
            } else {
                stored.append(Array(part))
                codecs.append(.raw)
            }
        }
        try formatCall { () throws(FormatError) in
            try withBuffers(stored) { (b) throws(FormatError) in
                try writer.addExpert(layer: l, expert: e, levels: b, codecs: codecs)
            }
        }
    }

    /// Quantizes a dense matrix, converting the source to f32 a chunk of rows at a time.
    func quantizeChunked(
        _ src: UnsafeRawPointer, from type: DType, rows: Int, cols: Int, scheme: MatryoshkaScheme
    ) -> QuantizedMatrix {
        let chunkRows = max(1, min(rows, (1 << 20) / cols))
        let f32 = UnsafeMutablePointer<Float>.allocate(capacity: chunkRows * cols)
        defer { f32.deallocate() }
        var out = QuantizedMatrix(
            rows: 0, cols: cols, scheme: scheme, scales: [], planes: scheme.levels.map { _ in [] })
        var r = 0
        while r < rows {
            let n = min(chunkRows, rows - r)
            DTypeConversion.convert(src + type.bytes(count: r * cols), from: type, to: .f32, count: n * cols, into: f32)
            let q = MatryoshkaQuantizer.quantize(f32, rows: n, cols: cols, scheme: scheme)
            out.scales += q.scales
            for k in q.planes.indices { out.planes[k] += q.planes[k] }
            out.rows += n
            r += n
        }
        return out
    }

    /// Writes a quantized dense matrix as its scales and planes.
    func writeQuantized(_ q: QuantizedMatrix, name: String, to writer: SPWWriter) throws(SparrowError) {
        for level in q.scheme.levels.indices {
            for part in QuantLayout.components(name, rows: q.rows, cols: q.cols, scheme: q.scheme, level: level) {
                let bytes: [UInt8] =
                    part.name.hasSuffix(".scales")
                    ? q.scales.withUnsafeBytes { Array($0) } : q.planes[level]
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 64)
                defer { buffer.deallocate() }
                buffer.copyBytes(from: bytes)
                try formatCall { () throws(FormatError) in
                    try writer.addDense(
                        name: part.name, dtype: part.dtype, shape: part.shape, bytes: UnsafeRawBufferPointer(buffer))
                }
            }
        }
    }

    /// Copies a quantized expert projection's scales, shifts (E2M1 codes) and planes to their places
    /// in the record.
    func copy(_ q: QuantizedMatrix, base: String, levels: [ExpertLevelLayout], into record: UnsafeMutableRawPointer) {
        for (k, level) in levels.enumerated() {
            for c in level.components where c.name.hasPrefix(base + ".") {
                if c.name == QuantLayout.scalesName(base) {
                    q.scales.withUnsafeBytes {
                        (record + c.offset).copyMemory(from: $0.baseAddress!, byteCount: c.length)
                    }
                } else if c.name == QuantLayout.shiftsName(base) {
                    q.shifts.withUnsafeBytes {
                        (record + c.offset).copyMemory(from: $0.baseAddress!, byteCount: c.length)
                    }
                } else {
                    q.planes[k].withUnsafeBytes {
                        (record + c.offset).copyMemory(from: $0.baseAddress!, byteCount: c.length)
                    }
                }
            }
        }
    }
}

/// Calls `body` with raw views of `arrays` (kept alive for the call).
private func withBuffers(
    _ arrays: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) throws(FormatError) -> Void
) throws(FormatError) {
    let copies = arrays.map { a in
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: a.count, alignment: 16)
        b.copyBytes(from: a)
        return b
    }
    defer { for c in copies { c.deallocate() } }
    try body(copies.map { UnsafeRawBufferPointer($0) })
}
