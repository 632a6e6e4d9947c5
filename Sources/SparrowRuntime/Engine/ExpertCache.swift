import Foundation
import SparrowFormat
import SparrowIO

/// A budgeted cache of expert records: a fixed arena cut into equal slots, each holding one
/// record's prefix (levels 0…k) exactly as stored, filled through an `IOLane` (io_uring or pread,
/// O_DIRECT). A slot in use is pinned and never evicted; eviction follows an `EvictionPolicy`.
/// Every level read is checked against its checksum (and zstd levels decoded) on the lane as it
/// lands, before use. Thread-safe.
public final class ExpertCache: @unchecked Sendable {
    /// Thrown by `prepare` when every slot is pinned or loading.
    public struct Full: Error {}

    let file: SPWFile
    let levels: [ExpertLevelLayout]
    let expertCount: Int
    /// Bytes of a full slot (one record through the session's level) and the number of slots of
    /// both classes. With a low level, part of the arena is cut into smaller slots that hold a
    /// record only through that level (several low-precision experts in the room of one).
    public let slotSize: Int
    public let slotCount: Int
    public let lowSlotSize: Int
    public let lowSlotCount: Int
    /// Per slot: where it starts in the arena, its size, and the highest level it can hold.
    private let slotOffset: [Int]
    private let slotBytes: [Int]
    private let slotCapacity: [Int]
    /// The memory slots are carved from.
    public let arena: UnsafeMutableRawBufferPointer
    /// The thread that reads records in and checks (and decodes) them as they land.
    private(set) var lane: IOLane!
    /// Records with zstd levels are read into the tail of the slot and decoded to its front.
    private let compressed: Bool

    /// Records reads for `bench --timeline` (nil: nothing recorded).
    public var timeline: Timeline? {
        get { lock.withLock { recorder } }
        set { lock.withLock { recorder = newValue } }
    }
    private var recorder: Timeline?

    /// Guards the state below; signalled when a read in flight has been checked.
    private let lock = NSCondition()
    private var policy: any EvictionPolicy
    private var tick: UInt64 = 0
    private var index: [Int: Int] = [:]  // key → slot
    private var slotKey: [Int]
    /// Highest level fully present and verified, -1 when none.
    private var slotLevel: [Int]
    /// Level a read in flight will complete (its checksums not yet checked), -1 when none.
    private var slotPending: [Int]
    /// Level present before the read in flight (what still needs checking starts above it).
    private var slotBase: [Int]
    /// Whether the read in flight has landed and been checked, and what went wrong if anything.
    private var slotLanded: [Bool]
    private var slotFailure: [String?]
    private var pins: [Int]
    private var lastUse: [UInt64]
    /// Prefetched slots are kept from eviction until this layer step (then they are stale).
    private var protectedUntil: [Int]
    /// Whether the slot's record came from a prefetch not yet used.
    private var slotPrefetched: [Bool]
    /// Whether the slot's record was read for a prompt (prefill) and not used since by a decode
    /// step: such slots are evicted first, so a long prompt does not push out decode's hot set.
    private var slotTransient: [Bool]
    /// Counts MoE layers run; `clock` says which layer that is.
    private var step = 0
    private var clock: CacheClock
    /// Reads queued or in flight, and when the lane last became busy.
    private var readsOutstanding = 0
    private var busySince: UInt64 = 0
    private(set) var stats = CacheStatistics()

    /// Expert uses per MoE layer and token (top-k), for telling an idle slot from a busy one.
    private let usesPerLayer: Int

    /// Bytes of the read in flight into each slot (to take back when it is cancelled), and
    /// whether it is a prefetch (counted in `prefetchBytesPending` until it lands).
    private var slotReadBytes: [Int]
    private var slotReadIsPrefetch: [Bool]
    private var prefetchBytesPending = 0

