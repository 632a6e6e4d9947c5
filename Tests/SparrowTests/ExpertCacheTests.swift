import Foundation
import SparrowFormat
import SparrowIO
import SparrowRuntime
import Testing

/// Experts streamed through the budgeted cache: the same logits as the resident model on every
/// read path, documented errors for injected faults, refusals of budgets too small, and a cache
/// that never evicts what is in use.
@Suite struct ExpertCacheTests {
    static let scheme = Converter.Options(expertScheme: .init(levels: [2, 4, 8], groupSize: 64))

    static func demo() throws -> Model { try Converted.model(Paths.demo, options: scheme, tag: "q248") }

    static func tokens(_ n: Int = 40) throws -> [Int] {
        Array(try NPY.readInt(Paths.demo + "/eval-tokens.npy").values.prefix(n))
    }

    /// A cache of `slots` 4-bit expert slots (far fewer than the 64 records: constant eviction).
    static func options(slots: Int, mode: IOMode, policy: CachePolicyKind = .lru, faults: FaultInjector? = nil) throws
        -> SessionOptions
    {
        let slot = ExpertCache.slotSize(file: try demo().file, level: 1)
        return SessionOptions(
            expertBits: 4, expertCacheBytes: slots * slot, cachePolicy: policy,
            io: BlockReaderOptions(mode: mode, queueDepth: 8, faults: faults), tokenPrecision: nil)
    }

