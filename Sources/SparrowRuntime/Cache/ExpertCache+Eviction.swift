import Foundation

/// Choosing, moving and dropping records: eviction for a use, and the two kinds of read no use
/// waits for (prefetches and background upgrades), which may only take room a record gives up
/// willingly. Every function here except the package ones runs with the lock held.
extension ExpertCache {
    /// Starts reading `key` at `level` ahead of its use, into a slot that is kept from eviction for
    /// `steps` more layers (then stale), unless it is cached already. Takes a free slot, or evicts
    /// one only if it sat idle for a whole token and the policy values the predicted expert more
    /// (HybriMoE's impact-driven prefetch: a guess never pushes out a hotter or busy expert);
    /// never a protected or pinned one. A `background` read waits until the lane is otherwise
    /// idle (a guess far ahead), and is cancelled if its layer runs without the expert first
    /// (`retirePrefetches`). Returns the bytes it will read (0: nothing needed or no room).
    @discardableResult
    package func prefetch(_ key: ExpertKey, level: Int, steps: Int, background: Bool = false) -> Int {
        lock.lock()
        defer { lock.unlock() }
        if let s = index[key] {
            slots[s].protectedUntil = max(slots[s].protectedUntil, step + steps)
            return 0
        }
        guard let (s, rank) = victim(level: level, sparingProtected: true) else { return 0 }
        if slots[s].key != nil {
            var ahead = clock
            ahead.layer = (key.layer - 1 + clock.layerCount) % clock.layerCount  // ranked as the layer before it runs
            let (value, _) = policy.rank(key: key, lastUse: tick, clock: ahead)
            guard mayGiveWay(s, rank: rank, to: value) else { return 0 }
            evict(s)
        }
        index[key] = s
        slots[s].key = key
        slots[s].lastUse = tick
        queueRead(s, level: level, purpose: .prefetch, background: background)
        slots[s].protectedUntil = step + steps
        slots[s].prefetched = true
        let bytes = slots[s].read!.bytes
        stats.prefetches += 1
        stats.prefetchBytes += bytes
        return bytes
    }

    /// Layer `layer` has chosen its experts (all prepared): its prefetched records left unused
    /// lose their protection, and those whose read has not started are cancelled (a stale guess
    /// no longer takes the lane's time).
    package func retirePrefetches(layer: Int) {
        lock.lock()
        defer { lock.unlock() }
        for s in slots.indices where slots[s].prefetched && slots[s].pins == 0 && slots[s].key?.layer == layer {
            slots[s].protectedUntil = -1
            guard case .reading(let read) = slots[s].state, lane.cancel(tag: s) else { continue }
            cancelRead(s)
            stats.prefetchBytes -= read.bytes
            stats.prefetchesCancelled += 1
            forget(s)
        }
    }

    /// When the lane is idle: queues, as background reads, the missing suffix of up to `limit`
    /// records used below the full level (idle ones, the policy's most valued first; not unused
    /// prefetches), so that their next use runs at full precision without waiting. A record in a
    /// full slot is completed in place; one in a low-precision slot first moves (its bytes
    /// copied) to a full slot, taking a free one or one whose record was idle a whole token and is
    /// valued less. Returns how many were queued.
    @discardableResult
    package func upgradeInBackground(limit: Int) -> Int {
        lock.lock()
        defer { lock.unlock() }
        guard !compressed, readsOutstanding == 0 else { return 0 }
        var queued = 0
        var movesLeft = lowSlotCount > 0
        while queued < limit {
            let best = upgradeCandidates(moves: movesLeft)
            var slot = best.inPlace?.slot
            if let moved = best.moved, slot == nil || moved.value > best.inPlace!.value {
                if let (target, rank) = victim(in: fullSlots, sparingProtected: true),
                    mayGiveWay(target, rank: rank, to: moved.value)
                {
                    relocate(moved.slot, into: target)
                    slot = target
                } else {
                    movesLeft = false  // no full slot gives way to the most valued; none would to the others
                    continue
                }
            }
            guard let slot else { break }
            upgrade(slot, to: topLevel, background: true)
            queued += 1
        }
        if queued > 0 { lane.submit() }
        return queued
    }

