import CSparrowKernels

/// A row-major weight matrix `[rows, cols]` somewhere in memory (mapped file or cache slot), in a
/// float type or matryoshka-quantized at some level. Does not own its bytes.
public struct WeightMatrix: @unchecked Sendable {
    public enum Storage {
        case float(UnsafeRawPointer, spk_dtype)
        case quantized(spk_qmatrix)
    }

    public let storage: Storage
    public let rows: Int
    public let cols: Int

    /// A float matrix.
    public init(base: UnsafeRawPointer, type: spk_dtype, rows: Int, cols: Int) {
        storage = .float(base, type)
        self.rows = rows
        self.cols = cols
    }

    /// A matryoshka-quantized matrix viewed at the level its planes select (docs/QUANT.md):
    /// `scales` holds `[rows][cols / group][2]` f16 (min, step); `planes[k]` the bytes of plane k
    /// (`rows × cols × widths[k] / 8`), most significant plane first. Widths are 2, 4 or 8 bits and add
    /// up to at most 8; `group` divides `cols`. With `shifts` (`[rows][cols / group]` bytes) the
    /// codes are E2M1 codes (group 64 or 32, 2 or 4 bits; `spk_qmatrix`). Callers validate what they read from
    /// a file first.
    public init(
        scales: UnsafeRawPointer, planes: [UnsafeRawPointer], widths: [Int], rows: Int, cols: Int, group: Int,
        shifts: UnsafeRawPointer? = nil
    ) {
        precondition((1...4).contains(planes.count) && planes.count == widths.count, "1 to 4 planes, one width each")
        precondition(widths.allSatisfy { [2, 4, 8].contains($0) } && widths.reduce(0, +) <= 8, "plane widths \(widths)")
        precondition(group > 0 && cols % group == 0, "group \(group) does not divide \(cols) columns")
        precondition(shifts == nil || ([32, 64].contains(group) && [2, 4].contains(widths.reduce(0, +))), "E2M1 layout")
        var q = spk_qmatrix()
        q.rows = rows
        q.cols = cols
        q.group = group
        q.scales = scales.assumingMemoryBound(to: UInt16.self)
        q.shifts = shifts?.assumingMemoryBound(to: UInt8.self)
        q.nplanes = UInt8(planes.count)
        withUnsafeMutableBytes(of: &q.planes) { slots in
            let p = slots.bindMemory(to: UnsafePointer<UInt8>?.self)
            for (k, plane) in planes.enumerated() { p[k] = plane.assumingMemoryBound(to: UInt8.self) }
        }
        withUnsafeMutableBytes(of: &q.widths) { w in
            for (k, width) in widths.enumerated() { w[k] = UInt8(width) }
        }
        self.init(quantized: q)
    }

    /// A quantized matrix at the level its `nplanes` selects.
    public init(quantized q: spk_qmatrix) {
        storage = .quantized(q)
        rows = q.rows
        cols = q.cols
    }

    /// The kernels' view of a quantized matrix, nil for a float one.
    public var quantizedView: spk_qmatrix? {
        if case .quantized(let q) = storage { return q }
        return nil
    }

    /// Group size of a quantized matrix, nil for a float one.
    public var groupSize: Int? {
        if case .quantized(let q) = storage { return q.group }
        return nil
    }

    /// Bytes the kernels stream for one pass over the matrix.
    public var byteCount: Int {
        switch storage {
        case .float(_, let t): return rows * cols * spk_dtype_size(t)
        case .quantized(let q):
            var bits = 0
            for k in 0..<Int(q.nplanes) { bits += Int(withUnsafeBytes(of: q.widths) { $0[k] }) }
            return rows * cols * bits / 8 + rows * (cols / q.group) * 4
                + (q.shifts == nil ? 0 : rows * (cols / q.group))
        }
    }

