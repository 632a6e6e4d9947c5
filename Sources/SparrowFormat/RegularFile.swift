import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Whole-file reads of inputs a user names (configs, tokenizers, profiles, texts): only regular
/// files are read. A FIFO, a device or a directory would block forever or never end; here it is
/// simply not readable, and the caller reports that as its usual error.
package enum RegularFile {
    /// Whether `path` names a regular file (following symbolic links).
    package static func isRegular(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// The bytes of the regular file at `path`; nil when it is missing, unreadable or not a
    /// regular file. The file is checked once opened (no race between check and read), opened
    /// without blocking (a FIFO returns at once), and read with read(2) (FileManager's
    /// `contents(atPath:)` leaks a 4 KiB buffer on an empty file: found by the config fuzzer).
    package static func contents(atPath path: String) -> Data? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                return nil
            }
            if n == 0 { return data }
            data.append(contentsOf: chunk[0..<n])
        }
    }

    /// Writes all of `bytes` to `fd` (retrying short and interrupted writes); false with `errno`
    /// set when a write fails (a full disk, a file-size limit).
    package static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            done += n
        }
        return true
    }
}
