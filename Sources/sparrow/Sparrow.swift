import ArgumentParser
import Foundation
import Sparrow

@main
struct SparrowCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sparrow",
        abstract: "Run sparse Mixture-of-Experts language models in less memory than the model.",
        version: sparrowVersion,
        subcommands: [
            Convert.self, Inspect.self, Run.self, Logits.self, Eval.self, Bench.self, IOBench.self, Profile.self
        ])
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

    @Option(
        name: .customLong("expert-bits"),
        help:
            "Run every expert at this stored level, e.g. 2, 4 or 8 (default: the highest; with --budget, 4 when the cache cannot hold every expert at the highest)."
    )
    var expertBits: Int?

    @Option(
        name: .long,
        help:
            "Memory budget for the whole process, e.g. 512MiB, 1.5GiB, or 40% of the model file; experts then stream from storage into a cache that fills what the rest leaves."
    )
    var budget: String?

    @Option(
        name: .customLong("cache-policy"),
        help:
            "Expert cache eviction with --budget: \(CachePolicyKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var cachePolicy: String = "score"

    @Option(name: .long, help: "How experts are read with --budget: auto (io_uring when available), uring or pread.")
    var io: String = "auto"

    @Option(name: .customLong("kv-type"), help: "KV cache element type: f32 (exact) or f16 (half the memory).")
    var kvType: String = "f32"

    @Option(name: .long, help: "With --budget: predict the next N layers' experts (0–3) and read them ahead.")
    var prefetch: Int = 1

    @Option(
        name: .customLong("token-precision"),
        help:
            "With --budget: token-level precision for cache misses: 'T1,T2' (HOBBIT thresholds on an expert's unimportance, e.g. \(TokenPrecision.defaultThresholdsFlag)), 'auto' (thresholds from the model's profile for a 5 % change of a MoE output; \(TokenPrecision.defaultThresholdsFlag) without a profile), 'auto:TOLERANCE', or 'off'. Default: auto (measured best), applied only when the cache cannot hold every expert."
    )
    var tokenPrecision: String?

    @Option(
        name: .customLong("low-bits"), help: "The low level token-level precision reads (default: the lowest stored).")
    var lowBits: Int?

    @Flag(
        name: .customLong("allow-skip"), inversion: .prefixedNo,
        help: "Token-level precision skips expert uses above T2 that miss the cache (default: on, measured best).")
    var allowSkip: Bool?

    @Flag(
        name: .customLong("no-plan"),
        help:
            "With --budget: run each layer's experts in the router's order, not by the intra-layer plan (cached first, then misses ordered by measured read and compute times)."
    )
    var noPlan = false

    @Flag(
        name: .customLong("no-background-upgrade"),
        help: "Token-level precision: do not read the rest of downgraded cached experts while the I/O lane is idle.")
    var noBackgroundUpgrade = false

    @Option(
        name: .customLong("protect-sensitive"),
        help:
            "Token-level precision with a profile: per layer, this share of the experts most hurt by the low level is never downgraded (0–1; default 0)."
    )
    var protectSensitive: Double = 0

    @Option(
        name: .customLong("low-share"),
        help:
            "Token-level precision: the share of the expert cache kept for low-precision copies (0–1; default: from the profile, else 0.25)."
    )
    var lowShare: Double?

    func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
        if CachePolicyKind(rawValue: cachePolicy) == nil {
            throw ValidationError(
                "--cache-policy must be one of \(CachePolicyKind.allCases.map(\.rawValue).joined(separator: ", ")) (got '\(cachePolicy)')"
            )
        }
        if IOMode(rawValue: io) == nil { throw ValidationError("--io must be auto, uring or pread (got '\(io)')") }
        if KVCacheType(rawValue: kvType) == nil {
            throw ValidationError("--kv-type must be f32 or f16 (got '\(kvType)')")
        }
        if !(0...1).contains(protectSensitive) {
            throw ValidationError("--protect-sensitive must be in 0…1 (got \(protectSensitive))")
        }
        if let s = lowShare, !(0...1).contains(s) { throw ValidationError("--low-share must be in 0…1 (got \(s))") }
        if !(0...3).contains(prefetch) { throw ValidationError("--prefetch must be 0…3 (got \(prefetch))") }
        _ = try precision()
        if let b = budget, ByteSize.parse(b, percentOf: 1 << 30) == nil {
            throw ValidationError("--budget must be a size like 512MiB, 1.5GiB, 800MB or 40% (got '\(b)')")
        }
    }

    func open() throws -> Model { try Model(path: model) }

    /// The budget in bytes (a percentage is of the model file's size), nil without --budget.
    func budgetBytes() throws -> Int? {
        guard let b = budget else { return nil }
        let size = (try? FileManager.default.attributesOfItem(atPath: model)[.size] as? Int) ?? nil
        guard let bytes = ByteSize.parse(b, percentOf: size) else {
            throw ValidationError("--budget must be a size like 512MiB, 1.5GiB, 800MB or 40% (got '\(b)')")
        }
        return bytes
    }

    /// --token-precision as given, or `auto` (the default).
    var tokenPrecisionFlag: String { tokenPrecision ?? "auto" }

    /// --token-precision, --low-bits and --allow-skip; nil when off.
    func precision() throws -> TokenPrecision? {
        let tokenPrecision = tokenPrecisionFlag
        if tokenPrecision == "off" {
            if lowBits != nil || allowSkip == true || protectSensitive > 0 || noBackgroundUpgrade {
                throw ValidationError(
                    "--low-bits, --allow-skip, --protect-sensitive and --no-background-upgrade need --token-precision")
            }
            return nil
        }
        let bad = ValidationError(
            "--token-precision must be 'off', 'auto', 'auto:TOLERANCE' (0 < TOLERANCE ≤ 1) or 'T1,T2' with 0 ≤ T1 ≤ T2, e.g. \(TokenPrecision.defaultThresholdsFlag) (got '\(tokenPrecision)')"
        )
        // (What `auto` uses when it finds no profile.)
        var t1 = TokenPrecision.defaultFullThreshold, t2 = TokenPrecision.defaultLowThreshold
        var tolerance: Double?
        if tokenPrecision == "auto" || tokenPrecision.hasPrefix("auto:") {
            tolerance = tokenPrecision == "auto" ? TokenPrecision.defaultTolerance : Double(tokenPrecision.dropFirst(5))
            guard let t = tolerance, t > 0, t <= 1 else { throw bad }
        } else {
            let parts = tokenPrecision.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2, let a = parts[0], let b = parts[1], a >= 0, b >= a, a.isFinite, b.isFinite else {
                throw bad
            }
            (t1, t2) = (a, b)
        }
        return TokenPrecision(
            fullThreshold: t1, lowThreshold: t2, lowBits: lowBits,
            allowSkip: allowSkip ?? TokenPrecision.defaultAllowSkip,
            protectedShare: protectSensitive,
            upgradeInBackground: !noBackgroundUpgrade, profileTolerance: tolerance)
    }

    /// Session options from the shared flags.
    func session(contextLength: Int? = nil, batchSize: Int = 64) throws -> SessionOptions {
        let profile = try ExpertProfile.load(from: ExpertProfile.path(for: model))
        let precision = try precision()
        if tokenPrecision != nil && precision?.profileTolerance != nil && profile?.gateMassCDF == nil {
            FileHandle.standardError.write(
                Data(
                    "note: --token-precision auto found no current profile of \(model) (run `sparrow profile`); using \(TokenPrecision.defaultThresholdsFlag)\n"
                        .utf8))
        }
        return SessionOptions(
            contextLength: contextLength, threads: threads, batchSize: batchSize, expertBits: expertBits,
            budget: try budgetBytes(), cachePolicy: CachePolicyKind(rawValue: cachePolicy)!,
            io: BlockReaderOptions(mode: IOMode(rawValue: io)!, notice: printNotice),
            kvType: KVCacheType(rawValue: kvType)!,
            tokenPrecision: precision, prefetchDepth: prefetch, lowPrecisionShare: lowShare,
            profile: profile, intraLayerPlan: !noPlan)
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

/// The engine's notices (a reader's fallback), on standard error.
@Sendable func printNotice(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

extension TokenPrecision {
    /// The default thresholds as `--token-precision` writes them ("0.6,0.9").
    static var defaultThresholdsFlag: String { "\(defaultFullThreshold),\(defaultLowThreshold)" }
}
