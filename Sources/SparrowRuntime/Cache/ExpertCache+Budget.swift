import Foundation
import SparrowIO

extension ExpertCache {
    /// The cache of a budgeted session: `options.expertCacheBytes`, or what is left of
    /// `options.budget` once everything else is resident (the session has made its dense weights
    /// resident first, so the measurement sees them).
    static func forSession(
        model: Model, level: Int, low: (level: Int, share: Double)?, options: SessionOptions
    ) throws(SparrowError) -> ExpertCache {
        let c = model.config
        guard c.moeLayerCount > 0 else { throw .invalidArgument("a memory budget needs a model with experts") }
        let slot = slotSize(file: model.file, level: level)
        let need = c.expertsPerToken * slot
        if let bytes = options.expertCacheBytes {
            guard bytes >= need else {
                throw .budgetTooSmall(
                    "an expert cache of \(ByteSize.format(bytes)) cannot hold one layer's top-\(c.expertsPerToken) experts at "
                        + "\(model.expertBits[level]) bits (\(ByteSize.format(need)))")
            }
            let low = holdsEveryRecord(model: model, slot: slot, arenaBytes: bytes) ? nil : low
            return try ExpertCache(
                file: model.file, config: c, maxLevel: level, arenaBytes: bytes, policy: options.cachePolicy,
                io: options.io, lowLevel: low?.level, lowShare: low?.share ?? 0)
        }
        let budget = options.budget!
        let (arena, fixed, reserve) = budgetArena(budget)
        guard arena >= need else {
            let lowest = c.expertsPerToken * slotSize(file: model.file, level: 0)
            throw .budgetTooSmall(
                "\(ByteSize.format(budget)) leaves \(ByteSize.format(max(0, arena))) for experts after "
                    + "\(ByteSize.format(fixed)) resident (dense weights, KV cache, scratch, runtime) and a "
                    + "\(ByteSize.format(reserve)) reserve; one layer's top-\(c.expertsPerToken) experts at "
                    + "\(model.expertBits[level]) bits need \(ByteSize.format(need)), so the budget must be at least "
                    + "\(ByteSize.format(fixed + reserve + need))"
                    + (level > 0
                        ? " (\(ByteSize.format(fixed + reserve + lowest)) at \(model.expertBits[0]) bits)" : ""))
        }
        let low = holdsEveryRecord(model: model, slot: slot, arenaBytes: arena) ? nil : low
        return try ExpertCache(
            file: model.file, config: c, maxLevel: level, arenaBytes: arena, policy: options.cachePolicy,
            io: options.io, lowLevel: low?.level, lowShare: low?.share ?? 0)
    }

    /// What `budget` leaves for the expert arena now: the budget less what is resident (`fixed`)
    /// and a `reserve` for transient allocations (logits, activations, I/O bookkeeping).
    static func budgetArena(_ budget: Int) -> (bytes: Int, fixed: Int, reserve: Int) {
        let fixed = ProcessMemory.currentRSS
        let reserve = (4 << 20) + budget / 50
        return (budget - fixed - reserve, fixed, reserve)
    }

    /// Whether the cache `forSession` would make at `level` now holds every expert record.
    static func wouldHoldEveryRecord(model: Model, level: Int, options: SessionOptions) -> Bool {
        let arena = options.expertCacheBytes ?? options.budget.map { budgetArena($0).bytes } ?? 0
        return holdsEveryRecord(model: model, slot: slotSize(file: model.file, level: level), arenaBytes: arena)
    }

    /// Whether `arenaBytes` hold every expert record in a full slot of `slot` bytes: then no
    /// low-precision slots are cut (token-level precision has nothing to save).
    static func holdsEveryRecord(model: Model, slot: Int, arenaBytes: Int) -> Bool {
        arenaBytes / slot >= model.file.experts.count
    }

    /// Whether every record has a full slot (the arena held them all at the session's level).
    var holdsEveryRecord: Bool { lowSlotCount == 0 && slotCount >= file.experts.count }
}
