/// HybriMoE's intra-layer scheduling for one MoE step: the order in which a layer's experts are
/// read and run so that the layer finishes first. The step is a two-stage flow shop — each
/// expert is read by the I/O lane (nothing to read when cached), then computed by the threads —
/// and Johnson's rule orders it optimally: experts whose read is shorter than their compute
/// first, by ascending read time; then the others by descending compute time. Read times come
/// from the lane's measured bandwidth, compute times from the measured compute rate (seconds per
/// row per record byte, one rate for single-token steps and one for prompts), both updated as
/// the session runs; the plan's predicted finish time is kept beside the measured one.
package struct LayerPlanner: Sendable {
    /// Compute seconds per row per record byte: single-token steps, prompt steps. Until measured,
    /// a guess of 10 GB/s (only the order of equal reads depends on it).
    private var rate = (decode: 1e-10, prefill: 1e-10)

    package init() {}

    /// The compute estimate of an expert with `rows` rows and `bytes` record bytes.
    func computeSeconds(rows: Int, bytes: Int, prefill: Bool) -> Double {
        Double(rows) * Double(bytes) * (prefill ? rate.prefill : rate.decode)
    }

    /// Folds a measured step into the compute rate (moving average).
    mutating func observe(computeSeconds: Double, rowBytes: Double, prefill: Bool) {
        guard rowBytes > 0, computeSeconds > 0 else { return }
        let measured = computeSeconds / rowBytes
        if prefill {
            rate.prefill += 0.2 * (measured - rate.prefill)
        } else {
            rate.decode += 0.2 * (measured - rate.decode)
        }
    }

    /// Orders experts `0..<count` (read and compute seconds in `read`, `compute`; `swap`
    /// exchanges two experts everywhere they are listed) by Johnson's rule, stable, and returns
    /// the predicted finish time: reads back to back at the lane's rate, each expert computed
    /// once its read has landed and the one before it is done.
    package static func order(
        count: Int, read: UnsafeMutablePointer<Double>, compute: UnsafeMutablePointer<Double>, swap: (Int, Int) -> Void
    ) -> Double {
        func first(_ i: Int, _ j: Int) -> Bool {
            let early = (read[i] < compute[i], read[j] < compute[j])
            if early.0 != early.1 { return early.0 }
            return early.0 ? read[i] < read[j] : compute[i] > compute[j]
        }
        for a in 1..<max(1, count) {  // insertion sort: stable, no allocation
            var b = a
            while b > 0 && first(b, b - 1) {
                swap(b, b - 1)
                b -= 1
            }
        }
        var readEnd = 0.0
        var computeEnd = 0.0
        for a in 0..<count {
            readEnd += read[a]
            computeEnd = max(computeEnd, readEnd) + compute[a]
        }
        return computeEnd
    }
}
