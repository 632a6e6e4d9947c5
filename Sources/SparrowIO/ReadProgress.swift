#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The read loop every reader shares: one attempt's result (bytes read, or -errno) advances a
/// request — short reads resume, EINTR and EAGAIN try again, end of file and other errors fail —
/// and injected faults (tests) act on that result the same way for every reader.
struct ReadProgress {
    let path: String
    /// The system call, for messages ("pread", "read").
    let verb: String
    /// O_DIRECT: a partial read resumes from the block boundary below where it stopped.
    let isDirect: Bool

    enum Step {
        /// Issue the rest of the request (again, or from where it stopped).
        case again
        case finished
        case failed(IOError)
    }

    /// One attempt's `result` with the fault `faults` decides for request `r` (whose first `done`
    /// bytes were in before the attempt) applied.
    static func inject(_ faults: FaultInjector?, _ r: ReadRequest, done: Int, result: Int) -> Int {
        guard let fault = faults?(r) else { return result }
        switch fault {
        case .error(let e): return -Int(e)
        case .short(let n): return min(result, n)
        case .flip(let at):
            if result > at {
                let p = r.destination + done + at
                p.storeBytes(of: p.load(as: UInt8.self) ^ 1, as: UInt8.self)
            }
            return result
        }
    }

    /// Advances `done` (bytes of the `length` at `offset` already in) by one attempt's result.
    func advance(_ done: inout Int, result: Int, offset: Int, length: Int) -> Step {
        if result == -Int(EINTR) || result == -Int(EAGAIN) { return .again }
        if result < 0 {
            return .failed(
                IOError(
                    path: path, operation: "\(verb) of \(length - done) bytes at \(offset + done)",
                    errno: Int32(-result)))
        }
        if result == 0 {
            return .failed(IOError(path: path, operation: "\(verb) at \(offset + done) (end of file)", errno: EIO))
        }
        done += result
        if done >= length { return .finished }
        if isDirect { done -= done % BlockReaderOptions.alignment }
        return .again
    }
}
