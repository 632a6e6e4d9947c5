import Foundation
import SparrowSync

/// The temporary files this process is writing (a model being converted, a profile being saved),
/// so that an interrupted command can remove them: `removeAll()` is what the CLI's SIGINT/SIGTERM
/// handler calls before exiting. A finished or abandoned file is no longer listed.
package enum TemporaryFiles {
    private struct State {
        var paths: Set<String> = []
        /// Set by `removeAll`: the process is exiting, no new temporary file may appear.
        var closing = false
    }
    private static let state = Locked(State())

    /// Creates (or truncates) `path` for writing and lists it, under the same lock `removeAll`
    /// takes: a signal can never leave a file created but not yet listed, nor one created after the
    /// removal. Returns the descriptor, or -1 with `errno` set (EINTR once removal has begun).
    package static func create(_ path: String) -> Int32 {
        state.withLock { s in
            guard !s.closing else {
                errno = EINTR
                return -1
            }
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if fd >= 0 { s.paths.insert(path) }
            return fd
        }
    }

    /// `path` was renamed into place or deleted.
    package static func unregister(_ path: String) { state.withLock { _ = $0.paths.remove(path) } }

    /// Deletes every listed file and refuses new ones (an interrupted command leaves nothing
    /// behind).
    package static func removeAll() {
        state.withLock { s in
            s.closing = true
            for path in s.paths { unlink(path) }
        }
    }
}
