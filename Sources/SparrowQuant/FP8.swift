/// FP8 E4M3 (the "fn" variant: no infinities, S.1111.111 is NaN), as DeepSeek-V3/R1 ship their
/// weights, with one f32 `weight_scale_inv` per block of the matrix: `w = fp8 × scale`.
public enum FP8E4M3 {
    /// The 256 codes as f32 (NaN for the two NaN codes).
    public static let values: [Float] = (0..<256).map { code in
        let sign: Float = code & 0x80 != 0 ? -1 : 1
        let exponent = (code >> 3) & 0x0F
        let mantissa = Float(code & 0x07)
        if exponent == 0x0F && code & 0x07 == 0x07 { return .nan }
        if exponent == 0 { return sign * mantissa / 8 * Float(sign: .plus, exponent: -6, significand: 1) }
        return sign * (1 + mantissa / 8) * Float(sign: .plus, exponent: exponent - 7, significand: 1)
    }

    /// Decodes `rows × cols` codes at `codes` (row-major) scaled per `blockRows × blockCols` block
    /// by `scales` (`[⌈rows / blockRows⌉, ⌈cols / blockCols⌉]` f32) into `out`; false if a code is
    /// NaN or a scale is not finite.
    public static func dequantize(
        _ codes: UnsafePointer<UInt8>, rows: Int, cols: Int, scales: UnsafePointer<Float>, blockRows: Int,
        blockCols: Int, into out: UnsafeMutablePointer<Float>
    ) -> Bool {
        let scaleCols = (cols + blockCols - 1) / blockCols
        return values.withUnsafeBufferPointer { lut in
            var ok = true
            for r in 0..<rows {
                let scaleRow = scales + (r / blockRows) * scaleCols
                for c in 0..<cols {
                    let v = lut[Int(codes[r * cols + c])] * scaleRow[c / blockCols]
                    ok = ok && v.isFinite
                    out[r * cols + c] = v
                }
            }
            return ok
        }
    }
}
