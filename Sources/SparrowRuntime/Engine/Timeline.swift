import Foundation
import SparrowSync

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

    private struct Recording {
        var spans: [Span] = []
        /// Per cache slot: the read in flight (kind, layer, start).
        var open: [Int: (Kind, Int, Double)] = [:]
        /// Worker rows by thread identity.
        var threadRows: [UInt: Int] = [:]
    }

    private let origin = DispatchTime.now().uptimeNanoseconds
    private let recording = Locked(Recording())

    package init() {}

    /// Seconds since the timeline started.
    package func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds - origin) / 1e9 }

    package func add(_ kind: Kind, layer: Int, from start: Double, to end: Double) {
        recording.withLock { $0.spans.append(Span(kind: kind, layer: layer, start: start, end: end)) }
    }

    /// Records a span the calling worker thread ran (one expert of a layer run in parallel).
    package func addOnThisThread(_ kind: Kind, layer: Int, from start: Double, to end: Double) {
        let id = UInt(pthread_self())
        recording.withLock {
            let row = $0.threadRows[id] ?? $0.threadRows.count
            $0.threadRows[id] = row
            $0.spans.append(Span(kind: kind, layer: layer, start: start, end: end, thread: row))
        }
    }

    /// A read into `slot` started / landed.
    func readStarted(slot: Int, kind: Kind, layer: Int) {
        let start = now()
        recording.withLock { $0.open[slot] = (kind, layer, start) }
    }
    func readCancelled(slot: Int) { recording.withLock { _ = $0.open.removeValue(forKey: slot) } }
    func readLanded(slot: Int) {
        let end = now()
        recording.withLock {
            guard let (kind, layer, start) = $0.open.removeValue(forKey: slot) else { return }
            $0.spans.append(Span(kind: kind, layer: layer, start: start, end: end))
        }
    }

    /// Everything recorded so far, in start order.
    package var recorded: [Span] { recording.withLock { $0.spans }.sorted { $0.start < $1.start } }
}
