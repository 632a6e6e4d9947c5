import ArgumentParser
import Foundation
import Sparrow
import SparrowFormat

struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the logits of given token ids as float32 [n_tokens, vocab] to a .npy file.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Comma-separated token ids, e.g. 1,2,3.")
    var tokens: String

    @Option(name: .long, help: "Output .npy file.")
    var out: String

    @Flag(name: .long, help: "Evaluate one token at a time through the KV cache instead of one batch.")
    var stepwise = false

    func run() throws {
        let ids = try parseTokenList(tokens)
        guard !ids.isEmpty else { throw ValidationError("--tokens is empty") }
        do {
            let model = try modelOptions.open()
            let session = try Session(model: model, options: modelOptions.session())
            var logits: [Float] = []
            if stepwise {
                for t in ids { logits += try session.evaluate([t], logits: .last) }
            } else {
                logits = try session.evaluate(ids, logits: .all)
            }
            try NPY.write(logits, shape: [ids.count, model.config.vocabSize], to: out)
            print("wrote \(out): [\(ids.count), \(model.config.vocabSize)] float32")
        } catch { throw fail(error) }
    }
}
