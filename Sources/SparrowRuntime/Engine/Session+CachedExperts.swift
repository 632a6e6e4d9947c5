import Foundation

extension Session {
    /// The active experts through the budgeted cache, in the scheduler's order and in waves of as
    /// many as the cache can pin: all misses of a wave are submitted first, the experts already
    /// resident run (in parallel) while they load, then each miss runs as soon as its read lands.
    func runCachedExperts(layer l: Int, cache: ExpertCache, count: Int, tokens n: Int) throws(SparrowError) {
        let s = scratch
        let prefill = n > 1
        let rows = { (a: Int) in
            Int(s.expertStart[Int(s.activeExperts[a]) + 1] - s.expertStart[Int(s.activeExperts[a])])
        }
        let recordBytes = { (a: Int) in self.model.file.decodedLength(level: Int(s.activeLevels[a])) }
        let stepStart = DispatchTime.now().uptimeNanoseconds
        scheduler.order(
            layer: l, count: count, experts: s.activeExperts, levels: s.activeLevels, recordBytes: recordBytes,
            rows: rows,
            prefill: prefill, cache: cache, swap: swapActive)
        var computeNanos: UInt64 = 0
        // A prompt's reads are transient, so that decode's hot set stays, in waves of at most
        // half the cache.
        let waveLimit = prefill ? max(config.expertsPerToken, cache.slotCount / 2) : count
        var start = 0
        while start < count {
            let end = pinWave(layer: l, cache: cache, from: start, to: min(count, start + waveLimit), prefill: prefill)
            if end == start {
                throw .budgetTooSmall("the expert cache has no free slot (all \(cache.slotCount) pinned)")
            }
            // A decode step's experts are all pinned: the layer's unused guesses are stale.
            if !prefill && start == 0 && end == count { cache.retirePrefetches(layer: l) }
            let wave = start..<end
            defer { for a in wave { cache.release(Int(s.activeSlots[a])) } }
            cache.submit()
            // The next layers' likely experts queue behind this layer's misses.
            if start == 0 && !prefill { scheduler.prefetchAhead(layer: l, input: s.xn.pointer, cache: cache) }
            computeNanos += try runWave(layer: l, cache: cache, wave: wave)
            start = end
        }
        if scheduler.plans {
            var rowBytes = 0.0
            for a in 0..<count { rowBytes += Double(rows(a) * recordBytes(a)) }
            scheduler.stepFinished(
                computeSeconds: Double(computeNanos) / 1e9, rowBytes: rowBytes,
                seconds: Double(DispatchTime.now().uptimeNanoseconds - stepStart) / 1e9, prefill: prefill)
        }
    }

    /// Pins active experts `first..<limit` in the cache (their slots in `activeSlots`), as many as
    /// there is room for; returns the end of those pinned.
    private func pinWave(layer l: Int, cache: ExpertCache, from first: Int, to limit: Int, prefill: Bool) -> Int {
        let s = scratch
        var end = first
        while end < limit {
            let x = Int(s.activeExperts[end])
            let key = ExpertKey(layer: l, expert: x)
            guard
                let slot = try? cache.prepare(
                    key, level: Int(s.activeLevels[end]), weight: s.expertGate[x], transient: prefill)
            else { break }
            s.activeSlots[end] = Int32(slot)
            end += 1
        }
        return end
    }

    /// Runs a pinned wave: the experts ready now first, in parallel, then each miss in the order
    /// its read lands, its matmuls split over the threads. Returns the nanoseconds of compute.
    private func runWave(layer l: Int, cache: ExpertCache, wave: Range<Int>) throws(SparrowError) -> UInt64 {
        let s = scratch
        var ready = 0
        for a in wave where cache.isReady(Int(s.activeSlots[a]), level: Int(s.activeLevels[a])) {
            swapActive(a, wave.lowerBound + ready)
            ready += 1
        }
        let resident = wave.lowerBound..<(wave.lowerBound + ready)
        for a in resident {
            (s.activeWeights + a).initialize(
                to: try cache.weights(slot: Int(s.activeSlots[a]), level: Int(s.activeLevels[a])))
        }
        let residentStart = timeline?.now()
        var computeStart = DispatchTime.now().uptimeNanoseconds
        runExperts(layer: l, first: resident.lowerBound, count: ready)
        var computeNanos = DispatchTime.now().uptimeNanoseconds - computeStart
        if let t = timeline, let residentStart, ready > 0 {
            t.add(.resident, layer: l, from: residentStart, to: t.now())
        }
        for a in resident.upperBound..<wave.upperBound {
            let b = a + cache.awaitAny(UnsafeBufferPointer(start: s.activeSlots + a, count: wave.upperBound - a))
            if b != a { swapActive(a, b) }
            let m = try cache.weights(slot: Int(s.activeSlots[a]), level: Int(s.activeLevels[a]))
            let awaitedStart = timeline?.now()
            computeStart = DispatchTime.now().uptimeNanoseconds
            expertForward(m, layer: l, expert: Int(s.activeExperts[a]), threads: threads)
            computeNanos += DispatchTime.now().uptimeNanoseconds - computeStart
            if let t = timeline, let awaitedStart { t.add(.awaited, layer: l, from: awaitedStart, to: t.now()) }
        }
        return computeNanos
    }

    /// Exchanges two entries of the active-expert lists (expert, level, slot).
    private func swapActive(_ a: Int, _ b: Int) {
        let s = scratch
        (s.activeExperts[a], s.activeExperts[b]) = (s.activeExperts[b], s.activeExperts[a])
        (s.activeLevels[a], s.activeLevels[b]) = (s.activeLevels[b], s.activeLevels[a])
        (s.activeSlots[a], s.activeSlots[b]) = (s.activeSlots[b], s.activeSlots[a])
    }
}
