import Foundation
import SparrowKernels

extension Session {
    /// The sparse MoE block for `n` rows of `scratch.xn`: route, run each selected expert on the
    /// tokens that chose it, combine with the routing weights (plus the shared expert where the
    /// architecture has one) into `scratch.moeOut`.
    func moe(layer l: Int, weights lw: LayerWeights, n: Int) throws(SparrowError) {
        let c = config
        let s = scratch
        let h = c.hiddenSize
        let e = c.expertCount
        let topK = c.expertsPerToken
        let logits = s.router.pointer
        Ops.matmul(lw.router!, s.xn.pointer, n: n, into: logits, threads: threads)

        // Route: softmax over experts, top-k by probability, optional renormalisation.
        let counts = s.expertStart
        counts.initialize(repeating: 0, count: e + 2)
        let unimportance = s.expertUnimportance
        let gate = s.expertGate
        unimportance.initialize(repeating: .infinity, count: e)
        gate.initialize(repeating: 0, count: e)
        for i in 0..<n {
            let row = logits + i * e
            Ops.softmax(row, e)
            let ids = s.topIds + i * topK
            let ws = s.topWeights + i * topK
            selectTopK(row, count: e, k: topK, ids: ids, weights: ws)
            if c.normalizeTopK {
                var sum: Float = 0
                for j in 0..<topK { sum += ws[j] }
                for j in 0..<topK { ws[j] /= sum }
            }
            // Unimportance (token-level precision): the renormalised weight ranked above each expert.
            TokenPrecision.forEachUnimportance(ws, count: topK) { j, u, _ in
                let x = Int(ids[j])
                counts[x + 2] += 1
                unimportance[x] = min(unimportance[x], u)
                gate[x] = max(gate[x], ws[j])
            }
            if let observe = routingObserver {
                observe(l, position + i, (0..<topK).map { Int(ids[$0]) }, (0..<topK).map { ws[$0] })
            }
        }
        // Group (token, rank) pairs by expert: expertStart[x] is the first slot of expert x.
        for x in 0..<e { counts[x + 2] += counts[x + 1] }
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
        if n == 1 && prefetchDepth > 0 { scorePredictions(layer: l, chosen: s.topIds, count: topK) }
        expertCache?.beginLayer(l)
        // `counts[x]` is now the start of expert x, `counts[x + 1]` its end. Choose each expert's
        // level; a skipped expert's uses weigh 0 (and its output rows are zero).
        let active = s.activeExperts
        let levels = s.activeLevels
        var activeCount = 0
        for x in 0..<e where counts[x + 1] > counts[x] {
            if let observe = expertInputObserver {
                observe(l, x, s.slotIn.pointer + Int(counts[x]) * h, Int(counts[x + 1] - counts[x]))
            }
            let level = chooseLevel(layer: l, expert: x, unimportance: unimportance[x])
            expertLevelObserver?(position, l, x, level)
            if level < 0 {
                schedulerStatistics.skipped += 1
                for slot in Int(counts[x])..<Int(counts[x + 1]) {
                    s.slotWeight[slot] = 0
                    (s.slotOut.pointer + slot * h).initialize(repeating: 0, count: h)
                }
                continue
            }
            if level < expertLevel { schedulerStatistics.downgraded += 1 }
            active[activeCount] = Int32(x)
            levels[activeCount] = Int32(level)
            activeCount += 1
        }
        if let cache = expertCache {
            try runCachedExperts(layer: l, cache: cache, count: activeCount, counts: counts, tokens: n)
        } else {
            if n == 1 { prefetchAhead(layer: l, cache: nil) }  // prediction statistics only
            for a in 0..<activeCount {
                (s.activeWeights + a).initialize(to: try model.experts.weights(layer: l, expert: Int(active[a]), level: Int(levels[a])))
            }
            runExperts(layer: l, first: 0, count: activeCount, counts: counts)
        }

        // Combine in rank order per token (deterministic whatever the thread schedule).
        let out = s.moeOut.pointer
        out.initialize(repeating: 0, count: n * h)
        for i in 0..<n {
            for j in 0..<topK {
                let slot = Int(s.tokenSlot[i * topK + j])
                Ops.axpy(h, s.slotWeight[slot], s.slotOut.pointer + slot * h, out + i * h)
            }
        }
        if let shared = lw.shared, let sg = lw.sharedGate {
            denseMLP(shared, n: n, into: s.proj.pointer)
            Ops.matmul(sg, s.xn.pointer, n: n, into: s.gateScalar.pointer, threads: 1)
            for i in 0..<n {
                Ops.axpy(h, Ops.sigmoid(s.gateScalar.pointer[i]), s.proj.pointer + i * h, out + i * h)
            }
        }
    }

