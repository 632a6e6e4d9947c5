import DequeModule
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Reads with a small pool of threads calling pread(2): the fallback when io_uring is unavailable,
/// and the comparison point (`--io pread`). O_DIRECT when the file system takes it.
final class PreadReader: BlockReader, @unchecked Sendable {
    let path: String
    let fd: Int32
    let isDirect: Bool
    private let faults: FaultInjector?
    private let condition = NSCondition()
    /// Guarded by `condition`.
    private var queue = Deque<ReadRequest>()
    private var staged: [ReadRequest] = []
    private var finished: [Bool]
    private var errors: [IOError?]
    private var completions: CompletionQueue
    private var stopping = false
    private var woken = false
    private var running = 0
    private let workers: Int

    var summary: String { "pread ×\(workers), \(isDirect ? "O_DIRECT" : "page cache")" }

    init(fd: Int32, path: String, direct: Bool, tags: Int, options: BlockReaderOptions) {
        self.fd = fd
        self.path = path
        isDirect = direct
        faults = options.faults
        finished = Array(repeating: true, count: tags)
        errors = Array(repeating: nil, count: tags)
        completions = CompletionQueue(tags: tags)
        workers = max(1, min(8, options.queueDepth))
        for _ in 0..<workers {
            let t = Thread { [unowned self] in self.work() }
            t.name = "sparrow-pread"
            running += 1
            t.start()
        }
    }

    deinit {
        condition.lock()
        stopping = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        condition.unlock()
        close(fd)
    }

    func enqueue(_ request: ReadRequest) {
        condition.lock()
        finished[request.tag] = false
        completions.issued(request.tag)
        errors[request.tag] = nil
        staged.append(request)
        condition.unlock()
    }

    func submit() throws(IOError) {
        condition.lock()
        queue.append(contentsOf: staged)
        staged.removeAll(keepingCapacity: true)
        condition.broadcast()
        condition.unlock()
    }

    func next() throws(IOError) -> Int? {
        try submit()
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let tag = completions.next() { return tag }
            if woken {
                woken = false
                return nil
            }
            condition.wait()
        }
    }

    func wake() {
        condition.lock()
        woken = true
        condition.broadcast()
        condition.unlock()
    }

    func wait(tag: Int) throws(IOError) {
        try submit()
        condition.lock()
        completions.waited(tag)
        while !finished[tag] { condition.wait() }
        let e = errors[tag]
        errors[tag] = nil
        condition.unlock()
        if let e { throw e }
    }

    private func work() {
        condition.lock()
        while true {
            while queue.isEmpty && !stopping { condition.wait() }
            if stopping { break }
            let r = queue.removeFirst()
            condition.unlock()
            let error = read(r)
            condition.lock()
            errors[r.tag] = error
            finished[r.tag] = true
            completions.finished(r.tag)
            condition.broadcast()
        }
        running -= 1
        condition.broadcast()
        condition.unlock()
    }

    /// One request to completion: short reads resumed, EINTR/EAGAIN retried.
    private func read(_ r: ReadRequest) -> IOError? {
        let progress = ReadProgress(path: path, verb: "pread", isDirect: isDirect)
        var done = 0
        while done < r.length {
            let n = pread(fd, r.destination + done, r.length - done, off_t(r.offset + done))
            let result = ReadProgress.inject(faults, r, done: done, result: n < 0 ? -Int(errno) : n)
            switch progress.advance(&done, result: result, offset: r.offset, length: r.length) {
            case .again: continue
            case .finished: return nil
            case .failed(let error): return error
            }
        }
        return nil
    }
}
