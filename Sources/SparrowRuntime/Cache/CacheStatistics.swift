/// What the expert cache did, for `bench` and the API.
public struct CacheStatistics: Codable, Sendable, Equatable {
    /// Expert uses served from the cache at the wanted level (or higher).
    public var hits = 0
    /// Expert uses that had to read the record.
    public var misses = 0
    /// Uses that found a lower level cached and read only the missing suffix.
    public var upgrades = 0
    /// Records dropped to make room.
    public var evictions = 0
    /// Bytes read from storage (aligned reads, as issued).
    public var bytesRead = 0
    /// Seconds the compute thread waited for reads.
    public var stallSeconds = 0.0
    /// Seconds the I/O lane spent checking (and decoding zstd levels of) records as they landed,
    /// off the compute threads.
    public var landingSeconds = 0.0
    /// Seconds with at least one read queued or in flight: `bytesRead / ioBusySeconds` is the
    /// bandwidth the lane achieved while it had work (the figure a plan of a layer's finish time
    /// would use).
    public var ioBusySeconds = 0.0
    /// Slots and the size of a full one; how many of them are low-precision slots, and their size.
    public var slots = 0
    /// Bytes of a full slot.
    public var slotBytes = 0
    /// Low-precision slots (token-level precision).
    public var lowSlots = 0
    /// Bytes of a low-precision slot.
    public var lowSlotBytes = 0
    /// Reads started ahead of use by prediction, their bytes, how many were used before being
    /// evicted, and how many were evicted unused.
    public var prefetches = 0
    /// Bytes the prefetches read.
    public var prefetchBytes = 0
    /// Prefetched records a use then found.
    public var prefetchesUsed = 0
    /// Prefetched records evicted unused.
    public var prefetchesWasted = 0
    /// Prefetches dropped before their read started: the layer ran without the expert.
    public var prefetchesCancelled = 0
    /// Records cached below the session's level whose missing suffix was read while the lane was
    /// otherwise idle (a later use then runs at full precision without waiting).
    public var backgroundUpgrades = 0

    /// All counters at zero.
    public init() {}
}
