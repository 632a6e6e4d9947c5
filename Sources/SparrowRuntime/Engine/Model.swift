import Foundation
import SparrowFormat

/// A converted model, opened from a `.spw` file. Immutable after open: one model may be shared by
/// many sessions on many threads.
public final class Model: @unchecked Sendable {
    public let file: SPWFile
    public let meta: ModelMeta
    public var config: ModelConfig { meta.config }
    public let tokenizer: Tokenizer
    let weights: ModelWeights
    let experts: ExpertStore
    /// Bits of each stored expert level, lowest first (e.g. [2, 4, 8], or [16] for bf16 experts).
    public var expertBits: [Int] { file.directory.expertLevels.map(\.bits) }
    /// RoPE inverse frequencies `[headDim / 2]`.
    let invFreq: [Float]

    /// Opens and validates `path`. Dense tensors are checked against their checksums unless
    /// `verifyDense` is false; expert records are checked when first used.
    public init(path: String, verifyDense: Bool = true) throws(SparrowError) {
        do { file = try SPWFile(path: path) } catch { throw .format(error) }
        meta = try ModelMeta.decode(file.meta, path: path)
        guard meta.format == "sparrow" else { throw .format(.corrupt(path: path, what: "meta format '\(meta.format)'")) }
        let c = meta.config
        guard c.moeLayers.count == c.layerCount, c.headCount % max(c.kvHeadCount, 1) == 0, c.headDim % 2 == 0 else {
            throw .format(.corrupt(path: path, what: "inconsistent model config in meta"))
        }
        if verifyDense { do { try file.verifyDense() } catch { throw .format(error) } }
        tokenizer = try Tokenizer(json: file.tokenizer, addBos: meta.addBosToken, bosToken: nil)
        weights = try ModelWeights(file: file, config: c)
        experts = try MappedExpertStore(file: file, config: c)
        let half = c.headDim / 2
        invFreq = (0..<half).map { i in
            1 / powf(Float(c.ropeTheta), Float(2 * i) / Float(c.headDim))
        }
    }

    /// Makes the dense section resident (one read per page), so a budget can count it as fixed.
    func touchDense() {
        guard let dense = file.sections.first(where: { $0.kind == .dense }) else { return }
        let bytes = file.file.bytes
        var sum: UInt8 = 0
        var at = Int(dense.offset)
        let end = Int(dense.offset + dense.length)
        while at < end {
            sum &+= bytes[at]
            at += 4096
        }
        withExtendedLifetime(sum) {}
    }
}
