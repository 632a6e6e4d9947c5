import Foundation
import SparrowFormat
import SparrowRuntime
import Testing

/// DeepSeek's latent attention beyond the shared conformance tests: the cache keeps only the
/// latent and the rotary key, batches and an f16 cache change nothing that matters, quantized
/// up-projections are sliced and decoded per row correctly, and unsupported variants are refused.
@Suite struct DeepSeekTests {
    static let archs = ["deepseek_v2", "deepseek_v3"]

    /// Per token and layer the cache holds `kvRank + ropeDim` floats, against `heads × (qk + v)`
    /// for the keys and values it stands for.
    @Test(arguments: archs)
    func latentCacheHoldsOnlyTheLatent(arch: String) throws {
        let model = try Converted.model(Paths.fixtures + "/" + arch)
        let c = model.config
        let mla = try #require(c.latentAttention)
        let session = try Session(model: model, options: .init(contextLength: 100))
        let perToken = (mla.kvRank + mla.ropeDim) * 4
        #expect(session.kvCacheBytes == c.layerCount * 100 * perToken)
        let uncompressed = c.headCount * (c.headDim + mla.valueDim) * 4
        #expect(uncompressed == 288 * 4 && perToken == 80 * 4)  // 3.6× smaller here; 8.9× for V2-Lite's shape
    }

    /// Batches of 1 and 3 give transformers' logits; an f16 cache stays close.
    @Test(arguments: archs)
    func batchesAndHalfPrecisionCache(arch: String) throws {
        let ref = try ConformanceTests.reference(arch)
        let model = try Converted.model(Paths.fixtures + "/" + arch)
        for (batch, kv, bound) in [(1, KVCacheType.f32, 1e-4), (3, .f32, 1e-4), (8, .f16, 1e-2)] {
            let session = try Session(model: model, options: .init(batchSize: batch, kvType: kv))
            let logits = try evaluate(ref.ids, batch: batch, in: session)
            let err = maxAbsDiff(logits, ref.logits.values)
            #expect(err <= Float(bound) * ref.maxAbs, "batch \(batch) \(kv): \(err)")
        }
    }

    /// 8-bit dense matrices, the latent projections included (their rows decoded one by one for
    /// the absorbed query, sliced per head for the values): perplexity on the model's own text
    /// within 2 % of float (measured +0.009 % on V2's fixture, +1.36 % on V3's, whose sigmoid
    /// group routing flips whole groups on near ties: its 4-bit experts cost +1.85 % too).
    @Test(arguments: archs)
    func quantizedLatentProjections(arch: String) throws {
        let dir = Paths.fixtures + "/" + arch
        let tokens = try NPY.readInt(dir + "/samples.npy").values
        let exact = try Perplexity.evaluate(model: try Converted.model(dir), tokens: tokens, window: tokens.count)
        let options = Converter.Options(expertScheme: nil, denseBits: 8, denseGroupSize: 16)
        let q8 = try Perplexity.evaluate(
            model: try Converted.model(dir, options: options, tag: "dense-q8"), tokens: tokens, window: tokens.count)
        #expect(q8.perplexity / exact.perplexity - 1 <= 0.02, "\(q8.perplexity) vs \(exact.perplexity)")
    }

    /// DeepSeek-V3/R1's published form (F8_E4M3 weights with a scale per 128 × 128 block, partial
    /// blocks at the edges) converts to transformers' logits on the dequantized weights; a NaN
    /// code is refused naming the tensor.
    @Test func fp8CheckpointConvertsExactly() throws {
        let dir = Paths.fixtures + "/variants/deepseek_v3_fp8"
        let ref = try ConformanceTests.reference("deepseek_v3")
        let want = try NPY.readFloat32(dir + "/logits.npy").values
        let got = try Session(model: try Converted.model(dir)).evaluate(ref.ids, logits: .all)
        let maxAbs = want.map(abs).max()!
        #expect(maxAbsDiff(got, want) <= 1e-4 * maxAbs, "\(maxAbsDiff(got, want)) of \(maxAbs)")

        let name = "model.layers.2.self_attn.kv_b_proj.weight"
        let error = try conversionError(copying: dir, writing: 0x7F, into: name, at: 3)  // S.1111.111: NaN
        #expect(error?.contains(name) == true && error?.contains("not finite") == true, "\(error ?? "converted")")
    }

    /// A file whose meta describes an impossible configuration (damaged, hostile) is refused
    /// before anything divides by or indexes with it.
    @Test func impossibleConfigurationsAreCaught() throws {
        let good = try Converted.model(Paths.fixtures + "/deepseek_v3").config
        #expect(good.inconsistency == nil)
        let edits: [(inout ModelConfig) -> Void] = [
            { $0.routerGroups = RouterGroups(count: 0, chosen: 0) },
            { $0.routerGroups = RouterGroups(count: 3, chosen: 1) },
            { $0.routerGroups = RouterGroups(count: 4, chosen: 5) },
            { $0.latentAttention!.ropeDim = 15 },
            { $0.latentAttention!.kvRank = 0 },
            { $0.headDim = 40 },
            { $0.slidingLayers = [true] },
            { $0.slidingWindow = 0 },
            { $0.ropeScaling!.originalMaxPositions = 0 },
            { $0.expertsPerToken = 17 }
        ]
        for (i, edit) in edits.enumerated() {
            var c = good
            edit(&c)
            #expect(c.inconsistency != nil, "edit \(i)")
        }
    }

    /// Variants Sparrow does not implement are refused naming the field.
    @Test(arguments: [
        ("deepseek_v3", "scoring_func", #""softmax""#, "scoring_func 'softmax'"),
        ("deepseek_v3", "topk_method", #""greedy""#, "topk_method 'greedy'"),
        ("deepseek_v2", "topk_method", #""noaux_tc""#, "topk_method 'noaux_tc'"),
        ("deepseek_v2", "moe_layer_freq", "2", "moe_layer_freq"),
        ("deepseek_v3", "quantization_config", #"{"quant_method": "gptq"}"#, "quant_method 'gptq'"),
        ("deepseek_v3", "quantization_config", #"{"quant_method": "fp8", "fmt": "e5m2"}"#, "fmt 'e5m2'"),
        ("deepseek_v2", "attention_bias", "true", "attention_bias"),
        ("deepseek_v3", "n_group", "3", "n_group 3 must divide the 16 experts"),
        ("deepseek_v3", "qk_rope_head_dim", "15", "qk_rope_head_dim 15 must be even"),
        // Found by the guided config fuzzer: a per-layer table was sized from this before any check.
        ("deepseek_v3", "num_hidden_layers", "888888888888888888888888888888888888888888888888883", "out of range"),
        ("deepseek_v3", "num_hidden_layers", "70000", "more than Sparrow supports"),
        ("deepseek_v3", "num_hidden_layers", "5", "model.layers.3")
    ])
    func unsupportedVariantsAreRefused(arch: String, key: String, value: String, message: String) throws {
        let error = try conversionError(arch, key: key, value: value)
        #expect(error?.contains(message) == true, "\(error ?? "converted with \(key): \(value)")")
    }
}
