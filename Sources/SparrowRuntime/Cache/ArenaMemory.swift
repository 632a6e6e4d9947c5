import Foundation
import SparrowIO

/// The expert arena's memory: page-aligned (O_DIRECT needs aligned buffers), committed when it is
/// allocated (every page written once, so the process's RSS counts it from the start: a session
/// created next measures it, and RSS does not creep up as the cache fills), and freed when the last
/// holder — the cache's I/O lane, once its reads have landed — lets go.
final class ArenaMemory: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    init(_ base: UnsafeMutableRawPointer) { self.base = base }
    deinit { free(base) }

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
