import Foundation

extension Session {
    /// The active experts through the budgeted cache, in the scheduler's order, at most as many
    /// pinned at a time as the window allows (a prompt's: see below; a decode step's: all):
    /// the misses pinned are submitted together, the experts ready run (in parallel) while they
    /// load, each miss runs as soon as its read lands, and each expert done frees its slot for the
    /// next one's read — a pipeline, so reads overlap compute all through a step larger than the
    /// cache, with no drained gap between batches.
    func runCachedExperts(layer l: Int, cache: ExpertCache, count: Int, prefill: Bool) throws(SparrowError) {
        let s = scratch
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
        // A prompt's reads are transient, so that decode's hot set stays: at most half the cache,
        // or every slot no decode step used (all of a fresh session's: more reads in flight).
        let window = prefill ? max(config.expertsPerToken, cache.slotCount / 2, cache.slotsForPrompt) : count
        var done = 0  // experts computed, their slots released
        var pinned = 0  // experts pinned (done..<pinned hold slots)
        defer { for a in done..<pinned { cache.release(Int(s.activeSlots[a])) } }
        while done < count {
            let end = pinWave(layer: l, cache: cache, from: pinned, to: min(count, done + window), prefill: prefill)
            if end == done {
                throw .budgetTooSmall("the expert cache has no free slot (all \(cache.slotCount) pinned)")
            }
            let first = pinned == 0
            // A decode step's experts are all pinned: the layer's unused guesses are stale.
            if !prefill && first && end == count { cache.retirePrefetches(layer: l) }
            pinned = end
            cache.submit()
            // The next layers' likely experts queue behind this layer's misses.
            if first && !prefill { scheduler.prefetchAhead(layer: l, input: s.xn.pointer, cache: cache) }
            let ran = try runLanded(layer: l, cache: cache, pinned: done..<pinned, computeNanos: &computeNanos)
            for a in done..<(done + ran) { cache.release(Int(s.activeSlots[a])) }
            done += ran
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

    /// Runs the pinned experts whose records are ready (moved to the front of `pinned`, in
    /// parallel), or else waits for the first read of `pinned` to land and runs that one, its
    /// matmuls split over the threads. Returns how many ran (from `pinned.lowerBound`).
    private func runLanded(layer l: Int, cache: ExpertCache, pinned: Range<Int>, computeNanos: inout UInt64)
        throws(SparrowError) -> Int
    {
        let s = scratch
        var ready = 0
        for a in pinned where cache.isReady(Int(s.activeSlots[a]), level: Int(s.activeLevels[a])) {
            swapActive(a, pinned.lowerBound + ready)
            ready += 1
        }
        let a = pinned.lowerBound
        if ready > 0 {
            for b in a..<(a + ready) {
                (s.activeWeights + b).initialize(
                    to: try cache.weights(slot: Int(s.activeSlots[b]), level: Int(s.activeLevels[b])))
            }
            let start = timeline?.now()
            let computeStart = DispatchTime.now().uptimeNanoseconds
            runExperts(layer: l, first: a, count: ready)
            computeNanos += DispatchTime.now().uptimeNanoseconds - computeStart
            if let t = timeline, let start { t.add(.resident, layer: l, from: start, to: t.now()) }
            return ready
        }
        let b = a + cache.awaitAny(UnsafeBufferPointer(start: s.activeSlots + a, count: pinned.count))
        if b != a { swapActive(a, b) }
        let m = try cache.weights(slot: Int(s.activeSlots[a]), level: Int(s.activeLevels[a]))
        let start = timeline?.now()
        let computeStart = DispatchTime.now().uptimeNanoseconds
        expertForward(m, layer: l, expert: Int(s.activeExperts[a]), threads: threads)
        computeNanos += DispatchTime.now().uptimeNanoseconds - computeStart
        if let t = timeline, let start { t.add(.awaited, layer: l, from: start, to: t.now()) }
        return 1
    }

    /// Exchanges two entries of the active-expert lists (expert, level, slot).
    private func swapActive(_ a: Int, _ b: Int) {
        let s = scratch
        (s.activeExperts[a], s.activeExperts[b]) = (s.activeExperts[b], s.activeExperts[a])
        (s.activeLevels[a], s.activeLevels[b]) = (s.activeLevels[b], s.activeLevels[a])
        (s.activeSlots[a], s.activeSlots[b]) = (s.activeSlots[b], s.activeSlots[a])
    }
}
