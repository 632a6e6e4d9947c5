import CURing
import DequeModule

#if canImport(Glibc)
    import Glibc
#endif

/// Reads with io_uring: the arena registered as fixed buffers (when the kernel and the memlock
/// limit allow), O_DIRECT when the file system takes it, submissions batched, all ready completions
/// reaped at each wake-up (in `next` and `wait`).
final class UringReader: BlockReader {
    let path: String
    let fd: Int32
    let isDirect: Bool
    private var ring = io_uring()
    private let depth: Int
    private let faults: FaultInjector?
    /// Registered buffers: base addresses and sizes (the arena cut into ≤ 1 GiB pieces).
    private var fixed: [(UnsafeMutableRawPointer, Int)] = []
    /// Per tag: the request, bytes still to read, whether it finished, and its error.
    private var requests: [ReadRequest?]
    private var done: [Int]
    private var finished: [Bool]
    private var errors: [IOError?]
    /// Requests waiting for room in the ring.
    private var backlog = Deque<Int>()
    private var inFlight = 0
    private var queued = 0
    private var completions: CompletionQueue
    /// `wake()` writes this eventfd; a poll on it, armed while `next()` blocks, ends the wait.
    private let wakeFD: Int32
    private var wakeArmed = false
    private var woken = false
    private static let wakeData = UInt64.max

    var summary: String {
        "io_uring, \(isDirect ? "O_DIRECT" : "page cache"), \(fixed.isEmpty ? "plain" : "fixed") buffers, depth \(depth)"
    }

    init(
        fd: Int32, path: String, direct: Bool, arena: UnsafeMutableRawBufferPointer, tags: Int,
        options: BlockReaderOptions
    ) throws(IOError) {
        self.fd = fd
        self.path = path
        isDirect = direct
        depth = max(1, options.queueDepth)
        faults = options.faults
        requests = Array(repeating: nil, count: tags)
        done = Array(repeating: 0, count: tags)
        finished = Array(repeating: true, count: tags)
        errors = Array(repeating: nil, count: tags)
        completions = CompletionQueue(tags: tags)
        wakeFD = sparrow_eventfd()
        if wakeFD < 0 { throw IOError(path: path, operation: "eventfd", errno: errno) }
        // One entry more than reads in flight: the wake-up poll.
        let r = io_uring_queue_init(UInt32(depth + 1), &ring, 0)
        if r < 0 {
            close(wakeFD)
            throw IOError(path: path, operation: "io_uring_queue_init", errno: -r)
        }
        // Fixed buffers save the kernel mapping pages per read; a refusal (memlock limit) only
        // costs that, so it is not an error.
        if let base = arena.baseAddress, arena.count > 0 {
            let piece = 1 << 30
            var iovecs: [iovec] = []
            var off = 0
            while off < arena.count {
                let n = min(piece, arena.count - off)
                iovecs.append(iovec(iov_base: base + off, iov_len: n))
                off += n
            }
            if io_uring_register_buffers(&ring, iovecs, UInt32(iovecs.count)) == 0 {
                fixed = iovecs.map { ($0.iov_base!, $0.iov_len) }
            }
        }
    }

    deinit {
        // Reads still in flight would land in memory the owner is about to free: finish them first.
        while inFlight > 0 {
            var cqe: UnsafeMutablePointer<io_uring_cqe>?
            if io_uring_wait_cqe(&ring, &cqe) < 0 { break }
            if cqe!.pointee.user_data != Self.wakeData { inFlight -= 1 }
            io_uring_cqe_seen(&ring, cqe)
        }
        io_uring_queue_exit(&ring)
        close(wakeFD)
        close(fd)
    }

    func enqueue(_ request: ReadRequest) {
        precondition(request.tag >= 0 && request.tag < requests.count, "tag out of range")
        requests[request.tag] = request
        done[request.tag] = 0
        finished[request.tag] = false
        completions.issued(request.tag)
        errors[request.tag] = nil
        backlog.append(request.tag)
        fill()
    }

