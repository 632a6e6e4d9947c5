/// How a matrix is quantized into nested precision levels (see docs/QUANT.md).
///
/// Each row is cut into groups of `groupSize` weights along the input dimension; each group gets an
/// 8-bit grid (min and step, f16) and each weight an 8-bit code stored as bit planes, most
/// significant first. Level k keeps the top `levels[k]` bits of the code: its planes are a byte
/// prefix of level k+1's, so a lower precision is a shorter read of the same record.
public struct MatryoshkaScheme: Codable, Sendable, Equatable {
    /// Bits of each level, ascending (e.g. [2, 4, 8]).
    public var levels: [Int]
    /// Weights per group along the input dimension (a multiple of 16).
    public var groupSize: Int
    /// What the codes stand for: nil, the uniform 8-bit grid above; `.e2m1`, MXFP4 kept as it is.
    public var codebook: Codebook?

    /// Nested levels of `levels` bits (ascending), scales per `groupSize` weights of a row.
    public init(levels: [Int], groupSize: Int, codebook: Codebook? = nil) {
        self.levels = levels
        self.groupSize = groupSize
        self.codebook = codebook
    }

    /// MXFP4 kept as it is (docs/QUANT.md, "The MXFP4 level"): a 4-bit level of E2M1 codes, exact
    /// for weights that are MXFP4 blocks (gpt-oss's experts), with its 2-bit prefix below it; groups
    /// of 64 (two blocks: the SIMD kernels) or 32 (one block, for sizes 64 does not divide: the
    /// portable kernels).
    public static func mxfp4(groupSize: Int = 64) -> MatryoshkaScheme {
        MatryoshkaScheme(levels: [2, 4], groupSize: groupSize, codebook: .e2m1)
    }

    /// What the stored codes of a scheme stand for.
    public enum Codebook: String, Codable, Sendable {
        /// E2M1, MXFP4's element format: per 32 weights a power-of-two scale and 4-bit codes ±{0,
        /// 0.5, 1, 1.5, 2, 3, 4, 6}; the 2-bit prefix is the sign and the top exponent bit. Stored
        /// per group (64 or 32) as an 8-bit grid (m = −128 d, d a power of two) and one shift byte.
        case e2m1
    }

    /// Bits each level's plane adds (e.g. [2, 2, 4] for levels [2, 4, 8]).
    public var planeWidths: [Int] {
        levels.enumerated().map { $0.element - ($0.offset == 0 ? 0 : levels[$0.offset - 1]) }
    }

    /// Checks the level list and group size on their own.
    public func validate() throws(QuantError) {
        guard !levels.isEmpty, levels.count <= 4 else { throw .unsupportedLevels(levels, "give 1 to 4 levels") }
        guard zip(levels, levels.dropFirst()).allSatisfy({ $0 < $1 }), levels.last! <= 8 else {
            throw .unsupportedLevels(levels, "levels must be ascending and at most 8 bits")
        }
        guard planeWidths.allSatisfy({ [2, 4, 8].contains($0) }) else {
            throw .unsupportedLevels(
                levels, "each level must add 2, 4 or 8 bits to the previous one (e.g. 2,4,8 or 4,8 or 2,4,6,8)")
        }
        guard groupSize >= 16, groupSize % 16 == 0, groupSize <= 4096 else {
            throw .badGroupSize(groupSize, "must be a multiple of 16 between 16 and 4096")
        }
        if codebook == .e2m1 {
            guard levels == [2, 4] || levels == [4] else {
                throw .unsupportedLevels(levels, "E2M1 (mxfp4) codes have the levels 2,4 or 4")
            }
            guard groupSize == 64 || groupSize == 32 else {
                throw .badGroupSize(groupSize, "must be 64 (or 32, slower) for E2M1 (mxfp4) codes")
            }
        }
    }

    /// Checks that a matrix with `cols` inputs can be quantized with this scheme.
    public func validate(cols: Int, name: String) throws(QuantError) {
        try validate()
        guard cols % groupSize == 0 else { throw .groupDoesNotDivide(groupSize, cols: cols, tensor: name) }
    }

    /// Weights per packing block (64 when the group allows it, else the group).
    public var blockSize: Int { groupSize % 64 == 0 ? 64 : groupSize }
}

/// Why a quantization request cannot be honoured.
public enum QuantError: Error, CustomStringConvertible, Equatable {
    case unsupportedLevels([Int], String)
    case badGroupSize(Int, String)
    case groupDoesNotDivide(Int, cols: Int, tensor: String)

    public var description: String {
        switch self {
        case .unsupportedLevels(let l, let why):
            return "unsupported level list \(l.map(String.init).joined(separator: ",")): \(why)"
        case .badGroupSize(let g, let why): return "group size \(g) \(why)"
        case .groupDoesNotDivide(let g, let cols, let t):
            // A smaller size that fits: a power-of-two fraction of it first, else any multiple of 16.
            let halves = sequence(first: g / 2) { $0 / 2 }.prefix { $0 >= 16 && $0 % 16 == 0 }
            let fit =
                halves.first { cols % $0 == 0 } ?? stride(from: g - 16, through: 16, by: -16).first { cols % $0 == 0 }
            let hint = fit.map { "; group size \($0) divides it" } ?? "; no multiple of 16 does"
            return "group size \(g) does not divide the input dimension \(cols) of \(t)\(hint)"
        }
    }
}