    /// Slot bytes needed for records up to `level` of `file`.
    public static func slotSize(file: SPWFile, level: Int) -> Int {
        let a = BlockReaderOptions.alignment
        let decoded = file.decodedLength(level: level)
        let zstd = file.experts.contains { !file.isRaw($0, upTo: level) }
        // zstd: room for the decoded prefix plus the largest stored level, so decoding from the
        // tail to the front never overwrites input not yet decoded.
        let extra = zstd ? (0...level).map { file.levelSizes[$0] }.max()! : 0
        // (plus one block: the stored bytes sit at an aligned offset from the end.)
        return (decoded + extra + (zstd ? a : 0) + a - 1) / a * a
    }

    /// A cache of `arenaBytes` of slots reading `file` with `io`: full slots (through `maxLevel`),
    /// and, with a `lowLevel`, `lowShare` of the arena in slots holding records through that level
    /// only (the bit allocation: how much memory low-precision copies get).
    public init(
        file: SPWFile, config: ModelConfig, maxLevel: Int, arenaBytes: Int, policy: CachePolicyKind,
        io: BlockReaderOptions, lowLevel: Int? = nil, lowShare: Double = 0.25
    ) throws(SparrowError) {
        self.file = file
        levels = file.directory.expertLevels
        expertCount = config.expertCount
        clock = CacheClock(layer: 0, layerCount: config.layerCount, expertCount: config.expertCount)
        usesPerLayer = max(1, config.expertsPerToken)
        let size = Self.slotSize(file: file, level: maxLevel)
        slotSize = size
        let top = file.directory.expertLevels.count - 1
        compressed = file.experts.contains { !file.isRaw($0, upTo: top) }
        let low = lowLevel.flatMap { $0 < maxLevel ? $0 : nil }
        lowSlotSize = low.map { Self.slotSize(file: file, level: $0) } ?? 0
        // Full slots first: at least one layer's top-k of them, the low share of the rest; never more
        // slots of a kind than there are records (a budget above what the model can use is capped).
        let records = file.experts.count
        var full = min(arenaBytes / size, records)
        var small = 0
        if lowSlotSize > 0 {
            let keep = min(full, max(config.expertsPerToken, Int(Double(full) * (1 - min(max(lowShare, 0), 1)))))
            small = min((arenaBytes - keep * size) / lowSlotSize, records)
            full = keep
        }
        guard full > 0 else { throw .budgetTooSmall("no room for a single expert slot of \(size) bytes") }
        slotCount = full + small
        lowSlotCount = small
        let lowSize = lowSlotSize
        slotOffset = (0..<(full + small)).map { $0 < full ? $0 * size : full * size + ($0 - full) * lowSize }
        slotBytes = (0..<(full + small)).map { $0 < full ? size : lowSize }
        slotCapacity = (0..<(full + small)).map { $0 < full ? maxLevel : low! }
        let bytes = full * size + small * lowSlotSize
        guard let base = ArenaMemory.allocate(bytes) else { throw .budgetTooSmall("cannot allocate a \(bytes)-byte expert arena") }
        arena = UnsafeMutableRawBufferPointer(start: base, count: bytes)
        let reader: BlockReader
        do {
            reader = try BlockReaders.open(path: file.path, arena: arena, tags: slotCount, options: io)
        } catch {
            free(base)
            throw .io(error)
        }
        self.policy = policy.make()
        slotKey = Array(repeating: -1, count: slotCount)
        slotLevel = Array(repeating: -1, count: slotCount)
        slotPending = Array(repeating: -1, count: slotCount)
        slotBase = Array(repeating: -1, count: slotCount)
        slotLanded = Array(repeating: true, count: slotCount)
        slotFailure = Array(repeating: nil, count: slotCount)
        pins = Array(repeating: 0, count: slotCount)
        lastUse = Array(repeating: 0, count: slotCount)
        protectedUntil = Array(repeating: -1, count: slotCount)
        slotPrefetched = Array(repeating: false, count: slotCount)
        slotTransient = Array(repeating: false, count: slotCount)
        slotReadBytes = Array(repeating: 0, count: slotCount)
        slotReadIsPrefetch = Array(repeating: false, count: slotCount)
        stats.slots = slotCount
        stats.slotBytes = slotSize
        stats.lowSlots = lowSlotCount
        stats.lowSlotBytes = lowSlotSize
        // The lane keeps the arena's memory (through its callback) until its last read has
        // landed, and reaches the cache only while the cache lives.
        let memory = ArenaMemory(base)
        lane = IOLane(reader: reader, tags: slotCount) { [weak self] slot, error in
            withExtendedLifetime(memory) { self?.landed(slot: slot, error: error) }
        }
    }

