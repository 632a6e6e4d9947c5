import CSparrowKernels
import Foundation
import SparrowFormat
import SparrowKernels
import SparrowRuntime
import Testing

/// The `sparrow` executable: outputs, exit status and messages.
@Suite struct CLITests {
    @Test func convertInspectRunLogitsEval() throws {
        let dir = Paths.temporaryDirectory()
        let out = dir + "/demo.spw"
        var r = try runCLI(["convert", Paths.demo, "-o", out, "--expert-levels", "none"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("qwen3_moe"))

        r = try runCLI(["convert", Paths.demo, "-o", out])
        #expect(r.status != 0 && r.stderr.contains("already exists"))

        r = try runCLI(["inspect", out, "--verify"])
        #expect(r.status == 0 && r.stdout.contains("all checksums OK") && r.stdout.contains("level 0"))

        r = try runCLI(["run", "-m", out, "-p", "def fibonacci(n):", "-n", "32", "--greedy"])
        #expect(r.status == 0)
        #expect(r.stdout == "def fibonacci(n): if x, 0, 0x00000000000000000000000\n")

        r = try runCLI(["logits", "-m", out, "--tokens", "316,286,698", "--out", dir + "/l.npy"])
        #expect(r.status == 0)
        let npy = try NPY.readFloat32(dir + "/l.npy")
        #expect(npy.shape == [3, 4096])
        let ref = try NPY.readFloat32(Paths.demo + "/reference/p0_logits.npy")
        #expect(maxAbsDiff(npy.values, Array(ref.values.prefix(3 * 4096))) < 1e-3)

        r = try runCLI([
            "eval", "-m", out, "--text", Paths.demo + "/eval-text.txt", "--ctx", "256", "--max-windows", "4", "--json"
        ])
        #expect(r.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect(json["windows"] as? Int == 4 && (json["perplexity"] as! Double) > 1)
    }

    /// `eval` on the whole held-out text reproduces transformers' perplexity (eval.json: 82.2735).
    @Test func evalReproducesReferencePerplexity() throws {
        let path = try Converted.path(of: Paths.demo)
        let r = try runCLI(["eval", "-m", path, "--text", Paths.demo + "/eval-text.txt", "--ctx", "256", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let ppl = json["perplexity"] as! Double
        #expect(abs(ppl / 82.2735 - 1) < 0.005, "perplexity \(ppl)")
    }

    /// SPARROW_ISA: a name that is no kernel path, or a path this CPU lacks, is a clear error; each
    /// path the CPU has runs and is the one `bench --json` reports.
    @Test func kernelPathFromTheEnvironment() throws {
        let path = try Converted.path(of: Paths.demo)
        let args = ["bench", "-m", path, "--prompt-len", "8", "-n", "4", "--json"]
        var r = try runCLI(args, environment: ["SPARROW_ISA": "avx3"])
        #expect(r.status == 1 && r.stderr.contains("SPARROW_ISA=avx3 is not a kernel path"), "\(r.stderr)")
        let labels = (0..<Int32(SPK_ISA_COUNT.rawValue)).map { String(cString: spk_isa_label($0)) }
        if let lacking = labels.indices.first(where: { !Ops.availableISAs.contains(Int32($0)) }) {
            r = try runCLI(args, environment: ["SPARROW_ISA": labels[lacking]])
            #expect(r.status == 1 && r.stderr.contains("is not available on this CPU"), "\(r.stderr)")
        }
        for isa in Ops.availableISAs {
            r = try runCLI(args, environment: ["SPARROW_ISA": labels[Int(isa)]])
            #expect(r.status == 0, "\(r.stderr)")
            let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            #expect(json?["isa"] as? String == labels[Int(isa)])
        }
    }

    @Test func badArguments() throws {
        var r = try runCLI(["run", "-m", "/nonexistent.spw", "-p", "x"])
        #expect(r.status == 1 && r.stderr.contains("/nonexistent.spw") && r.stderr.contains("No such file"))
        r = try runCLI(["run", "-m", "x.spw", "-p", "x", "--bogus-flag"])
        #expect(r.status != 0 && r.stderr.contains("bogus-flag"))
        r = try runCLI(["logits", "-m", "x.spw", "--tokens", "1,two,3", "--out", "/tmp/x.npy"])
        #expect(r.status != 0 && r.stderr.contains("'two' is not a token id"))
        r = try runCLI(["convert", "/nonexistent-dir", "-o", "/tmp/x.spw"])
        #expect(r.status == 1 && r.stderr.contains("not a directory"))
        r = try runCLI(["convert", Paths.demo, "-o", "/tmp/x.spw", "--dtype", "int3"])
        #expect(r.status != 0 && r.stderr.contains("--dtype"))
        r = try runCLI(["eval", "-m", "x.spw", "--text", "y", "--ctx", "1"])
        #expect(r.status != 0 && r.stderr.contains("--ctx"))
        r = try runCLI(["inspect", Paths.demo + "/config.json"])
        #expect(r.status == 1 && r.stderr.contains("not a Sparrow model file"))
        r = try runCLI(["bench", "-m", "x.spw", "--budget", "lots"])
        #expect(r.status != 0 && r.stderr.contains("--budget must be a size"))
        r = try runCLI(["bench", "-m", "x.spw", "--cache-policy", "random"])
        #expect(r.status != 0 && r.stderr.contains("--cache-policy must be one of lru, lfu"))
        r = try runCLI(["run", "-m", "x.spw", "-p", "x", "--io", "mmap"])
        #expect(r.status != 0 && r.stderr.contains("--io must be auto, uring or pread"))
        r = try runCLI(["bench", "-m", "x.spw", "--budget", "1GiB", "--sweep-budget", "50%"])
        #expect(r.status != 0 && r.stderr.contains("exclude each other"))
        r = try runCLI(["run", "-m", "x.spw", "-p", "x", "--kv-type", "q4"])
        #expect(r.status != 0 && r.stderr.contains("--kv-type must be f32 or f16"))
        r = try runCLI(["convert", Paths.demo, "-o", "/tmp/x.spw", "--expert-levels", "mxfp4", "--group-size", "16"])
        #expect(r.status != 0 && r.stderr.contains("must be 64 (or 32, slower) for E2M1"), "\(r.stderr)")
        r = try runCLI(["convert", Paths.demo, "-o", "/tmp/x.spw", "--zstd-min-saving", "1.5"])
        #expect(r.status != 0 && r.stderr.contains("--zstd-min-saving must be 'off' or a fraction"))
        r = try runCLI(["iobench", Paths.demo + "/config.json", "--block-size", "1000"])
        #expect(r.status != 0 && r.stderr.contains("multiple of 4 KiB"))
        r = try runCLI(["bench", "-m", "x.spw", "--prefetch", "5"])
        #expect(r.status != 0 && r.stderr.contains("--prefetch must be 0…3"))
        r = try runCLI(["bench", "-m", "x.spw", "--token-precision", "0.9,0.2"])
        #expect(r.status != 0 && r.stderr.contains("--token-precision must be 'off', 'auto'"))
        r = try runCLI(["bench", "-m", "x.spw", "--token-precision", "auto:2"])
        #expect(r.status != 0 && r.stderr.contains("--token-precision must be 'off', 'auto'"))
        r = try runCLI(["bench", "-m", "x.spw", "--token-precision", "off", "--allow-skip"])
        #expect(r.status != 0 && r.stderr.contains("need --token-precision"))
        r = try runCLI(["bench", "-m", "x.spw", "--token-precision", "0.6,0.9", "--low-share", "2"])
        #expect(r.status != 0 && r.stderr.contains("--low-share must be in 0…1"))
        r = try runCLI(["bench", "-m", "x.spw", "--token-precision", "0.6,0.9", "--protect-sensitive", "1.5"])
        #expect(r.status != 0 && r.stderr.contains("--protect-sensitive must be in 0…1"))
        r = try runCLI(["bench", "-m", "x.spw", "--budget", "1GiB", "--ablate", "--reps", "0"])
        #expect(r.status != 0 && r.stderr.contains("--reps must be at least 1"))
        r = try runCLI(["bench", "-m", "x.spw", "--ablate"])
        #expect(r.status != 0 && r.stderr.contains("--ablate needs --budget"))
    }

    /// `bench` under a budget: the cache and I/O figures, peak RSS within the budget, the sweep,
    /// its plot, and a budget too small refused with the minimum it needs.
    @Test func benchUnderABudget() throws {
        let path = try Converted.path(of: Paths.demo, options: ExpertCacheTests.scheme, tag: "q248")
        var r = try runCLI([
            "bench", "-m", path, "--prompt-len", "16", "-n", "8", "--budget", "80MiB", "--cold", "--json"
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect((json["peakRSS"] as! Int) <= 80 << 20)
        #expect((json["cache"] as! [String: Any])["misses"] as! Int > 0)
        #expect((json["rssTrace"] as! [Int]).count == 8)
        #expect(json["decodeBytesReadPerToken"] is Int && (json["diskBytesPerSecond"] as? Double ?? 0) > 0)
        // A budget that holds fewer than half the experts: decode reads, and the roofline says how
        // close it came to what the loader's measured bandwidth allows.
        r = try runCLI([
            "bench", "-m", path, "--prompt-len", "32", "-n", "16", "--budget", "36MiB",
            "--prompt-file", Paths.demo + "/eval-text.txt", "--json"
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let tight = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        // Read at the end: the roofline's own measurement (after the run) stays within it too.
        #expect((tight["peakRSS"] as! Int) <= 36 << 20)
        let perToken = tight["decodeBytesReadPerToken"] as! Int
        let ceiling = tight["ioCeilingTokensPerSecond"] as! Double
        let bandwidth = tight["diskBytesPerSecond"] as! Double
        #expect(perToken > 0 && abs(ceiling * Double(perToken) - bandwidth) < 1)
        // Measured in two halves, before the prompt (where reads bypass the page cache) and after
        // the run: the bandwidth is their bytes over their seconds, so it lies between them.
        let after = tight["diskBytesPerSecondAfter"] as! Double
        let before = tight["diskBytesPerSecondBefore"] as? Double ?? after
        #expect(min(before, after) * 0.999 <= bandwidth && bandwidth <= max(before, after) * 1.001)
        // The rate without waiting for reads is above the measured one (it leaves the stalls out).
        #expect((tight["computeCeilingTokensPerSecond"] as! Double) >= (tight["decodeTokensPerSecond"] as! Double))
        r = try runCLI(["bench", "-m", path, "--prompt-len", "32", "-n", "16", "--budget", "36MiB"])
        #expect(r.status == 0 && r.stdout.contains("I/O roofline") && r.stdout.contains("% of it"), "\(r.stdout)")
        #expect(r.stdout.contains("compute alone") && r.stdout.contains("-bound"), "\(r.stdout)")
        r = try runCLI(["bench", "-m", path, "--budget", "2MiB"])
        #expect(r.status == 1 && r.stderr.contains("memory budget too small") && r.stderr.contains("at least"))
        let plot = Paths.temporaryDirectory() + "/sweep.svg"
        r = try runCLI([
            "bench", "-m", path, "--prompt-len", "8", "-n", "4", "--sweep-budget", "500%,90MiB", "--plot", plot
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.components(separatedBy: "budget ").count == 3)
        let svg = try String(contentsOfFile: plot, encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("90MiB"))
        // A profile beside the model: written, summarised by inspect, used by budgeted runs.
        let copy = Paths.temporaryDirectory() + "/profiled.spw"
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        r = try runCLI(["profile", "-m", copy, "--text", Paths.demo + "/eval-text.txt", "--tokens", "512"])
        #expect(r.status == 0 && r.stdout.contains("wrote \(copy).profile.json"), "\(r.stderr)")
        r = try runCLI(["inspect", copy])
        #expect(r.status == 0 && r.stdout.contains("profile: ") && r.stdout.contains("hottest expert"))
        r = try runCLI([
            "bench", "-m", copy, "--prompt-len", "16", "-n", "8", "--budget", "36MiB", "--token-precision", "0.6,0.9",
            "--protect-sensitive", "0.25", "--json"
        ])
        #expect(r.status == 0, "\(r.stderr)")
        r = try runCLI([
            "bench", "-m", copy, "--prompt-len", "16", "-n", "8", "--budget", "36MiB", "--token-precision", "auto"
        ])
        #expect(r.status == 0 && r.stdout.contains("(from the profile)"), "\(r.stderr)")
        r = try runCLI([
            "bench", "-m", path, "--prompt-len", "16", "-n", "8", "--budget", "36MiB", "--token-precision", "auto"
        ])
        #expect(
            r.status == 0 && r.stderr.contains("found no current profile") && r.stdout.contains("T1 0.60, T2 0.90:"))
        let timeline = Paths.temporaryDirectory() + "/timeline.svg"
        r = try runCLI([
            "bench", "-m", copy, "--prompt-len", "16", "-n", "8", "--budget", "80MiB", "--prefetch", "1",
            "--timeline", timeline
        ])
        #expect(r.status == 0 && r.stdout.contains("timeline"), "\(r.stderr)")
        let drawn = try String(contentsOfFile: timeline, encoding: .utf8)
        #expect(drawn.hasPrefix("<svg") && drawn.contains("<title>attention, layer 0") && drawn.contains("I/O lane"))
        #expect(drawn.contains(">thread 0</text>"))  // experts run in parallel: a row per worker
        r = try runCLI(["bench", "-m", copy, "-n", "4", "--timeline", "/nonexistent/dir/t.svg"])
        #expect(r.status == 1 && r.stderr.contains("cannot write --timeline"))
        r = try runCLI(["bench", "-m", copy, "-n", "4", "--prompt-file", "/nonexistent.txt"])
        #expect(r.status != 0 && r.stderr.contains("cannot read --prompt-file"))
        r = try runCLI(["profile", "-m", copy, "--text", "/nonexistent.txt"])
        #expect(r.status != 0 && r.stderr.contains("cannot read"))
        // The scheduler's ablation on real text: ten configurations, each measured.
        // (Precision refinements apply to the precision rows only: the others still run.)
        r = try runCLI([
            "bench", "-m", path, "--prompt-len", "16", "-n", "8", "--budget", "80MiB", "--ablate",
            "--prompt-file", Paths.demo + "/eval-text.txt", "--token-precision", "0.6,0.9", "--allow-skip"
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("on-demand, lfu") && r.stdout.contains("all: score, plan, prefetch 1, precision"))
        #expect(r.stdout.contains("intra-layer plan, lfu"))
        #expect(r.stdout.contains("all but skip") && r.stdout.contains("token precision 0.6,0.9, no skip, lfu"))
        #expect(r.stdout.contains("on-demand, lru") && r.stdout.split(separator: "\n").count == 11)
    }
}
