import Foundation

/// What the cache holds and did, for the scheduler, `bench` and tests.
extension ExpertCache {
    package var statistics: CacheStatistics { lock.withLock { stats } }

    /// Pins held now (for tests: never more than the slots, never negative).
    package var pinnedSlots: Int { lock.withLock { slots.filter { $0.pins > 0 }.count } }

    /// Slots that hold no record and are not pinned (for tests: a slot is never lost).
    package var freeSlots: Int { lock.withLock { slots.filter { $0.key == nil && $0.isIdle }.count } }

    var policyName: String { lock.withLock { policy.name } }

    /// Seconds per byte the lane has taken while it had work (1 GB/s until measured).
    package var laneSecondsPerByte: Double {
        lock.withLock {
            stats.ioBusySeconds > 0 && stats.bytesRead > 0 ? stats.ioBusySeconds / Double(stats.bytesRead) : 1e-9
        }
    }

    /// Bytes of prefetch reads queued or in flight.
    package var prefetchBytesInFlight: Int { lock.withLock { prefetchBytesPending } }

    /// The highest level of `key` cached or being read, -1 when none.
    package func cachedLevel(_ key: ExpertKey) -> Int {
        lock.withLock { index[key].map { slots[$0].highest } ?? -1 }
    }

    /// Bytes a read of `key` through `level` would take now: 0 when that level (or a higher one)
    /// is cached or being read, the missing suffix when a lower one is.
    package func missBytes(_ key: ExpertKey, level: Int) -> Int {
        let entry = entry(key)
        let to = readEnd(entry, level: level)
        return lock.withLock {
            guard let s = index[key] else { return to }
            let have = slots[s].highest
            if have >= level { return 0 }
            return have < 0 ? to : to - readEnd(entry, level: have)
        }
    }
}
