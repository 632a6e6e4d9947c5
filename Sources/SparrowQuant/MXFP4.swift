/// MXFP4 (OCP microscaling): blocks of 32 values along a row, each an E2M1 nibble (the low nibble
/// first), with one E8M0 scale byte per block worth 2^(scale − 127). gpt-oss ships its experts so.
public enum MXFP4 {
    /// Values per block.
    public static let blockSize = 32
    /// The 16 E2M1 values by code.
    static let values: [Float] = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6]

    /// Decodes `blockCount` blocks (`16 · blockCount` bytes of nibbles, `blockCount` scales) into
    /// `32 · blockCount` floats: exact, as every value is a 2-bit mantissa times a power of two.
    public static func dequantize(
        blocks: UnsafePointer<UInt8>, scales: UnsafePointer<UInt8>, blockCount: Int,
        into out: UnsafeMutablePointer<Float>
    ) {
        values.withUnsafeBufferPointer { lut in
            for b in 0..<blockCount {
                let scale = Float(sign: .plus, exponent: Int(scales[b]) - 127, significand: 1)
                let src = blocks + b * 16
                let dst = out + b * blockSize
                for j in 0..<16 {
                    let byte = Int(src[j])
                    dst[2 * j] = lut[byte & 0x0F] * scale
                    dst[2 * j + 1] = lut[byte >> 4] * scale
                }
            }
        }
    }
}
