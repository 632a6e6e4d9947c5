import CURing

#if canImport(Glibc)
    import Glibc
#endif

/// One read: `length` bytes at file `offset` into `destination`. On an O_DIRECT reader all three
/// are multiples of `BlockReaderOptions.alignment`.
package struct ReadRequest: Sendable {
    package var offset: Int
    package var length: Int
    package nonisolated(unsafe) var destination: UnsafeMutableRawPointer
    /// The caller's name for the read, in `0..<tags` of the reader: at most one read per tag in flight.
    package var tag: Int

    package init(offset: Int, length: Int, destination: UnsafeMutableRawPointer, tag: Int) {
        self.offset = offset
        self.length = length
        self.destination = destination
        self.tag = tag
    }
}

/// Which implementation moves the bytes.
public enum IOMode: String, Sendable, CaseIterable {
    /// io_uring when the kernel allows it, else pread.
    case auto
    case uring
    case pread
}

/// Moves byte ranges of one file into caller memory, many at a time. Requests are queued with
/// `enqueue`, started by `submit`, and finished by `next()` (the next to complete) and `wait(tag:)`.
/// Short reads are resumed, EINTR/EAGAIN retried; any other failure is the error of that tag.
/// One thread drives a reader at a time (`IOLane` is that thread for the expert cache).
package protocol BlockReader: AnyObject {
    /// What it is, for logs and `bench` ("io_uring, O_DIRECT, fixed buffers", "pread ×4, O_DIRECT").
    var summary: String { get }
    /// Whether reads bypass the page cache (O_DIRECT).
    var isDirect: Bool { get }
    func enqueue(_ request: ReadRequest)
    /// Starts every queued read.
    func submit() throws(IOError)
    /// Blocks until the read of `tag` finished; throws its error (and forgets it).
    func wait(tag: Int) throws(IOError)
    /// Blocks until some read not yet waited for finished and returns its tag (its error, if any,
    /// is thrown by `wait(tag:)`, which then returns at once), or until `wake()` was called and
    /// returns nil. Blocks even when no read is in flight. Submits queued reads before blocking.
    func next() throws(IOError) -> Int?
    /// Makes a `next()` blocked on another thread (or the next call) return nil. The one call any
    /// thread may make at any time.
    func wake()
}

/// A fault to inject into a read (tests): the seam through which EIO, short reads and damaged
/// bytes are simulated on either implementation.
package enum ReadFault: Sendable, Equatable {
    /// The read fails with this errno.
    case error(Int32)
    /// The read returns only this many bytes (the reader must resume the rest).
    case short(Int)
    /// The bytes arrive with one bit flipped at this offset of the request.
    case flip(Int)
}

/// Decides, per completed read attempt, whether to inject a fault (tests only; nil in production).
package typealias FaultInjector = @Sendable (_ request: ReadRequest) -> ReadFault?

/// Options shared by the readers.
public struct BlockReaderOptions: Sendable {
    /// Alignment of offsets, lengths and buffers for O_DIRECT.
    public static let alignment = 4096
    /// Which reader: io_uring, pread, or the best the kernel allows.
    public var mode: IOMode
    /// Reads in flight at most (ring size; pread worker count is min(this, 8)).
    public var queueDepth: Int
    /// Use O_DIRECT where the file system allows it.
    public var direct: Bool
    /// Faults to inject into reads (tests of the error paths).
    package var faults: FaultInjector?
    /// Told why a reader fell back (io_uring unavailable, O_DIRECT refused by the file system);
    /// nil: silent. The engine reports, the caller presents (the CLI prints it on standard error).
    public var notice: (@Sendable (String) -> Void)?

    /// How to read: `mode` (io_uring when the kernel allows it), at most `queueDepth` reads in
    /// flight, O_DIRECT when `direct` and the file system takes it; `notice` hears of fallbacks.
    public init(
        mode: IOMode = .auto, queueDepth: Int = 32, direct: Bool = true, notice: (@Sendable (String) -> Void)? = nil
    ) {
        self.init(mode: mode, queueDepth: queueDepth, direct: direct, faults: nil, notice: notice)
    }

    /// The same, with `faults` injected into every read.
    package init(
        mode: IOMode = .auto, queueDepth: Int = 32, direct: Bool = true, faults: FaultInjector?,
        notice: (@Sendable (String) -> Void)? = nil
    ) {
        self.mode = mode
        self.queueDepth = queueDepth
        self.direct = direct
        self.faults = faults
        self.notice = notice
    }
}

/// Opens the best reader for a file: io_uring with O_DIRECT when possible, else pread (with
/// O_DIRECT when the file system takes it), telling `options.notice` why.
package enum BlockReaders {
    /// `arena`: the memory reads land in (registered with io_uring as fixed buffers); `tags`: the
    /// number of distinct tags the caller uses. `path` names the file in messages; `opening`, when
    /// given, is what is opened (`/proc/self/fd/N` reaches an open file even once it is deleted or
    /// replaced at its path).
    package static func open(
        path: String, opening: String? = nil, arena: UnsafeMutableRawBufferPointer, tags: Int,
        options: BlockReaderOptions
    ) throws(IOError) -> BlockReader {
        let (fd, direct) = try openFile(opening ?? path, named: path, direct: options.direct, notice: options.notice)
        if options.mode != .pread {
            if let errno = UringSupport.probe() {
                if options.mode == .uring {
                    close(fd)
                    throw IOError(path: path, operation: "io_uring setup", errno: errno)
                }
                options.notice?("io: io_uring unavailable (\(String(cString: strerror(errno)))); using pread")
            } else {
                do {
                    return try UringReader(
                        fd: fd, path: path, direct: direct, arena: arena, tags: tags, options: options)
                } catch {
                    if options.mode == .uring {
                        close(fd)
                        throw error
                    }
                    options.notice?("io: \(error); using pread")
                }
            }
        }
        return PreadReader(fd: fd, path: path, direct: direct, tags: tags, options: options)
    }

    /// Opens `source` read-only, with O_DIRECT if asked and accepted (tmpfs refuses it); errors
    /// and notices name `path`.
    static func openFile(
        _ source: String, named path: String, direct: Bool, notice: ((String) -> Void)?
    ) throws(IOError) -> (Int32, Bool) {
        if direct {
            let fd = Glibc.open(source, O_RDONLY | O_CLOEXEC | sparrow_o_direct())
            if fd >= 0 { return (fd, true) }
            if errno != EINVAL { throw IOError(path: path, operation: "open", errno: errno) }
            notice?("io: \(path): O_DIRECT refused by the file system; reading through the page cache")
        }
        let fd = Glibc.open(source, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw IOError(path: path, operation: "open", errno: errno) }
        return (fd, false)
    }
}

/// The kernel's page cache for one file.
package enum PageCache {
    /// Drops the file's clean cached pages (posix_fadvise DONTNEED), so the next reads come from
    /// storage: a cold start. Pages mapped by a running process stay.
    package static func evict(path: String) throws(IOError) {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw IOError(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        let r = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        if r != 0 { throw IOError(path: path, operation: "posix_fadvise(DONTNEED)", errno: r) }
    }
}
