import Foundation
import SparrowFormat
import SparrowIO

/// The read transitions of a slot, and the checks of what lands. Every function here runs with
/// the lock held, except `landed` (the lane's callback) and `check` (on the bytes of a slot whose
/// bookkeeping does not change while its read is in flight).
extension ExpertCache {
    /// What a read for a use at `level` is: a miss at the session's level, or a downgraded one.
    func demand(_ level: Int) -> ReadPurpose { level < topLevel ? .downgrade : .miss }

    /// Queues the read of levels 0…level of the record in slot `s` (to the slot's tail when the
    /// record is compressed: it is decoded to the front as it lands).
    func queueRead(_ s: Int, level: Int, purpose: ReadPurpose, background: Bool = false) {
        let entry = entry(slots[s].key!)
        let stored = readEnd(entry, level: level)
        startRead(
            s, SlotRead(verified: -1, target: level, bytes: stored, purpose: purpose), offset: Int(entry.offset),
            into: compressed ? slots[s].bytes - stored : 0, background: background)
    }

    /// Queues the read that brings the idle, ready slot `s` up to `level`: only the missing suffix,
    /// or, for a compressed record, the whole prefix. The suffix starts at the block boundary above
    /// the present level (the read that brought it also brought the rest of its last block), so
    /// the present levels stay usable while it is in flight.
    func upgrade(_ s: Int, to level: Int, background: Bool = false) {
        let key = slots[s].key!
        if compressed {
            queueRead(s, level: level, purpose: demand(level))
            stats.misses += 1
            return
        }
        let have = slots[s].level
        let entry = entry(key)
        let from = readEnd(entry, level: have)
        let to = readEnd(entry, level: level)
        if background { stats.backgroundUpgrades += 1 } else { stats.upgrades += 1 }
        guard from < to else {
            // Every byte is here already: check the levels now.
            if check(key, levels: (have + 1)...level, in: slotMemory(s)) == nil {
                slots[s].state = .ready(level: level)
            } else {
                queueRead(s, level: level, purpose: demand(level))
            }
            return
        }
        startRead(
            s, SlotRead(verified: have, target: level, bytes: to - from, purpose: .upgrade),
            offset: Int(entry.offset) + from, into: from, background: background)
    }

    /// The transition into `reading`: queues `read` of the file's bytes at `offset` into the slot
    /// at `into`, and counts it.
    private func startRead(_ s: Int, _ read: SlotRead, offset: Int, into: Int, background: Bool) {
        recorder?.readStarted(slot: s, kind: read.purpose.timelineKind, layer: slots[s].key!.layer)
        if readsOutstanding == 0 { busySince = DispatchTime.now().uptimeNanoseconds }
        readsOutstanding += 1
        let request = ReadRequest(offset: offset, length: read.bytes, destination: slotAddress(s) + into, tag: s)
        lane.enqueue(request, background: background)
        slots[s].state = .reading(read)
        if read.purpose == .prefetch { prefetchBytesPending += read.bytes }
        stats.bytesRead += read.bytes
    }

    /// On the I/O lane: the read into slot `s` completed. Checks (or decodes) the levels it
    /// brought, outside the lock, then publishes the outcome.
    func landed(slot s: Int, error: IOError?) {
        let start = DispatchTime.now().uptimeNanoseconds
        let (key, read, memory, recorder) = lock.withLock {
            (slots[s].key!, slots[s].read!, slotMemory(s), self.recorder)
        }
        recorder?.readLanded(slot: s)
        let fault = error.map(RecordFault.read) ?? check(key, levels: (read.verified + 1)...read.target, in: memory)
        lock.withLock {
            stats.landingSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            finishRead(s, read, fault: fault)
            lock.broadcast()
        }
    }

    /// The transition out of `reading` once the read landed: `ready` at its target, or `failed`
    /// for the pinned use waiting on it; with nobody waiting (a prefetch, a background upgrade),
    /// what was verified before.
    private func finishRead(_ s: Int, _ read: SlotRead, fault: RecordFault?) {
        readEnded(read, cancelled: false)
        guard let fault else {
            slots[s].state = .ready(level: read.target)
            return
        }
        slots[s].state = .failed(read, fault)
        if slots[s].pins == 0 { settleFailure(s) }
    }

