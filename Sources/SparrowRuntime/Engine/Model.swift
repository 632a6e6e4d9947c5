import CSparrowKernels
import Foundation
import SparrowFormat
import SparrowKernels
import SparrowSync

/// A converted model, opened from a `.spw` file. Immutable after open: one model may be shared by
/// many sessions on many threads.
public final class Model: @unchecked Sendable {
    package let file: SPWFile
    /// What the file records: configuration, provenance, quantization.
    public let meta: ModelMeta
    /// The hyper-parameters of the forward pass.
    public var config: ModelConfig { meta.config }
    /// The tokenizer embedded in the file.
    public let tokenizer: Tokenizer
    let weights: ModelWeights
    let experts: ExpertStore
    /// Bits of each stored expert level, lowest first (e.g. [2, 4, 8], or [16] for bf16 experts).
    public var expertBits: [Int] { file.directory.expertLevels.map(\.bits) }
    /// RoPE inverse frequencies `[headDim / 2]`.
    let invFreq: [Float]
    /// What scaled RoPE multiplies the rotated part of q·k by (YaRN: the attention factor squared,
    /// as it scales both q's and k's rotation), 1 otherwise.
    let attentionScale: Float
    /// The CRC-32C of every embedding row (`EmbeddingRows`), derived from the checked table by the
    /// first budgeted session and shared by the later ones.
    let embeddingRowChecksums = Locked<[UInt32]?>(nil)

    /// Opens and validates `path`. Dense tensors are checked against their checksums unless
    /// `verifyDense` is false; expert records are checked when first used.
    public init(path: String, verifyDense: Bool = true) throws(SparrowError) {
        if let problem = Ops.isaEnvironmentError { throw .invalidArgument(problem) }
        do { file = try SPWFile(path: path) } catch { throw .format(error) }
        meta = try ModelMeta.decode(file.meta, path: path)
        guard meta.format == "sparrow" else {
            throw .format(.corrupt(path: path, what: "meta format '\(meta.format)'"))
        }
        let c = meta.config
        if let problem = c.inconsistency {
            throw .format(.corrupt(path: path, what: "inconsistent model config in meta: \(problem)"))
        }
        if verifyDense { do { try file.verifyDense() } catch { throw .format(error) } }
        tokenizer = try Tokenizer(json: file.tokenizer, addBos: meta.addBosToken, bosToken: nil)
        weights = try ModelWeights(file: file, config: c)
        experts = try MappedExpertStore(file: file, config: c)
        let ropeDim = c.latentAttention?.ropeDim ?? c.headDim
        if let yarn = c.ropeScaling {
            invFreq = yarn.inverseFrequencies(theta: c.ropeTheta, headDim: ropeDim)
            let f = Float(yarn.attentionFactor)
            attentionScale = f * f
        } else {
            invFreq = (0..<(ropeDim / 2)).map { i in 1 / powf(Float(c.ropeTheta), Float(2 * i) / Float(ropeDim)) }
            attentionScale = 1
        }
    }

    /// Makes the dense section resident (every byte read once), so a budget can count it as fixed,
    /// except the byte ranges in `skipping`, which are dropped from this process's memory.
    func touchDense(skipping: [Range<Int>] = []) {
        guard let dense = file.sections.first(where: { $0.kind == .dense }) else { return }
        for r in skipping { file.file.advise(offset: r.lowerBound, length: r.count, MADV_DONTNEED) }
        var pieces = [Int(dense.offset)..<Int(dense.offset + dense.length)]
        for r in skipping.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            pieces = pieces.flatMap { p -> [Range<Int>] in
                guard p.overlaps(r) else { return [p] }
                let a = (r.lowerBound + 4095) / 4096 * 4096, b = r.upperBound / 4096 * 4096  // whole pages of r
                return [
                    p.lowerBound..<max(p.lowerBound, min(p.upperBound, a)),
                    min(p.upperBound, max(p.lowerBound, b))..<p.upperBound
                ]
                .filter { !$0.isEmpty }
            }
        }
        let base = file.file.bytes.baseAddress!
        for p in pieces {
            let start = p.lowerBound / 8 * 8
            Ops.touch(base + start, bytes: (p.upperBound - start) / 8 * 8)
        }
    }

    /// Throws once the file shrank under its mapping (truncated or rewritten while open): the
    /// weights read since are zeros, so nothing this model computes can be trusted any more.
    package func checkFile() throws(SparrowError) {
        do throws(FormatError) { try file.file.checkIntact() } catch { throw .format(error) }
    }
}
