import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole-file reads of inputs a user names (configs, tokenizers, profiles, texts): only regular
/// files are read. A FIFO, a device or a directory would block forever or never end; here it is
/// simply not readable, and the caller reports that as its usual error.
public enum RegularFile {
    /// Whether `path` names a regular file (following symbolic links).
    public static func isRegular(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// The bytes of the regular file at `path`; nil when it is missing, unreadable or not a
    /// regular file.
    public static func contents(atPath path: String) -> Data? {
        guard isRegular(path) else { return nil }
        return FileManager.default.contents(atPath: path)
    }
}
