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

    static func cached(slots: Int, policy: CachePolicyKind = .lfu, prefetch: Int = 0, precision: TokenPrecision? = nil)
        throws -> SessionOptions
    {
        let model = try ExpertCacheTests.demo()
        return SessionOptions(
            expertBits: 8, expertCacheBytes: slots * ExpertCache.slotSize(file: model.file, level: 2),
            cachePolicy: policy,
            io: BlockReaderOptions(queueDepth: 8), tokenPrecision: precision, prefetchDepth: prefetch)
    }

    @Test(arguments: [(CachePolicyKind.score, 0), (.distance, 0), (.lfu, 1), (.lru, 2), (.distance, 3)])
    func policiesAndPrefetchKeepLogits(policy: CachePolicyKind, prefetch: Int) throws {
        let model = try ExpertCacheTests.demo()
        let tokens = try Self.tokens(48)
        let want = try Self.run(try Session(model: model, options: .init(expertBits: 8)), tokens)
        let session = try Session(model: model, options: try Self.cached(slots: 10, policy: policy, prefetch: prefetch))
        let got = try Self.run(session, tokens)
        #expect(
            got == want,
            "\(policy) with prefetch \(prefetch) changed the logits (max difference \(maxAbsDiff(got, want)))")
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
            model: model,
            options: try Self.cached(
                slots: 8, precision: TokenPrecision(fullThreshold: 0.3, lowThreshold: 0.8, allowSkip: false)))
        session.expertLevelObserver = { position, layer, expert, level in
            chosen["\(position)/\(layer)/\(expert)"] = level
        }
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
            options: try Self.cached(
                slots: 8, precision: TokenPrecision(fullThreshold: 0.3, lowThreshold: 0.5, allowSkip: true)))
        let skipped = try Self.run(skipping, tokens)
        #expect(skipping.schedulerStatistics.skipped > 0 && skipped.allSatisfy(\.isFinite))
    }

    @Test func badSchedulerOptionsAreRefused() throws {
        let model = try ExpertCacheTests.demo()
        #expect(throws: SparrowError.self) { try Session(model: model, options: .init(prefetchDepth: 4)) }
        #expect(throws: SparrowError.self) {
            try Session(
                model: model, options: .init(tokenPrecision: TokenPrecision(fullThreshold: 0.9, lowThreshold: 0.5)))
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
                options: try Self.cached(
                    slots: 40, policy: .distance, prefetch: 3,
                    precision: TokenPrecision(fullThreshold: 0.3, lowThreshold: 0.8)))
            for t in tokens.prefix(1 + i % 5) { _ = try session.evaluate([t]) }
        }
    }
}

extension SchedulerTests {
    /// Records read at the low level (one in a full slot, one in a low-precision slot) are
    /// completed in the background when the lane is idle: the full level then verifies (every
    /// level's checksum) and its next use is a hit that reads nothing.
    @Test(arguments: [IOMode.uring, .pread])
    func backgroundUpgradesCompleteDowngradedRecords(mode: IOMode) throws {
        let model = try ExpertCacheTests.demo()
        let file = model.file
        let full = ExpertCache.slotSize(file: file, level: 2)
        let cache = try ExpertCache(
            file: file, config: model.config, maxLevel: 2, arenaBytes: 8 * full, policy: .lfu,
            io: BlockReaderOptions(mode: mode, queueDepth: 4), lowLevel: 0, lowShare: 0.25)
        #expect(cache.lowSlotCount > 0)
        // Fill the low slots and keep them pinned, so that one more low-level read lands in a full slot.
        var slots: [Int] = []
        for expert in 0...cache.lowSlotCount {
            slots.append(try cache.prepare(ExpertKey(layer: 1, expert: expert), level: 0))
            cache.submit()
            _ = try cache.load(slot: slots.last!, level: 0)
        }
        for slot in slots { cache.release(slot) }
        let before = cache.statistics
        #expect(cache.upgradeInBackground(limit: 2) == 2)  // the one in a full slot in place, one moved from a low slot
        // While an upgrade may still be in flight, the level below it is usable without waiting.
        let inFlight = try cache.prepare(ExpertKey(layer: 1, expert: cache.lowSlotCount), level: 0)
        #expect(cache.isReady(inFlight, level: 0))
        _ = try cache.load(slot: inFlight, level: 0)
        cache.release(inFlight)
        let upgraded = (0...cache.lowSlotCount).filter { cache.cachedLevel(ExpertKey(layer: 1, expert: $0)) == 2 }
        #expect(upgraded.count == 2 && upgraded.contains(cache.lowSlotCount))
        for expert in upgraded {
            let slot = try cache.prepare(ExpertKey(layer: 1, expert: expert), level: 2)
            defer { cache.release(slot) }
            let bytes = try cache.load(slot: slot, level: 2)
            let entry = file.expert(layer: 1, expert: expert)!
            for k in 0...2 {
                let from = k == 0 ? 0 : Int(entry.levels[k - 1].end)
                #expect(
                    crc32c(UnsafeRawBufferPointer(rebasing: bytes[from..<Int(entry.levels[k].end)]))
                        == entry.levels[k].crc32c)
            }
        }
        let after = cache.statistics
        #expect(after.backgroundUpgrades == 2 && after.misses == before.misses && after.upgrades == before.upgrades)
        #expect(after.hits == before.hits + 3)
        #expect(cache.pinnedSlots == 0)
    }

    /// The lane's background queue: background reads wait while a read is in flight, `cancel`
    /// drops one (never handed to the reader, never finished), `promote` makes one foreground
    /// (handed over at once), and an idle lane starts the rest by itself.
    @Test func laneBackgroundReadsWaitAndCanBeCancelledOrPromoted() throws {
        let reader = GatedReader()
        let finished = TagList()
        let lane = IOLane(reader: reader, tags: 4) { tag, _ in finished.append(tag) }
        defer { lane.stop() }
        let memory = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { memory.deallocate() }
        func request(_ tag: Int) -> ReadRequest { ReadRequest(offset: 0, length: 4096, destination: memory, tag: tag) }
        lane.enqueue(request(3))
        lane.submit()
        #expect(reader.waitUntilHanded(3))
        lane.enqueue(request(0), background: true)
        lane.enqueue(request(1), background: true)
        lane.submit()
        usleep(20_000)
        #expect(reader.handed == [3])  // read 3 is in flight: the background ones wait
        #expect(lane.cancel(tag: 1) && !lane.cancel(tag: 1))
        #expect(lane.promote(tag: 0) && !lane.cancel(tag: 0))
        #expect(reader.waitUntilHanded(0))
        reader.complete(2)
        #expect(finished.waitFor(count: 2) == [3, 0])
        lane.enqueue(request(2), background: true)
        lane.submit()
        #expect(reader.waitUntilHanded(2))  // idle lane: started without a promote
        reader.complete(1)
        #expect(finished.waitFor(count: 3) == [3, 0, 2])
        #expect(reader.handed == [3, 0, 2])
    }
}

