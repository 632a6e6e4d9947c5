import ArgumentParser
import Foundation
import Sparrow

@main
struct SparrowCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sparrow",
        abstract: "Run sparse Mixture-of-Experts language models in less memory than the model.",
        version: sparrowVersion,
        subcommands: [Convert.self, Inspect.self, Run.self, Logits.self, Eval.self, Bench.self])
}

/// Turns a runtime error into a clean message and exit status (no stack trace).
func fail(_ error: Error) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    return ExitCode(1)
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
struct ProgressBar {
    let label: String
    let enabled = isatty(2) != 0
    private var lastDrawn = -1

    init(label: String) { self.label = label }

    mutating func update(_ done: Int, _ total: Int) {
        guard enabled, total > 0 else { return }
        let pct = done * 100 / total
        if pct == lastDrawn { return }
        lastDrawn = pct
        let width = 30
        let filled = done * width / total
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(pct)% (\(done)/\(total))".utf8))
        if done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// Options every command that loads a model shares.
struct ModelOptions: ParsableArguments {
    @Option(name: [.short, .long], help: "Model file (.spw).")
    var model: String

    @Option(name: .long, help: "Compute threads (default: one per core).")
    var threads: Int?

    @Option(name: .customLong("expert-bits"), help: "Run every expert at this stored level, e.g. 2, 4 or 8 (default: the highest).")
    var expertBits: Int?

    func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func open() throws -> Model { try Model(path: model) }

    /// Session options from the shared flags.
    func session(contextLength: Int? = nil, batchSize: Int = 64) -> SessionOptions {
        SessionOptions(contextLength: contextLength, threads: threads, batchSize: batchSize, expertBits: expertBits)
    }
}

/// Parses "1,2,3" into token ids.
func parseTokenList(_ s: String) throws -> [Int] {
    let parts = s.split(separator: ",", omittingEmptySubsequences: false)
    var out: [Int] = []
    for p in parts {
        guard let v = Int(p.trimmingCharacters(in: .whitespaces)) else {
            throw ValidationError("'\(p)' is not a token id (expected a comma-separated list of integers)")
        }
        out.append(v)
    }
    return out
}