    @Test(arguments: [IOMode.uring, .pread], [CachePolicyKind.lru, .lfu])
    func streamedLogitsEqualResident(mode: IOMode, policy: CachePolicyKind) throws {
        let model = try Self.demo()
        let tokens = try Self.tokens()
        // Batched prefill (several waves through 6 slots), then token by token (decode path).
        func run(_ session: Session) throws -> [Float] {
            var out = try session.evaluate(Array(tokens.prefix(24)), logits: .all)
            for t in tokens.dropFirst(24) { out += try session.evaluate([t], logits: .all) }
            return out
        }
        let want = try run(try Session(model: model, options: .init(expertBits: 4)))
        let session = try Session(model: model, options: try Self.options(slots: 6, mode: mode, policy: policy))
        let got = try run(session)
        #expect(
            got.count == want.count && got == want,
            "max difference \(maxAbsDiff(got, want)), zero rows \(zeroRows(got, vocab: model.config.vocabSize))")
        let s = try #require(session.cacheStatistics)
        #expect(s.misses > 0 && s.evictions > 0)
        #expect(s.slots == 6)
        #expect(s.bytesRead >= s.misses * model.file.decodedLength(level: 1))
        #expect(session.ioSummary!.hasPrefix(mode == .uring ? "io_uring" : "pread"))
    }

    /// With quantized dense weights (the embedding at 8 bits) a budgeted session reads each
    /// token's embedding row from the file, scales and planes, and decodes it as the resident
    /// table does: identical logits.
    @Test func quantizedEmbeddingRowsReadFromTheFile() throws {
        var options = Self.scheme
        options.denseBits = 4
        let model = try Converted.model(Paths.demo, options: options, tag: "q248-dense4")
        #expect(model.file.tensor("embedding.scales") != nil)  // quantized
        let tokens = try Self.tokens(24)
        let want = try Session(model: model, options: .init(expertBits: 4)).evaluate(tokens, logits: .all)
        let slot = ExpertCache.slotSize(file: model.file, level: 1)
        let session = try Session(
            model: model, options: SessionOptions(expertBits: 4, expertCacheBytes: 8 * slot, tokenPrecision: nil))
        #expect(try session.evaluate(tokens, logits: .all) == want)
    }

    /// A file with zstd levels streams to the same logits; its levels are decoded on the I/O lane
    /// as they land (the lane's time is counted apart from the compute thread's stalls).
    @Test(arguments: [IOMode.uring, .pread])
    func compressedRecordsDecodeOnTheLane(mode: IOMode) throws {
        var zstd = Self.scheme
        zstd.zstdMinSaving = 0
        let model = try Converted.model(Paths.demo, options: zstd, tag: "q248-zstd")
        #expect(model.file.experts.contains { $0.levels.contains { $0.codec == .zstd } })
        let tokens = try Self.tokens(24)
        let want = try Session(model: try Self.demo(), options: .init(expertBits: 4)).evaluate(tokens, logits: .all)
        let slot = ExpertCache.slotSize(file: model.file, level: 1)
        let session = try Session(
            model: model,
            options: SessionOptions(
                expertBits: 4, expertCacheBytes: 6 * slot, io: BlockReaderOptions(mode: mode, queueDepth: 8),
                tokenPrecision: nil))
        #expect(try session.evaluate(tokens, logits: .all) == want)
        let s = try #require(session.cacheStatistics)
        #expect(s.misses > 0 && s.landingSeconds > 0)
    }

    /// Short reads are resumed (identical logits); EIO and damaged bytes are errors naming the
    /// layer, expert and precision, and the session stays usable afterwards — also when they
    /// strike a prompt running layer by layer (batches of 4: `Session+Prompt`).
    @Test(arguments: [IOMode.uring, .pread], [64, 4])
    func injectedFaults(mode: IOMode, batch: Int) throws {
        let model = try Self.demo()
        let tokens = try Self.tokens(16)
        let want = try Session(model: model, options: .init(batchSize: batch, expertBits: 4)).evaluate(
            tokens, logits: .all)
        func options(_ faults: @escaping FaultInjector) throws -> SessionOptions {
            var o = try Self.options(slots: 8, mode: mode, faults: faults)
            o.batchSize = batch
            return o
        }

        let shortReads = try Session(model: model, options: try options { r in r.length > 4096 ? .short(4096) : nil })
        #expect(try shortReads.evaluate(tokens, logits: .all) == want, "short reads changed the logits")

        for fault in [ReadFault.error(EIO), .flip(100)] {
            let failing = FaultSwitch()
            let session = try Session(
                model: model,
                // Expert reads only (embedding rows, a few hundred bytes, have their own test).
                options: try options { r in failing.on && r.length > 4096 ? fault : nil })
            failing.on = true
            do {
                _ = try session.evaluate(tokens)
                Issue.record("\(fault) was not reported")
            } catch {
                let text = "\(error)"
                #expect(
                    text.contains("cannot load layer") && text.contains("expert") && text.contains("at 4 bits"),
                    "\(text)")
                #expect(text.contains(fault == .error(EIO) ? "Input/output error" : "checksum"), "\(text)")
            }
            failing.on = false  // the device recovers: the same session runs again
            session.reset()
            #expect(try session.evaluate(tokens, logits: .all) == want, "logits after recovery differ")
        }
    }

    /// A long decode under a seeded random fault schedule (about 1 read attempt in 6 fails with
    /// EIO, returns short, or brings a flipped bit): every step either gives exactly the resident
    /// logits or reports an error naming the expert; retried, the step succeeds; the session never
    /// returns wrong logits, and no slot stays pinned.
    @Test(arguments: [IOMode.uring, .pread])
    func randomFaultsOverALongRun(mode: IOMode) throws {
        let model = try Self.demo()
        let tokens = try Self.tokens(120)
        let resident = try Session(model: model, options: .init(contextLength: 128, expertBits: 4))
        let want = try tokens.map { try resident.evaluate([$0]) }
        let schedule = FaultSchedule(seed: 7, oneIn: 6)
        var options = try Self.options(slots: 6, mode: mode, faults: { schedule.fault($0) })
        options.contextLength = 128
        let session = try Session(model: model, options: options)
        var reported = 0
        for (i, t) in tokens.enumerated() {
            var attempt = 0
            while true {
                do {
                    #expect(try session.evaluate([t]) == want[i], "step \(i) returned different logits")
                    break
                } catch {
                    reported += 1
                    attempt += 1
                    let message = "\(error)"
                    #expect(
                        message.contains("cannot load layer") || message.contains("embedding row")
                            || message.contains("failed: Input/output error"), "\(message)")
                    try #require(attempt < 20, "step \(i) kept failing")
                }
            }
        }
        // (A failed read is retried once before it is reported: most faults never reach the caller.)
        #expect(schedule.injected > 10 && reported > 0, "\(schedule.injected) faults, \(reported) reported")
        #expect(session.expertCache!.pinnedSlots == 0)
        #expect(session.position == tokens.count)
    }

    /// An f16 KV cache halves the cache and stays close to the exact f32 one (prefill and decode).
    @Test func halfPrecisionKVCacheIsClose() throws {
        let model = try Self.demo()
        let tokens = try Self.tokens(48)
        func run(_ type: KVCacheType) throws -> [Float] {
            let session = try Session(model: model, options: .init(expertBits: 8, kvType: type))
            var out = try session.evaluate(Array(tokens.prefix(32)), logits: .all)
            for t in tokens.dropFirst(32) { out += try session.evaluate([t], logits: .all) }
            return out
        }
        let exact = try run(.f32)
        let half = try run(.f16)
        let scale = exact.map(abs).max()!
        #expect(
            maxAbsDiff(exact, half) <= 0.01 * scale, "max difference \(maxAbsDiff(exact, half)) of max|logit| \(scale)")
        #expect(exact != half)  // the cache really is f16
    }

    @Test func budgetTooSmallIsRefused() throws {
        let model = try Self.demo()
        do {
            _ = try Session(model: model, options: .init(expertBits: 4, budget: 1 << 20))
            Issue.record("a 1 MiB budget was accepted")
        } catch {
            #expect(
                "\(error)".contains("memory budget too small") && "\(error)".contains("must be at least"), "\(error)")
        }
        do {
            _ = try Session(model: model, options: try Self.options(slots: 3, mode: .auto))  // top-4 needs 4
            Issue.record("a cache smaller than one layer's top-k was accepted")
        } catch {
            #expect("\(error)".contains("top-4 experts"), "\(error)")
        }
        // Without a requested precision, a cache too small for every expert starts from the 4-bit
        // level (`Session.defaultLevel`), and one too small for a level's top-4 runs at the highest
        // stored level it can hold; too small even for the lowest, the starting level's error.
        let fourBit = 4 * ExpertCache.slotSize(file: model.file, level: 1)
        let stepped = try Session(model: model, options: .init(expertCacheBytes: fourBit))
        #expect(stepped.expertLevel == 1 && stepped.cacheStatistics!.slots == 4)
        // Room for half the experts at 8 bits: the 4-bit level by default, 8 bits when asked for;
        // room for all of them: 8 bits.
        let records = model.file.experts.count
        let half = records / 2 * ExpertCache.slotSize(file: model.file, level: 2)
        #expect(try Session(model: model, options: .init(expertCacheBytes: half)).expertLevel == 1)
        #expect(try Session(model: model, options: .init(expertBits: 8, expertCacheBytes: half)).expertLevel == 2)
        let all = records * ExpertCache.slotSize(file: model.file, level: 2)
        #expect(try Session(model: model, options: .init(expertCacheBytes: all)).expertLevel == 2)
        #expect(throws: SparrowError.self) {
            try Session(model: model, options: .init(expertBits: 8, expertCacheBytes: fourBit))
        }
        do {
            _ = try Session(model: model, options: .init(expertCacheBytes: 1 << 10))
            Issue.record("a 1 KiB cache was accepted")
        } catch {
            #expect("\(error)".contains("at 4 bits"), "\(error)")
        }
    }

    /// Many threads hammer a 4-slot cache: a pinned slot's bytes never change under its user (it
    /// is never evicted), pins never exceed the slots, and every load verifies.
    @Test func pinnedSlotsSurviveConcurrentEviction() throws {
        let model = try Self.demo()
        for mode in [IOMode.uring, .pread] {
            let cache = try ExpertCache(
                file: model.file, config: model.config, maxLevel: 1,
                arenaBytes: 4 * ExpertCache.slotSize(file: model.file, level: 1), policy: .lfu,
                io: BlockReaderOptions(mode: mode, queueDepth: 4))
            let layers = model.config.layerCount
            let experts = model.config.expertCount
            let failures = Counter()
            DispatchQueue.concurrentPerform(iterations: 8) { worker in
                var rng = SystemRandomNumberGenerator()
                for _ in 0..<150 {
                    let layer = Int.random(in: 0..<layers, using: &rng)
                    let expert = Int.random(in: 0..<experts, using: &rng)
                    guard
                        let slot = try? cache.prepare(
                            ExpertKey(layer: layer, expert: expert), level: Int.random(in: 0...1, using: &rng))
                    else { continue }  // all pinned: allowed, the caller waits or shrinks its wave
                    defer { cache.release(slot) }
                    if cache.pinnedSlots > cache.slotCount { failures.add() }
                    do {
                        cache.submit()
                        let bytes = try cache.load(slot: slot, level: 0)
                        let entry = model.file.expert(layer: layer, expert: expert)!
                        let before = crc32c(bytes)
                        usleep(UInt32.random(in: 0..<200, using: &rng))
                        if before != entry.levels[0].crc32c || crc32c(bytes) != before { failures.add() }
                    } catch { failures.add() }
                }
            }
            #expect(failures.value == 0, "\(mode): \(failures.value) pinned slots changed or failed")
            #expect(cache.pinnedSlots == 0)
            let s = cache.statistics
            #expect(s.slots * s.slotBytes <= cache.arena.count)
            #expect(s.evictions > 0)
        }
    }

    /// A read that fails while its use is pinned but never taken (the use gave up first) does not
    /// keep the slot: released, it is free again, and the next use reads the record anew.
    @Test(arguments: [IOMode.uring, .pread])
    func failedReadsNobodyTookFreeTheirSlots(mode: IOMode) throws {
        let model = try Self.demo()
        let failing = FaultSwitch()
        failing.on = true
        let cache = try ExpertCache(
            file: model.file, config: model.config, maxLevel: 1,
            arenaBytes: 4 * ExpertCache.slotSize(file: model.file, level: 1), policy: .lru,
            io: BlockReaderOptions(mode: mode, queueDepth: 4, faults: { _ in failing.on ? .error(EIO) : nil }))
        let slots = try (0..<4).map { try cache.prepare(ExpertKey(layer: 0, expert: $0), level: 1) }
        cache.submit()
        #expect(throws: (any Error).self) { try cache.prepare(ExpertKey(layer: 1, expert: 0), level: 1) }  // all pinned
        for slot in slots {
            while !cache.isReady(slot, level: 1) { usleep(100) }  // landed (failed), not taken
            cache.release(slot)
        }
        #expect(cache.freeSlots == 4 && cache.pinnedSlots == 0)
        failing.on = false
        let slot = try cache.prepare(ExpertKey(layer: 0, expert: 2), level: 1)
        defer { cache.release(slot) }
        cache.submit()
        let bytes = try cache.load(slot: slot, level: 1)
        #expect(
            crc32c(
                UnsafeRawBufferPointer(rebasing: bytes[0..<Int(model.file.expert(layer: 0, expert: 2)!.levels[0].end)]))
                == model.file.expert(layer: 0, expert: 2)!.levels[0].crc32c)
        #expect(cache.statistics.misses == 5)
    }
}

