import Foundation

/// Byte counts as people write them: `512MiB`, `1.5GiB`, `800MB`, `1000000`, or a percentage of
/// a reference size (`60%`, for budgets relative to the model file).
package enum ByteSize {
    /// Parses `text`; `percentOf` is the size a percentage refers to (nil refuses percentages).
    package static func parse(_ text: String, percentOf reference: Int? = nil) -> Int? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.hasSuffix("%") {
            guard let ref = reference, let p = Double(t.dropLast()), p > 0, p.isFinite else { return nil }
            return Int(Double(ref) * p / 100)
        }
        let units: [(String, Double)] = [
            ("KiB", 1024), ("MiB", 1_048_576), ("GiB", 1_073_741_824), ("TiB", 1_099_511_627_776), ("KB", 1e3),
            ("MB", 1e6),
            ("GB", 1e9), ("TB", 1e12), ("K", 1024), ("M", 1_048_576), ("G", 1_073_741_824), ("B", 1)
        ]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            guard let v = Double(t.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), v > 0, v.isFinite
            else {
                return nil
            }
            return Int(v * scale)
        }
        guard let v = Int(t), v > 0 else { return nil }
        return v
    }

    /// `1.50 GiB`, `512.00 MiB`, `900 B`.
    package static func format(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n)
        var u = 0
        while abs(v) >= 1024 && u < units.count - 1 {
            v /= 1024
            u += 1
        }
        return u == 0 ? "\(n) B" : String(format: "%.2f %@", v, units[u])
    }
}
