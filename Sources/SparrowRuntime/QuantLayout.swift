import SparrowFormat
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
