import Foundation
import SparrowFormat
import SparrowIO
import SparrowRuntime
import Testing

/// The hybrid scheduler's techniques: prefetch and cache policies must not change a single
/// logit; token-level precision changes them exactly as forcing the same levels does.
@Suite struct SchedulerTests {
    /// Real text (the demo's held-out tokens): routing as the trained model does it.
    static func tokens(_ n: Int) throws -> [Int] {
        Array(try NPY.readInt(Paths.demo + "/eval-tokens.npy").values.prefix(n))
    }

    /// Prefill of 16 tokens, then one token at a time (where prediction and precision act).
    static func run(_ session: Session, _ tokens: [Int]) throws -> [Float] {
        var out = try session.evaluate(Array(tokens.prefix(16)), logits: .all)
        for t in tokens.dropFirst(16) { out += try session.evaluate([t], logits: .all) }
        return out
    }

    static func cached(slots: Int, policy: CachePolicyKind = .lfu, prefetch: Int = 0, precision: TokenPrecision? = nil) throws -> SessionOptions {
        let model = try ExpertCacheTests.demo()
        return SessionOptions(
            expertBits: 8, expertCacheBytes: slots * ExpertCache.slotSize(file: model.file, level: 2), cachePolicy: policy,
            io: BlockReaderOptions(queueDepth: 8), tokenPrecision: precision, prefetchDepth: prefetch)
    }

    @Test(arguments: [(CachePolicyKind.score, 0), (.distance, 0), (.lfu, 1), (.lru, 2), (.distance, 3)])
    func policiesAndPrefetchKeepLogits(policy: CachePolicyKind, prefetch: Int) throws {
        let model = try ExpertCacheTests.demo()
        let tokens = try Self.tokens(48)
        let want = try Self.run(try Session(model: model, options: .init(expertBits: 8)), tokens)
        let session = try Session(model: model, options: try Self.cached(slots: 10, policy: policy, prefetch: prefetch))
        let got = try Self.run(session, tokens)
        #expect(got == want, "\(policy) with prefetch \(prefetch) changed the logits (max difference \(maxAbsDiff(got, want)))")
        let c = try #require(session.cacheStatistics)
        #expect(c.evictions > 0)
        if prefetch > 0 {
            let s = session.schedulerStatistics
            #expect(s.predicted.count == prefetch && s.chosen[0] > 0 && s.correct[0] > 0)
        }
    }

    /// Deeper layers are prefetched at the low level (into low-precision slots); when such an
    /// expert is then used at full precision (thresholds that never downgrade) the cache moves
    /// it to a full slot or upgrades it in place: logits unchanged.
    @Test func lowLevelPrefetchesUpgradeOnUse() throws {
        let model = try ExpertCacheTests.demo()
        let tokens = try Self.tokens(48)
        let want = try Self.run(try Session(model: model, options: .init(expertBits: 8)), tokens)
        let never = TokenPrecision(fullThreshold: 1, lowThreshold: 1)
        let session = try Session(
            model: model, options: try Self.cached(slots: 40, policy: .distance, prefetch: 3, precision: never))
        #expect(try Self.run(session, tokens) == want)
        #expect(session.schedulerStatistics.downgraded == 0)
        let c = session.cacheStatistics!
        #expect(c.prefetches > 0 && c.lowSlots > 0)  // low reads land in low slots, full uses move them
    }

    /// Downgrades happen, and a resident session forced to the same levels gives the same logits.
    @Test func tokenPrecisionEqualsForcedLevels() throws {
        let model = try ExpertCacheTests.demo()
        let tokens = try Self.tokens(40)
        var chosen: [String: Int] = [:]
        let session = try Session(
            model: model, options: try Self.cached(slots: 8, precision: TokenPrecision(fullThreshold: 0.3, lowThreshold: 0.8)))
        session.expertLevelObserver = { position, layer, expert, level in chosen["\(position)/\(layer)/\(expert)"] = level }
        let got = try Self.run(session, tokens)
        #expect(session.schedulerStatistics.downgraded > 0 && session.schedulerStatistics.skipped == 0)
        #expect(chosen.values.contains(0) && chosen.values.contains(2))

        let forced = try Session(model: model, options: .init(expertBits: 8))
        forced.expertLevelOverride = { position, layer, expert in chosen["\(position)/\(layer)/\(expert)"] ?? -99 }
        let want = try Self.run(forced, tokens)
        #expect(!chosen.values.contains(-99))
        #expect(got == want, "max difference \(maxAbsDiff(got, want))")
        let full = try Self.run(try Session(model: model, options: .init(expertBits: 8)), tokens)
        #expect(got != full)

        // With skipping allowed, skipped uses are reported and the logits stay finite.
        let skipping = try Session(
            model: model,
            options: try Self.cached(slots: 8, precision: TokenPrecision(fullThreshold: 0.3, lowThreshold: 0.5, allowSkip: true)))
        let skipped = try Self.run(skipping, tokens)
        #expect(skipping.schedulerStatistics.skipped > 0 && skipped.allSatisfy(\.isFinite))
    }

    @Test func badSchedulerOptionsAreRefused() throws {
        let model = try ExpertCacheTests.demo()
        #expect(throws: SparrowError.self) { try Session(model: model, options: .init(prefetchDepth: 4)) }
        #expect(throws: SparrowError.self) {
            try Session(model: model, options: .init(tokenPrecision: TokenPrecision(fullThreshold: 0.9, lowThreshold: 0.5)))
        }
        #expect(throws: SparrowError.self) {
            try Session(model: model, options: .init(expertBits: 4, tokenPrecision: TokenPrecision(lowBits: 8)))
        }
    }
}

extension SchedulerTests {
    /// Sessions dropped while prefetches may still be in flight: the cache waits for them without
    /// touching itself from the I/O lane (no crash, no use after free).
    @Test func droppingSessionsWithReadsInFlight() throws {
        let model = try ExpertCacheTests.demo()
        let tokens = try Self.tokens(6)
        for i in 0..<30 {
            let session = try Session(
                model: model,
                options: try Self.cached(slots: 40, policy: .distance, prefetch: 3, precision: TokenPrecision(fullThreshold: 0.3, lowThreshold: 0.8)))
            for t in tokens.prefix(1 + i % 5) { _ = try session.evaluate([t]) }
        }
    }
}
