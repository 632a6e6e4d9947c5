import Foundation

/// The thread that drives a `BlockReader`: any thread queues reads (`enqueue`, then `submit`);
/// the lane submits them and, as each completes, runs `finish` for it on the lane's own thread,
/// so the work a landed read needs (checksums, zstd decoding) never runs on a compute thread.
public final class IOLane: @unchecked Sendable {
    /// Called on the lane thread once per read, in completion order, with its error if it failed.
    public typealias Finish = (_ tag: Int, _ error: IOError?) -> Void

    private let reader: BlockReader
    private let finish: Finish
    private let lock = NSLock()
    /// Guarded by `lock`: reads queued by callers, not yet handed to the reader.
    private var incoming: [ReadRequest] = []
    private var stopping = false
    private let stopped = DispatchSemaphore(value: 0)

    /// What reads the bytes, for logs and `bench`.
    public var summary: String { reader.summary }

    /// Starts the lane over `reader` (which only the lane uses from now on).
    public init(reader: BlockReader, tags: Int, finish: @escaping Finish) {
        self.reader = reader
        self.finish = finish
        let thread = Thread { [unowned self] in self.run(tags: tags) }
        thread.name = "sparrow-io"
        thread.start()
    }

    /// Queues a read; it starts at the next `submit`. At most one read per tag in flight.
    public func enqueue(_ request: ReadRequest) {
        lock.withLock { incoming.append(request) }
    }

    /// Hands the queued reads to the lane.
    public func submit() {
        if lock.withLock({ !incoming.isEmpty }) { reader.wake() }
    }

    /// Lets every read in flight finish (running `finish` for each), then ends the thread.
    public func stop() {
        lock.withLock { stopping = true }
        reader.wake()
        stopped.wait()
    }

    private func run(tags: Int) {
        var inFlight = Array(repeating: false, count: tags)
        var count = 0
        while true {
            let (batch, stop) = lock.withLock { () -> ([ReadRequest], Bool) in
                defer { incoming.removeAll(keepingCapacity: true) }
                return (incoming, stopping)
            }
            for r in batch {
                reader.enqueue(r)
                inFlight[r.tag] = true
                count += 1
            }
            if stop && count == 0 { break }
            do {
                try reader.submit()
                guard let tag = try reader.next() else { continue }
                var failure: IOError?
                do { try reader.wait(tag: tag) } catch { failure = error }
                inFlight[tag] = false
                count -= 1
                finish(tag, failure)
            } catch {
                // The ring itself failed (submit or wait): every read in flight is reported failed.
                for tag in inFlight.indices where inFlight[tag] {
                    inFlight[tag] = false
                    finish(tag, error)
                }
                count = 0
            }
        }
        stopped.signal()
    }
}
