/// What the profiler sees while calibration text runs: per layer and expert, how often it was
/// chosen and with what gate shares, after which experts of the previous MoE layer, a few of its
/// inputs, and how expert uses spread over unimportance (count and gate mass per grid point).
final class RoutingObservations {
    let config: ModelConfig
    let samplesPerExpert: Int
    /// [layer][expert]: selections, gate shares, input rows kept (hidden-size floats each).
    var counts: [[Int]]
    var gates: [[[Float]]]
    var samples: [[[Float]]]
    /// [layer][previous-layer expert][expert]: chosen by the same token.
    var coActivation: [[[Int]]]
    /// Per grid point of unimportance: uses, and their gate mass.
    var unimportance: [Int]
    var gateMass: [Double]
    /// Experts the previous MoE layer chose, per position of the sequence running.
    private var previous: [Int: [Int]] = [:]
    private var previousLayer = -1

    init(config c: ModelConfig, samplesPerExpert: Int) {
        config = c
        self.samplesPerExpert = samplesPerExpert
        let e = c.expertCount
        counts = Array(repeating: Array(repeating: 0, count: e), count: c.layerCount)
        gates = Array(repeating: Array(repeating: [], count: e), count: c.layerCount)
        samples = Array(repeating: Array(repeating: [], count: e), count: c.layerCount)
        coActivation = Array(repeating: Array(repeating: Array(repeating: 0, count: e), count: e), count: c.layerCount)
        unimportance = Array(repeating: 0, count: ExpertProfile.gridPoints)
        gateMass = Array(repeating: 0, count: ExpertProfile.gridPoints)
    }

    /// A new sequence starts (the session was reset).
    func newSequence() {
        previous = [:]
        previousLayer = -1
    }

    /// A token at `position` chose `experts` in `layer` with `weights` (descending).
    func routed(layer: Int, position: Int, experts: [Int], weights: [Float]) {
        if layer != previousLayer {
            if layer < previousLayer || previousLayer < 0 { previous = [:] }
            previousLayer = layer
        }
        weights.withUnsafeBufferPointer { w in
            TokenPrecision.forEachUnimportance(w.baseAddress!, count: w.count) { j, u, share in
                let x = experts[j]
                counts[layer][x] += 1
                gates[layer][x].append(share)
                let bin = ExpertProfile.gridPoint(atOrAbove: Double(u))
                unimportance[bin] += 1
                gateMass[bin] += Double(share)
                if let before = previous[position] { for p in before { coActivation[layer][p][x] += 1 } }
            }
        }
        previous[position] = experts
    }

    /// `count` input rows routed to (layer, expert): the first few are kept.
    func input(layer: Int, expert: Int, rows: UnsafePointer<Float>, count: Int) {
        let h = config.hiddenSize
        let take = min(count, samplesPerExpert - samples[layer][expert].count / h)
        if take > 0 { samples[layer][expert] += UnsafeBufferPointer(start: rows, count: take * h) }
    }

    /// The expert's share of its layer's selections, scaled so a layer's shares sum to top-k.
    func frequency(layer l: Int, expert x: Int) -> Double {
        Double(counts[l][x]) * Double(config.expertsPerToken) / Double(max(1, counts[l].reduce(0, +)))
    }

    /// The 10th, 50th and 90th percentiles of the expert's gate shares (0 when never chosen).
    func gateQuantiles(layer l: Int, expert x: Int) -> [Float] {
        let g = gates[l][x].sorted()
        return [0.1, 0.5, 0.9].map { p in g.isEmpty ? 0 : g[min(g.count - 1, Int(p * Double(g.count - 1)))] }
    }
}
