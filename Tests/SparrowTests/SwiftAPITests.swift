import Foundation
import Sparrow
import Testing

/// The public Swift API: the async token stream gives what the closure form gives (and the
/// transformers reference's greedy ids), statistics are a value, state copies between sessions.
@Suite struct SwiftAPITests {
    static func reference() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Paths.demo + "/reference/p0.json"))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    @Test func asyncStreamMatchesClosureAndReference() async throws {
        let ref = try Self.reference()
        let want = ref["greedy_ids"] as! [Int]
        let prompt = ref["prompt_ids"] as! [Int]
        let model = try Converted.model(Paths.demo)
        let options = GenerationOptions(maxTokens: want.count, stopAtEOS: false)

        var streamed: [GeneratedToken] = []
        for try await token in try Session(model: model).generate(prompt: prompt, options: options) {
            streamed.append(token)
        }
        var called: [GeneratedToken] = []
        let stats = try Session(model: model).generate(prompt: prompt, options: options) {
            called.append($0)
            return true
        }
        #expect(streamed.map(\.id) == want)
        #expect(streamed == called)
        #expect(streamed.map(\.text).joined() == model.tokenizer.decode(want))
        #expect(stats.generatedTokens == want.count && stats.promptTokens == prompt.count)

        // A consumer that stops early; a zero-token generation; a bad option is a typed error.
        var few = 0
        for try await _ in try Session(model: model).generate(prompt: prompt, options: options) {
            few += 1
            if few == 3 { break }
        }
        #expect(few == 3)
        var none = 0
        for try await _ in try Session(model: model).generate(prompt: prompt, options: .init(maxTokens: 0)) {
            none += 1
        }
        #expect(none == 0)
        var bad = GenerationOptions()
        bad.sampling.topP = 0
        do {
            for try await _ in try Session(model: model).generate(prompt: "x", options: bad) {}
            Issue.record("top-p 0 was accepted")
        } catch {
            #expect(error.description.contains("top-p"))
        }
    }

    @Test func statisticsAndStateCopy() throws {
        let model = try Converted.model(Paths.demo)
        let tokens = try Paths.demoTokens(12)
        let a = try Session(model: model, options: .init(contextLength: 64))
        _ = try a.evaluate(Array(tokens.prefix(8)))
        let s = a.statistics
        #expect(s.position == 8 && s.contextLength == 64 && s.budget == nil && s.cache == nil && s.peakRSS > 0)
        #expect(s.kvType == .f32)

        let b = try Session(model: model, options: .init(contextLength: 32))
        try b.copyState(from: a)
        #expect(b.position == 8)
        let rest = Array(tokens.suffix(4))
        #expect(try b.evaluate(rest, logits: .all) == (try a.evaluate(rest, logits: .all)))

        let small = try Session(model: model, options: .init(contextLength: 4))
        #expect(throws: SparrowError.self) { try small.copyState(from: a) }
        let other = try Converted.model(Paths.demo, options: .unquantized(force: true), tag: "float")
        let foreign = try Session(model: try Model(path: other.file.path))
        #expect(throws: SparrowError.self) { try foreign.copyState(from: a) }
        let half = try Session(model: model, options: .init(kvType: .f16))
        #expect(throws: SparrowError.self) { try half.copyState(from: a) }
    }
}
