import Foundation
import SparrowSync

/// The temporary files this process is writing (a model being converted, a profile being saved),
/// so that an interrupted command can remove them: `removeAll()` is what the CLI's SIGINT/SIGTERM
/// handler calls before exiting. A finished or abandoned file is no longer listed.
package enum TemporaryFiles {
    private static let paths = Locked<Set<String>>([])

    /// `path` is being written.
    package static func register(_ path: String) { paths.withLock { _ = $0.insert(path) } }

    /// `path` was renamed into place or deleted.
    package static func unregister(_ path: String) { paths.withLock { _ = $0.remove(path) } }

    /// Deletes every listed file (an interrupted command leaves nothing behind).
    package static func removeAll() {
        for path in paths.withLock({ $0 }) { unlink(path) }
    }
}