/// Rows of a logits matrix that are all zero (never written).
func zeroRows(_ x: [Float], vocab: Int) -> [Int] {
    (0..<(x.count / vocab)).filter { r in (0..<vocab).allSatisfy { x[r * vocab + $0] == 0 } }
}

/// A flag shared with a fault injector.
final class FaultSwitch: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var on: Bool {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}

/// A thread-safe counter.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}

/// A seeded schedule of read faults: about one attempt in `oneIn` fails, in turn with EIO, a short
/// read, or a flipped bit.
final class FaultSchedule: @unchecked Sendable {
    private let lock = NSLock()
    private var state: UInt64
    private let oneIn: UInt64
    private var count = 0

    init(seed: UInt64, oneIn: UInt64) {
        state = seed
        self.oneIn = oneIn
    }

    /// Faults injected so far.
    var injected: Int { lock.withLock { count } }

    func fault(_ r: ReadRequest) -> ReadFault? {
        lock.withLock {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let x = state >> 33
            guard x % oneIn == 0 else { return nil }
            count += 1
            switch (x / oneIn) % 3 {
            case 0: return .error(EIO)
            case 1: return r.length > 4096 ? .short(4096) : .error(EIO)
            default: return .flip(min(100, r.length - 1))
            }
        }
    }
}