/// A reader whose reads complete only when the test says so (`complete`), recording which tags
/// the lane handed it.
final class GatedReader: BlockReader, @unchecked Sendable {
    let summary = "gated"
    let isDirect = false
    private let condition = NSCondition()
    private var tags: [Int] = []
    private var pending: [Int] = []
    private var allowed = 0
    private var woken = false

    var handed: [Int] { condition.withLock { tags } }
    func enqueue(_ request: ReadRequest) {
        condition.withLock {
            tags.append(request.tag)
            pending.append(request.tag)
            condition.broadcast()
        }
    }
    func submit() throws(IOError) {}
    func wait(tag: Int) throws(IOError) {}
    func next() throws(IOError) -> Int? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if woken {
                woken = false
                return nil
            }
            if allowed > 0 && !pending.isEmpty {
                allowed -= 1
                return pending.removeFirst()
            }
            condition.wait()
        }
    }
    func wake() {
        condition.withLock {
            woken = true; condition.broadcast()
        }
    }
    func complete(_ n: Int) {
        condition.withLock {
            allowed += n; condition.broadcast()
        }
    }
    func waitUntilHanded(_ tag: Int) -> Bool {
        condition.withLock {
            let deadline = Date().addingTimeInterval(5)
            while !tags.contains(tag) { if !condition.wait(until: deadline) { return false } }
            return true
        }
    }
}

/// Tags in the order a lane finished them.
final class TagList: @unchecked Sendable {
    private let condition = NSCondition()
    private var tags: [Int] = []
    func append(_ tag: Int) {
        condition.withLock {
            tags.append(tag); condition.broadcast()
        }
    }
    func waitFor(count: Int) -> [Int] {
        condition.withLock {
            let deadline = Date().addingTimeInterval(5)
            while tags.count < count && condition.wait(until: deadline) {}
            return tags
        }
    }
}

extension SchedulerTests {
    /// Johnson's rule: on random read and compute times the plan's predicted finish time equals
    /// the best over every order (two-stage flow shop), and cached experts (no read) come first.
    @Test func layerPlanFinishesFirst() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let n = Int.random(in: 1...6, using: &rng)
            var read = (0..<n).map { _ in Bool.random(using: &rng) ? 0 : Double.random(in: 0...1, using: &rng) }
            var compute = (0..<n).map { _ in Double.random(in: 0.01...1, using: &rng) }
            func finish(_ order: [Int]) -> Double {
                var readEnd = 0.0, computeEnd = 0.0
                for a in order {
                    readEnd += read[a]
                    computeEnd = max(computeEnd, readEnd) + compute[a]
                }
                return computeEnd
            }
            func permutations(_ xs: [Int]) -> [[Int]] {
                xs.count <= 1
                    ? [xs]
                    : xs.indices.flatMap { i in
                        permutations(Array(xs[..<i] + xs[(i + 1)...])).map { [xs[i]] + $0 }
                    }
            }
            let best = permutations(Array(0..<n)).map(finish).min()!
            let cached = read.filter { $0 == 0 }.count
            let planned = read.withUnsafeMutableBufferPointer { r in
                compute.withUnsafeMutableBufferPointer { c in
                    LayerPlanner.order(count: n, read: r.baseAddress!, compute: c.baseAddress!) { a, b in
                        r.swapAt(a, b)
                        c.swapAt(a, b)
                    }
                }
            }
            #expect(abs(planned - best) < 1e-9, "plan \(planned) vs best \(best)")
            #expect(read.prefix(cached).allSatisfy { $0 == 0 })
        }
    }
}
