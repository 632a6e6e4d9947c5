import ArgumentParser
import Foundation
import Sparrow

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure time to first token, prefill and decode speed, latency percentiles and peak memory.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .customLong("prompt-len"), help: "Prompt tokens (synthetic, deterministic).")
    var promptLen: Int = 128

    @Option(name: [.short, .customLong("tokens")], help: "Tokens to decode.")
    var n: Int = 64

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        if promptLen < 1 { throw ValidationError("--prompt-len must be at least 1") }
        if n < 1 { throw ValidationError("--tokens must be at least 1") }
    }

    func run() throws {
        do {
            let model = try modelOptions.open()
            let r = try Benchmark.run(model: model, promptLength: promptLen, tokens: n, options: modelOptions.session())
            if json {
                let e = JSONEncoder()
                e.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try e.encode(r), as: UTF8.self))
                return
            }
            print("model        \(modelOptions.model) (\(formatBytes(r.modelBytes["file"] ?? 0)); dense \(formatBytes(r.modelBytes["dense"] ?? 0)), experts \(formatBytes(r.modelBytes["experts"] ?? 0)))")
            print("threads      \(r.threads) (\(r.isa) kernels), experts at \(r.expertBits) bits")
            print(String(format: "prefill      %d tokens  %.1f tok/s  (time to first token %.1f ms)", r.promptTokens, r.prefillTokensPerSecond, r.timeToFirstToken * 1000))
            print(String(format: "decode       %d tokens  %.1f tok/s  (latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms)", r.generatedTokens, r.decodeTokensPerSecond, r.latencyP50, r.latencyP90, r.latencyP99))
            print("peak RSS     \(formatBytes(r.peakRSS))")
        } catch let e as ValidationError { throw e } catch { throw fail(error) }
    }
}
