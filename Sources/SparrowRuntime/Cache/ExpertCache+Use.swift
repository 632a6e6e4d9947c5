import Foundation
import SparrowIO

/// Pinning a record for a use: `prepare` pins it (queueing what is missing), `submit` starts the
/// reads, `isReady`/`awaitAny` tell which can run, `weights` takes it, `release` unpins it.
extension ExpertCache {
    /// Pins the record `key` at `level` or higher in a slot and returns the slot, queueing the read
    /// of what is missing (the whole prefix, or only the suffix above a lower cached level).
    /// Throws `Full` when no slot can be freed (all pinned or being read). `weight` is the use's
    /// routing weight (for the policy); `transient` (prefill): the use does not count for the
    /// policy, and a record read for it is evicted before any other until a non-transient use
    /// claims it.
    package func prepare(_ key: ExpertKey, level: Int, weight: Float = 1, transient: Bool = false) throws(Full) -> Int {
        lock.lock()
        defer { lock.unlock() }
        tick += 1
        if !transient { policy.used(key: key, tick: tick, weight: weight) }
        if let s = index[key], slots[s].capacity < level {
            // Cached in a low-precision slot, wanted higher: move it to a full slot.
            try move(key, from: s)
        }
        if let s = index[key] {
            slots[s].pins += 1
            slots[s].lastUse = tick
            slots[s].protectedUntil = -1
            if !transient { slots[s].transient = false }
            if slots[s].prefetched {
                slots[s].prefetched = false
                stats.prefetchesUsed += 1
            }
            if slots[s].read != nil && level > slots[s].level { lane.promote(tag: s) }  // needed now
            // Present, being read at a high enough level, or a lower level in flight (`weights`
            // upgrades after it).
            if slots[s].highest >= level || slots[s].read != nil {
                stats.hits += 1
                return s
            }
            upgrade(s, to: level)
            return s
        }
        guard let s = freeSlot(level: level) else { throw Full() }
        index[key] = s
        slots[s].key = key
        slots[s].transient = transient
        slots[s].pins = 1
        slots[s].lastUse = tick
        queueRead(s, level: level, purpose: demand(level))
        stats.misses += 1
        return s
    }

    /// Full slots a prompt may fill without displacing anything a decode step used: empty, or
    /// holding a record only a prompt read (all of them in a fresh session).
    package var slotsForPrompt: Int {
        lock.withLock { fullSlots.reduce(0) { $0 + (slots[$1].key == nil || slots[$1].transient ? 1 : 0) } }
    }

    /// Starts the queued reads.
    package func submit() {
        lane.submit()
    }

    /// The MoE layer `layer` starts: the clock policies rank by, and the step prefetch
    /// protection counts in.
    package func beginLayer(_ layer: Int) {
        lock.withLock {
            step += 1
            clock.layer = layer
        }
    }

    /// Whether `slot`'s record is usable at `level` without waiting (an upgrade in flight above
    /// a verified `level` does not make it wait).
    package func isReady(_ slot: Int, level: Int) -> Bool {
        lock.withLock { !slots[slot].isReading || slots[slot].level >= level }
    }

    /// Waits until the read into one of `slots` has landed (or none is in flight) and returns its
    /// index in `slots`: the next expert whose weights can be used, whatever order reads land in.
    package func awaitAny(_ wanted: UnsafeBufferPointer<Int32>) -> Int {
        lock.lock()
        defer { lock.unlock() }
        var waited: UInt64 = 0
        while true {
            if let i = wanted.firstIndex(where: { !slots[Int($0)].isReading }) {
                if waited > 0 { stats.stallSeconds += Double(DispatchTime.now().uptimeNanoseconds - waited) / 1e9 }
                return i
            }
            if waited == 0 {
                waited = DispatchTime.now().uptimeNanoseconds
                for slot in wanted { lane.promote(tag: Int(slot)) }
                lane.submit()
            }
            lock.wait()
        }
    }

    /// The matrices of the pinned `slot` at `level` (≤ what was prepared), waiting for its read and
    /// checking the checksums of the levels it brought. On failure the slot is emptied (a later
    /// use reads again) and the error names the layer, expert and level.
    func weights(slot s: Int, level: Int) throws(SparrowError) -> MLPWeights {
        lock.lock()
        defer { lock.unlock() }
        if let read = slots[s].read, read.verified >= level {
            // A read is in flight (or failed) above the levels wanted: they are usable now.
            return MLPWeights(base: UnsafeRawPointer(slotAddress(s)), levels: levels, level: level)
        }
        try takeRead(s)
        if slots[s].level < level {
            // A lower level was in flight when this use was prepared (a prefetch at the low level).
            upgrade(s, to: level)
            try takeRead(s)
        }
        return MLPWeights(base: UnsafeRawPointer(slotAddress(s)), levels: levels, level: level)
    }

    /// Waits for the pinned `slot` to hold `level` (checked) and returns its bytes: the record
    /// prefix through that level, laid out as in the file.
    package func load(slot: Int, level: Int) throws(SparrowError) -> UnsafeRawBufferPointer {
        _ = try weights(slot: slot, level: level)
        return UnsafeRawBufferPointer(start: slotAddress(slot), count: file.decodedLength(level: level))
    }

    /// Unpins a slot taken by `prepare` (also after `weights` failed for it). A failure nobody
    /// took is settled when the last pin goes, so the slot can be used again.
    package func release(_ slot: Int) {
        lock.withLock {
            guard slots[slot].pins > 0 else { return }
            slots[slot].pins -= 1
            if slots[slot].pins == 0 { settleFailure(slot) }
        }
    }
}
