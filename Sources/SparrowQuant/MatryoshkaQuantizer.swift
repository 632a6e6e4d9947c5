import CSparrowKernels
import SparrowFormat
import SparrowKernels

/// A matrix quantized by a `MatryoshkaScheme`: scales and one byte array per level plane.
public struct QuantizedMatrix: Sendable {
    public var rows: Int
    public var cols: Int
    public var scheme: MatryoshkaScheme
    /// `[rows][cols / group][2]` f16 bit patterns (min, step of the 8-bit grid).
    public var scales: [UInt16]
    /// planes[k]: the bits level k adds, packed as the kernels read them.
    public var planes: [[UInt8]]
    /// E2M1 codes: `[rows][cols / group]` shift bytes (empty for the uniform grid).
    public var shifts: [UInt8]

    public init(
        rows: Int, cols: Int, scheme: MatryoshkaScheme, scales: [UInt16], planes: [[UInt8]], shifts: [UInt8] = []
    ) {
        self.rows = rows
        self.cols = cols
        self.scheme = scheme
        self.scales = scales
        self.planes = planes
        self.shifts = shifts
    }
}

/// Quantizes f32 matrices into nested levels (bit truncation of a per-group 8-bit code).
public enum MatryoshkaQuantizer {
    /// Quantizes `w` (`[rows, cols]`, row-major f32), rows split over the compute threads.
    public static func quantize(_ w: UnsafePointer<Float>, rows: Int, cols: Int, scheme: MatryoshkaScheme)
        -> QuantizedMatrix
    {
        let groups = cols / scheme.groupSize
        let widths = scheme.planeWidths
        let e2m1 = scheme.codebook == .e2m1
        let scales = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: rows * groups * 2)
        let planes = widths.map { UnsafeMutableBufferPointer<UInt8>.allocate(capacity: rows * cols * $0 / 8) }
        let shifts = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: e2m1 ? rows * groups : 0)
        let codes = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: e2m1 ? rows * cols : 0)
        defer {
            scales.deallocate()
            for p in planes { p.deallocate() }
            shifts.deallocate()
            codes.deallocate()
        }
        for p in planes { p.initialize(repeating: 0) }
        let chunk = max(1, min(rows, 64))
        let tasks = (rows + chunk - 1) / chunk
        Parallel.forEach(tasks) { t in
            let rows = t * chunk..<min(rows, t * chunk + chunk)
            guard e2m1 else {
                quantizeRows(
                    w, rows: rows, cols: cols, scheme: scheme, scales: scales.baseAddress!,
                    planes: planes.map { $0.baseAddress! })
                return
            }
            E2M1Quantizer.quantizeRows(
                w, rows: rows, cols: cols, group: scheme.groupSize, scales: scales.baseAddress!,
                shifts: shifts.baseAddress!, codes: codes.baseAddress!)
            for r in rows {
                pack(
                    UnsafeBufferPointer(rebasing: codes[r * cols..<(r + 1) * cols]), row: r, cols: cols, scheme: scheme,
                    into: planes.map { $0.baseAddress! })
            }
        }
        return QuantizedMatrix(
            rows: rows, cols: cols, scheme: scheme, scales: Array(scales), planes: planes.map { Array($0) },
            shifts: Array(shifts))
    }

    /// Quantizes rows `range` of `w` into their places in `scales` and `planes`.
    static func quantizeRows(
        _ w: UnsafePointer<Float>, rows range: Range<Int>, cols: Int, scheme: MatryoshkaScheme,
        scales: UnsafeMutablePointer<UInt16>, planes: [UnsafeMutablePointer<UInt8>]
    ) {
        let g = scheme.groupSize
        let groups = cols / g
        let codes = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: cols)
        defer { codes.deallocate() }
        for r in range {
            let row = w + r * cols
            for gi in 0..<groups {
                var lo = Float.infinity
                var hi = -Float.infinity
                for i in 0..<g {
                    lo = min(lo, row[gi * g + i])
                    hi = max(hi, row[gi * g + i])
                }
                // The min/max grid, or for an MXFP4 block the clip-free grid with the least 4- and
                // 2-bit error (GroupGrid). (Clipping outliers to minimise each group's 4-bit squared
                // error was measured worse in perplexity on the trained demo model.) Codes are
                // computed against the f16 values stored, so what is stored is self-consistent.
                let grid = GroupGrid.choose(row + gi * g, count: g, lo: lo, hi: hi)
                let m = grid.m
                let d = grid.d
                scales[(r * groups + gi) * 2] = grid.mBits
                scales[(r * groups + gi) * 2 + 1] = grid.dBits
                let inv: Float = d > 0 ? 1 / d : 0
                for i in 0..<g {
                    let q = ((row[gi * g + i] - m) * inv).rounded()
                    codes[gi * g + i] = UInt8(max(0, min(255, q)))
                }
            }
            pack(UnsafeBufferPointer(codes), row: r, cols: cols, scheme: scheme, into: planes)
        }
    }

    /// Splits one row of 8-bit codes into the level planes (layout in sparrow_kernels.h).
    static func pack(
        _ codes: UnsafeBufferPointer<UInt8>, row r: Int, cols: Int, scheme: MatryoshkaScheme,
        into planes: [UnsafeMutablePointer<UInt8>]
    ) {
        let p = scheme.blockSize
        var shift = 8
        for (k, width) in scheme.planeWidths.enumerated() {
            shift -= width
            let mask = UInt8((1 << width) - 1)
            let perByte = 8 / width
            let stride = p / perByte
            let rowBase = r * cols * width / 8
            for block in 0..<(cols / p) {
                let base = rowBase + block * stride
                for i in 0..<p {
                    let v = (codes[block * p + i] >> UInt8(shift)) & mask
                    planes[k][base + i % stride] |= v << UInt8((i / stride) * width)
                }
            }
        }
    }
}
