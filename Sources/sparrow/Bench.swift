import ArgumentParser
import Foundation
import Sparrow

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure time to first token, prefill and decode speed, latency percentiles, peak memory and, under a budget, the expert cache and I/O.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .customLong("prompt-len"), help: "Prompt tokens (synthetic, deterministic).")
    var promptLen: Int = 128

    @Option(name: [.short, .customLong("tokens")], help: "Tokens to decode.")
    var n: Int = 64

    @Flag(name: .long, help: "Evict the model file from the page cache before the run (posix_fadvise).")
    var cold = false

    @Option(name: .customLong("sweep-budget"), help: "Run once per budget, e.g. 100%,60%,40%,25% (of the model file) or 1GiB,512MiB, each in a fresh process.")
    var sweepBudget: String?

    @Option(name: .long, help: "With --sweep-budget: write an SVG plot of decode tokens/s against the budget.")
    var plot: String?

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        if promptLen < 1 { throw ValidationError("--prompt-len must be at least 1") }
        if n < 1 { throw ValidationError("--tokens must be at least 1") }
        if sweepBudget != nil && modelOptions.budget != nil { throw ValidationError("--sweep-budget and --budget exclude each other") }
        if plot != nil && sweepBudget == nil { throw ValidationError("--plot needs --sweep-budget") }
        if let s = sweepBudget {
            for b in s.split(separator: ",") where ByteSize.parse(String(b), percentOf: 1 << 30) == nil {
                throw ValidationError("--sweep-budget: '\(b)' is not a size like 512MiB or 40%")
            }
        }
    }

    func run() throws {
        if let sweep = sweepBudget { return try runSweep(sweep) }
        do {
            if cold { try PageCache.evict(path: modelOptions.model) }
            let model = try modelOptions.open()
            let r = try Benchmark.run(model: model, promptLength: promptLen, tokens: n, options: try modelOptions.session(), cold: cold)
            if json { return print(try encode(r)) }
            printTable(r)
        } catch let e as ValidationError { throw e } catch { throw fail(error) }
    }

    private func encode<T: Encodable>(_ value: T) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try e.encode(value), as: UTF8.self)
    }

    private func printTable(_ r: Benchmark.Result) {
        print("model        \(modelOptions.model) (\(formatBytes(r.modelBytes["file"] ?? 0)); dense \(formatBytes(r.modelBytes["dense"] ?? 0)), experts \(formatBytes(r.modelBytes["experts"] ?? 0)))")
        print("threads      \(r.threads) (\(r.isa) kernels), experts at \(r.expertBits) bits\(r.cold ? ", cold start" : "")")
        print(String(format: "prefill      %d tokens  %.1f tok/s  (time to first token %.1f ms)", r.promptTokens, r.prefillTokensPerSecond, r.timeToFirstToken * 1000))
        print(String(format: "decode       %d tokens  %.1f tok/s  (latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms)", r.generatedTokens, r.decodeTokensPerSecond, r.latencyP50, r.latencyP90, r.latencyP99))
        if let budget = r.budget {
            print(String(format: "peak RSS     %@ of a %@ budget (%.1f %%)", formatBytes(r.peakRSS), formatBytes(budget), 100 * (r.peakRSSOverBudget ?? 0)))
        } else {
            print("peak RSS     \(formatBytes(r.peakRSS))")
        }
        if let c = r.cache {
            print("cache        \(c.slots) slots × \(formatBytes(c.slotBytes)), \(r.cachePolicy ?? "?"); hits \(c.hits), misses \(c.misses), upgrades \(c.upgrades), evictions \(c.evictions) (hit rate \(String(format: "%.1f", 100 * Double(c.hits) / Double(max(1, c.hits + c.misses)))) %)")
            print(String(format: "I/O          %@ read, %.2f s stalled; %@", formatBytes(c.bytesRead), c.stallSeconds, r.io ?? ""))
        }
    }

    /// One child process per budget (peak RSS is per process), then a table, JSON and a plot.
    private func runSweep(_ sweep: String) throws {
        var points: [(label: String, result: Benchmark.Result)] = []
        for label in sweep.split(separator: ",").map({ String($0).trimmingCharacters(in: .whitespaces) }) {
            var args = ["bench", "-m", modelOptions.model, "--prompt-len", String(promptLen), "-n", String(n), "--json",
                        "--budget", label, "--cache-policy", modelOptions.cachePolicy, "--io", modelOptions.io, "--kv-type", modelOptions.kvType]
            if let t = modelOptions.threads { args += ["--threads", String(t)] }
            if let b = modelOptions.expertBits { args += ["--expert-bits", String(b)] }
            if cold { args.append("--cold") }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
            if !FileManager.default.isExecutableFile(atPath: p.executableURL!.path) {
                p.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            }
            p.arguments = args
            let out = Pipe()
            let err = Pipe()
            p.standardOutput = out
            p.standardError = err
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            let errData = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard p.terminationStatus == 0, let r = try? JSONDecoder().decode(Benchmark.Result.self, from: data) else {
                let message = String(decoding: errData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                FileHandle.standardError.write(Data("budget \(label): \(message.isEmpty ? "failed" : message)\n".utf8))
                continue
            }
            points.append((label, r))
            if !json {
                print(String(format: "budget %-8@ %@  decode %7.2f tok/s  prefill %7.1f tok/s  peak RSS %@ (%.1f %%)  hit rate %.1f %%  read %@",
                             label, formatBytes(r.budget ?? 0), r.decodeTokensPerSecond, r.prefillTokensPerSecond,
                             formatBytes(r.peakRSS), 100 * (r.peakRSSOverBudget ?? 0),
                             100 * Double(r.cache?.hits ?? 0) / Double(max(1, (r.cache?.hits ?? 0) + (r.cache?.misses ?? 0))),
                             formatBytes(r.cache?.bytesRead ?? 0)))
            }
        }
        if json { print(try encode(points.map(\.result))) }
        if let plot {
            let fileSize = (try? FileManager.default.attributesOfItem(atPath: modelOptions.model)[.size] as? Int) ?? 1
            let svg = BudgetPlot.svg(
                title: "\(URL(fileURLWithPath: modelOptions.model).lastPathComponent): decode speed against memory budget",
                points: points.map { (Double($0.result.budget ?? 0) / Double(fileSize) * 100, $0.result.decodeTokensPerSecond, $0.label) })
            do { try svg.write(toFile: plot, atomically: true, encoding: .utf8) } catch { throw fail(error) }
            if !json { print("plot         \(plot)") }
        }
        if points.isEmpty { throw ExitCode(1) }
    }
}
