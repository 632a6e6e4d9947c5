import CSparrowKernels

/// A row-major weight matrix `[rows, cols]` somewhere in memory (mapped file or cache slot).
/// Does not own its bytes.
public struct WeightMatrix: @unchecked Sendable {
    public let base: UnsafeRawPointer
    public let type: spk_dtype
    public let rows: Int
    public let cols: Int

    public init(base: UnsafeRawPointer, type: spk_dtype, rows: Int, cols: Int) {
        self.base = base
        self.type = type
        self.rows = rows
        self.cols = cols
    }

    /// Bytes occupied by the matrix.
    public var byteCount: Int { rows * cols * spk_dtype_size(type) }

    /// Copies row `r` into `out` as f32 (embedding lookup).
    @inlinable
    public func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        spk_to_f32(base + r * cols * spk_dtype_size(type), type, out, cols)
    }
}
