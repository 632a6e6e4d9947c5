// Streams generated text with Sparrow's Swift API: the tokens arrive as an AsyncSequence.
//   swift-generate MODEL.spw PROMPT [TOKENS] [BUDGET_BYTES]
import Foundation
import Sparrow

@main
struct SwiftGenerate {
    static func main() async {
        let args = CommandLine.arguments
        let tokens = args.count > 3 ? Int(args[3]) ?? -1 : 32
        guard args.count >= 3, args.count <= 5, tokens >= 0 else {
            FileHandle.standardError.write(Data("usage: swift-generate MODEL.spw PROMPT [TOKENS ≥ 0] [BUDGET_BYTES]\n".utf8))
            exit(2)
        }
        let budget = args.count > 4 ? Int(args[4]) : nil
        do {
            try await generate(model: args[1], prompt: args[2], tokens: tokens, budget: budget)
        } catch {
            FileHandle.standardError.write(Data("swift-generate: \(error)\n".utf8))
            exit(1)
        }
    }

    static func generate(model path: String, prompt: String, tokens: Int, budget: Int?) async throws(SparrowError) {
        let model = try Model(path: path)
        let session = try Session(model: model, options: SessionOptions(budget: budget))
        FileHandle.standardOutput.write(Data(prompt.utf8))
        for try await token in session.generate(prompt: prompt, options: GenerationOptions(maxTokens: tokens)) {
            FileHandle.standardOutput.write(Data(token.text.utf8))
        }
        FileHandle.standardOutput.write(Data("\n".utf8))
        let s = session.statistics
        FileHandle.standardError.write(Data("position \(s.position), peak RSS \(s.peakRSS / 1_048_576) MiB\n".utf8))
    }
}