    /// One expert on the rows routed to it, on the session's backend.
    func expertForward(_ m: MLPWeights, expert x: Int, counts: UnsafeMutablePointer<Int32>, threads inner: Int) {
        let first = Int(counts[x])
        backend.runExpert(m, first: first, rows: Int(counts[x + 1]) - first, threads: inner)
    }

    /// The active experts through the budgeted cache, in waves of as many as the cache can pin:
    /// all misses of a wave are submitted first, the experts already resident run (in parallel)
    /// while they load, then each miss runs as soon as its read completes.
    private func runCachedExperts(
        layer l: Int, cache: ExpertCache, count: Int, counts: UnsafeMutablePointer<Int32>, tokens n: Int
    ) throws(SparrowError) {
        let active = scratch.activeExperts
        let levels = scratch.activeLevels
        let experts = scratch.activeWeights
        let slots = scratch.activeSlots
        let gate = scratch.expertGate
        let prefill = n > 1
        let rows = { (a: Int) in Int(counts[Int(active[a]) + 1] - counts[Int(active[a])]) }
        let recordBytes = { (a: Int) in self.model.file.decodedLength(level: Int(levels[a])) }
        // The intra-layer plan: cached experts first, then the misses in the order that finishes
        // the layer first (for a prompt: the hottest first, D²MoE's hottest-expert-first).
        let stepStart = DispatchTime.now().uptimeNanoseconds
        if let planner {
            let perByte = cache.laneSecondsPerByte
            for a in 0..<count {
                scratch.activeRead[a] = Double(cache.missBytes(layer: l, expert: Int(active[a]), level: Int(levels[a]))) * perByte
                scratch.activeCompute[a] = planner.computeSeconds(rows: rows(a), bytes: recordBytes(a), prefill: prefill)
            }
            schedulerStatistics.plannedSeconds += LayerPlanner.order(
                count: count, read: scratch.activeRead, compute: scratch.activeCompute, swap: swapActive)
        }
        var computeNanos: UInt64 = 0
        // A prompt's reads are transient, so that decode's hot set stays, in waves of at most
        // half the cache.
        let waveLimit = prefill ? max(config.expertsPerToken, cache.slotCount / 2) : count
        var start = 0
        while start < count {
            var end = start
            while end < count && end - start < waveLimit {
                let x = Int(active[end])
                guard let slot = try? cache.prepare(layer: l, expert: x, level: Int(levels[end]), weight: gate[x], transient: prefill)
                else { break }
                slots[end] = Int32(slot)
                end += 1
            }
            if end == start { throw .budgetTooSmall("the expert cache has no free slot (all \(cache.slotCount) pinned)") }
            // A decode step's experts are all pinned: the layer's unused guesses are stale.
            if n == 1 && start == 0 && end == count { cache.retirePrefetches(layer: l) }
            let wave = start..<end
            defer { for a in wave { cache.release(Int(slots[a])) } }
            cache.submit()
            // The next layers' likely experts queue behind this layer's misses.
            if start == 0 && n == 1 { prefetchAhead(layer: l, cache: cache) }
            // Resident first, in parallel across experts.
            var ready = 0
            for a in start..<end where cache.isReady(Int(slots[a]), level: Int(levels[a])) {
                swapActive(a, start + ready)
                ready += 1
            }
            for a in start..<(start + ready) {
                (experts + a).initialize(to: try cache.weights(slot: Int(slots[a]), level: Int(levels[a])))
            }
            let residentStart = timeline?.now()
            let computeStart = DispatchTime.now().uptimeNanoseconds
            runExperts(layer: l, first: start, count: ready, counts: counts)
            computeNanos += DispatchTime.now().uptimeNanoseconds - computeStart
            if let t = timeline, let residentStart, ready > 0 { t.add(.resident, layer: l, from: residentStart, to: t.now()) }
            // Then each miss in the order its read lands, its matmuls split over the threads.
            for a in (start + ready)..<end {
                let b = a + cache.awaitAny(UnsafeBufferPointer(start: slots + a, count: end - a))
                if b != a { swapActive(a, b) }
                let m = try cache.weights(slot: Int(slots[a]), level: Int(levels[a]))
                let awaitedStart = timeline?.now()
                let computeStart = DispatchTime.now().uptimeNanoseconds
                expertForward(m, expert: Int(active[a]), counts: counts, threads: threads)
                computeNanos += DispatchTime.now().uptimeNanoseconds - computeStart
                if let t = timeline, let awaitedStart { t.add(.awaited, layer: l, from: awaitedStart, to: t.now()) }
            }
            start = end
        }
        if planner != nil {
            var rowBytes = 0.0
            for a in 0..<count { rowBytes += Double(rows(a) * recordBytes(a)) }
            planner!.observe(computeSeconds: Double(computeNanos) / 1e9, rowBytes: rowBytes, prefill: prefill)
            schedulerStatistics.plannedLayers += 1
            schedulerStatistics.measuredSeconds += Double(DispatchTime.now().uptimeNanoseconds - stepStart) / 1e9
        }
    }