    deinit {
        // Reads in flight still land in the arena: the lane frees it after the last one.
        lane.stop()
    }

    var policyName: String { lock.withLock { policy.name } }

    /// Pins the record of (layer, expert) at `level` or higher in a slot and returns the slot,
    /// queueing the read of what is missing (the whole prefix, or only the suffix above a lower
    /// cached level). Throws `Full` when no slot can be freed (all pinned or loading).
    /// `transient` (prefill): the use does not count for the policy, and a record read for it is
    /// evicted before any other until a non-transient use claims it.
    public func prepare(layer: Int, expert: Int, level: Int, weight: Float = 1, transient: Bool = false) throws -> Int {
        lock.lock()
        defer { lock.unlock() }
        let key = layer * expertCount + expert
        tick += 1
        if !transient { policy.used(key: key, tick: tick, weight: weight) }
        if let slot = index[key], slotCapacity[slot] < level {
            // Cached in a low-precision slot, wanted higher: move it to a full slot.
            try move(key: key, from: slot)
        }
        if let slot = index[key] {
            pins[slot] += 1
            lastUse[slot] = tick
            protectedUntil[slot] = -1
            if !transient { slotTransient[slot] = false }
            if slotPrefetched[slot] {
                slotPrefetched[slot] = false
                stats.prefetchesUsed += 1
            }
            if slotPending[slot] >= 0 && level > slotLevel[slot] { lane.promote(tag: slot) }  // needed now
            let have = max(slotLevel[slot], slotPending[slot])
            if have >= level {
                stats.hits += 1
                return slot
            }
            if slotPending[slot] >= 0 {  // a lower-level read in flight: `weights` upgrades after it
                stats.hits += 1
                return slot
            }
            upgrade(slot: slot, layer: layer, expert: expert, level: level)
            return slot
        }
        guard let slot = freeSlot(level: level) else { throw Full() }
        index[key] = slot
        slotKey[slot] = key
        slotTransient[slot] = transient
        pins[slot] = 1
        lastUse[slot] = tick
        slotLevel[slot] = -1
        load(slot: slot, layer: layer, expert: expert, level: level)
        stats.misses += 1
        return slot
    }

    /// The MoE layer `layer` starts: the clock policies rank by, and the step prefetch
    /// protection counts in.
    public func beginLayer(_ layer: Int) {
        lock.withLock {
            step += 1
            clock.layer = layer
        }
    }

    /// Bytes a read of (layer, expert) through `level` would take now: 0 when that level (or a
    /// higher one) is cached or being read, the missing suffix when a lower one is.
    public func missBytes(layer: Int, expert: Int, level: Int) -> Int {
        let entry = file.expert(layer: layer, expert: expert)!
        let to = readEnd(entry, level: level)
        return lock.withLock {
            guard let slot = index[layer * expertCount + expert] else { return to }
            let have = max(slotLevel[slot], slotPending[slot])
            if have >= level { return 0 }
            return have < 0 ? to : to - readEnd(entry, level: have)
        }
    }

    /// Seconds per byte the lane has taken while it had work (1 GB/s until measured).
    public var laneSecondsPerByte: Double {
        lock.withLock { stats.ioBusySeconds > 0 && stats.bytesRead > 0 ? stats.ioBusySeconds / Double(stats.bytesRead) : 1e-9 }
    }

    /// Bytes of prefetch reads queued or in flight.
    public var prefetchBytesInFlight: Int { lock.withLock { prefetchBytesPending } }

    /// The highest level of (layer, expert) cached or being read, -1 when none.
    public func cachedLevel(layer: Int, expert: Int) -> Int {
        lock.withLock {
            guard let slot = index[layer * expertCount + expert] else { return -1 }
            return max(slotLevel[slot], slotPending[slot])
        }
    }

