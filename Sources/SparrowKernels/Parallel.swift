import CSparrowKernels
import Foundation

/// Splits work over the compute threads: a fixed pool (one thread per core, the caller included)
/// whose tasks are claimed one by one from an atomic counter, so a descheduled worker delays only
/// the task it holds — no barrier waits for every thread (see `sparrow_pool.h`).
public enum Parallel {
    /// The process-wide pool. A loop started while another runs (two sessions on two threads) runs
    /// serially on its caller rather than waiting.
    nonisolated(unsafe) static let pool: OpaquePointer? = spk_pool_create(
        Int32(max(1, ProcessInfo.processInfo.activeProcessorCount)))

    /// Runs `body(task)` for task in 0..<tasks, concurrently when `tasks > 1`. No allocation.
    @inlinable
    public static func forEach(_ tasks: Int, _ body: (Int) -> Void) {
        if tasks <= 1 {
            if tasks == 1 { body(0) }
            return
        }
        run(tasks, body)
    }

    @usableFromInline
    static func run(_ tasks: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { escaping in
            var closure = escaping
            withUnsafeMutablePointer(to: &closure) { ctx in
                spk_pool_run(
                    pool, tasks,
                    { ctx, i in
                        ctx!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(i)
                    }, ctx)
            }
        }
    }
}
