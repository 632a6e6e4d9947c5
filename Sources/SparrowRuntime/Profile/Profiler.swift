import Foundation
import SparrowKernels

/// Runs calibration text through a model at full precision and builds its `ExpertProfile`.
package enum Profiler {
    /// Inputs kept per expert for measuring the error of each level.
    static let samplesPerExpert = 16

    /// Profiles `model` on the first `tokens` tokens of `text` (windows of `window` tokens, each
    /// from position 0, batched). `progress(done, total)` is called per window.
    package static func run(
        model: Model, text: String, tokens limit: Int? = nil, window: Int = 256, progress: ((Int, Int) -> Void)? = nil
    ) throws(SparrowError) -> ExpertProfile {
        let c = model.config
        let e = c.expertCount
        let layers = c.layerCount
        var ids = model.tokenizer.encode(text)
        if let limit { ids = Array(ids.prefix(limit)) }
        guard ids.count >= 2 else { throw .invalidArgument("the calibration text has fewer than 2 tokens") }
        guard c.moeLayerCount > 0 else { throw .invalidArgument("the model has no experts to profile") }

        var counts = Array(repeating: Array(repeating: 0, count: e), count: layers)
        var gates = Array(repeating: Array(repeating: [Float](), count: e), count: layers)
        var co = Array(repeating: Array(repeating: Array(repeating: 0, count: e), count: e), count: layers)
        var unimportance = Array(repeating: 0, count: ExpertProfile.gridPoints)
        var mass = Array(repeating: 0.0, count: ExpertProfile.gridPoints)
        var uses = 0
        var samples = Array(repeating: Array(repeating: [Float](), count: e), count: layers)
        var previous: [Int: [Int]] = [:]  // position → experts chosen by the previous MoE layer
        var previousLayer = -1

        let session = try Session(model: model, options: SessionOptions(contextLength: window, batchSize: min(window, 64)))
        session.routingObserver = { layer, position, experts, weights in
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
                    mass[bin] += Double(share)
                    uses += 1
                    if let before = previous[position] { for p in before { co[layer][p][x] += 1 } }
                }
            }
            previous[position] = experts
        }
        let h = c.hiddenSize
        session.expertInputObserver = { layer, expert, rows, count in
            let have = samples[layer][expert].count / h
            let take = min(count, samplesPerExpert - have)
            if take > 0 { samples[layer][expert] += UnsafeBufferPointer(start: rows, count: take * h) }
        }
        let windows = max(1, ids.count / window)
        for w in 0..<windows {
            session.reset()
            previous = [:]
            previousLayer = -1
            let slice = Array(ids[(w * window)..<min(ids.count, (w + 1) * window)])
            if slice.isEmpty { break }
            _ = try session.evaluate(slice)
            progress?(w + 1, windows)
        }

        let top = model.expertBits.count - 1
        var experts: [[ExpertProfile.Expert]] = []
        for l in 0..<layers {
            guard c.moeLayers[l] else {
                experts.append([])
                continue
            }
            let selections = max(1, counts[l].reduce(0, +))
            var row: [ExpertProfile.Expert] = []
            for x in 0..<e {
                let g = gates[l][x].sorted()
                let q = [0.1, 0.5, 0.9].map { p in g.isEmpty ? 0 : g[min(g.count - 1, Int(p * Double(g.count - 1)))] }
                let errors = try levelErrors(model: model, layer: l, expert: x, inputs: samples[l][x], top: top)
                row.append(.init(frequency: Double(counts[l][x]) * Double(c.expertsPerToken) / Double(selections),
                                 gateQuantiles: q, levelError: errors))
            }
            experts.append(row)
        }
        var cdf: [Double] = []
        var running = 0
        for b in unimportance {
            running += b
            cdf.append(Double(running) / Double(max(1, uses)))
        }
        let totalMass = max(mass.reduce(0, +), .leastNormalMagnitude)
        var massCDF: [Double] = []
        var carried = 0.0
        for m in mass {
            carried += m
            massCDF.append(carried / totalMass)
        }
        return ExpertProfile(
            modelBytes: model.file.file.count, calibrationTokens: ids.count, expertBits: model.expertBits, experts: experts,
            coActivation: co, unimportanceCDF: cdf, gateMassCDF: massCDF)
    }

    /// ‖y_level − y_top‖ / ‖y_top‖ of one expert on `inputs` (rows of the hidden size), per level.
    static func levelErrors(model: Model, layer: Int, expert: Int, inputs: [Float], top: Int) throws(SparrowError) -> [Float] {
        let h = model.config.hiddenSize
        let rows = inputs.count / h
        guard rows > 0 else { return Array(repeating: 0, count: top + 1) }
        func output(_ level: Int) throws(SparrowError) -> [Float] {
            let m = try model.experts.weights(layer: layer, expert: expert, level: level)
            let inter = m.gate.rows
            var gate = [Float](repeating: 0, count: rows * inter)
            var up = gate
            var out = [Float](repeating: 0, count: rows * h)
            // Float activations (no act buffers): the error of the level's weights alone.
            inputs.withUnsafeBufferPointer { x in
                gate.withUnsafeMutableBufferPointer { g in
                    up.withUnsafeMutableBufferPointer { u in
                        out.withUnsafeMutableBufferPointer { o in
                            m.forward(
                                x.baseAddress!, rows: rows, gate: g.baseAddress!, up: u.baseAddress!, into: o.baseAddress!,
                                threads: 1, act: nil, actMid: nil)
                        }
                    }
                }
            }
            return out
        }
        let reference = try output(top)
        let norm = reference.reduce(0) { $0 + Double($1 * $1) }.squareRoot()
        var errors: [Float] = []
        for level in 0...top {
            let y = level == top ? reference : try output(level)
            var d = 0.0
            for i in 0..<y.count { d += Double((y[i] - reference[i]) * (y[i] - reference[i])) }
            errors.append(norm > 0 ? Float(d.squareRoot() / norm) : 0)
        }
        return errors
    }
}