    /// Starts reading (layer, expert) at `level` ahead of its use, into a slot that is kept from
    /// eviction for `steps` more layers (then stale), unless it is cached already. Takes a free
    /// slot, or evicts one only if it sat idle for a whole token and the policy values the
    /// predicted expert more (HybriMoE's impact-driven prefetch: a guess never pushes out a hotter
    /// or busy expert); never a protected or pinned one. A `background` read waits until the lane
    /// is otherwise idle (a guess far ahead), and is cancelled if its layer runs without the expert
    /// first (`retirePrefetches`). Returns the bytes it will read (0: nothing needed or no room).
    @discardableResult
    public func prefetch(layer: Int, expert: Int, level: Int, steps: Int, background: Bool = false) -> Int {
        lock.lock()
        defer { lock.unlock() }
        let key = layer * expertCount + expert
        if let slot = index[key] {
            protectedUntil[slot] = max(protectedUntil[slot], step + steps)
            return 0
        }
        guard let (victim, victimRank) = victim(level: level, sparingProtected: true) else { return 0 }
        if slotKey[victim] >= 0 {
            var ahead = clock
            ahead.layer = (layer - 1 + clock.layerCount) % clock.layerCount  // ranked as the layer before it runs
            let (value, _) = policy.rank(key: key, lastUse: tick, clock: ahead)
            guard mayGiveWay(victim, rank: victimRank, to: value) else { return 0 }
            evict(victim)
        }
        let slot = victim
        index[key] = slot
        slotKey[slot] = key
        lastUse[slot] = tick
        slotLevel[slot] = -1
        let before = stats.bytesRead
        load(slot: slot, layer: layer, expert: expert, level: level, kind: .prefetch, background: background)
        protectedUntil[slot] = step + steps
        slotPrefetched[slot] = true
        stats.prefetches += 1
        stats.prefetchBytes += stats.bytesRead - before
        return stats.bytesRead - before
    }

    /// An empty slot, or the unpinned, idle slot the policy ranks lowest (evicted), among those
    /// that can hold `level`. Slots a prefetch protects go last.
    private func freeSlot(level: Int) -> Int? {
        guard let (s, _) = victim(level: level, sparingProtected: false) else { return nil }
        if slotKey[s] >= 0 { evict(s) }
        return s
    }

    /// Among the slots that can hold `level` — the low-precision ones first when they can —
    /// an empty one (rank −∞), or the unpinned, idle one the policy ranks lowest, and its rank;
    /// protected slots rank after all others, or are never chosen with `sparingProtected`.
    private func victim(level: Int, sparingProtected: Bool) -> (Int, Double)? {
        if lowSlotCount > 0 && level <= slotCapacity[slotCount - 1],
           let v = victim(in: (slotCount - lowSlotCount)..<slotCount, sparingProtected: sparingProtected) {
            return v
        }
        return victim(in: 0..<(slotCount - lowSlotCount), sparingProtected: sparingProtected)
    }

    private func victim(in range: Range<Int>, sparingProtected: Bool) -> (Int, Double)? {
        var best: Int?
        var bestRank: (Int, Int, Double, UInt64) = (2, 2, .infinity, .max)
        for s in range {
            if slotKey[s] < 0 && pins[s] == 0 && slotPending[s] < 0 { return (s, -.infinity) }
            guard pins[s] == 0, slotPending[s] < 0 else { continue }
            let guarded = protectedUntil[s] >= step
            if guarded && sparingProtected { continue }
            let (value, recency) = policy.rank(key: slotKey[s], lastUse: lastUse[s], clock: clock)
            let r = (guarded ? 1 : 0, slotTransient[s] ? 0 : 1, slotTransient[s] ? -.infinity : value, recency)
            if r < bestRank {
                bestRank = r
                best = s
            }
        }
        return best.map { ($0, bestRank.2) }
    }

