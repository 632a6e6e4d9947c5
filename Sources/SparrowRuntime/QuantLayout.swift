import CSparrowKernels
import SparrowFormat
import SparrowKernels
import SparrowQuant

/// Names and shapes of the stored pieces of a quantized matrix `NAME`: `NAME.scales`
/// (f16 `[rows, cols / group, 2]`) and `NAME.plane0`, `NAME.plane1`, … (code planes `[rows, cols]`).
enum QuantLayout {
    static func scalesName(_ base: String) -> String { base + ".scales" }
    static func planeName(_ base: String, _ k: Int) -> String { base + ".plane\(k)" }

    /// The components one level adds for a `[rows, cols]` matrix: level 0 carries the scales too.
    static func components(
        _ base: String, rows: Int, cols: Int, scheme: MatryoshkaScheme, level: Int
    ) -> [(name: String, dtype: DType, shape: [Int])] {
        var out: [(String, DType, [Int])] = []
        if level == 0 { out.append((scalesName(base), .f16, [rows, cols / scheme.groupSize, 2])) }
        out.append((planeName(base, level), DType.plane(width: scheme.planeWidths[level])!, [rows, cols]))
        return out
    }
}


extension WeightMatrix {
    /// A quantized matrix from its scales and the planes of levels 0...level.
    static func quantized(
        scales: UnsafeRawPointer, planes: [(UnsafeRawPointer, DType)], rows: Int, cols: Int, group: Int
    ) -> WeightMatrix {
        var q = spk_qmatrix()
        q.rows = rows
        q.cols = cols
        q.group = group
        q.scales = scales.assumingMemoryBound(to: UInt16.self)
        q.nplanes = UInt8(planes.count)
        withUnsafeMutableBytes(of: &q.planes) { p in
            for (k, plane) in planes.enumerated() {
                p.storeBytes(of: plane.0.assumingMemoryBound(to: UInt8.self), toByteOffset: k * 8, as: UnsafePointer<UInt8>?.self)
            }
        }
        withUnsafeMutableBytes(of: &q.widths) { w in
            for (k, plane) in planes.enumerated() { w[k] = UInt8(plane.1.bits) }
        }
        return WeightMatrix(quantized: q)
    }
}
