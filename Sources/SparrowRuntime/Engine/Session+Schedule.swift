import SparrowKernels

/// The hybrid scheduler's per-layer decisions: the level each expert use runs at (HOBBIT's
/// token-level precision), and which experts of the next layers to read ahead (EdgeMoE / HOBBIT
/// layer-level prediction, HybriMoE impact-driven prefetch).
extension Session {
    /// The level expert `x` of layer `l` runs at this step (-1: skipped). An override wins; with
    /// token-level precision a cache miss reads the level its unimportance allows (a lower level
    /// already cached is used rather than read again), except for the profile's sensitive experts;
    /// otherwise the session's level.
    func chooseLevel(layer l: Int, expert x: Int, unimportance: Float) -> Int {
        if let override = expertLevelOverride { return override(position, l, x) }
        guard let tp = tokenPrecision, let cache = expertCache else { return expertLevel }
        let cached = cache.cachedLevel(layer: l, expert: x)
        if cached >= expertLevel || sensitiveExperts.contains(l * config.expertCount + x) { return expertLevel }
        guard let wanted = tp.level(unimportance: unimportance, full: expertLevel, low: lowLevel) else {
            return cached >= 0 ? cached : -1  // skipping what is already here gains nothing
        }
        return wanted == expertLevel ? expertLevel : max(wanted, cached)
    }

    /// Applies the routers of layers 2…`prefetchDepth` ahead (stacked: one matmul) to this layer's
    /// MoE input (one token) and reads their likely experts at the low level (a wrong guess costs
    /// little) as background reads — they never delay a read the compute thread waits for, and
    /// are cancelled if their layer runs without them. Candidates are scored by probability × the
    /// share of this depth's past guesses that were right × the bytes a miss would read, and read
    /// best first while the prefetch bytes in flight stay within `expertsPerToken × depth` slots
    /// (at most half the cache); protected from eviction until used or stale. The next layer's are
    /// predicted and read by `refinePrediction`, on a sharper guess. Without a cache (resident
    /// experts) it only predicts, for the statistics.
    func prefetchAhead(layer l: Int, cache: ExpertCache?) {
        guard prefetchDepth >= 2, let stacked = stackedRouters, let routers = stacked.matrices[l] else { return }
        let c = config
        let s = scratch
        let k = c.expertsPerToken
        let e = c.expertCount
        let ahead = stacked.layers[l]
        let logits = s.router.pointer  // free once this layer is routed
        let ids = s.predictIds
        let score = s.predictWeights
        Ops.matmul(routers, s.xn.pointer, n: 1, into: logits, threads: 1)
        for (i, t) in ahead.enumerated() {
            Ops.softmax(logits + i * e, e)
            selectTopK(logits + i * e, count: e, k: k, ids: ids + i * k, weights: score + i * k)
            predictions[t][t - l - 1] = (0..<k).map { ids[i * k + $0] }
        }
        guard let cache else { return }
        let candidates = ahead.count * k
        for j in 0..<candidates {
            let t = ahead[j / k]
            let bytes = cache.missBytes(layer: t, expert: Int(ids[j]), level: lowLevel)
            if bytes == 0 { cache.prefetch(layer: t, expert: Int(ids[j]), level: lowLevel, steps: t - l) }  // protect it
            score[j] *= Float(predictionPrecision(depth: t - l)) * Float(bytes)
        }
        var room = min(k * prefetchDepth, max(1, cache.slotCount / 2)) * cache.slotSize - cache.prefetchBytesInFlight
        while room > 0 {
            var best = -1
            for j in 0..<candidates where score[j] > 0 && (best < 0 || score[j] > score[best]) { best = j }
            guard best >= 0 else { break }
            score[best] = 0
            let t = ahead[best / k]
            room -= cache.prefetch(layer: t, expert: Int(ids[best]), level: lowLevel, steps: t - l, background: true)
        }
        cache.submit()
    }

    /// The share of the guesses made `depth` layers ahead that the layer then chose (1 until
    /// there are enough to tell).
    func predictionPrecision(depth: Int) -> Double {
        let made = schedulerStatistics.predicted[depth - 1]
        return made >= 8 * config.expertsPerToken ? Double(schedulerStatistics.correct[depth - 1]) / Double(made) : 1
    }

    /// After layer `l` (one token, its residual updated): the next layer's router applied to the
    /// hidden state as that layer will normalise it, missing only its attention — a sharper guess
    /// than the one made at layer `l`'s MoE input, in time to overlap the next attention. Reads
    /// what it adds and replaces the depth-1 prediction.
    func refinePrediction(after l: Int) {
        let c = config
        let t = l + 1
        guard prefetchDepth > 0, t < c.layerCount, let router = model.weights.layers[t].router else { return }
        let s = scratch
        let k = c.expertsPerToken
        let normed = s.proj.pointer  // free between a layer's end and the next attention
        Ops.rmsNorm(s.x.pointer, weight: model.weights.layers[t].ffnNorm, dim: c.hiddenSize, count: 1, eps: c.rmsNormEps, into: normed)
        Ops.matmul(router, normed, n: 1, into: s.router.pointer, threads: 1)
        Ops.softmax(s.router.pointer, c.expertCount)
        selectTopK(s.router.pointer, count: c.expertCount, k: k, ids: s.predictIds, weights: s.predictWeights)
        predictions[t][0] = (0..<k).map { s.predictIds[$0] }
        guard let cache = expertCache else { return }
        for j in 0..<k { cache.prefetch(layer: t, expert: Int(s.predictIds[j]), level: expertLevel, steps: 1) }
        cache.submit()
    }

    /// Scores the predictions earlier layers made for layer `l` against the experts it chose.
    func scorePredictions(layer l: Int, chosen: UnsafePointer<Int32>, count: Int) {
        for d in 0..<prefetchDepth {
            let guess = predictions[l][d]
            guard !guess.isEmpty else { continue }
            var hits = 0
            for j in 0..<count where guess.contains(chosen[j]) { hits += 1 }
            schedulerStatistics.predicted[d] += guess.count
            schedulerStatistics.correct[d] += hits
            schedulerStatistics.chosen[d] += count
            predictions[l][d] = []
        }
    }
}