    /// Moves `key`'s copy in the low-precision `slot` (once its read, if one is in flight, has
    /// landed) to a full slot, so that only the missing suffix is read; drops it when no full
    /// slot can be had (the use then reads the whole record). Throws `Full` when the copy is pinned.
    private func move(key: Int, from slot: Int) throws {
        guard pins[slot] == 0 else { throw Full() }
        if slotPending[slot] >= 0 { _ = awaitLanding(slot) }  // (a failed read forgets the record)
        guard index[key] == slot, slotPending[slot] < 0 else { return }
        if let (target, _) = victim(in: 0..<(slotCount - lowSlotCount), sparingProtected: false) {
            relocate(slot, into: target)
        } else {
            evict(slot)
        }
    }

    /// Drops the record in `s` (idle, unpinned).
    private func evict(_ s: Int) {
        slotTransient[s] = false
        index[slotKey[s]] = nil
        slotKey[s] = -1
        slotLevel[s] = -1
        protectedUntil[s] = -1
        if slotPrefetched[s] {
            slotPrefetched[s] = false
            stats.prefetchesWasted += 1
        }
        stats.evictions += 1
    }

    /// Queues the read that brings the idle `slot` from its level up to `level`: only the missing
    /// suffix, or, for a compressed record, the whole prefix. The suffix starts at the block
    /// boundary above the present level (the read that brought it also brought the rest of its last
    /// block), so the present levels stay usable while it is in flight.
    private func upgrade(slot: Int, layer: Int, expert: Int, level: Int, background: Bool = false) {
        if compressed {
            slotLevel[slot] = -1
            load(slot: slot, layer: layer, expert: expert, level: level)
            stats.misses += 1
            return
        }
        let entry = file.expert(layer: layer, expert: expert)!
        let from = readEnd(entry, level: slotLevel[slot])
        let to = readEnd(entry, level: level)
        if background { stats.backgroundUpgrades += 1 } else { stats.upgrades += 1 }
        guard from < to else {
            // Every byte is here already: check the levels now.
            if check(slot: slot, key: slotKey[slot], below: slotLevel[slot], target: level) == nil {
                slotLevel[slot] = level
            } else {
                slotLevel[slot] = -1
                load(slot: slot, layer: layer, expert: expert, level: level)
            }
            return
        }
        issue(slot: slot, offset: Int(entry.offset) + from, length: to - from, into: from, kind: .upgrade, background: background)
        slotBase[slot] = slotLevel[slot]
        slotPending[slot] = level
    }

    /// When the lane is idle: queues, as background reads, the missing suffix of up to `limit`
    /// records used below the full level (idle ones, the policy's most valued first; not unused
    /// prefetches), so that their next use runs at full precision without waiting. A record in a
    /// full slot is completed in place; one in a low-precision slot first moves (its bytes
    /// copied) to a full slot, taking a free one or one whose record was idle a whole token and is
    /// valued less. Returns how many were queued.
    @discardableResult
    public func upgradeInBackground(limit: Int) -> Int {
        lock.lock()
        defer { lock.unlock() }
        guard !compressed, readsOutstanding == 0 else { return 0 }
        let full = slotCount - lowSlotCount
        let top = slotCapacity[0]
        var queued = 0
        var movesLeft = lowSlotCount > 0
        while queued < limit {
            // The most valued candidate of each class.
            var best = (inPlace: -1, moved: -1)
            var value = (inPlace: -Double.infinity, moved: -Double.infinity)
            for s in 0..<slotCount
            where slotKey[s] >= 0 && pins[s] == 0 && slotPending[s] < 0 && !slotPrefetched[s] && slotLevel[s] >= 0 && slotLevel[s] < top {
                let (v, _) = policy.rank(key: slotKey[s], lastUse: lastUse[s], clock: clock)
                if s < full, best.inPlace < 0 || v > value.inPlace { (best.inPlace, value.inPlace) = (s, v) }
                if s >= full, movesLeft, best.moved < 0 || v > value.moved { (best.moved, value.moved) = (s, v) }
            }
            var slot = best.inPlace
            if best.moved >= 0 && (slot < 0 || value.moved > value.inPlace) {
                if let (target, rank) = victim(in: 0..<full, sparingProtected: true), mayGiveWay(target, rank: rank, to: value.moved) {
                    relocate(best.moved, into: target)
                    slot = target
                } else {
                    movesLeft = false  // no full slot gives way to the most valued; none would to the others
                    continue
                }
            }
            guard slot >= 0 else { break }
            upgrade(slot: slot, layer: slotKey[slot] / expertCount, expert: slotKey[slot] % expertCount, level: top, background: true)
            queued += 1
        }
        if queued > 0 { lane.submit() }
        return queued
    }

