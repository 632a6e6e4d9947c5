import CSparrowKernels
import SparrowKernels

/// Element type of the KV cache. f32 is exact (the conformance reference); f16 halves the cache,
/// which dominates memory at long contexts (llama.cpp's default).
public enum KVCacheType: String, Sendable, CaseIterable, Codable {
    case f32, f16

    var kernelType: spk_dtype { self == .f32 ? SPK_F32 : SPK_F16 }
    var size: Int { self == .f32 ? 4 : 2 }
}

/// One layer's keys or values: `[contextLength, kvDim]` elements of `type`, zeroed (resident) at
/// creation so a budget counts them.
final class KVBuffer: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let type: KVCacheType
    let rowWidth: Int

    init(rows: Int, width: Int, type: KVCacheType) {
        self.type = type
        rowWidth = width
        let bytes = max(1, rows * width * type.size)
        base = .allocate(byteCount: bytes, alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
    }

    deinit { base.deallocate() }

    /// Address of element `column` of row `row`.
    func at(_ row: Int, _ column: Int = 0) -> UnsafeMutableRawPointer { base + (row * rowWidth + column) * type.size }

    /// Stores `count` rows of f32 starting at row `row`.
    func store(_ rows: UnsafePointer<Float>, at row: Int, count: Int) {
        switch type {
        case .f32: at(row).assumingMemoryBound(to: Float.self).update(from: rows, count: count * rowWidth)
        case .f16: Ops.fromF32(rows, type: SPK_F16, count * rowWidth, into: at(row))
        }
    }
}
