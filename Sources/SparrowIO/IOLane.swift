import DequeModule
import Foundation
import SparrowSync

/// The thread that drives a `BlockReader`: any thread queues reads (`enqueue`, then `submit`);
/// the lane submits them and, as each completes, runs `finish` for it on the lane's own thread,
/// so the work a landed read needs (checksums, zstd decoding) never runs on a compute thread.
/// Reads are foreground (needed now: handed to the reader at once) or background (guesses and
/// upgrades: handed over only while no other read is in flight, a few at a time, so they never
/// delay a read the compute thread waits for); a background read not yet handed over can be
/// promoted (now needed) or cancelled (stale).
package final class IOLane: @unchecked Sendable {
    /// Called on the lane thread once per read, in completion order, with its error if it failed.
    package typealias Finish = (_ tag: Int, _ error: IOError?) -> Void

    private let reader: BlockReader
    private let finish: Finish
    /// What callers hand the lane thread.
    private struct Queues {
        /// Reads queued by callers, not yet handed to the reader.
        var incoming: [ReadRequest] = []
        /// Background reads waiting for the reader to be idle, oldest first.
        var background = Deque<ReadRequest>()
        var stopping = false
    }
    private let queues = Locked(Queues())

    /// What reads the bytes, for logs and `bench`.
    package var summary: String { reader.summary }
    /// Whether its reads bypass the page cache (O_DIRECT).
    package var isDirect: Bool { reader.isDirect }

    /// Starts the lane over `reader` (which only the lane uses from now on).
    package init(reader: BlockReader, tags: Int, finish: @escaping Finish) {
        self.reader = reader
        self.finish = finish
        // The thread holds the lane (and so the reader and `finish`) until its reads have landed.
        let thread = Thread { self.run(tags: tags) }
        thread.name = "sparrow-io"
        thread.start()
    }

    /// Background reads handed to the reader at once when it is idle.
    package static let backgroundBatch = 2

    /// Queues a read; it starts at the next `submit` (a background one once the reader is idle).
    /// At most one read per tag queued or in flight.
    package func enqueue(_ request: ReadRequest, background isBackground: Bool = false) {
        queues.withLock {
            if isBackground { $0.background.append(request) } else { $0.incoming.append(request) }
        }
    }

    /// Makes the background read of `tag`, if it is still waiting, a foreground one (it is needed
    /// now). Returns whether it was waiting.
    @discardableResult
    package func promote(tag: Int) -> Bool {
        let moved = queues.withLock { q -> Bool in
            guard let i = q.background.firstIndex(where: { $0.tag == tag }) else { return false }
            q.incoming.append(q.background.remove(at: i))
            return true
        }
        if moved { reader.wake() }
        return moved
    }

    /// Drops the background read of `tag` if the reader does not have it yet; `finish` is then
    /// never called for it. Returns whether it was dropped.
    package func cancel(tag: Int) -> Bool {
        queues.withLock { q in
            guard let i = q.background.firstIndex(where: { $0.tag == tag }) else { return false }
            q.background.remove(at: i)
            return true
        }
    }

    /// Hands the queued reads to the lane.
    package func submit() {
        if queues.withLock({ !$0.incoming.isEmpty || !$0.background.isEmpty }) { reader.wake() }
    }

    /// Ends the thread once every read in flight has landed (the memory they land in must stay
    /// valid until then: `finish` may hold it). Returns at once; `finish` is not called for reads
    /// that land after `stop`, so an owner may call it from its deinit.
    package func stop() {
        queues.withLock { $0.stopping = true }
        reader.wake()
    }

    private func run(tags: Int) {
        var inFlight = Array(repeating: false, count: tags)
        var count = 0
        while true {
            let idle = count == 0
            let (batch, stop) = queues.withLock { q -> ([ReadRequest], Bool) in
                defer { q.incoming.removeAll(keepingCapacity: true) }
                if q.stopping { q.background.removeAll() }
                if idle && q.incoming.isEmpty && !q.background.isEmpty {
                    let n = min(Self.backgroundBatch, q.background.count)
                    defer { q.background.removeFirst(n) }
                    return (Array(q.background.prefix(n)), q.stopping)
                }
                return (q.incoming, q.stopping)
            }
            for r in batch {
                reader.enqueue(r)
                inFlight[r.tag] = true
                count += 1
            }
            if stop && count == 0 { break }
            do {
                guard let tag = try reader.next() else { continue }  // (submits the batch first)
                var failure: IOError?
                do { try reader.wait(tag: tag) } catch { failure = error }
                inFlight[tag] = false
                count -= 1
                if !queues.withLock({ $0.stopping }) { finish(tag, failure) }
            } catch {
                // The ring itself failed (submit or wait): every read in flight is reported failed.
                // (Should such a read still land later, it lands in the same slot memory, which
                // stays allocated; its tag's next read is then a fresh request.)
                let stopped = queues.withLock { $0.stopping }
                for tag in inFlight.indices where inFlight[tag] {
                    inFlight[tag] = false
                    if !stopped { finish(tag, error) }
                }
                count = 0
            }
        }
    }
}
