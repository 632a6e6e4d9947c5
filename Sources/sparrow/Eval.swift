import ArgumentParser
import Foundation
import Sparrow
import SparrowFormat

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Perplexity of a text file over non-overlapping windows, each evaluated from position 0.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Text file to score.")
    var text: String

    @Option(name: .long, help: "Window length in tokens.")
    var ctx: Int = 256

    @Option(name: .customLong("max-windows"), help: "Score at most this many windows (default: all).")
    var maxWindows: Int?

    @Flag(
        name: .long,
        help: "Evaluate token by token (the decode path, where --token-precision acts) instead of in batches.")
    var stepwise = false

    @Flag(name: .long, help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        if ctx < 2 { throw ValidationError("--ctx must be at least 2") }
        if let m = maxWindows, m < 1 { throw ValidationError("--max-windows must be at least 1") }
    }

    func run() throws {
        do {
            guard let data = RegularFile.contents(atPath: text) else {
                throw ValidationError("cannot read \(text)")
            }
            let model = try modelOptions.open()
            let start = Date()
            let result = try Perplexity.evaluate(
                model: model, text: String(decoding: data, as: UTF8.self), window: ctx, maxWindows: maxWindows,
                options: modelOptions.session(), stepwise: stepwise,
                progress: { [bar = ProgressBarBox()] in bar.update($0, $1) })
            let secs = Date().timeIntervalSince(start)
            if json {
                let obj: [String: Any] = [
                    "perplexity": result.perplexity, "mean_nll": result.meanNLL, "tokens_scored": result.scoredTokens,
                    "windows": result.windows, "window_len": ctx, "seconds": secs,
                    "tokens_per_second": Double(result.windows * ctx) / secs
                ]
                let d = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .prettyPrinted])
                print(String(decoding: d, as: UTF8.self))
            } else {
                print(
                    String(
                        format:
                            "perplexity %.4f (mean NLL %.6f nats) over %d tokens in %d windows of %d; %.1f s, %.0f tok/s",
                        result.perplexity, result.meanNLL, result.scoredTokens, result.windows, ctx, secs,
                        Double(result.windows * ctx) / secs))
            }
        } catch let e as ValidationError { throw e } catch { throw fail(error) }
    }
}

/// A reference wrapper so a progress bar can be captured by an escaping closure.
final class ProgressBarBox: @unchecked Sendable {
    var bar = ProgressBar(label: "evaluating")
    func update(_ done: Int, _ total: Int) { bar.update(done, total) }
}