    /// Whether the idle record in `victim`, ranked `rank` by the policy, may give way to one the
    /// policy values `value` without a use needing it now (a prefetch, a background upgrade):
    /// an empty slot always; a record only if idle for a whole token (all layers' uses) and
    /// valued less. Lock held.
    private func mayGiveWay(_ victim: Int, rank: Double, to value: Double) -> Bool {
        slotKey[victim] < 0 || (tick - lastUse[victim] > UInt64(clock.layerCount * usesPerLayer) && value > rank)
    }

    /// Moves the verified, idle record of slot `from` to the idle slot `to` (its bytes and state),
    /// evicting what `to` held.
    private func relocate(_ from: Int, into to: Int) {
        let key = slotKey[from]
        let entry = file.expert(layer: key / expertCount, expert: key % expertCount)!
        if slotKey[to] >= 0 { evict(to) }
        slotAddress(to).copyMemory(from: slotAddress(from), byteCount: readEnd(entry, level: slotLevel[from]))
        index[key] = to
        slotKey[to] = key
        slotLevel[to] = slotLevel[from]
        lastUse[to] = lastUse[from]
        protectedUntil[to] = protectedUntil[from]
        slotPrefetched[to] = slotPrefetched[from]
        slotTransient[to] = slotTransient[from]
        slotKey[from] = -1
        slotLevel[from] = -1
        protectedUntil[from] = -1
        slotPrefetched[from] = false
        slotTransient[from] = false
    }

    /// Layer `layer` has chosen its experts (all prepared): its prefetched records left unused
    /// lose their protection, and those whose read has not started are cancelled (a stale guess
    /// no longer takes the lane's time).
    public func retirePrefetches(layer: Int) {
        lock.lock()
        defer { lock.unlock() }
        for s in 0..<slotCount where slotPrefetched[s] && pins[s] == 0 && slotKey[s] >= 0 && slotKey[s] / expertCount == layer {
            protectedUntil[s] = -1
            guard slotPending[s] >= 0, !slotLanded[s], lane.cancel(tag: s) else { continue }
            recorder?.readCancelled(slot: s)
            readFinished(slot: s, cancelled: true)
            stats.prefetchBytes -= slotReadBytes[s]
            slotPending[s] = -1
            slotLanded[s] = true
            slotPrefetched[s] = false
            stats.prefetchesCancelled += 1
            evict(s)
            stats.evictions -= 1
        }
    }

    /// Queues the read of levels 0…level of a record into `slot` (to its tail when compressed).
    private func load(slot: Int, layer: Int, expert: Int, level: Int, kind: Timeline.Kind? = nil, background: Bool = false) {
        let entry = file.expert(layer: layer, expert: expert)!
        let stored = readEnd(entry, level: level)
        issue(slot: slot, offset: Int(entry.offset), length: stored, into: compressed ? slotBytes[slot] - stored : 0,
              kind: kind ?? (level < slotCapacity[0] ? .downgrade : .miss), background: background)
        slotBase[slot] = -1
        slotPending[slot] = level
    }

    private func issue(slot: Int, offset: Int, length: Int, into: Int, kind: Timeline.Kind, background: Bool = false) {
        recorder?.readStarted(slot: slot, kind: kind, layer: slotKey[slot] / expertCount)  // lock held
        if readsOutstanding == 0 { busySince = DispatchTime.now().uptimeNanoseconds }
        readsOutstanding += 1
        lane.enqueue(ReadRequest(offset: offset, length: length, destination: slotAddress(slot) + into, tag: slot), background: background)
        slotLanded[slot] = false
        slotFailure[slot] = nil
        slotReadBytes[slot] = length
        slotReadIsPrefetch[slot] = kind == .prefetch
        if kind == .prefetch { prefetchBytesPending += length }
        stats.bytesRead += length
    }

