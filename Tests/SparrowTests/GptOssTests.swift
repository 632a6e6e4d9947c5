import Foundation
import SparrowFormat
import SparrowRuntime
import Testing

/// gpt-oss beyond the shared conformance and family tests: its MXFP4 checkpoints, sliding-window
/// layers whose KV cache is a ring of the window, and the config fields it refuses.
@Suite struct GptOssTests {
    static let fixture = Paths.fixtures + "/gpt_oss"

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

    /// An MXFP4 scale of 255 encodes NaN: refused, naming the tensor, rather than converted into
    /// infinite weights.
    @Test func nanScaleIsRefused() throws {
        let name = "model.layers.2.mlp.experts.down_proj_scales"
        let error = try conversionError(
            copying: Paths.fixtures + "/variants/gpt_oss_mxfp4", writing: 0xFF, into: name, at: 5)
        #expect(error?.contains(name) == true && error?.contains("NaN") == true, "\(error ?? "converted")")
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
        let logits = try evaluate(ref.ids, batch: batch, in: session)
        #expect(maxAbsDiff(logits, ref.logits.values) <= 1e-4 * ref.maxAbs)
        let perPosition = 2 * c.kvHeadCount * c.headDim * 4
        let sliding = c.slidingLayers!.filter { $0 }.count
        let want = perPosition * (sliding * min(256, 8 + batch - 1) + (c.layerCount - sliding) * 256)
        #expect(session.kvCacheBytes == want)
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
        let error = try conversionError("gpt_oss", key: key, value: value)
        #expect(error?.contains(message) == true, "\(error ?? "converted with \(key): \(value)")")
    }
}
