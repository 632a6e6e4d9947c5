import ArgumentParser
import Foundation
import Sparrow
import SparrowIO

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text from a prompt, streaming it to stdout.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: [.short, .long], help: "Prompt text.")
    var prompt: String

    @Option(name: [.short, .customLong("tokens")], help: "Tokens to generate.")
    var n: Int = 64

    @Flag(name: .long, help: "Argmax decoding (the default unless --temp is given).")
    var greedy = false

    @Option(name: .long, help: "Sampling temperature (0: greedy).")
    var temp: Float?

    @Option(name: .customLong("top-k"), help: "Sample among the k most likely tokens (0: all).")
    var topK: Int = 0

    @Option(name: .customLong("top-p"), help: "Nucleus sampling threshold in (0, 1].")
    var topP: Float = 1

    @Option(name: .customLong("repeat-penalty"), help: "Repetition penalty (1: off).")
    var repeatPenalty: Float = 1

    @Option(name: .long, help: "Random seed.")
    var seed: UInt64 = 0

    @Flag(name: .customLong("ignore-eos"), help: "Keep generating after an end-of-sequence token.")
    var ignoreEOS = false

    @Flag(name: .long, help: "Print timing to stderr after the text.")
    var stats = false

    func validate() throws {
        if n < 0 { throw ValidationError("--tokens must be ≥ 0") }
        if greedy && temp != nil && temp != 0 { throw ValidationError("--greedy and --temp are exclusive") }
    }

    func run() throws {
        do {
            let model = try modelOptions.open()
            let session = try Session(model: model, options: modelOptions.session())
            let sampling = SamplingOptions(
                temperature: greedy ? 0 : (temp ?? 0), topK: topK, topP: topP, repetitionPenalty: repeatPenalty,
                seed: seed)
            let ids = model.tokenizer.encode(prompt)
            guard !ids.isEmpty else { throw ValidationError("the prompt is empty") }
            FileHandle.standardOutput.write(Data(prompt.utf8))
            let options = GenerationOptions(maxTokens: n, sampling: sampling, stopAtEOS: !ignoreEOS)
            let s = try session.generate(prompt: ids, options: options) { token in
                if !token.text.isEmpty { FileHandle.standardOutput.write(Data(token.text.utf8)) }
                return true
            }
            FileHandle.standardOutput.write(Data("\n".utf8))
            if stats {
                let line = String(
                    format: "prompt %d tokens %.1f tok/s, generated %d tokens %.1f tok/s, threads %d\n",
                    s.promptTokens, s.promptTokensPerSecond, s.generatedTokens, s.decodeTokensPerSecond, session.threads
                )
                FileHandle.standardError.write(Data(line.utf8))
                if let c = session.cacheStatistics {
                    let cache = String(
                        format:
                            "expert cache: %d slots, hit rate %.1f %%, %@ read, %.2f s stalled; peak RSS %@ of %@\n",
                        c.slots, 100 * Double(c.hits) / Double(max(1, c.hits + c.misses)), formatBytes(c.bytesRead),
                        c.stallSeconds,
                        formatBytes(ProcessMemory.peakRSS), formatBytes(session.budget ?? 0))
                    FileHandle.standardError.write(Data(cache.utf8))
                }
            }
        } catch let e as ValidationError { throw e } catch { throw fail(error) }
    }
}
