import Foundation

/// Where in the model the cache is: the MoE layer now running and the model's shape, so a
/// policy can weigh how soon a cached expert's layer comes round again.
package struct CacheClock: Sendable {
    /// Index of the MoE layer being computed (layers run in order, then wrap to the next token).
    package var layer: Int
    package var layerCount: Int

    /// Layers until `key`'s layer runs again: 0 for the next layer, layerCount − 1 for this one.
    func distance(to key: ExpertKey) -> Int {
        (key.layer - layer - 1 + 2 * layerCount) % layerCount
    }
}

/// Chooses which cached expert to drop when the cache needs a slot. The cache calls `used` on
/// every use of an expert and evicts the unpinned slot whose `rank` is lowest.
package protocol EvictionPolicy: Sendable {
    var name: String { get }
    /// Records a use of `key` at logical time `tick` with its routing
    /// weight (the gate's probability for the token, 1 when unknown).
    mutating func used(key: ExpertKey, tick: UInt64, weight: Float)
    /// Eviction order: lower is evicted first. `lastUse` is the tick of the key's latest use.
    func rank(key: ExpertKey, lastUse: UInt64, clock: CacheClock) -> (Double, UInt64)
}

/// Least recently used.
package struct LRUPolicy: EvictionPolicy {
    package var name: String { "lru" }
    package init() {}
    package mutating func used(key: ExpertKey, tick: UInt64, weight: Float) {}
    package func rank(key: ExpertKey, lastUse: UInt64, clock: CacheClock) -> (Double, UInt64) { (Double(lastUse), 0) }
}

/// Least frequently used: uses counted per expert over the session (an expert evicted and loaded
/// again keeps its count, so hot experts stay hot), ties broken by recency.
package struct LFUPolicy: EvictionPolicy {
    package var name: String { "lfu" }
    private var counts: [ExpertKey: UInt64] = [:]
    package init() {}
    package mutating func used(key: ExpertKey, tick: UInt64, weight: Float) { counts[key, default: 0] += 1 }
    package func rank(key: ExpertKey, lastUse: UInt64, clock: CacheClock) -> (Double, UInt64) {
        (Double(counts[key] ?? 0), lastUse)
    }
}

/// HybriMoE's score-based policy: each expert keeps a score, an exponentially decaying sum of the
/// routing weights it was used with (`score ← decay^Δuses · score + weight`), so an expert used
/// often *and* with large gate weights stays; the lowest score is evicted.
package struct ScorePolicy: EvictionPolicy {
    package var name: String { "score" }
    /// Per use of any expert, how much old weight is kept.
    let decay: Double
    private var scores: [ExpertKey: (score: Double, at: UInt64)] = [:]
    package init(decay: Double = 0.999) { self.decay = decay }
    package mutating func used(key: ExpertKey, tick: UInt64, weight: Float) {
        let old = scores[key].map { $0.score * pow(decay, Double(tick - $0.at)) } ?? 0
        scores[key] = (old + Double(weight), tick)
    }
    package func rank(key: ExpertKey, lastUse: UInt64, clock: CacheClock) -> (Double, UInt64) {
        (scores[key].map { $0.score * pow(decay, Double(lastUse - $0.at)) } ?? 0, lastUse)
    }
}

/// HOBBIT's multidimensional policy, reduced to the two dimensions that matter under a budget:
/// how often an expert is used (frequency, as LFU) and how soon its layer runs again (layer
/// distance: layers run in a cycle, so the expert of the layer just finished is needed last).
/// Value = uses ÷ (1 + distance); the lowest value is evicted, ties by recency. Unlike LRU and
/// LFU it does not thrash when the cache holds fewer experts than one token uses.
package struct LayerDistancePolicy: EvictionPolicy {
    package var name: String { "distance" }
    /// The uses, counted as LFU counts them.
    private var frequency = LFUPolicy()
    package init() {}
    package mutating func used(key: ExpertKey, tick: UInt64, weight: Float) {
        frequency.used(key: key, tick: tick, weight: weight)
    }
    package func rank(key: ExpertKey, lastUse: UInt64, clock: CacheClock) -> (Double, UInt64) {
        let (uses, _) = frequency.rank(key: key, lastUse: lastUse, clock: clock)
        return (uses / Double(1 + clock.distance(to: key)), lastUse)
    }
}

/// The policies `--cache-policy` accepts.
public enum CachePolicyKind: String, Sendable, CaseIterable, Codable {
    case lru, lfu, score, distance

    package func make() -> any EvictionPolicy {
        switch self {
        case .lru: return LRUPolicy()
        case .lfu: return LFUPolicy()
        case .score: return ScorePolicy()
        case .distance: return LayerDistancePolicy()
        }
    }
}
