import Foundation
import SparrowFormat
import SparrowQuant

/// Everything a conversion will write, worked out and checked before the output is touched.
struct ConversionPlan {
    let config: ModelConfig
    let resolver: TensorResolver
    /// The dense tensors in file order, and the quantization of each (nil: float).
    let dense: [DenseLayout.Item]
    let denseSchemes: [MatryoshkaScheme?]
    let weightType: DType
    /// The experts' nested quantization (nil: one float level), the record's levels and size,
    /// and each level's byte range in the record.
    let scheme: MatryoshkaScheme?
    let levels: [ExpertLevelLayout]
    let recordSize: Int
    let levelRanges: [Range<Int>]
    let moeLayers: [Int]
    /// The tokenizer.json embedded in the file.
    let tokenizer: [UInt8]
    /// Room for the largest dense tensor's conversion or one expert record.
    let scratchBytes: Int
}

extension Converter {
    /// Reads the checkpoint's config, finds its architecture and tensors, and checks the options
    /// against them; throws before anything is written.
    func makePlan() throws(SparrowError) -> ConversionPlan {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isDir), isDir.boolValue else {
            throw .invalidArgument("\(input): not a directory (expected a Hugging Face checkpoint folder)")
        }
        let hf = try HFConfig(path: input + "/config.json")
        let config = try hf.modelConfig()
        let arch = config.architecture
        let checkpoint: SafeTensorsCheckpoint
        do { checkpoint = try SafeTensorsCheckpoint(directory: input) } catch { throw .format(error) }
        try checkOutputPath(inputs: checkpoint.paths + [hf.path])
        let tokenizerPath = input + "/tokenizer.json"
        guard let tokenizer = RegularFile.contents(atPath: tokenizerPath) else {
            throw .invalidArgument("\(tokenizerPath): missing (the converter embeds the tokenizer in the model file)")
        }
        _ = try Tokenizer(json: Array(tokenizer), addBos: false)  // refuse a tokenizer we cannot run

        var resolver = TensorResolver(checkpoint: checkpoint, spec: arch.spec, directory: input)
        resolver.fp8 = try hf.fp8Blocks()
        let dense = DenseLayout.items(config)
        // Every tensor found and its shape checked before anything is sized from the config: the
        // sizes a conversion allocates are then those of tensors the checkpoint really holds.
        for item in dense { _ = try resolver.find(item.name, shape: item.shape) }
        var shipsMXFP4 = false
        for l in 0..<config.layerCount where config.moeLayers[l] {
            if case .mxfp4 = try resolver.expertSource(layer: l, config: config) { shipsMXFP4 = true }
        }
        let embedding = try resolver.find(.embedding, shape: [config.vocabSize, config.hiddenSize])
        let weightType = options.weightType ?? embedding.1.dtype!
        guard weightType.isFloat else { throw .invalidArgument("weight type must be f32, f16 or bf16") }
        let scheme = expertScheme(config: config, shipsMXFP4: shipsMXFP4)
        try checkQuantization(config: config, scheme: scheme)
        let denseSchemes = try dense.map { (item) throws(SparrowError) in try denseScheme(item, expertScheme: scheme) }
        let levels = DenseLayout.expertLevels(config, type: weightType, scheme: scheme)
        let ends = levels.map { $0.components.last.map { $0.offset + $0.length } ?? 0 }
        let recordSize = ends.last ?? 0
        let largestDense = dense.map { $0.shape.reduce(1, *) * max(4, weightType.size) }.max() ?? 0
        return ConversionPlan(
            config: config, resolver: resolver, dense: dense, denseSchemes: denseSchemes, weightType: weightType,
            scheme: scheme, levels: levels, recordSize: recordSize,
            levelRanges: ends.indices.map { k in (k == 0 ? 0 : ends[k - 1])..<ends[k] },
            moeLayers: (0..<config.layerCount).filter { config.moeLayers[$0] }, tokenizer: Array(tokenizer),
            scratchBytes: max(largestDense, recordSize, 1))
    }

    /// The experts' scheme: the options', or, where the checkpoint ships its experts in MXFP4 and the
    /// options keep it (the default), the MXFP4 level: exact for them, and measured better than
    /// the uniform levels at 4 bits and under a budget (docs/QUANT.md). Groups of the options' size
    /// where it is 32 or 64 and the shapes allow, else 64 where they allow, else 32 (MXFP4 rows are
    /// whole blocks of 32).
    private func expertScheme(config: ModelConfig, shipsMXFP4: Bool) -> MatryoshkaScheme? {
        guard options.keepMXFP4, shipsMXFP4, let asked = options.expertScheme else { return options.expertScheme }
        let fits = { (g: Int) in config.hiddenSize % g == 0 && config.expertIntermediateSize % g == 0 }
        return .mxfp4(groupSize: [asked.groupSize, 64].first { [32, 64].contains($0) && fits($0) } ?? 32)
    }

    /// The expert scheme fits the model's shapes; the dense bits and zstd saving are in range.
    private func checkQuantization(config: ModelConfig, scheme: MatryoshkaScheme?) throws(SparrowError) {
        do {
            if let scheme {
                try scheme.validate(cols: config.hiddenSize, name: "the expert gate/up projections (hidden size)")
                try scheme.validate(
                    cols: config.expertIntermediateSize, name: "the expert down projection (expert size)")
            }
        } catch { throw .invalidArgument(error.description) }
        if let b = options.denseBits, b != 8 && b != 4 { throw .invalidArgument("dense bits must be 8 or 4") }
        if let z = options.zstdMinSaving, !(z >= 0 && z < 1) {
            throw .invalidArgument("zstd minimum saving must be a fraction in [0, 1), got \(z)")
        }
    }

    /// The quantization of a dense tensor: nil (float) unless dense bits are asked for and the
    /// tensor is a quantizable matrix; the embedding and output head keep 8 bits.
    private func denseScheme(_ item: DenseLayout.Item, expertScheme: MatryoshkaScheme?) throws(SparrowError)
        -> MatryoshkaScheme?
    {
        guard let bits = options.denseBits, item.isQuantizable else { return nil }
        let s = MatryoshkaScheme(
            levels: [item.isVocabulary ? 8 : bits], groupSize: options.denseGroupSize ?? expertScheme?.groupSize ?? 64)
        do { try s.validate(cols: item.shape[1], name: item.name.description) } catch {
            throw .invalidArgument(error.description)
        }
        return s
    }
}
