import Foundation
import SparrowIO
import SparrowKernels

/// The hybrid scheduler: every decision about an expert other than computing it — the level each
/// use runs at (HOBBIT's token-level precision, EdgeMoE's protected experts), which experts of
/// the next layers to read ahead (EdgeMoE/HOBBIT prediction, HybriMoE impact-driven prefetch,
/// cancellation of stale guesses), the order a step's experts are read and run in (HybriMoE's
/// intra-layer plan), and background upgrades. The session calls it at fixed points of a MoE
/// step (`level`, `routed`, `prefetchAhead`, `order`, `refinePrediction`, `tokenFinished`) and
/// runs what it decides; the scheduler reaches the cache only through `ExpertResidency`, so its
/// policies can be tested without I/O. One per session.
package final class Scheduler {
    package let config: ModelConfig
    /// The level every expert runs at, and the level token-level precision reads below it.
    package let expertLevel: Int
    package private(set) var lowLevel: Int
    /// Token-level precision (nil: off), its thresholds possibly derived from the profile.
    package private(set) var tokenPrecision: TokenPrecision?
    /// Experts a miss always reads at full precision: per layer, the `protectedShare` whose low
    /// level changes their output most in the profile.
    package let sensitive: Set<ExpertKey>
    /// Layers ahead whose experts are predicted and read (0: off).
    package let prefetchDepth: Int
    /// With token-level precision: the share of the expert cache cut into low-precision slots.
    package let lowSlotShare: Double?
    /// Replaces the level choice (tests and experiments): (position, layer, expert) → level, -1 skips.
    package var levelOverride: ((_ position: Int, _ layer: Int, _ expert: Int) -> Int)?
    package var statistics = SchedulerStatistics()

    let weights: ModelWeights
    private var planner: LayerPlanner?
    /// The routers of the layers 2…`prefetchDepth` ahead of each layer (nil below depth 2).
    let stackedRouters: StackedRouters?
    /// Guesses made for each layer at this token: [layer][depth − 1][k] expert ids, -1: none.
    let guesses: UnsafeMutablePointer<Int32>
    /// Work space: router scores of the layers ahead, their top-k, a normalised hidden state, the
    /// plan's read and compute estimates per active expert.
    let logits: UnsafeMutablePointer<Float>
    let ids: UnsafeMutablePointer<Int32>
    let scores: UnsafeMutablePointer<Float>
    let normed: UnsafeMutablePointer<Float>
    /// The routers' choice as the session makes it (correction bias, groups), and its scratch.
    let routing: RouterChoice
    let choice: UnsafeMutablePointer<Float>
    let groupScores: UnsafeMutablePointer<Float>
    private let readSeconds: UnsafeMutablePointer<Double>
    private let computeSeconds: UnsafeMutablePointer<Double>

    /// The scheduler of a session of `model` at `expertLevel` with `options` (the profile is used
    /// only if it describes this file). Throws for options that contradict each other or the file.
    package init(model: Model, expertLevel: Int, options: SessionOptions) throws(SparrowError) {
        config = model.config
        weights = model.weights
        self.expertLevel = expertLevel
        let stored = model.expertBits
        lowLevel = try Self.lowLevel(options.tokenPrecision, expertLevel: expertLevel, stored: stored)
        let profile = options.profile.flatMap {
            $0.modelBytes == model.file.file.count && $0.expertBits == stored
                && $0.experts.count == model.config.layerCount ? $0 : nil
        }
        let precision = Self.derivedPrecision(options.tokenPrecision, profile: profile, lowLevel: lowLevel)
        tokenPrecision = precision
        if let share = precision?.protectedShare, share > 0, let profile {
            sensitive = profile.mostSensitive(level: lowLevel, share: share)
        } else {
            sensitive = []
        }
        if let tp = precision {
            let fraction =
                Double(model.file.decodedLength(level: lowLevel))
                / Double(max(1, model.file.decodedLength(level: expertLevel)))
            lowSlotShare =
                options.lowPrecisionShare
                ?? profile?.lowSlotShare(fullThreshold: tp.fullThreshold, lowFraction: fraction) ?? 0.25
        } else {
            lowSlotShare = nil
        }
        guard (0...3).contains(options.prefetchDepth) else { throw .invalidArgument("prefetch depth must be 0…3") }
        let depth = options.prefetchDepth
        prefetchDepth = depth
        statistics.predicted = Array(repeating: 0, count: depth)
        statistics.correct = Array(repeating: 0, count: depth)
        statistics.chosen = Array(repeating: 0, count: depth)
        stackedRouters = depth >= 2 ? StackedRouters(weights: model.weights, config: config, depth: depth) : nil
        planner = options.intraLayerPlan ? LayerPlanner() : nil
        let e = max(1, config.expertCount)
        let k = max(1, config.expertsPerToken)
        let guessCount = config.layerCount * max(1, depth) * k
        guesses = .allocate(capacity: guessCount)
        guesses.initialize(repeating: -1, count: guessCount)
        logits = .allocate(capacity: max(1, depth) * e)
        ids = .allocate(capacity: max(1, depth) * k)
        scores = .allocate(capacity: max(1, depth) * k)
        normed = .allocate(capacity: config.hiddenSize)
        routing = RouterChoice(config: config)
        choice = .allocate(capacity: e)
        groupScores = .allocate(capacity: max(1, config.routerGroups?.count ?? 1))
        readSeconds = .allocate(capacity: e)
        computeSeconds = .allocate(capacity: e)
    }

    deinit {
        guesses.deallocate()
        logits.deallocate()
        ids.deallocate()
        scores.deallocate()
        normed.deallocate()
        choice.deallocate()
        groupScores.deallocate()
        readSeconds.deallocate()
        computeSeconds.deallocate()
    }

    /// Turns token-level precision off (the expert cache holds every expert at full precision):
    /// every use, and every prefetch, at the session's level.
    package func fullPrecisionOnly() {
        tokenPrecision = nil
        lowLevel = expertLevel
    }

    /// The low level token-level precision reads: the one `precision` names (a stored level at or
    /// below the session's), the lowest stored one, or the session's own without it.
    private static func lowLevel(_ precision: TokenPrecision?, expertLevel: Int, stored: [Int]) throws(SparrowError)
        -> Int
    {
        guard let tp = precision else { return expertLevel }
        guard tp.fullThreshold >= 0, tp.lowThreshold >= tp.fullThreshold else {
            throw .invalidArgument(
                "token precision thresholds must satisfy 0 ≤ full ≤ low (got \(tp.fullThreshold), \(tp.lowThreshold))")
        }
        guard let bits = tp.lowBits else { return 0 }
        guard let level = stored.firstIndex(of: bits), level <= expertLevel else {
            throw .invalidArgument(
                "low precision of \(bits) bits is not a stored level at or below \(stored[expertLevel]) bits "
                    + "(stored: \(stored.map(String.init).joined(separator: ", ")))")
        }
        return level
    }

    /// `precision` with the thresholds the profile's calibration gives for its tolerance (when it
    /// asks for them and there is a usable profile; else as given).
    private static func derivedPrecision(_ precision: TokenPrecision?, profile: ExpertProfile?, lowLevel: Int)
        -> TokenPrecision?
    {
        guard var tp = precision, let tolerance = tp.profileTolerance else { return precision }
        if let t = profile?.thresholds(lowLevel: lowLevel, tolerance: tolerance) {
            tp.fullThreshold = t.full
            tp.lowThreshold = t.low
        } else {
            tp.profileTolerance = nil  // no usable profile: the thresholds as given
        }
        return tp
    }

    /// The level a use of `key` with `unimportance` runs at this step (-1: skipped), counted in
    /// the statistics. The override wins; with token-level precision a cache miss reads the level
    /// its unimportance allows (a lower level already cached is used rather than read again),
    /// except for the sensitive experts; otherwise the session's level.
    package func level<C: ExpertResidency>(_ key: ExpertKey, unimportance: Float, position: Int, cache: C?) -> Int {
        let level =
            levelOverride?(position, key.layer, key.expert) ?? choose(key, unimportance: unimportance, cache: cache)
        if level < 0 {
            statistics.skipped += 1
        } else if level < expertLevel {
            statistics.downgraded += 1
        }
        return level
    }

    private func choose<C: ExpertResidency>(_ key: ExpertKey, unimportance: Float, cache: C?) -> Int {
        guard tokenPrecision != nil, let cache else { return expertLevel }
        let cached = cache.cachedLevel(key)
        if cached >= expertLevel { return expertLevel }
        let wanted = missLevel(key, unimportance: unimportance)
        if wanted < 0 { return cached >= 0 ? cached : -1 }  // skipping what is already here gains nothing
        return wanted == expertLevel ? expertLevel : max(wanted, cached)
    }

    /// The level a cache miss of `key` with `unimportance` reads with token-level precision (-1:
    /// skipped); the sensitive experts always read the session's level. Also what the next
    /// layer's prefetch reads for a guess.
    func missLevel(_ key: ExpertKey, unimportance: Float) -> Int {
        guard let tp = tokenPrecision, !sensitive.contains(key) else { return expertLevel }
        return tp.level(unimportance: unimportance, full: expertLevel, low: lowLevel) ?? -1
    }

    /// Orders a step's `count` active experts for the intra-layer plan (when on): `experts` and
    /// `levels` list them, `rows(a)` is how many token rows active expert `a` has, `swap(a, b)`
    /// exchanges two of them everywhere the session lists them. Read times come from the cache's
    /// measured bandwidth, compute times from the measured rate.
    package func order<C: ExpertResidency>(
        layer: Int, count: Int, experts: UnsafePointer<Int32>, levels: UnsafePointer<Int32>, recordBytes: (Int) -> Int,
        rows: (Int) -> Int, prefill: Bool, cache: C, swap: (Int, Int) -> Void
    ) {
        guard let planner else { return }
        let perByte = cache.laneSecondsPerByte
        for a in 0..<count {
            let key = ExpertKey(layer: layer, expert: Int(experts[a]))
            readSeconds[a] = Double(cache.missBytes(key, level: Int(levels[a]))) * perByte
            computeSeconds[a] = planner.computeSeconds(rows: rows(a), bytes: recordBytes(a), prefill: prefill)
        }
        let read = readSeconds
        let compute = computeSeconds
        statistics.plannedSeconds += LayerPlanner.order(count: count, read: read, compute: compute) { a, b in
            (read[a], read[b]) = (read[b], read[a])
            (compute[a], compute[b]) = (compute[b], compute[a])
            swap(a, b)
        }
    }

    /// A planned step ran: `computeSeconds` of expert compute over `rowBytes` (rows × record bytes
    /// summed), `seconds` from the first read queued to the last expert done.
    package func stepFinished(computeSeconds: Double, rowBytes: Double, seconds: Double, prefill: Bool) {
        guard planner != nil else { return }
        planner!.observe(computeSeconds: computeSeconds, rowBytes: rowBytes, prefill: prefill)
        statistics.plannedLayers += 1
        statistics.measuredSeconds += seconds
    }

    /// Whether the intra-layer plan is on.
    package var plans: Bool { planner != nil }

    /// The token is done and the lane usually idle (output head, sampling, the next embedding):
    /// downgraded records get their full level in the background (a scan of the slots, once a token).
    package func tokenFinished<C: ExpertResidency>(cache: C?) {
        guard tokenPrecision?.upgradeInBackground == true, let cache else { return }
        cache.upgradeInBackground(limit: IOLane.backgroundBatch)
    }

    /// The guesses for `layer` made `depth` layers before it (k ids, -1: none).
    package func guesses(layer: Int, depth: Int) -> UnsafeMutablePointer<Int32> {
        guesses + (layer * max(1, prefetchDepth) + depth - 1) * config.expertsPerToken
    }
}
