import Foundation
import SparrowFormat
import SparrowIO

/// A budgeted cache of expert records: a fixed arena cut into slots, each holding one record's
/// prefix (levels 0…k) exactly as stored, filled through an `IOLane` (io_uring or pread,
/// O_DIRECT). Each slot is a small state machine (`SlotState`); a pinned slot is never evicted,
/// eviction follows an `EvictionPolicy`. Every level read is checked against its checksum (and
/// zstd levels decoded) on the lane as it lands, before use. Thread-safe.
///
/// The slot mechanics live here and in `+Use` (pinning a record for a use), `+Reads` (the read
/// transitions), `+Eviction` (choosing, moving and dropping records, prefetch and background
/// upgrades) and `+Statistics`; what to read, when and at which level is the `Scheduler`'s.
package final class ExpertCache: @unchecked Sendable {
    /// Thrown by `prepare` when every slot that could hold the record is pinned or being read.
    package struct Full: Error {}

    let file: SPWFile
    let levels: [ExpertLevelLayout]
    /// Bytes of a full slot (one record through the session's level) and the number of slots of
    /// both classes. With a low level, part of the arena is cut into smaller slots that hold a
    /// record only through that level (several low-precision experts in the room of one).
    package let slotSize: Int
    package let slotCount: Int
    package let lowSlotSize: Int
    package let lowSlotCount: Int
    /// The memory slots are carved from.
    package let arena: UnsafeMutableRawBufferPointer
    /// Each slot's memory (fixed at init, so read without the lock, unlike `slots`).
    let slotRegions: [UnsafeMutableRawBufferPointer]
    /// The thread that reads records in and checks (and decodes) them as they land.
    private(set) var lane: IOLane!
    /// Records with zstd levels are read into the tail of the slot and decoded to its front.
    let compressed: Bool
    /// Expert uses per MoE layer and token (top-k), for telling an idle slot from a busy one.
    let usesPerLayer: Int

    /// Guards everything below; signalled when a read in flight has landed and been checked.
    let lock = NSCondition()
    var slots: [Slot]
    /// Which slot holds each cached record.
    var index: [ExpertKey: Int] = [:]
    var policy: any EvictionPolicy
    /// Policy time: one tick per use.
    var tick: UInt64 = 0
    /// Counts MoE layers run (prefetch protection is counted in these steps); `clock` says which
    /// layer that is.
    var step = 0
    var clock: CacheClock
    /// Reads queued or in flight, and when the lane last became busy.
    var readsOutstanding = 0
    var busySince: UInt64 = 0
    /// Bytes of prefetch reads queued or in flight.
    var prefetchBytesPending = 0
    var stats = CacheStatistics()
    var recorder: Timeline?

    /// Records reads for `bench --timeline` (nil: nothing recorded).
    package var timeline: Timeline? {
        get { lock.withLock { recorder } }
        set { lock.withLock { recorder = newValue } }
    }

    /// Slot bytes needed for records up to `level` of `file`.
    package static func slotSize(file: SPWFile, level: Int) -> Int {
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
    package init(
        file: SPWFile, config: ModelConfig, maxLevel: Int, arenaBytes: Int, policy: CachePolicyKind,
        io: BlockReaderOptions, lowLevel: Int? = nil, lowShare: Double = 0.25
    ) throws(SparrowError) {
        self.file = file
        levels = file.directory.expertLevels
        clock = CacheClock(layer: 0, layerCount: config.layerCount)
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
        if low != nil {
            let share = min(max(lowShare, 0), 1)
            let keep = min(full, max(config.expertsPerToken, Int(Double(full) * (1 - share))))
            small = min((arenaBytes - keep * size) / lowSlotSize, records)
            full = keep
        }
        guard full > 0 else { throw .budgetTooSmall("no room for a single expert slot of \(size) bytes") }
        slotCount = full + small
        lowSlotCount = small
        let lowSize = lowSlotSize
        slots = (0..<(full + small)).map {
            $0 < full
                ? Slot(offset: $0 * size, bytes: size, capacity: maxLevel)
                : Slot(offset: full * size + ($0 - full) * lowSize, bytes: lowSize, capacity: low!)
        }
        let bytes = full * size + small * lowSize
        guard let base = ArenaMemory.allocate(bytes) else {
            throw .budgetTooSmall("cannot allocate a \(bytes)-byte expert arena")
        }
        arena = UnsafeMutableRawBufferPointer(start: base, count: bytes)
        slotRegions = slots.map { UnsafeMutableRawBufferPointer(start: base + $0.offset, count: $0.bytes) }
        let reader: BlockReader
        do {
            reader = try BlockReaders.open(
                path: file.path, opening: file.file.reopenablePath, arena: arena, tags: slotCount, options: io)
        } catch {
            free(base)
            throw .io(error)
        }
        self.policy = policy.make()
        stats.slots = slotCount
        stats.slotBytes = slotSize
        stats.lowSlots = lowSlotCount
        stats.lowSlotBytes = lowSlotSize
        // The lane keeps the arena's memory (through its callback) until its last read has
        // landed, and reaches the cache only while the cache lives.
        let memory = ArenaMemory(base, bytes: bytes)
        lane = IOLane(reader: reader, tags: slotCount) { [weak self] slot, error in
            withExtendedLifetime(memory) { self?.landed(slot: slot, error: error) }
        }
    }

    deinit {
        // Reads in flight still land in the arena: the lane frees it after the last one.
        lane.stop()
    }

    /// The slots records through the session's level fit in; the low-precision ones follow them.
    var fullSlots: Range<Int> { 0..<(slotCount - lowSlotCount) }
    var lowSlots: Range<Int> { (slotCount - lowSlotCount)..<slotCount }
    /// The session's level: what a full slot holds.
    var topLevel: Int { slots[0].capacity }

    func slotAddress(_ s: Int) -> UnsafeMutableRawPointer { slotRegions[s].baseAddress! }

    func entry(_ key: ExpertKey) -> ExpertRecordEntry { file.expert(layer: key.layer, expert: key.expert)! }

    /// Stored bytes of `entry`'s levels 0…level rounded up to the read alignment: what a read
    /// through that level brings (and so what a slot holding it has of the record).
    func readEnd(_ entry: ExpertRecordEntry, level: Int) -> Int {
        let a = BlockReaderOptions.alignment
        return (Int(entry.levels[level].end) + a - 1) / a * a
    }
}
