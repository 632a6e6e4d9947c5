import Foundation
import SparrowKernels

extension Session {
    /// The sparse MoE block for `n` rows of `scratch.xn`: route, let the scheduler choose each
    /// selected expert's level, run each expert on the tokens that chose it, combine with the
    /// routing weights (plus the shared expert where the architecture has one) into `scratch.moeOut`.
    /// A `prompt` step's reads are transient and make no predictions; a decode step's are scored
    /// and lead the next layers' prefetch.
    func moe(layer l: Int, weights lw: LayerWeights, n: Int, prompt: Bool) throws(SparrowError) {
        Ops.matmul(lw.router!, scratch.xn.pointer, n: n, into: scratch.router.pointer, threads: threads)
        if let b = lw.routerBias { Ops.addBias(scratch.router.pointer, b, rows: n, dim: config.expertCount) }
        route(layer: l, weights: lw, tokens: n)
        groupByExpert(tokens: n)
        if !prompt { scheduler.routed(layer: l, chosen: scratch.topIds, count: config.expertsPerToken) }
        expertCache?.beginLayer(l)
        let active = chooseLevels(layer: l)
        if let cache = expertCache {
            try runCachedExperts(layer: l, cache: cache, count: active, prefill: prompt)
        } else {
            // Predictions only (nothing to read): for the statistics.
            if !prompt { scheduler.prefetchAhead(layer: l, input: scratch.xn.pointer, cache: expertCache) }
            for a in 0..<active {
                let m = try model.experts.weights(
                    layer: l, expert: Int(scratch.activeExperts[a]), level: Int(scratch.activeLevels[a]))
                (scratch.activeWeights + a).initialize(to: m)
            }
            runExperts(layer: l, first: 0, count: active)
        }
        combine(tokens: n, weights: lw)
    }

    /// Routes `n` tokens from their router logits (in `scratch.router`) as the family routes
    /// (`RouterChoice`); per expert, how many tokens chose it, its smallest unimportance and its
    /// largest gate weight.
    private func route(layer l: Int, weights lw: LayerWeights, tokens n: Int) {
        let s = scratch
        let e = config.expertCount
        let topK = config.expertsPerToken
        let counts = s.expertStart
        counts.initialize(repeating: 0, count: e + 2)
        s.expertUnimportance.initialize(repeating: .infinity, count: e)
        s.expertGate.initialize(repeating: 0, count: e)
        for i in 0..<n {
            let ids = s.topIds + i * topK
            let ws = s.topWeights + i * topK
            routing.choose(
                s.router.pointer + i * e, correction: lw.routerCorrection, choice: s.routerChoice.pointer,
                groupScores: s.groupScores.pointer, ids: ids, weights: ws)
            // Unimportance (token-level precision): the renormalised weight ranked above each expert.
            TokenPrecision.forEachUnimportance(ws, count: topK) { j, u, _ in
                let x = Int(ids[j])
                counts[x + 2] += 1
                s.expertUnimportance[x] = min(s.expertUnimportance[x], u)
                s.expertGate[x] = max(s.expertGate[x], ws[j])
            }
            if let observe = routingObserver {
                observe(l, position + i, (0..<topK).map { Int(ids[$0]) }, (0..<topK).map { ws[$0] })
            }
        }
    }

    /// Groups the (token, rank) pairs by expert: afterwards `expertStart[x]` is the first slot of
    /// expert x and `expertStart[x + 1]` its end; each slot has its token's input row and weight.
    private func groupByExpert(tokens n: Int) {
        let s = scratch
        let h = config.hiddenSize
        let topK = config.expertsPerToken
        let counts = s.expertStart
        for x in 0..<config.expertCount { counts[x + 2] += counts[x + 1] }
        let starts = counts + 1
        for i in 0..<n {
            for j in 0..<topK {
                let x = Int(s.topIds[i * topK + j])
                let slot = Int(starts[x])
                starts[x] += 1
                s.slotToken[slot] = Int32(i)
                s.slotWeight[slot] = s.topWeights[i * topK + j]
                s.tokenSlot[i * topK + j] = Int32(slot)
                (s.slotIn.pointer + slot * h).update(from: s.xn.pointer + i * h, count: h)
            }
        }
    }