    /// Copies row `r` into `out` as f32 (embedding lookup).
    public func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        switch storage {
        case .float(let base, let t): spk_to_f32(base + r * cols * spk_dtype_size(t), t, out, cols)
        case .quantized(var q): spk_qrow(&q, r, out)
        }
    }

    /// Rows `range` of the matrix, as a matrix of their own (no copy).
    public func rows(_ range: Range<Int>) -> WeightMatrix {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows, "rows \(range) of \(rows)")
        switch storage {
        case .float(let p, let t):
            return WeightMatrix(
                base: p + range.lowerBound * cols * spk_dtype_size(t), type: t, rows: range.count, cols: cols)
        case .quantized(var q):
            q.scales = q.scales! + range.lowerBound * (cols / q.group) * 2
            q.shifts = q.shifts.map { $0 + range.lowerBound * (cols / q.group) }
            let n = Int(q.nplanes)
            withUnsafeBytes(of: q.widths) { widths in
                withUnsafeMutableBytes(of: &q.planes) { planes in
                    for k in 0..<n {
                        let p = planes.load(fromByteOffset: k * 8, as: UnsafeRawPointer.self)
                        let moved = p + range.lowerBound * cols * Int(widths[k]) / 8
                        planes.storeBytes(of: moved, toByteOffset: k * 8, as: UnsafeRawPointer.self)
                    }
                }
            }
            q.rows = range.count
            return WeightMatrix(quantized: q)
        }
    }

    /// Where row 0 of each of the matrix's arrays starts and how many bytes a row of it has: the
    /// float table; or the scales, the shifts (E2M1 codes), then each plane. Row `r` of an array is
    /// at `start + r × bytes`.
    public var rowPieces: [(start: UnsafeRawPointer, bytes: Int)] {
        switch storage {
        case .float(let p, let t):
            return [(p, cols * spk_dtype_size(t))]
        case .quantized(let q):
            var pieces: [(start: UnsafeRawPointer, bytes: Int)] = [(UnsafeRawPointer(q.scales!), (cols / q.group) * 4)]
            if let shifts = q.shifts { pieces.append((UnsafeRawPointer(shifts), cols / q.group)) }
            withUnsafeBytes(of: q.planes) { planes in
                withUnsafeBytes(of: q.widths) { widths in
                    for k in 0..<Int(q.nplanes) {
                        pieces.append(
                            (planes.load(fromByteOffset: k * 8, as: UnsafeRawPointer.self), cols * Int(widths[k]) / 8))
                    }
                }
            }
            return pieces
        }
    }

    /// Decodes one row whose pieces (as `rowPieces` lists them, each `bytes` long) lie back to back
    /// at `packed` into `out` as f32: a row read from a file rather than through the matrix. No
    /// allocation.
    public func decodeRow(packed: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        switch storage {
        case .float(_, let t): spk_to_f32(packed, t, out, cols)
        case .quantized(var q):
            q.rows = 1
            q.scales = packed.assumingMemoryBound(to: UInt16.self)
            var plane = packed + (cols / q.group) * 4
            if q.shifts != nil {
                q.shifts = plane.assumingMemoryBound(to: UInt8.self)
                plane += cols / q.group
            }
            let n = Int(q.nplanes)
            withUnsafeBytes(of: q.widths) { widths in
                withUnsafeMutableBytes(of: &q.planes) { planes in
                    for k in 0..<n {
                        planes.storeBytes(of: plane, toByteOffset: k * 8, as: UnsafeRawPointer.self)
                        plane += cols * Int(widths[k]) / 8
                    }
                }
            }
            spk_qrow(&q, 0, out)
        }
    }

    /// Bytes of one element of a float type.
    public static func elementSize(_ type: spk_dtype) -> Int { spk_dtype_size(type) }
}

/// Caller-owned space for activations quantized to int8 (the integer kernels' input):
/// `capacity` values plus a scale and a sum per group of 16 or more.
public final class ActivationBuffer: @unchecked Sendable {
    public let q: UnsafeMutablePointer<Int8>
    public let scale: UnsafeMutablePointer<Float>
    public let sum: UnsafeMutablePointer<Int32>
    public let capacity: Int

    public init(capacity: Int) {
        self.capacity = max(capacity, 16)
        q = .allocate(capacity: self.capacity)
        scale = .allocate(capacity: self.capacity / 16)
        sum = .allocate(capacity: self.capacity / 16)
    }

    deinit {
        q.deallocate()
        scale.deallocate()
        sum.deallocate()
    }

    /// A view starting at activation row `row` of width `cols` (group `group`), for `n` rows.
    public func view(row: Int, n: Int, cols: Int, group: Int) -> spk_qact {
        precondition((row + n) * cols <= capacity)
        let groups = cols / group
        return spk_qact(
            q: q + row * cols, scale: scale + row * groups, sum: sum + row * groups, n: n, cols: cols, group: group)
    }
}
