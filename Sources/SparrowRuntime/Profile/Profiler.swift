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
        var ids = model.tokenizer.encode(text)
        if let limit { ids = Array(ids.prefix(limit)) }
        guard ids.count >= 2 else { throw .invalidArgument("the calibration text has fewer than 2 tokens") }
        guard c.moeLayerCount > 0 else { throw .invalidArgument("the model has no experts to profile") }
        let seen = RoutingObservations(config: c, samplesPerExpert: samplesPerExpert)
        let session = try Session(
            model: model, options: SessionOptions(contextLength: window, batchSize: min(window, 64)))
        session.routingObserver = { seen.routed(layer: $0, position: $1, experts: $2, weights: $3) }
        session.expertInputObserver = { seen.input(layer: $0, expert: $1, rows: $2, count: $3) }
        let windows = max(1, ids.count / window)
        for w in 0..<windows {
            session.reset()
            seen.newSequence()
            let slice = Array(ids[(w * window)..<min(ids.count, (w + 1) * window)])
            if slice.isEmpty { break }
            _ = try session.evaluate(slice)
            progress?(w + 1, windows)
        }
        let top = model.expertBits.count - 1
        var experts: [[ExpertProfile.Expert]] = []
        for l in 0..<c.layerCount {
            experts.append(
                try c.moeLayers[l]
                    ? (0..<c.expertCount).map { (x) throws(SparrowError) in
                        ExpertProfile.Expert(
                            frequency: seen.frequency(layer: l, expert: x),
                            gateQuantiles: seen.gateQuantiles(layer: l, expert: x),
                            levelError: try levelErrors(
                                model: model, layer: l, expert: x, inputs: seen.samples[l][x], top: top))
                    } : [])
        }
        return ExpertProfile(
            modelBytes: model.file.file.count, calibrationTokens: ids.count, expertBits: model.expertBits,
            experts: experts,
            coActivation: seen.coActivation, unimportanceCDF: cumulative(seen.unimportance.map(Double.init)),
            gateMassCDF: cumulative(seen.gateMass))
    }

    /// Running sums of `values` over their total (all 0 when the total is 0).
    static func cumulative(_ values: [Double]) -> [Double] {
        let total = max(values.reduce(0, +), .leastNormalMagnitude)
        var running = 0.0
        return values.map {
            running += $0
            return running / total
        }
    }

    /// ‖y_level − y_top‖ / ‖y_top‖ of one expert on `inputs` (rows of the hidden size), per level.
    static func levelErrors(model: Model, layer: Int, expert: Int, inputs: [Float], top: Int) throws(SparrowError)
        -> [Float]
    {
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
                                x.baseAddress!, rows: rows, gate: g.baseAddress!, up: u.baseAddress!,
                                into: o.baseAddress!,
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
