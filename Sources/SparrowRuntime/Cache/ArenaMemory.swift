import Foundation
import SparrowIO
import SparrowSync

/// The expert arena's memory: page-aligned (O_DIRECT needs aligned buffers), committed when it is
/// allocated (every page written once, so the process's RSS counts it from the start: a session
/// created next measures it, and RSS does not creep up as the cache fills), and freed when the last
/// holder — the cache's I/O lane, once its reads have landed — lets go.
final class ArenaMemory: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let bytes: Int
    init(_ base: UnsafeMutableRawPointer, bytes: Int) {
        self.base = base
        self.bytes = bytes
        Self.held.withLock { $0 += bytes }
    }
    deinit {
        free(base)
        Self.held.withLock { $0 -= bytes }
    }

    /// Bytes of arenas not yet freed, in the whole process.
    private static let held = Locked(0)

    /// Waits (up to `seconds`) until every arena's memory is freed — their lanes let go on their
    /// own thread once a cache is gone — so that memory allocated next reuses theirs instead of
    /// adding to it. Returns whether they all were.
    static func waitUntilAllFreed(seconds: Double) -> Bool {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        while held.withLock({ $0 }) > 0 {
            guard DispatchTime.now().uptimeNanoseconds < deadline else { return false }
            usleep(500)
        }
        return true
    }

    /// `bytes` of page-aligned, committed memory; nil when the allocation fails.
    static func allocate(_ bytes: Int) -> UnsafeMutableRawPointer? {
        var p: UnsafeMutableRawPointer?
        guard posix_memalign(&p, BlockReaderOptions.alignment, bytes) == 0, let base = p else { return nil }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        for offset in stride(from: 0, to: bytes, by: page) {
            base.storeBytes(of: 0, toByteOffset: offset, as: UInt8.self)
        }
        return base
    }
}
