import Synchronization

#if SPARROW_TSAN
    import Foundation

    /// The value a lock guards: `Synchronization.Mutex`, except in the ThreadSanitizer build
    /// (`-DSPARROW_TSAN`, Scripts/tsan.sh), where it is a pthread mutex (`NSLock`): on Linux `Mutex`
    /// waits on a futex ThreadSanitizer cannot see, so every access it guards would be reported as
    /// a race.
    package final class Locked<Value>: @unchecked Sendable {
        private let lock = NSLock()
        private var value: Value

        package init(_ value: Value) { self.value = value }

        /// Runs `body` with the value while holding the lock.
        package func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
            lock.lock()
            defer { lock.unlock() }
            return try body(&value)
        }
    }
#else
    /// The value a lock guards: `Synchronization.Mutex` (a pthread mutex in the ThreadSanitizer
    /// build, which cannot see `Mutex`'s futex; Scripts/tsan.sh).
    package typealias Locked<Value> = Mutex<Value>
#endif
