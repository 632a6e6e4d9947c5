import Dispatch

/// Splits work over the compute threads. Each chunk is independent, so a descheduled worker only
/// delays its own share (no barrier spinning): Dispatch runs chunks on whichever thread is free.
public enum Parallel {
    /// Runs `body(chunk)` for chunk in 0..<chunks, concurrently when `chunks > 1`.
    @inlinable
    public static func forEach(_ chunks: Int, _ body: (Int) -> Void) {
        if chunks <= 1 {
            if chunks == 1 { body(0) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: chunks, execute: body)
    }
}
