/// Chooses which cached expert to drop when the cache needs a slot. The cache calls `used` on
/// every use of an expert and evicts the unpinned slot whose `rank` is lowest.
public protocol EvictionPolicy: Sendable {
    var name: String { get }
    /// Records a use of `key` (layer × experts + expert) at logical time `tick`.
    mutating func used(key: Int, tick: UInt64)
    /// Eviction order: lower is evicted first. `lastUse` is the tick of the key's latest use.
    func rank(key: Int, lastUse: UInt64) -> (UInt64, UInt64)
}

/// Least recently used.
public struct LRUPolicy: EvictionPolicy {
    public var name: String { "lru" }
    public init() {}
    public mutating func used(key: Int, tick: UInt64) {}
    public func rank(key: Int, lastUse: UInt64) -> (UInt64, UInt64) { (lastUse, 0) }
}

/// Least frequently used: uses counted per expert over the session (an expert evicted and loaded
/// again keeps its count, so hot experts stay hot), ties broken by recency.
public struct LFUPolicy: EvictionPolicy {
    public var name: String { "lfu" }
    private var counts: [Int: UInt64] = [:]
    public init() {}
    public mutating func used(key: Int, tick: UInt64) { counts[key, default: 0] += 1 }
    public func rank(key: Int, lastUse: UInt64) -> (UInt64, UInt64) { (counts[key] ?? 0, lastUse) }
}

/// The policies `--cache-policy` accepts.
public enum CachePolicyKind: String, Sendable, CaseIterable, Codable {
    case lru, lfu

    public func make() -> any EvictionPolicy {
        switch self {
        case .lru: return LRUPolicy()
        case .lfu: return LFUPolicy()
        }
    }
}
