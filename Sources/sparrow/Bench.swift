import ArgumentParser
import Foundation
import Sparrow
import SparrowIO

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Measure time to first token, prefill and decode speed, latency percentiles, peak memory and, under a budget, the expert cache and I/O."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .customLong("prompt-len"), help: "Prompt tokens (synthetic, deterministic).")
    var promptLen: Int = 128

    @Option(name: [.short, .customLong("tokens")], help: "Tokens to decode.")
    var n: Int = 64

    @Flag(name: .long, help: "Evict the model file from the page cache before the run (posix_fadvise).")
    var cold = false

    @Option(
        name: .customLong("sweep-budget"),
        help: "Run once per budget, e.g. 100%,60%,40%,25% (of the model file) or 1GiB,512MiB, each in a fresh process.")
    var sweepBudget: String?

    @Option(name: .long, help: "With --sweep-budget: write an SVG plot of decode tokens/s against the budget.")
    var plot: String?

    @Option(
        name: .customLong("prompt-file"),
        help:
            "Take the prompt from the start of this text file (real routing on a trained model) instead of synthetic ids."
    )
    var promptFile: String?

    @Option(
        name: .long,
        help:
            "Write an SVG of the last 3 decode steps: compute and I/O-lane spans per layer on a time axis (reads by kind: miss, downgrade, prefetch, upgrade)."
    )
    var timeline: String?

    @Flag(
        name: .long,
        help:
            "With --budget: run the scheduler's techniques off, alone and together (each in a fresh process) and print a table."
    )
    var ablate = false

    @Option(name: .long, help: "With --ablate: rounds of all configurations; the table gives medians.")
    var reps: Int = 1

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        if promptLen < 1 { throw ValidationError("--prompt-len must be at least 1") }
        if n < 1 { throw ValidationError("--tokens must be at least 1") }
        if sweepBudget != nil && modelOptions.budget != nil {
            throw ValidationError("--sweep-budget and --budget exclude each other")
        }
        if plot != nil && sweepBudget == nil { throw ValidationError("--plot needs --sweep-budget") }
        if reps < 1 { throw ValidationError("--reps must be at least 1") }
        if ablate && (modelOptions.budget == nil || sweepBudget != nil) {
            throw ValidationError("--ablate needs --budget (and no --sweep-budget)")
        }
        if let s = sweepBudget {
            for b in s.split(separator: ",") where ByteSize.parse(String(b), percentOf: 1 << 30) == nil {
                throw ValidationError("--sweep-budget: '\(b)' is not a size like 512MiB or 40%")
            }
        }
    }

    func run() throws {
        if let sweep = sweepBudget { return try runSweep(sweep) }
        if ablate { return try runAblation() }
        do {
            if cold { try PageCache.evict(path: modelOptions.model) }
            let model = try modelOptions.open()
            let text = try promptFile.map { path in
                do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
                    throw ValidationError("cannot read --prompt-file \(path): \(error.localizedDescription)")
                }
            }
            let recorder = timeline.map { _ in Timeline() }
            let r = try Benchmark.run(
                model: model, promptLength: promptLen, tokens: n, options: try modelOptions.session(), cold: cold,
                text: text,
                timeline: recorder)
            if let path = timeline, let recorder {
                let title =
                    "\(URL(fileURLWithPath: modelOptions.model).lastPathComponent): last \(min(3, n)) decode steps"
                    + (modelOptions.budget.map { " under a \($0) budget" } ?? "")
                do { try recorder.svg(title: title).write(toFile: path, atomically: true, encoding: .utf8) } catch {
                    FileHandle.standardError.write(
                        Data("error: cannot write --timeline \(path): \(error.localizedDescription)\n".utf8))
                    throw ExitCode(1)
                }
                if !json { print("timeline     \(path) (\(recorder.recorded.count) spans)") }
            }
            if json { return print(try encode(r)) }
            printTable(r)
        } catch let e as ValidationError { throw e } catch let e as ExitCode { throw e } catch { throw fail(error) }
    }

    private func encode<T: Encodable>(_ value: T) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try e.encode(value), as: UTF8.self)
    }

    private func printTable(_ r: Benchmark.Result) {
        print(
            "model        \(modelOptions.model) (\(formatBytes(r.modelBytes["file"] ?? 0)); dense \(formatBytes(r.modelBytes["dense"] ?? 0)), experts \(formatBytes(r.modelBytes["experts"] ?? 0)))"
        )
        print(
            "threads      \(r.threads) (\(r.isa) kernels), experts at \(r.expertBits) bits\(r.cold ? ", cold start" : "")"
        )
        print(
            String(
                format: "prefill      %d tokens  %.1f tok/s  (time to first token %.1f ms)", r.promptTokens,
                r.prefillTokensPerSecond, r.timeToFirstToken * 1000))
        print(
            String(
                format: "decode       %d tokens  %.1f tok/s  (latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms)",
                r.generatedTokens, r.decodeTokensPerSecond, r.latencyP50, r.latencyP90, r.latencyP99))
        if let budget = r.budget {
            print(
                String(
                    format: "peak RSS     %@ of a %@ budget (%.1f %%)", formatBytes(r.peakRSS), formatBytes(budget),
                    100 * (r.peakRSSOverBudget ?? 0)))
        } else {
            print("peak RSS     \(formatBytes(r.peakRSS))")
        }
        printCacheAndScheduler(r)
    }

    /// The I/O roofline of a budgeted run: bytes read per decode token, the loader's bandwidth
    /// measured in the same run, the decode rate those allow, and how much of it was reached.
    private func rooflineLine(_ r: Benchmark.Result) -> String? {
        guard let perToken = r.decodeBytesReadPerToken else { return nil }
        guard let bandwidth = r.diskBytesPerSecond, let ceiling = r.ioCeilingTokensPerSecond else {
            return "I/O roofline \(formatBytes(perToken)) read per decode token"
                + (perToken == 0 ? " (every expert cached: no I/O bound)" : " (bandwidth not measured)")
        }
        let measured =
            r.diskBytesPerSecondBefore.map {
                String(
                    format: "before and after the run: %.0f and %.0f MB/s", $0 / 1e6,
                    (r.diskBytesPerSecondAfter ?? 0) / 1e6)
            } ?? "after the run"
        let bound =
            r.computeCeilingTokensPerSecond.map {
                String(format: "; compute alone %.1f tok/s: %@-bound", $0, $0 < ceiling ? "compute" : "I/O")
            } ?? ""
        return String(
            format:
                "I/O roofline %@ read per decode token at %.0f MB/s (the loader, measured %@) → ceiling %.1f tok/s; "
                + "decode %.1f tok/s = %.0f %% of it%@",
            formatBytes(perToken), bandwidth / 1e6, measured, ceiling, r.decodeTokensPerSecond,
            100 * r.decodeTokensPerSecond / ceiling, bound)
    }

    /// The table's lines on the expert cache, I/O and the scheduler (budgeted runs).
    private func printCacheAndScheduler(_ r: Benchmark.Result) {
        if let c = r.cache {
            print(
                "cache        \(c.slots) slots × \(formatBytes(c.slotBytes)), \(r.cachePolicy ?? "?"); hits \(c.hits), misses \(c.misses), upgrades \(c.upgrades), evictions \(c.evictions) (hit rate \(String(format: "%.1f", 100 * Double(c.hits) / Double(max(1, c.hits + c.misses)))) %)"
            )
            print(
                String(
                    format: "I/O          %@ read, %.2f s stalled, lane busy %.2f s (%.0f MB/s while busy); %@",
                    formatBytes(c.bytesRead),
                    c.stallSeconds, c.ioBusySeconds,
                    c.ioBusySeconds > 0 ? Double(c.bytesRead) / c.ioBusySeconds / 1e6 : 0, r.io ?? ""))
            if c.prefetches > 0 {
                print(
                    "prefetch     \(c.prefetches) reads (\(formatBytes(c.prefetchBytes))), \(c.prefetchesUsed) used, \(c.prefetchesWasted) evicted unused, \(c.prefetchesCancelled) cancelled before reading"
                )
            }
        }
        if let s = r.scheduler, !s.predicted.isEmpty {
            let pr = zip(s.precision, s.recall).enumerated().map {
                String(format: "+%d: %.0f %% / %.0f %%", $0 + 1, 100 * $1.0, 100 * $1.1)
            }
            print("prediction   precision / recall by depth: \(pr.joined(separator: ", "))")
        }
        if let s = r.scheduler, s.plannedLayers > 0 {
            print(
                String(
                    format: "plan         %d MoE steps: predicted %.3f ms, took %.3f ms per step", s.plannedLayers,
                    1000 * s.plannedSeconds / Double(s.plannedLayers),
                    1000 * s.measuredSeconds / Double(s.plannedLayers)))
        }
        if let s = r.scheduler, r.tokenPrecision != nil {
            let t = r.tokenPrecision!
            print(
                String(
                    format: "precision    T1 %.2f, T2 %.2f%@: ", t.fullThreshold, t.lowThreshold,
                    t.profileTolerance == nil ? "" : " (from the profile)")
                    + "\(s.downgraded) expert uses at the low level, \(s.skipped) skipped, \(r.cache?.backgroundUpgrades ?? 0) upgraded in the background"
            )
        }
        if let line = rooflineLine(r) { print(line) }  // last: how close to the limit
    }

    /// One child process per budget (peak RSS is per process), then a table, JSON and a plot.
    private func runSweep(_ sweep: String) throws {
        var points: [(label: String, result: Benchmark.Result)] = []
        for label in sweep.split(separator: ",").map({ String($0).trimmingCharacters(in: .whitespaces) }) {
            var args =
                childArguments(budget: label) + [
                    "--cache-policy", modelOptions.cachePolicy, "--prefetch", String(modelOptions.prefetch)
                ]
            args += ["--token-precision", modelOptions.tokenPrecisionFlag]
            if modelOptions.tokenPrecisionFlag != "off" { args += precisionArguments() }
            if modelOptions.noPlan { args.append("--no-plan") }
            guard let r = try runChild(args, label: "budget \(label)") else { continue }
            points.append((label, r))
            if !json {
                print(
                    String(
                        format:
                            "budget %-8@ %@  decode %7.2f tok/s  prefill %7.1f tok/s  peak RSS %@ (%.1f %%)  hit rate %.1f %%  read %@",
                        label, formatBytes(r.budget ?? 0), r.decodeTokensPerSecond, r.prefillTokensPerSecond,
                        formatBytes(r.peakRSS), 100 * (r.peakRSSOverBudget ?? 0),
                        100 * Double(r.cache?.hits ?? 0)
                            / Double(max(1, (r.cache?.hits ?? 0) + (r.cache?.misses ?? 0))),
                        formatBytes(r.cache?.bytesRead ?? 0)))
            }
        }
        if json { print(try encode(points.map(\.result))) }
        if let plot {
            let fileSize = (try? FileManager.default.attributesOfItem(atPath: modelOptions.model)[.size] as? Int) ?? 1
            let svg = BudgetPlot.svg(
                title:
                    "\(URL(fileURLWithPath: modelOptions.model).lastPathComponent): decode speed against memory budget",
                points: points.map {
                    (Double($0.result.budget ?? 0) / Double(fileSize) * 100, $0.result.decodeTokensPerSecond, $0.label)
                })
            do { try svg.write(toFile: plot, atomically: true, encoding: .utf8) } catch { throw fail(error) }
            if !json { print("plot         \(plot)") }
        }
        if points.isEmpty { throw ExitCode(1) }
    }

    /// A child `bench --json` run at `budget` repeating this run's shared flags (model, lengths,
    /// threads, bits, I/O, KV type, prompt, cold start); the caller adds the scheduler's.
    private func childArguments(budget: String) -> [String] {
        var args = [
            "bench", "-m", modelOptions.model, "--prompt-len", String(promptLen), "-n", String(n), "--json",
            "--budget", budget, "--io", modelOptions.io, "--kv-type", modelOptions.kvType
        ]
        if let t = modelOptions.threads { args += ["--threads", String(t)] }
        if let b = modelOptions.expertBits { args += ["--expert-bits", String(b)] }
        if let f = promptFile { args += ["--prompt-file", f] }
        if cold { args.append("--cold") }
        return args
    }

    /// The token-precision refinements as given (valid only beside `--token-precision`).
    private func precisionArguments() -> [String] {
        var args: [String] = []
        if let b = modelOptions.lowBits { args += ["--low-bits", String(b)] }
        if let skip = modelOptions.allowSkip { args.append(skip ? "--allow-skip" : "--no-allow-skip") }
        if let s = modelOptions.lowShare { args += ["--low-share", String(s)] }
        if modelOptions.protectSensitive > 0 { args += ["--protect-sensitive", String(modelOptions.protectSensitive)] }
        if modelOptions.noBackgroundUpgrade { args.append("--no-background-upgrade") }
        return args
    }

    /// Runs `sparrow ARGS` in a child process (peak RSS is per process) and decodes its JSON result.
    private func runChild(_ args: [String], label: String) throws -> Benchmark.Result? {
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
            FileHandle.standardError.write(Data("\(label): \(message.isEmpty ? "failed" : message)\n".utf8))
            return nil
        }
        return r
    }

    /// The techniques off, one at a time, and together, at the one --budget; a table (or JSON).
    /// The baseline is the on-demand loader with its best policy of LRU and LFU in each round;
    /// single techniques run beside LFU, and "all" with --cache-policy.
    /// The ablation's configurations: the on-demand loader with LRU and LFU, each technique alone,
    /// and all together (every technique off but the ones named: the defaults turn some on).
    private func ablationConfigurations() -> [(String, [String])] {
        let flag = modelOptions.tokenPrecisionFlag
        let precision = flag == "off" ? TokenPrecision.defaultThresholdsFlag : flag
        let depth = modelOptions.prefetch == 0 ? 1 : modelOptions.prefetch
        let chosen = modelOptions.cachePolicy
        let precise = ["--token-precision", precision] + precisionArguments()
        // Every technique off but the ones named (the defaults turn prefetch and precision on).
        let off = ["--token-precision", "off", "--prefetch", "0"]
        return [
            ("on-demand, lru", ["--cache-policy", "lru", "--no-plan"] + off),
            ("on-demand, lfu", ["--cache-policy", "lfu", "--no-plan"] + off),
            ("intra-layer plan, lfu", ["--cache-policy", "lfu"] + off),
            ("policy score", ["--cache-policy", "score", "--no-plan"] + off),
            ("policy distance", ["--cache-policy", "distance", "--no-plan"] + off),
            (
                "prefetch \(depth), lfu",
                ["--cache-policy", "lfu", "--prefetch", String(depth), "--no-plan", "--token-precision", "off"]
            ),
            (
                "token precision \(precision), no skip, lfu",
                ["--cache-policy", "lfu", "--no-plan", "--prefetch", "0"] + precise + ["--no-allow-skip"]
            ),
            ("token precision \(precision), lfu", ["--cache-policy", "lfu", "--no-plan", "--prefetch", "0"] + precise),
            (
                "all but skip",
                ["--cache-policy", chosen, "--prefetch", String(depth)] + precise + ["--no-allow-skip"]
            ),
            (
                "all: \(chosen), plan, prefetch \(depth), precision",
                ["--cache-policy", chosen, "--prefetch", String(depth)] + precise
            )
        ]
    }

    private func runAblation() throws {
        let configs = ablationConfigurations()
        // Rounds of all configurations, so a slow spell of the machine hits every configuration;
        // each configuration's ratio is the median of its per-round ratios to the round's on-demand run.
        var runs: [[Benchmark.Result?]] = Array(repeating: [], count: configs.count)
        for _ in 0..<reps {
            for (i, (label, extra)) in configs.enumerated() {
                runs[i].append(try runChild(childArguments(budget: modelOptions.budget!) + extra, label: label))
            }
        }
        if json { return print(try encode(runs.map { $0.compactMap { $0 } })) }
        func median(_ v: [Double]) -> Double {
            let s = v.sorted()
            return s.isEmpty ? 0 : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
        }
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        print(
            pad("configuration", 46)
                + "decode t/s   × best on-demand   hit rate        read   stall s   next-layer recall"
                + (reps > 1 ? "   (medians of \(reps) rounds)" : ""))
        var printed = 0
        for (i, (label, _)) in configs.enumerated() {
            let done = runs[i].compactMap { $0 }
            guard let r = done.last else { continue }
            let ratios = runs[i].indices.compactMap { round -> Double? in
                let base = max(runs[0][round]?.decodeTokensPerSecond ?? 0, runs[1][round]?.decodeTokensPerSecond ?? 0)
                guard let a = runs[i][round], base > 0 else { return nil }
                return a.decodeTokensPerSecond / base
            }
            let c = r.cache ?? CacheStatistics()
            let recall = r.scheduler?.recall.first.map { String(format: "%.0f %%", 100 * $0) } ?? "—"
            print(
                pad(label, 46)
                    + String(
                        format: "%10.1f %18.2f %9.1f%% %11@ %9.2f   %@", median(done.map(\.decodeTokensPerSecond)),
                        median(ratios), 100 * Double(c.hits) / Double(max(1, c.hits + c.misses)),
                        formatBytes(c.bytesRead), median(done.map { $0.cache?.stallSeconds ?? 0 }), recall))
            printed += 1
        }
        if printed == 0 { throw ExitCode(1) }
    }
}
