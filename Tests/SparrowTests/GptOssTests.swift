import Foundation
import SparrowFormat
import SparrowRuntime
import Testing

/// gpt-oss beyond the shared conformance tests: its MXFP4 checkpoints, sliding-window layers whose
/// KV cache is a ring of the window, greedy continuations through that cache, budgeted runs, and
/// the config fields it refuses.
@Suite struct GptOssTests {
    static let fixture = Paths.fixtures + "/gpt_oss"

    static func greedy() throws -> (prompt: [Int], tokens: [Int]) {
        let json =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture + "/reference.json")))
            as! [String: Any]
        let g = json["greedy"] as! [String: Any]
        let ids = json["token_ids"] as! [Int]
        return (Array(ids.prefix(g["prompt_length"] as! Int)), g["tokens"] as! [Int])
    }

    /// The hub's layout (`*_blocks` / `*_scales` uint8, `rope_scaling`, `quantization_config`) is
    /// read natively: MXFP4 decodes exactly, so the model is the bf16 checkpoint's, byte for byte.
    @Test func mxfp4CheckpointConvertsExactly() throws {
        let ref = try ConformanceTests.reference("gpt_oss")
        let bf16 = try Converted.model(Self.fixture)
        let mxfp4 = try Converted.model(Paths.fixtures + "/variants/gpt_oss_mxfp4")
        #expect(mxfp4.config == bf16.config)
        let a = try Session(model: bf16).evaluate(ref.ids, logits: .all)
        let b = try Session(model: mxfp4).evaluate(ref.ids, logits: .all)
        #expect(a == b)
        #expect(maxAbsDiff(b, ref.logits.values) <= 1e-4 * ref.maxAbs)
    }

    /// Sliding layers keep `window + batch − 1` positions: with batches of 1, 3 and 16 over 29
    /// tokens (window 8) the ring wraps several times and the logits stay transformers'.
    @Test(arguments: [1, 3, 16])
    func slidingLayersKeepOnlyTheirWindow(batch: Int) throws {
        let ref = try ConformanceTests.reference("gpt_oss")
        let model = try Converted.model(Self.fixture)
        let c = model.config
        #expect(c.window(layer: 0) == 8 && c.window(layer: 1) == nil)
        let session = try Session(model: model, options: .init(contextLength: 256, batchSize: batch))
        var logits: [Float] = []
        var i = 0
        while i < ref.ids.count {
            let n = min(batch, ref.ids.count - i)
            logits += try session.evaluate(Array(ref.ids[i..<(i + n)]), logits: .all)
            i += n
        }
        #expect(maxAbsDiff(logits, ref.logits.values) <= 1e-4 * ref.maxAbs)
        let perPosition = 2 * c.kvHeadCount * c.headDim * 4
        let sliding = c.slidingLayers!.filter { $0 }.count
        let want = perPosition * (sliding * min(256, 8 + batch - 1) + (c.layerCount - sliding) * 256)
        #expect(session.kvCacheBytes == want)
    }

    /// Greedy decoding through the KV cache gives transformers' `generate` continuation.
    @Test func greedyContinuationMatchesTransformers() throws {
        let (prompt, want) = try Self.greedy()
        let model = try Converted.model(Self.fixture)
        let session = try Session(model: model, options: .init(batchSize: 4))
        var got: [Int] = []
        _ = try session.generate(prompt: prompt, maxTokens: want.count, stopAtEOS: false) {
            got.append($0)
            return true
        }
        #expect(got == want)
    }

    /// Experts streamed through a small cache (level fixed) give the resident run's logits exactly.
    @Test func budgetedRunGivesTheResidentLogits() throws {
        let ref = try ConformanceTests.reference("gpt_oss")
        let options = Converter.Options(expertScheme: .init(levels: [4, 8], groupSize: 32))
        let model = try Converted.model(Self.fixture, options: options, tag: "q48-g32")
        let resident = try Session(model: model, options: .init(expertBits: 8)).evaluate(ref.ids, logits: .all)
        let slot = ExpertCache.slotSize(file: model.file, level: 1)
        let budgeted = try Session(
            model: model, options: .init(expertBits: 8, expertCacheBytes: 6 * slot, tokenPrecision: nil))
        var got: [Float] = []
        for t in ref.ids { got += try budgeted.evaluate([t], logits: .all) }
        #expect(got == resident)
        #expect(budgeted.expertCache!.statistics.misses > 20)
    }

    /// Variants Sparrow does not implement are refused naming the field.
    @Test(arguments: [
        ("quantization_config", #"{"quant_method": "gptq"}"#, "quant_method 'gptq'"),
        (
            "layer_types", #"["sliding_attention", "chunked_attention", "sliding_attention", "full_attention"]"#,
            "layer_types entry 'chunked_attention'"
        ),
        ("layer_types", #"["full_attention"]"#, "'layer_types' must list one string per layer"),
        ("rope_parameters", #"{"rope_type": "llama3", "rope_theta": 1000.0}"#, "RoPE scaling type 'llama3'"),
        ("swiglu_limit", "-1", "swiglu_limit"),
        ("sliding_window", "null", "need 'sliding_window'")
    ])
    func unsupportedVariantsAreRefused(key: String, value: String, message: String) throws {
        let dir = Paths.temporaryDirectory() + "/ckpt"
        try FileManager.default.copyItem(atPath: Self.fixture, toPath: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let url = URL(fileURLWithPath: dir + "/config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        json[key] = try JSONSerialization.jsonObject(with: Data(value.utf8), options: .fragmentsAllowed)
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        do {
            _ = try Converter(input: dir, output: dir + "/out.spw", options: .init(force: true)).run()
            Issue.record("converted with \(key): \(value)")
        } catch {
            #expect("\(error)".contains(message), "\(error)")
        }
    }
}
