import Foundation
import SparrowFormat
import SparrowRuntime
import Testing

/// Sparrow's fp32 logits and routing against Hugging Face transformers on random-weight checkpoints
/// of every supported architecture (fixtures made by Scripts/reference/make_fixtures.py).
@Suite struct ConformanceTests {
    struct Reference {
        let ids: [Int]
        let logits: NPY.Array<Float>
        let topk: NPY.Array<Int>
        let maxAbs: Float
    }

    static func reference(_ arch: String) throws -> Reference {
        let dir = Paths.fixtures + "/" + arch
        let json =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/reference.json")))
            as! [String: Any]
        let logits = try NPY.readFloat32(dir + "/logits.npy")
        return Reference(
            ids: json["token_ids"] as! [Int], logits: logits, topk: try NPY.readInt(dir + "/router_topk_ids.npy"),
            maxAbs: logits.values.map(abs).max()!)
    }

    @Test(arguments: Paths.architectures)
    func prefillLogitsMatchTransformers(arch: String) throws {
        let ref = try Self.reference(arch)
        let model = try Converted.model(Paths.fixtures + "/" + arch)
        let session = try Session(model: model, options: .init(batchSize: 16))  // two batches: 16 + 13
        let logits = try session.evaluate(ref.ids, logits: .all)
        #expect(logits.count == ref.logits.values.count)
        let err = maxAbsDiff(logits, ref.logits.values)
        #expect(err <= 1e-4 * ref.maxAbs, "max abs error \(err) vs bound \(1e-4 * ref.maxAbs)")
    }

    @Test(arguments: Paths.architectures)
    func stepwiseDecodeMatchesTransformers(arch: String) throws {
        let ref = try Self.reference(arch)
        let model = try Converted.model(Paths.fixtures + "/" + arch)
        let session = try Session(model: model, options: .init(threads: 1))
        var logits: [Float] = []
        for t in ref.ids { logits += try session.evaluate([t], logits: .last) }
        let err = maxAbsDiff(logits, ref.logits.values)
        #expect(err <= 1e-4 * ref.maxAbs, "max abs error \(err) vs bound \(1e-4 * ref.maxAbs)")
    }

    @Test(arguments: Paths.architectures)
    func routingMatchesTransformers(arch: String) throws {
        let ref = try Self.reference(arch)
        let model = try Converted.model(Paths.fixtures + "/" + arch)
        let session = try Session(model: model)
        let moeLayers = (0..<model.config.layerCount).filter { model.config.moeLayers[$0] }
        let k = model.config.expertsPerToken
        var got = [Int](repeating: -1, count: moeLayers.count * ref.ids.count * k)
        session.routingObserver = { layer, pos, ids, _ in
            let m = moeLayers.firstIndex(of: layer)!
            for j in 0..<k { got[(m * ref.ids.count + pos) * k + j] = ids[j] }
        }
        _ = try session.evaluate(ref.ids, logits: .last)
        #expect(ref.topk.shape == [moeLayers.count, ref.ids.count, k])
        // The same experts per token; their order is the router's (unspecified for DeepSeek's).
        func sets(_ ids: [Int]) -> [[Int]] { stride(from: 0, to: ids.count, by: k).map { ids[$0..<($0 + k)].sorted() } }
        #expect(sets(got) == sets(ref.topk.values))
    }

    /// Fused expert tensors and sharded checkpoints convert to the same model.
    @Test(arguments: ["qwen2_moe_fused", "qwen2_moe_sharded"])
    func otherCheckpointLayoutsGiveTheSameLogits(variant: String) throws {
        let ref = try Self.reference("qwen2_moe")
        let model = try Converted.model(Paths.fixtures + "/variants/" + variant)
        let logits = try Session(model: model).evaluate(ref.ids, logits: .all)
        #expect(maxAbsDiff(logits, ref.logits.values) <= 1e-4 * ref.maxAbs)
    }
}
