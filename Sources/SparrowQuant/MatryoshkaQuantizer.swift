import CSparrowKernels
import SparrowFormat

/// A matrix quantized by a `MatryoshkaScheme`: scales and one byte array per level plane.
public struct QuantizedMatrix: Sendable {
    public var rows: Int
    public var cols: Int
    public var scheme: MatryoshkaScheme
    /// `[rows][cols / group][2]` f16 bit patterns (min, step of the 8-bit grid).
    public var scales: [UInt16]
    /// planes[k]: the bits level k adds, packed as the kernels read them.
    public var planes: [[UInt8]]

    public init(rows: Int, cols: Int, scheme: MatryoshkaScheme, scales: [UInt16], planes: [[UInt8]]) {
        self.rows = rows
        self.cols = cols
        self.scheme = scheme
        self.scales = scales
        self.planes = planes
    }
}

/// Quantizes f32 matrices into nested levels (bit truncation of a per-group 8-bit code).
public enum MatryoshkaQuantizer {
    /// Quantizes `w` (`[rows, cols]`, row-major f32).
    public static func quantize(_ w: UnsafePointer<Float>, rows: Int, cols: Int, scheme: MatryoshkaScheme) -> QuantizedMatrix {
        let g = scheme.groupSize
        let groups = cols / g
        var scales = [UInt16](repeating: 0, count: rows * groups * 2)
        var codes = [UInt8](repeating: 0, count: cols)
        let widths = scheme.planeWidths
        var planes = widths.map { [UInt8](repeating: 0, count: rows * cols * $0 / 8) }
        var pair = [Float](repeating: 0, count: 2)
        var half = [UInt16](repeating: 0, count: 2)
        // The level the grid is tuned for: 4 bits when stored (the usual working precision), else the
        // lowest level. 8-bit codes are fine on any grid; the lower levels gain from clipping outliers.
        let tunedBits = scheme.levels.contains(4) ? 4 : scheme.levels[0]
        for r in 0..<rows {
            let row = w + r * cols
            for gi in 0..<groups {
                let group = UnsafeBufferPointer(start: row + gi * g, count: g)
                var lo = Float.infinity
                var hi = -Float.infinity
                for v in group {
                    lo = min(lo, v)
                    hi = max(hi, v)
                }
                var best = (error: Float.infinity, m: lo, d: Float(0), half: [UInt16](repeating: 0, count: 2))
                for shrink in clipCandidates {
                    // The grid is stored in f16: quantize against the rounded values so codes match them.
                    pair[0] = lo + (hi - lo) * shrink
                    pair[1] = (hi - lo) * (1 - 2 * shrink) / 255
                    spk_from_f32(pair, &half, SPK_F16, 2)
                    spk_to_f32(half, SPK_F16, &pair, 2)
                    let e = levelError(group, m: pair[0], d: pair[1], bits: tunedBits)
                    if e < best.error { best = (e, pair[0], pair[1], half) }
                    if hi == lo { break }
                }
                scales[(r * groups + gi) * 2] = best.half[0]
                scales[(r * groups + gi) * 2 + 1] = best.half[1]
                let inv: Float = best.d > 0 ? 1 / best.d : 0
                for i in 0..<g {
                    let q = ((group[i] - best.m) * inv).rounded()
                    codes[gi * g + i] = UInt8(max(0, min(255, q)))
                }
            }
            pack(codes, row: r, cols: cols, scheme: scheme, into: &planes)
        }
        return QuantizedMatrix(rows: rows, cols: cols, scheme: scheme, scales: scales, planes: planes)
    }

    /// Fractions of the range clipped at each end, tried per group (0 = plain min/max).
    static let clipCandidates: [Float] = [0, 0.02, 0.04, 0.06, 0.08, 0.1]

    /// Squared reconstruction error of a group at `bits` on the grid (m, d).
    @inline(__always)
    static func levelError(_ group: UnsafeBufferPointer<Float>, m: Float, d: Float, bits: Int) -> Float {
        guard d > 0 else {
            var e: Float = 0
            for v in group { e += (v - m) * (v - m) }
            return e
        }
        let inv = 1 / d
        let shift = Float(1 << (8 - bits))
        let s = d * shift
        let o = m + d * (shift - 1) * 0.5
        var e: Float = 0
        for v in group {
            let q = max(0, min(255, ((v - m) * inv).rounded()))
            let t = (q / shift).rounded(.down)
            let r = o + s * t - v
            e += r * r
        }
        return e
    }

    /// Splits one row of 8-bit codes into the level planes (layout in sparrow_kernels.h).
    static func pack(_ codes: [UInt8], row r: Int, cols: Int, scheme: MatryoshkaScheme, into planes: inout [[UInt8]]) {
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
