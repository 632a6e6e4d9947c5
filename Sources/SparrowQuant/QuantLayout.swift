import SparrowFormat

/// The three projections of a SwiGLU expert, in the order a record stores them. Their raw values
/// are the component names in the file (`gate`, `gate.scales`, `gate.plane0`, …).
package enum Projection: String, CaseIterable, Sendable {
    case gate, up, down

    /// `[rows, cols]` of this projection for an expert of `intermediate` neurons in a model of
    /// `hidden` dimensions: gate and up `[intermediate, hidden]`, down `[hidden, intermediate]`.
    package func shape(intermediate: Int, hidden: Int) -> [Int] {
        self == .down ? [hidden, intermediate] : [intermediate, hidden]
    }
}

/// Names and shapes of the stored pieces of a quantized matrix `NAME`: `NAME.scales`
/// (f16 `[rows, cols / group, 2]`), for E2M1 codes `NAME.shifts` (u8 `[rows, cols / group]`), and
/// `NAME.plane0`, `NAME.plane1`, … (code planes `[rows, cols]`).
package enum QuantLayout {
    /// The scales of matrix `base`.
    package static func scalesName(_ base: String) -> String { base + ".scales" }
    /// Plane `k` of matrix `base` (most significant first).
    package static func planeName(_ base: String, _ k: Int) -> String { base + ".plane\(k)" }
    /// The shift bytes of an E2M1 matrix `base` (u8 `[rows, cols / group]`, level 0).
    package static func shiftsName(_ base: String) -> String { base + ".shifts" }

    /// The components one level adds for a `[rows, cols]` matrix: level 0 carries the scales too.
    package static func components(
        _ base: String, rows: Int, cols: Int, scheme: MatryoshkaScheme, level: Int
    ) -> [(name: String, dtype: DType, shape: [Int])] {
        var out: [(String, DType, [Int])] = []
        if level == 0 { out.append((scalesName(base), .f16, [rows, cols / scheme.groupSize, 2])) }
        if level == 0, scheme.codebook == .e2m1 {
            out.append((shiftsName(base), .u8, [rows, cols / scheme.groupSize]))
        }
        out.append((planeName(base, level), DType.plane(width: scheme.planeWidths[level])!, [rows, cols]))
        return out
    }
}
