import Foundation
import SparrowFormat
import SparrowRuntime
import Testing

/// Token ids identical to the Hugging Face `tokenizers` library.
@Suite struct TokenizerTests {
    static func tokenizer() throws -> Tokenizer {
        try Tokenizer(
            json: Array(try Data(contentsOf: URL(fileURLWithPath: Paths.demo + "/tokenizer.json"))), addBos: false)
    }

    /// Token ids out of range in tokenizer.json are errors before any table is sized from them
    /// (found by Scripts/fuzz.sh tokenizer-json: a negative id trapped).
    @Test func tokenIdsOutOfRange() {
        for id in ["-2", "16777216", "9223372036854775807"] {
            let json = #"{"model": {"type": "BPE", "vocab": {"a": 0, "b": "# + id + #"}, "merges": []}}"#
            #expect(throws: SparrowError.self) { try Tokenizer(json: Array(json.utf8), addBos: false) }
        }
        let added =
            #"{"added_tokens": [{"id": -5, "content": "<x>"}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}"#
        #expect(throws: SparrowError.self) { try Tokenizer(json: Array(added.utf8), addBos: false) }
    }

    @Test func corpusOver100KBMatches() throws {
        let dir = Paths.fixtures + "/tokenizer"
        let text = try String(contentsOfFile: dir + "/corpus.txt", encoding: .utf8)
        #expect(text.utf8.count >= 100_000)
        let want = try NPY.readInt(dir + "/corpus-ids.npy").values
        let got = try Self.tokenizer().encode(text)
        #expect(got.count == want.count)
        if let i = (0..<min(got.count, want.count)).first(where: { got[$0] != want[$0] }) {
            Issue.record("first difference at token \(i): got \(got[i]) want \(want[i])")
        }
    }

    @Test func edgeCasesMatch() throws {
        let url = URL(fileURLWithPath: Paths.fixtures + "/tokenizer/cases.json")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let t = try Self.tokenizer()
        for c in json["cases"] as! [[String: Any]] {
            let text = c["text"] as! String
            #expect(t.encode(text) == c["ids"] as! [Int], "text: \(text.debugDescription)")
        }
    }

    /// The families with pre-tokenizers of their own: gpt-oss's o200k split (case-aware words,
    /// digits in threes, punctuation runs with trailing newlines and slashes) and DeepSeek's
    /// sequence (digits in threes, CJK runs, punctuation-led words), each before ByteLevel — the
    /// whole corpus and the edge cases as `tokenizers` encodes them.
    @Test(arguments: ["gpt_oss", "deepseek_v3"])
    func familyPreTokenizersMatch(arch: String) throws {
        let json = try Data(contentsOf: URL(fileURLWithPath: Paths.fixtures + "/\(arch)/tokenizer.json"))
        let t = try Tokenizer(json: Array(json), addBos: false)
        let dir = Paths.fixtures + "/tokenizer"
        let text = try String(contentsOfFile: dir + "/corpus.txt", encoding: .utf8)
        let want = try NPY.readInt(dir + "/corpus-ids-\(arch).npy").values
        let got = t.encode(text)
        #expect(got.count == want.count)
        if let i = (0..<min(got.count, want.count)).first(where: { got[$0] != want[$0] }) {
            Issue.record("first difference at token \(i): got \(got[i]) want \(want[i])")
        }
        let url = URL(fileURLWithPath: dir + "/cases-\(arch).json")
        let cases = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        for c in cases["cases"] as! [[String: Any]] {
            let text = c["text"] as! String
            #expect(t.encode(text) == c["ids"] as! [Int], "text: \(text.debugDescription)")
        }
    }

    @Test func evalTextMatchesShippedTokens() throws {
        let text = try String(contentsOfFile: Paths.demo + "/eval-text.txt", encoding: .utf8)
        let want = try NPY.readInt(Paths.demo + "/eval-tokens.npy").values
        let got = try Self.tokenizer().encode(text)
        #expect(Array(got.prefix(want.count)) == want)
    }

    /// `bench --prompt-file` tokenizes only a prefix of the text, yet gets the ids the whole
    /// text's tokenization starts with; a text too short is refused.
    @Test func benchPromptFromAPrefixOfTheText() throws {
        let text = try String(contentsOfFile: Paths.demo + "/eval-text.txt", encoding: .utf8)
        let whole = try NPY.readInt(Paths.demo + "/eval-tokens.npy").values
        let model = try ExpertCacheTests.demo()
        for (p, n) in [(64, 32), (1, 1), (700, 3000)] {
            let (prompt, forced) = try Benchmark.promptAndForcedTokens(
                model: model, promptLength: p, tokens: n, text: text)
            #expect(prompt == Array(whole.prefix(p)) && forced == Array(whole[p..<(p + n)]))
        }
        #expect(throws: SparrowError.self) {
            try Benchmark.promptAndForcedTokens(model: model, promptLength: 64, tokens: 32, text: "a short text")
        }
    }

    @Test func decodeRoundTripsAndStreams() throws {
        let t = try Self.tokenizer()
        let text = "Grüße — 日本語 👩‍👩‍👧 <|endoftext|> x"
        let ids = t.encode(text)
        #expect(t.decode(ids) == text)
        var stream = TextStreamDecoder()
        var out = ""
        for id in ids { out += stream.append(t.bytes(of: id)) }
        out += stream.flush()
        #expect(out == text)
    }

    @Test func rejectsNonBPE() {
        #expect(throws: SparrowError.self) {
            try Tokenizer(json: Array(#"{"model":{"type":"Unigram"}}"#.utf8), addBos: false)
        }
        #expect(throws: SparrowError.self) { try Tokenizer(json: Array("not json".utf8), addBos: false) }
    }
}
