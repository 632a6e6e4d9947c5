import Foundation
import SparrowRuntime
import Testing

/// A cache that reads nothing: it remembers what the scheduler asked of it, so that the
/// scheduler's decisions can be checked without I/O.
final class FakeResidency: ExpertResidency {
    var slotCount = 16
    var slotSize = 1000
    var prefetchBytesInFlight = 0
    var laneSecondsPerByte = 1e-9
    /// Levels cached (or being read) per record.
    var cached: [ExpertKey: Int] = [:]
    /// Bytes of a record through each level.
    var levelBytes = [400, 700, 1000]
    var prefetches: [(key: ExpertKey, level: Int, steps: Int, background: Bool)] = []
    var submits = 0
    var upgradeRequests = 0

    func cachedLevel(_ key: ExpertKey) -> Int { cached[key] ?? -1 }
    func missBytes(_ key: ExpertKey, level: Int) -> Int { cachedLevel(key) >= level ? 0 : levelBytes[level] }
    func prefetch(_ key: ExpertKey, level: Int, steps: Int, background: Bool) -> Int {
        prefetches.append((key, level, steps, background))
        let bytes = missBytes(key, level: level)
        if bytes > 0 { cached[key] = level }
        return bytes
    }
    func submit() { submits += 1 }
    func upgradeInBackground(limit: Int) -> Int {
        upgradeRequests += 1
        return 0
    }
}

/// The scheduler's policies on their own: the demo's routers (4 layers × 16 experts, top-4; levels
/// 2, 4 and 8 bits) and a fake cache.
@Suite struct SchedulerPolicyTests {
    static func scheduler(_ options: SessionOptions) throws -> Scheduler {
        let model = try ExpertCacheTests.demo()
        let level = options.expertBits.map { model.expertBits.firstIndex(of: $0)! } ?? model.expertBits.count - 1
        return try Scheduler(model: model, expertLevel: level, options: options)
    }

    /// A hidden state the routers can score (seeded, so the guesses are the same every run).
    static func hidden(seed: UInt64) -> [Float] {
        (0..<256).map { Float(sin(Double($0) * 0.37 + Double(seed))) }
    }

    @Test func levelsFollowUnimportanceAndWhatIsCached() throws {
        let precision = TokenPrecision(fullThreshold: 0.6, lowThreshold: 0.9, allowSkip: true)
        let s = try Self.scheduler(.init(tokenPrecision: precision))
        let cache = FakeResidency()
        let key = ExpertKey(layer: 1, expert: 3)
        #expect(s.lowLevel == 0 && s.expertLevel == 2)
        #expect(s.level(key, unimportance: 0.7, position: 0, cache: nil as FakeResidency?) == 2)  // resident: no choice
        #expect(s.level(key, unimportance: 0.1, position: 0, cache: cache) == 2)
        #expect(s.level(key, unimportance: 0.7, position: 0, cache: cache) == 0)
        #expect(s.level(key, unimportance: 0.95, position: 0, cache: cache) == -1)
        cache.cached[key] = 1  // a lower level cached is used rather than read again, never skipped
        #expect(s.level(key, unimportance: 0.7, position: 0, cache: cache) == 1)
        #expect(s.level(key, unimportance: 0.95, position: 0, cache: cache) == 1)
        cache.cached[key] = 2
        #expect(s.level(key, unimportance: 0.95, position: 0, cache: cache) == 2)
        #expect(s.statistics.downgraded == 3 && s.statistics.skipped == 1)
        s.levelOverride = { position, layer, expert in position == 5 && layer == 1 && expert == 3 ? 1 : -1 }
        #expect(s.level(key, unimportance: 0, position: 5, cache: cache) == 1)
        #expect(s.level(key, unimportance: 0, position: 6, cache: cache) == -1)
        #expect(cache.prefetches.isEmpty && cache.submits == 0)  // choosing a level reads nothing
    }

    @Test func withoutTokenPrecisionEveryUseRunsAtTheSessionsLevel() throws {
        let s = try Self.scheduler(.init(expertBits: 4, tokenPrecision: nil))
        let cache = FakeResidency()
        for u: Float in [0, 0.5, 0.99] {
            #expect(s.level(ExpertKey(layer: 0, expert: 0), unimportance: u, position: 0, cache: cache) == 1)
        }
        s.tokenFinished(cache: cache)
        #expect(cache.upgradeRequests == 0 && s.statistics.downgraded == 0)
        let t = try Self.scheduler(.init(tokenPrecision: TokenPrecision()))
        t.tokenFinished(cache: cache)
        #expect(cache.upgradeRequests == 1)  // background upgrades: once a token, with token precision
    }

