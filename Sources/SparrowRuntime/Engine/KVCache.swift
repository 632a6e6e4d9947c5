import CSparrowKernels
import SparrowKernels

/// Element type of the KV cache. f32 is exact (the conformance reference); f16 halves the cache,
/// which dominates memory at long contexts (llama.cpp's default).
public enum KVCacheType: String, Sendable, CaseIterable, Codable {
    case f32, f16

    var kernelType: spk_dtype { self == .f32 ? SPK_F32 : SPK_F16 }
    var size: Int { self == .f32 ? 4 : 2 }
}

/// One layer's keys or values: `rows × width` elements of `type`, zeroed (resident) at creation so a
/// budget counts them. Position p lives in row `p % rows`: a full-attention layer has a row per
/// position of the context; a sliding-window layer only `window + batch − 1` rows, a ring that
/// still holds every key a batch's tokens can see when they are stored before being attended.
final class KVBuffer: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let type: KVCacheType
    let rowWidth: Int
    let rows: Int

    init(rows: Int, width: Int, type: KVCacheType) {
        self.type = type
        self.rows = max(1, rows)
        rowWidth = width
        let bytes = max(1, rows * width * type.size)
        base = .allocate(byteCount: bytes, alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
    }

    deinit { base.deallocate() }

    /// Bytes this buffer holds.
    var byteCount: Int { rows * rowWidth * type.size }

    /// Address of element `column` of position `position`.
    func at(_ position: Int, _ column: Int = 0) -> UnsafeMutableRawPointer {
        base + ((position % rows) * rowWidth + column) * type.size
    }

    /// Positions `first..<first + count` as at most two runs of consecutive rows, each
    /// `(first position, count)`; the second is empty unless the run wraps around the ring.
    func runs(from first: Int, count: Int) -> ((Int, Int), (Int, Int)) {
        let head = min(count, rows - first % rows)
        return ((first, head), (first + head, count - head))
    }

    /// Stores `count` rows of f32 for positions `position..<position + count`.
    func store(_ src: UnsafePointer<Float>, at position: Int, count: Int) {
        let (head, tail) = runs(from: position, count: count)
        storeRun(src, at: head.0, count: head.1)
        if tail.1 > 0 { storeRun(src + head.1 * rowWidth, at: tail.0, count: tail.1) }
    }

    private func storeRun(_ src: UnsafePointer<Float>, at position: Int, count n: Int) {
        switch type {
        case .f32: at(position).assumingMemoryBound(to: Float.self).update(from: src, count: n * rowWidth)
        case .f16: Ops.fromF32(src, type: SPK_F16, n * rowWidth, into: at(position))
        }
    }

    /// Copies the positions before `end` that both buffers hold (all of them for full attention;
    /// the last ones, which are all a window can see, for rings) from `other`.
    func copy(from other: KVBuffer, upTo end: Int) {
        let count = min(end, rows, other.rows)
        let rowBytes = rowWidth * type.size
        for p in (end - count)..<end { at(p).copyMemory(from: other.at(p), byteCount: rowBytes) }
    }
}
