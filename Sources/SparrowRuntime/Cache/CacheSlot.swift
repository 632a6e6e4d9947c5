import SparrowFormat
import SparrowIO

/// An expert record's identity: its MoE layer and its index among that layer's experts.
package struct ExpertKey: Hashable, Sendable, CustomStringConvertible {
    package let layer: Int
    package let expert: Int

    package init(layer: Int, expert: Int) {
        self.layer = layer
        self.expert = expert
    }

    package var description: String { "layer \(layer) expert \(expert)" }
}

/// Why the cache reads a record: what the timeline shows and which counters the read feeds.
enum ReadPurpose: Sendable {
    /// A use needs the record now at the session's level, or at a lower one (token-level precision).
    case miss, downgrade
    /// A guess ahead of use.
    case prefetch
    /// The missing suffix above a cached level.
    case upgrade

    var timelineKind: Timeline.Kind {
        switch self {
        case .miss: .miss
        case .downgrade: .downgrade
        case .prefetch: .prefetch
        case .upgrade: .upgrade
        }
    }
}

/// A read into a slot: the levels it brings and what the slot holds meanwhile.
struct SlotRead: Sendable {
    /// Highest level verified before the read (usable while it is in flight), -1 when none.
    var verified: Int
    /// Level the slot holds once the read has landed and its checksums have been checked.
    var target: Int
    /// Bytes read (taken back from the statistics when the read is cancelled).
    var bytes: Int
    var purpose: ReadPurpose
}

/// Why a record's levels could not be used.
enum RecordFault: Error, CustomStringConvertible {
    /// The read failed (I/O error, short read).
    case read(IOError)
    /// The bytes arrived but a checksum or the zstd frame is wrong.
    case check(FormatError)

    var description: String {
        switch self {
        case .read(let e): e.description
        case .check(let e): "\(e)"
        }
    }
}

/// What a slot holds. The transitions, each in one place of `ExpertCache`:
/// `empty`/`ready` → `reading` (`startRead`); `reading` → `ready` or `failed` (`finishRead`, on the
/// lane) or back (`cancelRead`); `failed` → `reading` (a retry), `empty` (`forget`) or, unpinned,
/// what was verified before (`settleFailure`); `ready` → `empty` (`evict`, `forget`).
enum SlotState: Sendable {
    case empty
    /// Levels 0…level present and verified.
    case ready(level: Int)
    /// A read in flight (queued, or with the reader); nothing about the slot changes until it lands.
    case reading(SlotRead)
    /// A read a pinned use waits for failed: the use retries it once or reports it.
    case failed(SlotRead, RecordFault)
}

/// One slot of the arena: where it is, what it can hold, and its record's state and use.
struct Slot: Sendable {
    /// Byte offset in the arena and size.
    let offset: Int
    let bytes: Int
    /// Highest level a record in this slot can have (full slots: the session's level).
    let capacity: Int

    /// The record held (nil: none; a pinned slot whose record failed to load may be empty).
    var key: ExpertKey?
    var state = SlotState.empty
    /// Uses holding the slot now (a pinned slot is never evicted).
    var pins = 0
    /// Policy tick of the latest use.
    var lastUse: UInt64 = 0
    /// Kept from eviction until this layer step (a prefetch's protection), -1: not protected.
    var protectedUntil = -1
    /// The record came from a prefetch not yet used.
    var prefetched = false
    /// The record was read for a prompt and not used since by a decode step (evicted first, so a
    /// long prompt does not push out decode's hot set).
    var transient = false

    init(offset: Int, bytes: Int, capacity: Int) {
        self.offset = offset
        self.bytes = bytes
        self.capacity = capacity
    }

    /// Highest level usable now without waiting (-1: none).
    var level: Int {
        switch state {
        case .empty: -1
        case .ready(let level): level
        case .reading(let read), .failed(let read, _): read.verified
        }
    }

    /// The read whose outcome is not yet taken (in flight, or failed), if any.
    var read: SlotRead? {
        switch state {
        case .reading(let read), .failed(let read, _): read
        case .empty, .ready: nil
        }
    }

    var isReading: Bool {
        if case .reading = state { return true }
        return false
    }

    /// Highest level cached or being read (-1: none).
    var highest: Int { read?.target ?? level }

    /// Neither pinned nor waiting on a read: may be evicted, relocated or read into.
    var isIdle: Bool { pins == 0 && read == nil }

    /// Drops the record and everything about its use (the slot's pins stay).
    mutating func clear() {
        key = nil
        state = .empty
        protectedUntil = -1
        prefetched = false
        transient = false
    }
}
