import Foundation

/// A record of what the compute thread and the I/O lane did, on one time axis, for
/// `bench --timeline`. Attached to a session (`Session.timeline`); nil costs nothing.
package final class Timeline: @unchecked Sendable {
    /// What a span was.
    package enum Kind: String, Codable, Sendable {
        /// Compute: attention, experts already cached, an expert whose read it waited for.
        case attention, resident, awaited
        /// I/O: a read for a miss at the session's level, a downgraded (low-level) miss, a
        /// prefetch, an upgrade (suffix) read.
        case miss, downgrade, prefetch, upgrade
    }

    package struct Span: Codable, Sendable {
        package var kind: Kind
        package var layer: Int
        /// Seconds from the timeline's start.
        package var start: Double
        package var end: Double
        /// The worker thread that ran it (rows in the order threads first recorded), nil for the
        /// compute thread's own spans (which may use every worker) and reads.
        package var thread: Int?
        package var isIO: Bool { [.miss, .downgrade, .prefetch, .upgrade].contains(kind) }
    }

    private let lock = NSLock()
    private let origin = DispatchTime.now().uptimeNanoseconds
    private var spans: [Span] = []
    /// Per cache slot: the read in flight (kind, layer, start).
    private var open: [Int: (Kind, Int, Double)] = [:]
    /// Worker rows by thread identity.
    private var threadRows: [UInt: Int] = [:]

    package init() {}

    /// Seconds since the timeline started.
    package func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds - origin) / 1e9 }

    package func add(_ kind: Kind, layer: Int, from start: Double, to end: Double) {
        lock.withLock { spans.append(Span(kind: kind, layer: layer, start: start, end: end)) }
    }

    /// Records a span the calling worker thread ran (one expert of a layer run in parallel).
    package func addOnThisThread(_ kind: Kind, layer: Int, from start: Double, to end: Double) {
        let id = UInt(pthread_self())
        lock.withLock {
            let row = threadRows[id] ?? threadRows.count
            threadRows[id] = row
            spans.append(Span(kind: kind, layer: layer, start: start, end: end, thread: row))
        }
    }

    /// A read into `slot` started / landed.
    func readStarted(slot: Int, kind: Kind, layer: Int) { lock.withLock { open[slot] = (kind, layer, now()) } }
    func readCancelled(slot: Int) { lock.withLock { _ = open.removeValue(forKey: slot) } }
    func readLanded(slot: Int) {
        let end = now()
        lock.withLock {
            guard let (kind, layer, start) = open.removeValue(forKey: slot) else { return }
            spans.append(Span(kind: kind, layer: layer, start: start, end: end))
        }
    }

    /// Everything recorded so far, in start order.
    package var recorded: [Span] { lock.withLock { spans.sorted { $0.start < $1.start } } }
}
