import DequeModule
import Foundation

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
    private let lock = NSLock()
    /// Guarded by `lock`: reads queued by callers, not yet handed to the reader.
    private var incoming: [ReadRequest] = []
    /// Guarded by `lock`: background reads waiting for the reader to be idle, oldest first.
    private var background = Deque<ReadRequest>()
    private var stopping = false

    /// What reads the bytes, for logs and `bench`.
    package var summary: String { reader.summary }

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
        lock.withLock {
            if isBackground { background.append(request) } else { incoming.append(request) }
        }
    }

    /// Makes the background read of `tag`, if it is still waiting, a foreground one (it is needed
    /// now). Returns whether it was waiting.
    @discardableResult
    package func promote(tag: Int) -> Bool {
        let moved = lock.withLock { () -> Bool in
            guard let i = background.firstIndex(where: { $0.tag == tag }) else { return false }
            incoming.append(background.remove(at: i))
            return true
        }
        if moved { reader.wake() }
        return moved
    }

    /// Drops the background read of `tag` if the reader does not have it yet; `finish` is then
    /// never called for it. Returns whether it was dropped.
    package func cancel(tag: Int) -> Bool {
        lock.withLock {
            guard let i = background.firstIndex(where: { $0.tag == tag }) else { return false }
            background.remove(at: i)
            return true
        }
    }

    /// Hands the queued reads to the lane.
    package func submit() {
        if lock.withLock({ !incoming.isEmpty || !background.isEmpty }) { reader.wake() }
    }

    /// Ends the thread once every read in flight has landed (the memory they land in must stay
    /// valid until then: `finish` may hold it). Returns at once; `finish` is not called for reads
    /// that land after `stop`, so an owner may call it from its deinit.
    package func stop() {
        lock.withLock { stopping = true }
        reader.wake()
    }

    private func run(tags: Int) {
        var inFlight = Array(repeating: false, count: tags)
        var count = 0
        while true {
            let idle = count == 0
            let (batch, stop) = lock.withLock { () -> ([ReadRequest], Bool) in
                defer { incoming.removeAll(keepingCapacity: true) }
                if stopping { background.removeAll() }
                if idle && incoming.isEmpty && !background.isEmpty {
                    let n = min(Self.backgroundBatch, background.count)
                    defer { background.removeFirst(n) }
                    return (Array(background.prefix(n)), stopping)
                }
                return (incoming, stopping)
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
                if !lock.withLock({ stopping }) { finish(tag, failure) }
            } catch {
                // The ring itself failed (submit or wait): every read in flight is reported failed.
                // (Should such a read still land later, it lands in the same slot memory, which
                // stays allocated; its tag's next read is then a fresh request.)
                let stopped = lock.withLock { stopping }
                for tag in inFlight.indices where inFlight[tag] {
                    inFlight[tag] = false
                    if !stopped { finish(tag, error) }
                }
                count = 0
            }
        }
    }
}
