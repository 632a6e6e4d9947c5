import Foundation
import SparrowFormat
import SparrowRuntime
import Testing

/// What every architecture added with its own attention or routing (gpt-oss, DeepSeek-V2/V3)
/// must also do: continue greedily as transformers' `generate` does through its KV cache, and give
/// the resident logits exactly when its experts stream through a small cache.
@Suite struct FamilyTests {
    static let families = ["gpt_oss", "deepseek_v2", "deepseek_v3"]

    static func greedy(_ arch: String) throws -> (prompt: [Int], tokens: [Int]) {
        let url = URL(fileURLWithPath: Paths.fixtures + "/\(arch)/reference.json")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let g = json["greedy"] as! [String: Any]
        let ids = json["token_ids"] as! [Int]
        return (Array(ids.prefix(g["prompt_length"] as! Int)), g["tokens"] as! [Int])
    }

    /// Greedy decoding (prompt in batches of 4, then token by token) gives transformers' tokens.
    @Test(arguments: families)
    func greedyContinuationMatchesTransformers(arch: String) throws {
        let (prompt, want) = try Self.greedy(arch)
        let model = try Converted.model(Paths.fixtures + "/" + arch)
        let session = try Session(model: model, options: .init(batchSize: 4))
        var got: [Int] = []
        _ = try session.generate(prompt: prompt, maxTokens: want.count, stopAtEOS: false) {
            got.append($0)
            return true
        }
        #expect(got == want)
    }

    /// Experts streamed through a cache of 6 slots (level fixed) give the resident run's logits
    /// exactly, token by token.
    @Test(arguments: families)
    func budgetedRunGivesTheResidentLogits(arch: String) throws {
        let ref = try ConformanceTests.reference(arch)
        let options = Converter.Options(expertScheme: .init(levels: [4, 8], groupSize: 32))
        let model = try Converted.model(Paths.fixtures + "/" + arch, options: options, tag: "q48-g32")
        let resident = try Session(model: model, options: .init(expertBits: 8)).evaluate(ref.ids, logits: .all)
        let slot = ExpertCache.slotSize(file: model.file, level: 1)
        let budgeted = try Session(
            model: model, options: .init(expertBits: 8, expertCacheBytes: 6 * slot, tokenPrecision: nil))
        var got: [Float] = []
        for t in ref.ids { got += try budgeted.evaluate([t], logits: .all) }
        #expect(got == resident)
        #expect(budgeted.expertCache!.statistics.misses > 20)
    }

    /// A prompt longer than a batch under a budget runs layer by layer (`Session+Prompt`): the
    /// resident batch-by-batch run's logits exactly (every row, and the last row alone), with each
    /// MoE layer's experts read at most once when the cache holds a layer's (batch by batch, a
    /// prompt of 8 batches would read them up to 8 times).
    @Test(arguments: families)
    func budgetedPromptRunsLayerByLayer(arch: String) throws {
        let ref = try ConformanceTests.reference(arch)
        let options = Converter.Options(expertScheme: .init(levels: [4, 8], groupSize: 32))
        let model = try Converted.model(Paths.fixtures + "/" + arch, options: options, tag: "q48-g32")
        let c = model.config
        let resident = try Session(model: model, options: .init(batchSize: 4, expertBits: 8))
        let want = try resident.evaluate(ref.ids, logits: .all)
        let slots = c.expertCount * ExpertCache.slotSize(file: model.file, level: 1)
        let budgeted = try Session(
            model: model,
            options: .init(
                batchSize: 4, expertBits: 8, expertCacheBytes: slots, tokenPrecision: nil, prefetchDepth: 0))
        #expect(ref.ids.count > 4 * 4)
        #expect(try budgeted.evaluate(ref.ids, logits: .all) == want)
        #expect(budgeted.expertCache!.statistics.misses <= c.moeLayerCount * c.expertCount)
        budgeted.reset()
        #expect(try budgeted.evaluate(ref.ids) == Array(want.suffix(c.vocabSize)))
    }
}
