/// MXFP4 kept as it is (docs/QUANT.md, "The MXFP4 level"): every 32 weights of a row an OCP
/// microscaling block, a power-of-two scale and E2M1 codes; per group of 64 (two blocks, A and B)
/// or 32 (one) an 8-bit grid d = 2^(e₀ − 1), m = −128 d and a shift byte k_A | k_B << 2, each
/// block's scale being 2^(e₀ + k). Weights that are MXFP4 blocks (gpt-oss's experts, dequantized
/// exactly) come back exactly; any other weights are rounded to E2M1 as MXFP4 quantizers round them.
enum E2M1Quantizer {
    /// E2M1 magnitudes by code (the sign is bit 3).
    static let magnitudes: [Float] = [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    /// The grid's exponent range: d = 2^(e₀ − 1) and m = −2^(e₀ + 6) stay f16 (subnormals included).
    static let exponents = -23...9

    /// Quantizes rows `range` of `w` in groups of `group` (64 or 32, dividing `cols`): scales,
    /// shift bytes, and codes shifted into the top nibble of `codes` (so the planes take them as
    /// 8-bit codes' top bits).
    static func quantizeRows(
        _ w: UnsafePointer<Float>, rows range: Range<Int>, cols: Int, group: Int,
        scales: UnsafeMutablePointer<UInt16>, shifts: UnsafeMutablePointer<UInt8>, codes: UnsafeMutablePointer<UInt8>
    ) {
        let groups = cols / group
        for r in range {
            for g in 0..<groups {
                let block = w + r * cols + g * group
                let eA = blockExponent(block)
                let eB = group == 64 ? blockExponent(block + 32) : nil
                let top = max(eA ?? Int.min, eB ?? Int.min)
                let e0 = top == Int.min ? -14 : min(max(top - 3, exponents.lowerBound), exponents.upperBound)
                let kA = min(max((eA ?? e0) - e0, 0), 3)
                let kB = min(max((eB ?? e0) - e0, 0), 3)
                let d = Float16(sign: .plus, exponent: e0 - 1, significand: 1)
                scales[(r * groups + g) * 2] = (-128 * d).bitPattern
                scales[(r * groups + g) * 2 + 1] = d.bitPattern
                shifts[r * groups + g] = UInt8(kA | kB << 2)
                for i in 0..<group {
                    let scale = Float(sign: .plus, exponent: e0 + (i < 32 ? kA : kB), significand: 1)
                    codes[r * cols + g * group + i] = code(block[i] / scale) << 4
                }
            }
        }
    }

    /// The MXFP4 exponent of 32 weights (their largest magnitude's, less E2M1's 2): every weight is
    /// then at most 6 · 2^e, and an MXFP4 block's own scale comes back. nil when all are zero (or
    /// not finite).
    static func blockExponent(_ w: UnsafePointer<Float>) -> Int? {
        var largest: Float = 0
        for i in 0..<32 where w[i].isFinite { largest = max(largest, abs(w[i])) }
        return largest > 0 ? Int(largest.exponent) - 2 : nil
    }

    /// The E2M1 code nearest to `v` (ties to the even code, beyond ±6 saturated, NaN to 0).
    static func code(_ v: Float) -> UInt8 {
        guard !v.isNaN else { return 0 }
        guard v.isFinite else { return v < 0 ? 15 : 7 }
        let a = abs(v)
        var best = 0
        for c in 1..<8 {
            let e = abs(magnitudes[c] - a)
            let b = abs(magnitudes[best] - a)
            if e < b || (e == b && c % 2 == 0) { best = c }
        }
        return UInt8(best) | (v < 0 && best != 0 ? 8 : 0)
    }
}