    /// The read into `slot` landed or was cancelled (lock held): the lane's busy time, and for a
    /// cancelled one, the bytes it did not read.
    private func readFinished(slot: Int, cancelled: Bool = false) {
        if slotReadIsPrefetch[slot] {
            prefetchBytesPending -= slotReadBytes[slot]
            slotReadIsPrefetch[slot] = false
        }
        if cancelled { stats.bytesRead -= slotReadBytes[slot] }
        readsOutstanding -= 1
        if readsOutstanding == 0 { stats.ioBusySeconds += Double(DispatchTime.now().uptimeNanoseconds - busySince) / 1e9 }
    }

    private func slotAddress(_ slot: Int) -> UnsafeMutableRawPointer { arena.baseAddress! + slotOffset[slot] }

    /// Stored bytes of `entry`'s levels 0…level rounded up to the read alignment: what a read
    /// through that level brings (and so what a slot holding it has of the record).
    private func readEnd(_ entry: ExpertRecordEntry, level: Int) -> Int {
        let a = BlockReaderOptions.alignment
        return (Int(entry.levels[level].end) + a - 1) / a * a
    }

    /// Starts the queued reads.
    public func submit() {
        lane.submit()
    }

    /// Whether `slot`'s record is usable at `level` without waiting (an upgrade in flight above
    /// a verified `level` does not make it wait).
    public func isReady(_ slot: Int, level: Int) -> Bool { lock.withLock { usable(slot) || slotLevel[slot] >= level } }

    /// No read in flight into `slot`, or it has landed and been checked (lock held).
    private func usable(_ slot: Int) -> Bool { slotPending[slot] < 0 || slotLanded[slot] }

    /// Waits until the read into one of `slots` has landed (or none is in flight) and returns its
    /// index in `slots`: the next expert whose weights can be used, whatever order reads land in.
    public func awaitAny(_ slots: UnsafeBufferPointer<Int32>) -> Int {
        lock.lock()
        defer { lock.unlock() }
        var waited: UInt64 = 0
        while true {
            if let i = slots.firstIndex(where: { usable(Int($0)) }) {
                if waited > 0 { stats.stallSeconds += Double(DispatchTime.now().uptimeNanoseconds - waited) / 1e9 }
                return i
            }
            if waited == 0 {
                waited = DispatchTime.now().uptimeNanoseconds
                for slot in slots { lane.promote(tag: Int(slot)) }
                lane.submit()
            }
            lock.wait()
        }
    }

    /// The matrices of the pinned `slot` at `level` (≤ what was prepared), waiting for its read and
    /// checking the checksums of the levels it brought. On failure the slot is emptied (a later
    /// use reads again) and the error names the layer, expert and level.
    func weights(slot: Int, level: Int) throws(SparrowError) -> MLPWeights {
        lock.lock()
        defer { lock.unlock() }
        let key = slotKey[slot]
        let layer = key / expertCount
        let expert = key % expertCount
        if slotPending[slot] >= 0 && slotBase[slot] >= level && slotLevel[slot] >= level {
            // An upgrade is in flight above the levels wanted: they are usable now.
            return MLPWeights(base: UnsafeRawPointer(slotAddress(slot)), levels: levels, level: level)
        }
        try finishPending(slot: slot, key: key)
        if slotLevel[slot] < level {
            // A lower level was in flight when this use was prepared (a prefetch at the low level).
            upgrade(slot: slot, layer: layer, expert: expert, level: level)
            try finishPending(slot: slot, key: key)
        }
        return MLPWeights(base: UnsafeRawPointer(slotAddress(slot)), levels: levels, level: level)
    }

    /// Waits (lock held) for the read in flight into `slot`, if any, and records the level it
    /// brought; a failure is retried once, then the record is forgotten and the error thrown.
    private func finishPending(slot: Int, key: Int) throws(SparrowError) {
        let layer = key / expertCount
        let expert = key % expertCount
        if slotPending[slot] >= 0 {
            let target = slotPending[slot]
            // A failed read or checksum is tried once more (a transient fault, or the stale error
            // of a read issued before an earlier failure) before it is reported.
            var failure = awaitLanding(slot)
            if failure != nil {
                slotLevel[slot] = -1
                load(slot: slot, layer: layer, expert: expert, level: target)
                stats.misses += 1
                failure = awaitLanding(slot)
            }
            slotPending[slot] = -1
            if let failure {
                // Forget the record (the next use reads it again); the slot frees when unpinned.
                slotLevel[slot] = -1
                index[key] = nil
                slotKey[slot] = -1
                throw .expertLoad(layer: layer, expert: expert, bits: levels[target].bits, problem: failure)
            }
            slotLevel[slot] = target
        }
    }

