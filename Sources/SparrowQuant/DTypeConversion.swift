import CSparrowKernels
import SparrowFormat

/// Converting tensors between storage types at convert time (f32 ↔ f16 ↔ bf16, round to nearest even).
package enum DTypeConversion {
    /// Converts `count` elements from `src` (type `from`) into `dst` (type `to`), in chunks through
    /// an f32 scratch buffer so huge tensors need no f32 copy of their own.
    package static func convert(
        _ src: UnsafeRawPointer, from: DType, to: DType, count: Int, into dst: UnsafeMutableRawPointer
    ) {
        if from == to {
            dst.copyMemory(from: src, byteCount: count * from.size)
            return
        }
        let chunk = 1 << 16
        withUnsafeTemporaryAllocation(of: Float.self, capacity: chunk) { tmp in
            var i = 0
            while i < count {
                let n = min(chunk, count - i)
                spk_to_f32(src + i * from.size, from.kernelType, tmp.baseAddress!, n)
                spk_from_f32(tmp.baseAddress!, dst + i * to.size, to.kernelType, n)
                i += n
            }
        }
    }
}