    /// Prefetch reads the guesses of the layers 2…depth ahead at the low level, in the background,
    /// best first, and no more than its room (here 2 slots of the fake's 4); a guess already cached
    /// is only protected.
    @Test func prefetchReadsGuessesWithinItsRoom() throws {
        let s = try Self.scheduler(.init(tokenPrecision: TokenPrecision(), prefetchDepth: 3))
        let input = Self.hidden(seed: 7)
        input.withUnsafeBufferPointer {
            s.prefetchAhead(layer: 0, input: $0.baseAddress!, cache: nil as FakeResidency?)
        }
        let guessed = [2, 3].flatMap { t in
            (0..<4).map { ExpertKey(layer: t, expert: Int(s.guesses(layer: t, depth: t)[$0])) }
        }
        #expect(Set(guessed).count == 8)
        let cache = FakeResidency()
        cache.slotCount = 4
        cache.cached[guessed[5]] = 0
        input.withUnsafeBufferPointer { s.prefetchAhead(layer: 0, input: $0.baseAddress!, cache: cache) }
        let protected = cache.prefetches.filter { !$0.background }
        let reads = cache.prefetches.filter(\.background)
        #expect(protected.count == 1 && protected[0].key == guessed[5])
        // Room: min(top-k × depth, slots / 2) slots = 2000 bytes; 400 bytes a low-level read.
        #expect(reads.count == 5 && Set(reads.map(\.key)).isSubset(of: Set(guessed)))
        #expect(reads.allSatisfy { $0.level == 0 && $0.steps == $0.key.layer })
        #expect(cache.submits == 1)
    }

    /// Guesses are scored against what the layer then chose, once.
    @Test func guessesAreScoredOnce() throws {
        let s = try Self.scheduler(.init(prefetchDepth: 2))
        let input = Self.hidden(seed: 11)
        input.withUnsafeBufferPointer {
            s.prefetchAhead(layer: 1, input: $0.baseAddress!, cache: nil as FakeResidency?)
        }
        let guess = Array(UnsafeBufferPointer(start: s.guesses(layer: 3, depth: 2), count: 4))
        let chosen: [Int32] = [guess[2], guess[0], (guess.max()! + 1) % 16, (guess.max()! + 2) % 16]
        let hits = chosen.filter(guess.contains).count
        chosen.withUnsafeBufferPointer { s.routed(layer: 3, chosen: $0.baseAddress!, count: 4) }
        chosen.withUnsafeBufferPointer { s.routed(layer: 3, chosen: $0.baseAddress!, count: 4) }
        #expect(s.statistics.predicted == [0, 4] && s.statistics.correct == [0, hits] && s.statistics.chosen == [0, 4])
        #expect(s.precision(depth: 2) == 1)  // too few guesses to tell yet
    }

    /// The intra-layer plan runs cached experts first (nothing to read), then the misses by
    /// Johnson's rule.
    @Test func planRunsCachedExpertsFirst() throws {
        let s = try Self.scheduler(.init())
        let cache = FakeResidency()
        cache.cached[ExpertKey(layer: 0, expert: 9)] = 2
        cache.laneSecondsPerByte = 1  // reads far slower than compute: misses by descending compute
        var experts: [Int32] = [4, 9, 1, 6]
        let rows: [Int32: Int] = [4: 1, 9: 1, 1: 3, 6: 2]
        let levels: [Int32] = [2, 2, 2, 2]
        levels.withUnsafeBufferPointer { lv in
            experts.withUnsafeMutableBufferPointer { ex in
                s.order(
                    layer: 0, count: 4, experts: ex.baseAddress!, levels: lv.baseAddress!, recordBytes: { _ in 1000 },
                    rows: { rows[ex[$0]]! }, prefill: true, cache: cache
                ) { a, b in ex.swapAt(a, b) }
            }
        }
        #expect(experts == [9, 1, 6, 4])
        #expect(s.statistics.plannedSeconds > 0)
    }
}