    /// The most valued record below the full level of each class: in a full slot (completed in
    /// place) and, with `moves`, in a low-precision slot (moved first).
    private func upgradeCandidates(moves: Bool) -> (
        inPlace: (slot: Int, value: Double)?, moved: (slot: Int, value: Double)?
    ) {
        var best: (inPlace: (slot: Int, value: Double)?, moved: (slot: Int, value: Double)?) = (nil, nil)
        for s in slots.indices {
            let slot = slots[s]
            guard let key = slot.key, slot.isIdle, !slot.prefetched, slot.level >= 0, slot.level < topLevel else {
                continue
            }
            let (value, _) = policy.rank(key: key, lastUse: slot.lastUse, clock: clock)
            if fullSlots.contains(s) {
                if value > best.inPlace?.value ?? -.infinity || best.inPlace == nil { best.inPlace = (s, value) }
            } else if moves, value > best.moved?.value ?? -.infinity || best.moved == nil {
                best.moved = (s, value)
            }
        }
        return best
    }

    /// An empty slot, or the idle slot the policy ranks lowest (evicted), among those that can
    /// hold `level`. Slots a prefetch protects go last.
    func freeSlot(level: Int) -> Int? {
        guard let (s, _) = victim(level: level, sparingProtected: false) else { return nil }
        if slots[s].key != nil { evict(s) }
        return s
    }

    /// Among the slots that can hold `level` — the low-precision ones first when they can — an
    /// empty one (rank −∞), or the idle one the policy ranks lowest, and its rank; protected slots
    /// rank after all others, or are never chosen with `sparingProtected`.
    func victim(level: Int, sparingProtected: Bool) -> (Int, Double)? {
        if lowSlotCount > 0 && level <= slots[slotCount - 1].capacity,
            let v = victim(in: lowSlots, sparingProtected: sparingProtected)
        {
            return v
        }
        return victim(in: fullSlots, sparingProtected: sparingProtected)
    }

    private func victim(in range: Range<Int>, sparingProtected: Bool) -> (Int, Double)? {
        var best: Int?
        var bestRank: (Int, Int, Double, UInt64) = (2, 2, .infinity, .max)
        for s in range {
            let slot = slots[s]
            guard slot.isIdle else { continue }
            guard let key = slot.key else { return (s, -.infinity) }
            let guarded = slot.protectedUntil >= step
            if guarded && sparingProtected { continue }
            let (value, recency) = policy.rank(key: key, lastUse: slot.lastUse, clock: clock)
            let r = (guarded ? 1 : 0, slot.transient ? 0 : 1, slot.transient ? -.infinity : value, recency)
            if r < bestRank {
                bestRank = r
                best = s
            }
        }
        return best.map { ($0, bestRank.2) }
    }

    /// Whether the idle record in `victim`, ranked `rank` by the policy, may give way to one the
    /// policy values `value` without a use needing it now (a prefetch, a background upgrade): an
    /// empty slot always; a record only if idle for a whole token (all layers' uses) and valued less.
    func mayGiveWay(_ victim: Int, rank: Double, to value: Double) -> Bool {
        slots[victim].key == nil
            || (tick - slots[victim].lastUse > UInt64(clock.layerCount * usesPerLayer) && value > rank)
    }

    /// Moves `key`'s copy in the low-precision slot `s` (once its read, if one is in flight, has
    /// landed) to a full slot, so that only the missing suffix is read; drops it when no full slot
    /// can be had (the use then reads the whole record). Throws `Full` when the copy is pinned.
    func move(_ key: ExpertKey, from s: Int) throws(Full) {
        guard slots[s].pins == 0 else { throw Full() }
        if slots[s].isReading { _ = awaitLanding(s) }  // (a failed read drops the record)
        guard index[key] == s, slots[s].isIdle else { return }
        if let (target, _) = victim(in: fullSlots, sparingProtected: false) {
            relocate(s, into: target)
        } else {
            evict(s)
        }
    }

    /// Moves the verified, idle record of slot `from` to the idle slot `to` (its bytes and state),
    /// evicting what `to` held.
    func relocate(_ from: Int, into to: Int) {
        let key = slots[from].key!
        let level = slots[from].level
        if slots[to].key != nil { evict(to) }
        slotAddress(to).copyMemory(from: slotAddress(from), byteCount: readEnd(entry(key), level: level))
        index[key] = to
        slots[to].key = key
        slots[to].state = .ready(level: level)
        slots[to].lastUse = slots[from].lastUse
        slots[to].protectedUntil = slots[from].protectedUntil
        slots[to].prefetched = slots[from].prefetched
        slots[to].transient = slots[from].transient
        slots[from].clear()
    }

    /// Drops the record in the idle slot `s`, counting an eviction (and a wasted prefetch if it
    /// was never used).
    func evict(_ s: Int) {
        if slots[s].prefetched { stats.prefetchesWasted += 1 }
        stats.evictions += 1
        forget(s)
    }

    /// Drops the record in slot `s` without counting it as evicted.
    func forget(_ s: Int) {
        if let key = slots[s].key, index[key] == s { index[key] = nil }
        slots[s].clear()
    }
}