    /// Moves backlog into submission entries while the ring has room.
    private func fill() {
        while let tag = backlog.first, inFlight + queued < depth, let sqe = io_uring_get_sqe(&ring) {
            backlog.removeFirst()
            let r = requests[tag]!
            let dest = r.destination + done[tag]
            let length = r.length - done[tag]
            let offset = UInt64(r.offset + done[tag])
            if let index = fixed.firstIndex(where: { dest >= $0.0 && dest + length <= $0.0 + $0.1 }) {
                io_uring_prep_read_fixed(sqe, fd, dest, UInt32(length), offset, Int32(index))
            } else {
                io_uring_prep_read(sqe, fd, dest, UInt32(length), offset)
            }
            io_uring_sqe_set_data64(sqe, UInt64(tag))
            queued += 1
        }
    }

    func submit() throws(IOError) {
        fill()
        guard queued > 0 else { return }
        var r: Int32
        repeat { r = io_uring_submit(&ring) } while r == -EINTR || r == -EAGAIN
        if r < 0 { throw IOError(path: path, operation: "io_uring_submit", errno: -r) }
        inFlight += Int(r)
        queued -= Int(r)
    }

    /// Reaps finished reads without blocking; returns how many finished.
    @discardableResult
    private func poll() throws(IOError) -> Int {
        var count = 0
        var cqe: UnsafeMutablePointer<io_uring_cqe>?
        while io_uring_peek_cqe(&ring, &cqe) == 0, let c = cqe {
            if c.pointee.user_data == Self.wakeData {
                var value: UInt64 = 0
                _ = read(wakeFD, &value, 8)  // reset the counter (non-blocking)
                woken = true
                wakeArmed = false
            } else {
                count += complete(tag: Int(c.pointee.user_data), result: c.pointee.res)
                inFlight -= 1
            }
            io_uring_cqe_seen(&ring, c)
        }
        if !backlog.isEmpty { try submit() }
        return count
    }

    /// Accounts one completion; returns 1 when it finished the request, 0 when it was resubmitted.
    private func complete(tag: Int, result: Int32) -> Int {
        guard let r = requests[tag] else { return 0 }
        let res = ReadProgress.inject(faults, r, done: done[tag], result: Int(result))
        switch ReadProgress(path: path, verb: "read", isDirect: isDirect).advance(
            &done[tag], result: res, offset: r.offset, length: r.length)
        {
        case .again:
            backlog.append(tag)
            return 0
        case .failed(let error):
            return fail(tag, error)
        case .finished:
            break
        }
        finished[tag] = true
        requests[tag] = nil
        completions.finished(tag)
        return 1
    }

    private func fail(_ tag: Int, _ error: IOError) -> Int {
        errors[tag] = error
        finished[tag] = true
        requests[tag] = nil
        completions.finished(tag)
        return 1
    }

    func next() throws(IOError) -> Int? {
        while true {
            if let tag = completions.next() { return tag }
            if woken {
                woken = false
                return nil
            }
            try armWake()
            try waitForCompletion()
        }
    }

    func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Puts a poll on the wake-up eventfd into the ring (its own entry: queued reads go first).
    private func armWake() throws(IOError) {
        if wakeArmed { return }
        try submit()
        guard let sqe = io_uring_get_sqe(&ring) else {
            throw IOError(path: path, operation: "io_uring_get_sqe (wake-up poll)", errno: EBUSY)
        }
        io_uring_prep_poll_add(sqe, wakeFD, sparrow_pollin())
        io_uring_sqe_set_data64(sqe, Self.wakeData)
        let reads = queued  // any reads the last submit left queued sit before the poll
        var r: Int32
        repeat { r = io_uring_submit(&ring) } while r == -EINTR || r == -EAGAIN
        if r < 0 { throw IOError(path: path, operation: "io_uring_submit (wake-up poll)", errno: -r) }
        inFlight += min(Int(r), reads)
        queued -= min(Int(r), reads)
        wakeArmed = Int(r) > reads
    }

    /// Submits what is queued and blocks until at least one completion was reaped.
    private func waitForCompletion() throws(IOError) {
        try submit()
        var cqe: UnsafeMutablePointer<io_uring_cqe>?
        var r: Int32
        repeat { r = io_uring_wait_cqe(&ring, &cqe) } while r == -EINTR || r == -EAGAIN
        if r < 0 { throw IOError(path: path, operation: "io_uring_wait_cqe", errno: -r) }
        try poll()
    }

    func wait(tag: Int) throws(IOError) {
        completions.waited(tag)
        while !finished[tag] { try waitForCompletion() }
        if let e = errors[tag] {
            errors[tag] = nil
            throw e
        }
    }
}