    /// The transition out of `failed` when no use takes the failure: back to the levels verified
    /// before the read, or the record is dropped (a later use reads it again).
    func settleFailure(_ s: Int) {
        guard case .failed(let read, _) = slots[s].state else { return }
        if read.verified >= 0 {
            slots[s].state = .ready(level: read.verified)
        } else {
            slots[s].prefetched = false
            evict(s)
        }
    }

    /// The transition back from a queued read that had not started (the lane cancelled it): the
    /// slot holds what it held before.
    func cancelRead(_ s: Int) {
        guard case .reading(let read) = slots[s].state else { return }
        recorder?.readCancelled(slot: s)
        readEnded(read, cancelled: true)
        slots[s].state = read.verified >= 0 ? .ready(level: read.verified) : .empty
    }

    /// A read landed or was cancelled: the lane's busy time, the prefetch bytes in flight, and
    /// for a cancelled one the bytes it did not read.
    private func readEnded(_ read: SlotRead, cancelled: Bool) {
        if read.purpose == .prefetch { prefetchBytesPending -= read.bytes }
        if cancelled { stats.bytesRead -= read.bytes }
        readsOutstanding -= 1
        if readsOutstanding == 0 {
            stats.ioBusySeconds += Double(DispatchTime.now().uptimeNanoseconds - busySince) / 1e9
        }
    }

    /// Waits until the read into `s`, if one is in flight, has landed; returns its fault, nil when
    /// the slot's levels are good.
    func awaitLanding(_ s: Int) -> RecordFault? {
        if slots[s].isReading {
            let start = DispatchTime.now().uptimeNanoseconds
            lane.promote(tag: s)
            lane.submit()
            while slots[s].isReading { lock.wait() }
            stats.stallSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        if case .failed(_, let fault) = slots[s].state { return fault }
        return nil
    }

    /// Takes the outcome of the read into the pinned slot `s`, waiting for it: a failure is tried
    /// once more (a transient fault, or the stale error of a read issued before an earlier
    /// failure), then the record is forgotten (the next use reads it again; the slot frees when
    /// unpinned) and the error names the layer, expert and level.
    func takeRead(_ s: Int) throws(SparrowError) {
        guard let read = slots[s].read, let key = slots[s].key else { return }
        var fault = awaitLanding(s)
        if fault != nil {
            queueRead(s, level: read.target, purpose: demand(read.target))
            stats.misses += 1
            fault = awaitLanding(s)
        }
        if let fault {
            forget(s)
            throw .expertLoad(
                layer: key.layer, expert: key.expert, bits: levels[read.target].bits, problem: fault.description)
        }
    }

    /// The slot's memory.
    func slotMemory(_ s: Int) -> UnsafeMutableRawBufferPointer {
        slotRegions[s]
    }

    /// Checks the checksums of `levels` of the record `key` held in `memory` (decoding them, from
    /// level 0, when the record is compressed); returns the fault, nil when they are good.
    func check(_ key: ExpertKey, levels: ClosedRange<Int>, in memory: UnsafeMutableRawBufferPointer) -> RecordFault? {
        let entry = entry(key)
        let base = memory.baseAddress!
        let size = memory.count
        do throws(FormatError) {
            if compressed {
                let stored = readEnd(entry, level: levels.upperBound)
                try file.decodeExpert(
                    entry, levels: 0...levels.upperBound,
                    stored: UnsafeRawBufferPointer(start: base + size - stored, count: stored),
                    into: UnsafeMutableRawBufferPointer(start: base, count: size))
            } else {
                for k in levels {
                    let from = k == 0 ? 0 : Int(entry.levels[k - 1].end)
                    let bytes = UnsafeRawBufferPointer(start: base + from, count: Int(entry.levels[k].end) - from)
                    if crc32c(bytes) != entry.levels[k].crc32c {
                        throw FormatError.checksumMismatch(path: file.path, what: "level \(k)")
                    }
                }
            }
        } catch { return .check(error) }
        return nil
    }
}