    /// Runs active experts `first..<first + count` (weights in `activeWeights`): in parallel across
    /// experts when there are at least as many as threads, else each expert's matmuls in parallel.
    private func runExperts(layer l: Int, first: Int, count: Int, counts: UnsafeMutablePointer<Int32>) {
        let s = scratch
        let inner = count >= threads ? 1 : threads
        let timeline = inner == 1 ? self.timeline : nil  // each expert on one worker: its own row
        let run: (Int) -> Void = { a in
            let start = timeline?.now()
            self.expertForward(s.activeWeights[first + a], expert: Int(s.activeExperts[first + a]), counts: counts, threads: inner)
            if let timeline, let start { timeline.addOnThisThread(.resident, layer: l, from: start, to: timeline.now()) }
        }
        if inner == 1 { split(count, run) } else { for a in 0..<count { run(a) } }
    }

    /// Exchanges two entries of the active-expert lists (expert, level, slot, plan estimates).
    private func swapActive(_ a: Int, _ b: Int) {
        let s = scratch
        (s.activeExperts[a], s.activeExperts[b]) = (s.activeExperts[b], s.activeExperts[a])
        (s.activeLevels[a], s.activeLevels[b]) = (s.activeLevels[b], s.activeLevels[a])
        (s.activeSlots[a], s.activeSlots[b]) = (s.activeSlots[b], s.activeSlots[a])
        (s.activeRead[a], s.activeRead[b]) = (s.activeRead[b], s.activeRead[a])
        (s.activeCompute[a], s.activeCompute[b]) = (s.activeCompute[b], s.activeCompute[a])
    }

    /// Indices and values of the k largest of `count` values, in descending order (ties: lower index first).
    func selectTopK(
        _ v: UnsafePointer<Float>, count: Int, k: Int, ids: UnsafeMutablePointer<Int32>, weights: UnsafeMutablePointer<Float>
    ) {
        for j in 0..<k {
            ids[j] = -1
            weights[j] = -.infinity
        }
        for x in 0..<count {
            let val = v[x]
            if val <= weights[k - 1] && ids[k - 1] >= 0 { continue }
            var j = k - 1
            while j > 0 && (val > weights[j - 1] || ids[j - 1] < 0) {
                ids[j] = ids[j - 1]
                weights[j] = weights[j - 1]
                j -= 1
            }
            ids[j] = Int32(x)
            weights[j] = val
        }
    }
}