    /// Lists the experts this step runs (`activeExperts`) with the level the scheduler chose for
    /// each (`activeLevels`) and returns how many; a skipped expert's uses weigh 0 and its output
    /// rows are zero.
    private func chooseLevels(layer l: Int) -> Int {
        let s = scratch
        let h = config.hiddenSize
        let counts = s.expertStart
        var active = 0
        for x in 0..<config.expertCount where counts[x + 1] > counts[x] {
            let rows = Int(counts[x])..<Int(counts[x + 1])
            expertInputObserver?(l, x, s.slotIn.pointer + rows.lowerBound * h, rows.count)
            let key = ExpertKey(layer: l, expert: x)
            let level = scheduler.level(
                key, unimportance: s.expertUnimportance[x], position: position, cache: expertCache)
            expertLevelObserver?(position, l, x, level)
            if level < 0 {
                for slot in rows {
                    s.slotWeight[slot] = 0
                    (s.slotOut.pointer + slot * h).initialize(repeating: 0, count: h)
                }
                continue
            }
            s.activeExperts[active] = Int32(x)
            s.activeLevels[active] = Int32(level)
            active += 1
        }
        return active
    }

    /// Sums each token's expert outputs in rank order (deterministic whatever the thread
    /// schedule), plus the shared expert (gated where it has a gate) where there is one, into `moeOut`.
    private func combine(tokens n: Int, weights lw: LayerWeights) {
        let s = scratch
        let h = config.hiddenSize
        let topK = config.expertsPerToken
        let out = s.moeOut.pointer
        out.initialize(repeating: 0, count: n * h)
        for i in 0..<n {
            for j in 0..<topK {
                let slot = Int(s.tokenSlot[i * topK + j])
                Ops.axpy(h, s.slotWeight[slot], s.slotOut.pointer + slot * h, out + i * h)
            }
        }
        if let shared = lw.shared {
            denseMLP(shared, n: n, into: s.proj.pointer)
            if let sg = lw.sharedGate { Ops.matmul(sg, s.xn.pointer, n: n, into: s.gateScalar.pointer, threads: 1) }
            for i in 0..<n {
                let gate = lw.sharedGate == nil ? 1 : Ops.sigmoid(s.gateScalar.pointer[i])
                Ops.axpy(h, gate, s.proj.pointer + i * h, out + i * h)
            }
        }
    }

    /// One expert on the rows routed to it, on the session's backend.
    func expertForward(_ m: MLPWeights, layer l: Int, expert x: Int, threads inner: Int) {
        let first = Int(scratch.expertStart[x])
        let bias = model.weights.layers[l].expertBias?.of(x)
        backend.runExpert(m, bias: bias, first: first, rows: Int(scratch.expertStart[x + 1]) - first, threads: inner)
    }

    /// Runs active experts `first..<first + count` (weights in `activeWeights`): in parallel across
    /// experts when there are at least as many as threads, else each expert's matmuls in parallel.
    func runExperts(layer l: Int, first: Int, count: Int) {
        let s = scratch
        let inner = count >= threads ? 1 : threads
        let timeline = inner == 1 ? self.timeline : nil  // each expert on one worker: its own row
        let run: (Int) -> Void = { a in
            let start = timeline?.now()
            self.expertForward(
                s.activeWeights[first + a], layer: l, expert: Int(s.activeExperts[first + a]), threads: inner)
            if let timeline, let start {
                timeline.addOnThisThread(.resident, layer: l, from: start, to: timeline.now())
            }
        }
        if inner == 1 { split(count, run) } else { for a in 0..<count { run(a) } }
    }
}
