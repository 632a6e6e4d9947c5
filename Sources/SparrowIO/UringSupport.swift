import CURing

/// Whether this kernel lets the process set up an io_uring (it may be missing, or refused by
/// seccomp with ENOSYS/EPERM). The loader uses the ring when this is nil, pread otherwise.
package enum UringSupport {
    /// nil when a ring can be created, otherwise the negated errno `io_uring_queue_init` returned.
    package static func probe(entries: UInt32 = 8) -> Int32? {
        var ring = io_uring()
        let r = io_uring_queue_init(entries, &ring, 0)
        if r < 0 { return -r }
        io_uring_queue_exit(&ring)
        return nil
    }
}
