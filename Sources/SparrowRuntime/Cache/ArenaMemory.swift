import Foundation
import SparrowIO

/// The expert arena's memory: page-aligned (O_DIRECT needs aligned buffers), untouched until read
/// into, and freed when the last holder — the cache's I/O lane, once its reads have landed — lets go.
final class ArenaMemory: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    init(_ base: UnsafeMutableRawPointer) { self.base = base }
    deinit { free(base) }

    /// `bytes` of page-aligned memory, nil when the allocation fails.
    static func allocate(_ bytes: Int) -> UnsafeMutableRawPointer? {
        var p: UnsafeMutableRawPointer?
        return posix_memalign(&p, BlockReaderOptions.alignment, bytes) == 0 ? p : nil
    }
}
