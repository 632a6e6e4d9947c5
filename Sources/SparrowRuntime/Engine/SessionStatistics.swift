import SparrowIO

/// What a session holds and did so far, as a value (the API's and the C interface's statistics).
public struct SessionStatistics: Codable, Sendable, Equatable {
    /// Tokens in the session, and how many it can hold.
    public var position: Int
    /// Most tokens the session holds.
    public var contextLength: Int
    /// Compute threads.
    public var threads: Int
    /// Bits of the expert level every expert runs at.
    public var expertBits: Int
    /// The memory budget in bytes (nil: none) and the process's peak resident memory so far.
    public var budget: Int?
    /// Peak resident set size of the process so far, bytes.
    public var peakRSS: Int
    /// How experts are read and evicted, and what the cache did (nil without a budget).
    public var io: String?
    /// The expert cache's eviction policy (nil without a budget).
    public var cachePolicy: String?
    /// What the expert cache did (nil without a budget).
    public var cache: CacheStatistics?
    /// Element type of the KV cache.
    public var kvType: KVCacheType
    /// Precision choices and prediction quality (token-level precision, prefetch).
    public var scheduler: SchedulerStatistics
}

extension Session {
    /// The session's statistics now.
    public var statistics: SessionStatistics {
        SessionStatistics(
            position: position, contextLength: contextLength, threads: threads,
            expertBits: model.expertBits[expertLevel],
            budget: budget, peakRSS: ProcessMemory.peakRSS, io: ioSummary, cachePolicy: expertCache?.policyName,
            cache: cacheStatistics, kvType: keys.first?.type ?? .f32, scheduler: schedulerStatistics)
    }

    /// Continues from where `other` is: its tokens, as its KV cache holds them (a prompt evaluated
    /// once and shared by several sessions). Both must be sessions of the same model with the
    /// same KV cache type, and this session's context must hold `other`'s tokens.
    public func copyState(from other: Session) throws(SparrowError) {
        guard other.model === model else { throw .invalidArgument("the sessions belong to different models") }
        guard other !== self else { return }
        guard other.position <= contextLength else { throw .contextFull(limit: contextLength) }
        guard keys.first?.type == other.keys.first?.type else {
            throw .invalidArgument("the sessions' KV caches have different element types")
        }
        for l in 0..<keys.count {
            keys[l].copy(from: other.keys[l], upTo: other.position)
            values[l].copy(from: other.values[l], upTo: other.position)
        }
        position = other.position
    }
}