    /// Waits (lock held) until the read in flight into `slot` has landed and been checked;
    /// returns what went wrong, nil when the record is good.
    private func awaitLanding(_ slot: Int) -> String? {
        if !slotLanded[slot] {
            let start = DispatchTime.now().uptimeNanoseconds
            lane.promote(tag: slot)
            lane.submit()
            while !slotLanded[slot] { lock.wait() }
            stats.stallSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        return slotFailure[slot]
    }

    /// On the I/O lane: a read into `slot` completed; checks (or decodes) the levels it brought
    /// and publishes the outcome. The slot's bookkeeping does not change while its read is in flight.
    private func landed(slot: Int, error: IOError?) {
        timeline?.readLanded(slot: slot)
        let start = DispatchTime.now().uptimeNanoseconds
        let (key, below, target) = lock.withLock { (slotKey[slot], slotBase[slot], slotPending[slot]) }
        let failure = error.map { $0.description } ?? check(slot: slot, key: key, below: below, target: target)
        lock.withLock {
            stats.landingSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            readFinished(slot: slot)
            slotLanded[slot] = true
            slotFailure[slot] = failure
            if failure == nil {
                slotLevel[slot] = target
                slotPending[slot] = -1
            } else if pins[slot] == 0 {
                // Nobody waits for it (a prefetch or background upgrade): keep what was verified
                // before, or forget the record; a later use reads again.
                slotPending[slot] = -1
                if below < 0 {
                    slotPrefetched[slot] = false
                    evict(slot)
                }
            }
            lock.broadcast()
        }
    }

    /// Checks the checksums of levels `below+1 … target` of the record in `slot` (decoding them
    /// when the record is compressed); returns what went wrong, nil when they are good.
    private func check(slot: Int, key: Int, below: Int, target: Int) -> String? {
        let entry = file.expert(layer: key / expertCount, expert: key % expertCount)!
        let base = slotAddress(slot)
        do {
            if compressed {
                let stored = readEnd(entry, level: target)
                try file.decodeExpert(
                    entry, levels: 0...target, stored: UnsafeRawBufferPointer(start: base + slotBytes[slot] - stored, count: stored),
                    into: UnsafeMutableRawBufferPointer(start: base, count: slotBytes[slot]))
            } else {
                for k in (below + 1)...target {
                    let from = k == 0 ? 0 : Int(entry.levels[k - 1].end)
                    let bytes = UnsafeRawBufferPointer(start: base + from, count: Int(entry.levels[k].end) - from)
                    if crc32c(bytes) != entry.levels[k].crc32c {
                        throw FormatError.checksumMismatch(path: file.path, what: "level \(k)")
                    }
                }
            }
        } catch { return "\(error)" }
        return nil
    }

    /// Unpins a slot taken by `prepare` (also after `weights` failed for it).
    public func release(_ slot: Int) {
        lock.lock()
        if pins[slot] > 0 { pins[slot] -= 1 }
        lock.unlock()
    }

    /// Pins held now (for tests: never more than the slots, never negative).
    public var pinnedSlots: Int { lock.withLock { pins.filter { $0 > 0 }.count } }
    public var statistics: CacheStatistics { lock.withLock { stats } }

    /// Waits for the pinned `slot` to hold `level` (checked) and returns its bytes: the record
    /// prefix through that level, laid out as in the file.
    public func load(slot: Int, level: Int) throws(SparrowError) -> UnsafeRawBufferPointer {
        _ = try weights(slot: slot, level: level)
        return UnsafeRawBufferPointer(start: slotAddress(slot), count: file.decodedLength(level: level))
    }
}
