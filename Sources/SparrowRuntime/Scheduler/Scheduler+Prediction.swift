import SparrowKernels

/// Layer-level prediction and prefetch (EdgeMoE, HOBBIT) with HybriMoE's impact-driven admission:
/// guesses of the next layers' experts from their routers, read ahead and scored afterwards.
extension Scheduler {
    /// A decode step of `layer` chose `chosen` (`count` ids): scores the guesses earlier layers
    /// made for it, then forgets them.
    package func routed(layer: Int, chosen: UnsafePointer<Int32>, count: Int) {
        let k = config.expertsPerToken
        for d in 0..<prefetchDepth {
            let guess = guesses(layer: layer, depth: d + 1)
            guard guess[0] >= 0 else { continue }
            var hits = 0
            for j in 0..<count where (0..<k).contains(where: { guess[$0] == chosen[j] }) { hits += 1 }
            statistics.predicted[d] += k
            statistics.correct[d] += hits
            statistics.chosen[d] += count
            guess[0] = -1
        }
    }

    /// Applies the routers of layers 2…`prefetchDepth` ahead (stacked: one matmul) to layer
    /// `layer`'s MoE input (one token, `input`) and reads their likely experts at the low level (a
    /// wrong guess costs little) as background reads — they never delay a read the compute thread
    /// waits for, and are cancelled if their layer runs without them. Candidates are scored by
    /// probability × the share of this depth's past guesses that were right × the bytes a miss
    /// would read, and read best first while the prefetch bytes in flight stay within
    /// `expertsPerToken × depth` slots (at most half the cache); protected from eviction until
    /// used or stale. The next layer's are predicted and read by `refinePrediction`, on a sharper
    /// guess. Without a cache (resident experts) it only predicts, for the statistics.
    package func prefetchAhead<C: ExpertResidency>(layer l: Int, input: UnsafePointer<Float>, cache: C?) {
        guard prefetchDepth >= 2, let stacked = stackedRouters, let routers = stacked.matrices[l] else { return }
        let k = config.expertsPerToken
        let e = config.expertCount
        let ahead = stacked.layers[l]
        Ops.matmul(routers, input, n: 1, into: logits, threads: 1)
        for (i, t) in ahead.enumerated() {
            if let b = weights.layers[t].routerBias { Ops.addBias(logits + i * e, b, rows: 1, dim: e) }
            routing.choose(
                logits + i * e, correction: weights.layers[t].routerCorrection, choice: choice,
                groupScores: groupScores, ids: ids + i * k, weights: scores + i * k)
            guesses(layer: t, depth: t - l).update(from: ids + i * k, count: k)
        }
        guard let cache else { return }
        admit(candidates: ahead.count * k, layers: ahead, from: l, cache: cache)
    }

    /// Scores the `candidates` guesses in `ids`/`scores` (layer `layers[j / k]` each) for reading,
    /// then reads the best while the room for prefetches lasts (see `prefetchAhead`). Guesses
    /// already cached are only protected.
    func admit<C: ExpertResidency>(candidates: Int, layers ahead: [Int], from l: Int, cache: C) {
        let k = config.expertsPerToken
        for j in 0..<candidates {
            let t = ahead[j / k]
            let key = ExpertKey(layer: t, expert: Int(ids[j]))
            let bytes = cache.missBytes(key, level: lowLevel)
            if bytes == 0 { cache.prefetch(key, level: lowLevel, steps: t - l, background: false) }  // protect it
            scores[j] *= Float(precision(depth: t - l)) * Float(bytes)
        }
        var room = min(k * prefetchDepth, max(1, cache.slotCount / 2)) * cache.slotSize - cache.prefetchBytesInFlight
        while room > 0 {
            var best = -1
            for j in 0..<candidates where scores[j] > 0 && (best < 0 || scores[j] > scores[best]) { best = j }
            guard best >= 0 else { break }
            scores[best] = 0
            let t = ahead[best / k]
            room -= cache.prefetch(
                ExpertKey(layer: t, expert: Int(ids[best])), level: lowLevel, steps: t - l, background: true)
        }
        cache.submit()
    }

    /// The share of the guesses made `depth` layers ahead that the layer then chose (1 until
    /// there are enough to tell).
    package func precision(depth: Int) -> Double {
        let made = statistics.predicted[depth - 1]
        return made >= 8 * config.expertsPerToken ? Double(statistics.correct[depth - 1]) / Double(made) : 1
    }

    /// After layer `l` (one token, its residual `hidden` updated): the next layer's router applied
    /// to the hidden state as that layer will normalise it, missing only its attention — a sharper
    /// guess than the one made at layer `l`'s MoE input, in time to overlap the next attention.
    /// Reads each guess at the level a miss of it would read (token-level precision applied to
    /// the predicted gate weights: a guess the step would skip is not read) and replaces the
    /// depth-1 guess.
    package func refinePrediction<C: ExpertResidency>(after l: Int, hidden: UnsafePointer<Float>, cache: C?) {
        let t = l + 1
        guard prefetchDepth > 0, t < config.layerCount, let router = weights.layers[t].router else { return }
        let k = config.expertsPerToken
        let e = config.expertCount
        Ops.rmsNorm(
            hidden, weight: weights.layers[t].ffnNorm, dim: config.hiddenSize, count: 1, eps: config.rmsNormEps,
            into: normed)
        Ops.matmul(router, normed, n: 1, into: logits, threads: 1)
        if let b = weights.layers[t].routerBias { Ops.addBias(logits, b, rows: 1, dim: e) }
        routing.choose(
            logits, correction: weights.layers[t].routerCorrection, choice: choice, groupScores: groupScores, ids: ids,
            weights: scores)
        guesses(layer: t, depth: 1).update(from: ids, count: k)
        guard let cache else { return }
        TokenPrecision.forEachUnimportance(scores, count: k) { j, unimportance, _ in
            let key = ExpertKey(layer: t, expert: Int(ids[j]))
            let level = missLevel(key, unimportance: unimportance)
            if level >= 0 { cache.prefetch(key, level: level, steps: 1, background: false) }
        }
        cache.submit()
    }
}
