import Foundation

/// The parsers under test read files (several map them), so an input goes to a scratch file first:
/// one per process and name, under $TMPDIR.
public enum ScratchFile {
    /// Writes `size` bytes at `data` to the scratch file `name` and returns its path.
    public static func write(_ data: UnsafePointer<UInt8>, _ size: Int, name: String) -> String {
        let dir = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        let path = "\(dir)/sparrow-fuzz-\(getpid())-\(name)"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { return path }
        var done = 0
        while done < size {
            let n = Glibc.write(fd, data + done, size - done)
            if n <= 0 { break }
            done += n
        }
        close(fd)
        return path
    }
}
