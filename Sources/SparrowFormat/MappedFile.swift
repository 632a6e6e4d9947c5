import CMapGuard

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A whole file mapped read-only into memory. Unmaps and closes on deinit.
///
/// The mapping is guarded (CMapGuard): if the file shrinks while mapped, a read past its new end
/// gets zeros instead of killing the process with SIGBUS, and `checkIntact()` reports the file as
/// changed from then on — callers check it after each use of the bytes and discard the result.
///
/// Immutable after init, so it may be shared across threads.
package final class MappedFile: @unchecked Sendable {
    package let path: String
    /// The mapped bytes; valid as long as this object lives.
    package let bytes: UnsafeRawBufferPointer
    package let fileDescriptor: Int32
    /// The guard's handle (-1: unguarded, the guard's table was full).
    private let guardHandle: Int32

    package init(path: String) throws(FormatError) {
        self.path = path
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below as not a
        // regular file); it changes nothing for a regular file.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 { throw .io(path: path, operation: "open", errno: errno) }
        var st = stat()
        if fstat(fd, &st) != 0 {
            let e = errno
            close(fd)
            throw .io(path: path, operation: "stat", errno: e)
        }
        if (st.st_mode & S_IFMT) != S_IFREG {
            close(fd)
            throw .invalidArgument("\(path): not a regular file")
        }
        let size = Int(st.st_size)
        if size == 0 {
            close(fd)
            throw .truncated(path: path, expected: 1, actual: 0)
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            let e = errno
            close(fd)
            throw .io(path: path, operation: "mmap", errno: e)
        }
        self.fileDescriptor = fd
        self.bytes = UnsafeRawBufferPointer(start: p, count: size)
        self.guardHandle = spg_guard_register(p, size)
    }

    /// Pages read after the file lost them (truncated or rewritten while mapped): each read zeros.
    package var lostPages: UInt64 { spg_guard_faults(guardHandle) }

    /// Throws `.truncated` once any read of the mapping found the file shorter than when it was
    /// mapped: every byte read since may be wrong, and stays so (the file must be reopened).
    package func checkIntact() throws(FormatError) {
        guard lostPages > 0 else { return }
        var st = stat()
        let now = fstat(fileDescriptor, &st) == 0 ? UInt64(max(0, st.st_size)) : 0
        throw .truncated(path: path, expected: UInt64(count), actual: now)
    }

    /// A path that opens this very file again, even once it was deleted or replaced at `path`
    /// (`/proc/self/fd/N` where the system has it, else `path`).
    package var reopenablePath: String {
        let link = "/proc/self/fd/\(fileDescriptor)"
        return access(link, R_OK) == 0 ? link : path
    }

    /// Size of the file in bytes.
    package var count: Int { bytes.count }

    /// Advises the kernel about a range (e.g. MADV_WILLNEED, MADV_DONTNEED). Errors are ignored.
    package func advise(offset: Int, length: Int, _ advice: Int32) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = offset / page * page
        let end = min(count, offset + length)
        guard end > start, let base = bytes.baseAddress else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, advice)
    }

    deinit {
        spg_guard_unregister(guardHandle)
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
        close(fileDescriptor)
    }
}
