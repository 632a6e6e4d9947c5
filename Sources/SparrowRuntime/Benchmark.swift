import Foundation
import SparrowIO
import SparrowKernels

/// Measures prefill and decode speed of a model in one process.
public enum Benchmark {
    /// What one benchmark run measured (the CLI prints it as a table or JSON).
    public struct Result: Codable, Sendable {
        /// Tokens in the prompt.
        public var promptTokens: Int
        /// Tokens decoded after it.
        public var generatedTokens: Int
        /// Compute threads of the session.
        public var threads: Int
        /// Seconds from the prompt's submission to the first generated token's logits.
        public var timeToFirstToken: Double
        /// Prompt tokens evaluated per second.
        public var prefillTokensPerSecond: Double
        /// Tokens decoded per second (one at a time).
        public var decodeTokensPerSecond: Double
        /// Per decoded token, milliseconds.
        public var latencyP50: Double
        /// The 90th percentile of the per-token decode latency, milliseconds.
        public var latencyP90: Double
        /// The 99th percentile of the per-token decode latency, milliseconds.
        public var latencyP99: Double
        /// Peak resident set size of the process (VmHWM), bytes.
        public var peakRSS: Int
        /// Bytes of the model file by part (dense, experts, file).
        public var modelBytes: [String: Int]
        /// The kernels' instruction-set path (e.g. avx2, avx512, neon).
        public var isa: String
        /// Bits of the expert level the run used.
        public var expertBits: Int
        /// The memory budget (bytes) and how the cache read experts; nil when unbudgeted.
        public var budget: Int?
        /// How the expert cache read (io_uring or pread, O_DIRECT, depth); nil when unbudgeted.
        public var io: String?
        /// The expert cache's eviction policy; nil when unbudgeted.
        public var cachePolicy: String?
        /// The expert cache's figures over the whole run (warm-up, prefill and decode).
        public var cache: CacheStatistics?
        /// peakRSS / budget.
        public var peakRSSOverBudget: Double?
        /// Whether the model file was evicted from the page cache before the run.
        public var cold: Bool
        /// KV cache element type.
        public var kvType: String
        /// Resident set size (bytes) sampled through the decode: 20 samples, the last at its end.
        public var rssTrace: [Int]
        /// The scheduler's settings and counters: prefetch depth, token-level precision, precision
        /// choices and prediction precision/recall per depth.
        public var prefetchDepth: Int?
        /// Token-level precision as used (thresholds after any profile derivation); nil when off.
        public var tokenPrecision: TokenPrecision?
        /// Precision choices and prediction quality over the run.
        public var scheduler: SchedulerStatistics?
        /// Budgeted runs: bytes the expert cache read per decode token (misses, prefetches,
        /// upgrades), nil when unbudgeted.
        public var decodeBytesReadPerToken: Int?
        /// Budgeted runs: the loader's read bandwidth on this file (random record-sized reads with
        /// the session's reader), measured in the same run: half before the prompt (into the
        /// cache's still empty arena, when reads bypass the page cache) and half once the
        /// session's cache memory is freed, bytes over seconds of both; nil when unbudgeted,
        /// unmeasurable, or another session's cache still holds memory.
        public var diskBytesPerSecond: Double?
        /// The half of `diskBytesPerSecond` measured before the prompt; nil where it was not
        /// (buffered reads would warm the page cache the run then finds).
        public var diskBytesPerSecondBefore: Double?
        /// The half measured after the run: beside the one before, how much the disk moved.
        public var diskBytesPerSecondAfter: Double?
        /// The I/O roofline: `diskBytesPerSecond / decodeBytesReadPerToken`, the decode rate reads
        /// alone would allow; nil when nothing was read or unbudgeted.
        public var ioCeilingTokensPerSecond: Double?
        /// Budgeted runs: the decode rate without waiting for reads — decode steps over their time
        /// less the compute thread's stalls on reads. Below `ioCeilingTokensPerSecond` the run is
        /// compute-bound, and the I/O ceiling out of reach whatever the loader does.
        public var computeCeilingTokensPerSecond: Double?
    }

    /// Deterministic prompt ids spread over the vocabulary (no file needed).
    package static func syntheticPrompt(length: Int, vocab: Int, avoiding special: Set<Int>) -> [Int] {
        var out: [Int] = []
        var x: UInt64 = 0x9E37_79B9
        while out.count < length {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let id = Int((x >> 33) % UInt64(vocab))
            if !special.contains(id) { out.append(id) }
        }
        return out
    }

    /// Evaluates a `promptLength`-token prompt, then decodes `tokens` tokens greedily. With `text`,
    /// the prompt is its start and each decode step feeds the text's next token instead of the
    /// argmax (teacher forcing: the routing of real text, where greedy decoding of a small model
    /// soon loops over the same few experts).
    public static func run(
        model: Model, promptLength: Int, tokens: Int, options: SessionOptions = .init(), cold: Bool = false,
        text: String? = nil
    ) throws(SparrowError) -> Result {
        try run(
            model: model, promptLength: promptLength, tokens: tokens, options: options, cold: cold, text: text,
            timeline: nil)
    }

    /// The same, recording the first `timelineTokens` decode steps into `timeline`.
    package static func run(
        model: Model, promptLength: Int, tokens: Int, options: SessionOptions = .init(), cold: Bool = false,
        text: String? = nil, timeline: Timeline?, timelineTokens: Int = 3
    ) throws(SparrowError) -> Result {
        guard promptLength > 0, tokens > 0 else {
            throw .invalidArgument("prompt length and token count must be positive")
        }
        let (prompt, forced) = try promptAndForcedTokens(
            model: model, promptLength: promptLength, tokens: tokens, text: text)
        // The session lives only inside this closure: the I/O roofline's bandwidth is measured once
        // it and its cache's arena are gone, in at most the arena's bytes, so the measurement stays
        // below the run's peak memory.
        var before: ReadBandwidth.Result?
        let (run, summarized, budgeted) = try { () throws(SparrowError) -> (Run, Result, (level: Int, bytes: Int)?) in
            var o = options
            o.contextLength = promptLength + tokens + 1
            let session = try Session(model: model, options: o)
            // Only into an arena that holds nothing yet (a session reads no expert before its first
            // step) and past the page cache (buffered reads would warm what the run then reads).
            before = session.expertCache.flatMap { cache in
                cache.lane.isDirect && cache.statistics.bytesRead == 0
                    ? try? diskProbe(model: model, level: session.expertLevel, io: options.io, into: cache.arena) : nil
            }
            let run = try measure(
                session, prompt: prompt, forced: forced, tokens: tokens, timeline: timeline,
                timelineTokens: timelineTokens)
            let result = summary(of: run, session: session, options: options, cold: cold)
            return (run, result, session.expertCache.map { (session.expertLevel, $0.arena.count) })
        }()
        var result = summarized
        guard let (level, arenaBytes) = budgeted else { return result }
        let perToken = run.decodeBytesRead / tokens
        result.decodeBytesReadPerToken = perToken
        let computing = run.latencies.reduce(0, +) / 1e3 - run.decodeStallSeconds
        result.computeCeilingTokensPerSecond = computing > 0 ? Double(tokens) / computing : nil
        if ArenaMemory.waitUntilAllFreed(seconds: 2),
            let after = try? diskProbe(model: model, level: level, io: options.io, memory: arenaBytes)
        {
            let probes = [after] + (before.map { [$0] } ?? [])
            let bandwidth = Double(probes.map(\.bytes).reduce(0, +)) / probes.map(\.seconds).reduce(0, +)
            result.diskBytesPerSecond = bandwidth
            result.diskBytesPerSecondBefore = before?.bytesPerSecond
            result.diskBytesPerSecondAfter = after.bytesPerSecond
            result.ioCeilingTokensPerSecond = perToken > 0 ? bandwidth / Double(perToken) : nil
        }
        // The whole run's peak, the measurement included: what the budget promised.
        result.peakRSS = ProcessMemory.peakRSS
        result.peakRSSOverBudget = options.budget.map { Double(result.peakRSS) / Double($0) }
        return result
    }

    /// What one benchmark run observed.
    struct Run {
        var promptTokens: Int
        var prefillSeconds: Double
        /// Per decoded token, milliseconds.
        var latencies: [Double]
        var rssTrace: [Int]
        /// Bytes the expert cache read during the decode steps.
        var decodeBytesRead: Int
        /// Seconds the compute thread waited for reads during the decode steps.
        var decodeStallSeconds = 0.0
    }

    /// Evaluates `prompt` (after a short warm-up), then decodes `tokens` tokens one at a time:
    /// greedy, or fed `forced` (teacher forcing).
    static func measure(
        _ session: Session, prompt: [Int], forced: [Int]?, tokens: Int, timeline: Timeline?, timelineTokens: Int
    ) throws(SparrowError) -> Run {
        // Warm-up: touch the weights once so the first measured token is not a page-fault storm.
        _ = try session.evaluate(Array(prompt.prefix(8)))
        session.reset()
        let t0 = DispatchTime.now().uptimeNanoseconds
        var logits = try session.evaluate(prompt, logits: .last)
        let t1 = DispatchTime.now().uptimeNanoseconds
        let readBefore = session.cacheStatistics?.bytesRead ?? 0
        let stallBefore = session.cacheStatistics?.stallSeconds ?? 0
        var run = Run(
            promptTokens: prompt.count, prefillSeconds: Double(t1 - t0) / 1e9, latencies: [], rssTrace: [],
            decodeBytesRead: 0)
        let every = max(1, tokens / 20)
        for i in 0..<tokens {
            var best = 0
            for j in 1..<logits.count where logits[j] > logits[best] { best = j }
            if let forced { best = forced[i] }
            if i == tokens - timelineTokens { session.timeline = timeline }  // the last few steps only
            let s = DispatchTime.now().uptimeNanoseconds
            logits = try session.evaluate([best], logits: .last)
            run.latencies.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1e6)
            if (i + 1) % every == 0 || i + 1 == tokens { run.rssTrace.append(ProcessMemory.currentRSS) }
        }
        run.decodeBytesRead = (session.cacheStatistics?.bytesRead ?? 0) - readBefore
        run.decodeStallSeconds = (session.cacheStatistics?.stallSeconds ?? 0) - stallBefore
        return run
    }

    /// The result of `run` in `session`.
    static func summary(of run: Run, session: Session, options: SessionOptions, cold: Bool) -> Result {
        let model = session.model
        let sorted = run.latencies.sorted()
        func pct(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int((p * Double(sorted.count - 1)).rounded()))] }
        var bytes: [String: Int] = [:]
        for s in model.file.sections { bytes[String(describing: s.kind), default: 0] += Int(s.length) }
        bytes["file"] = model.file.file.count
        let budgeted = session.expertCache != nil
        return Result(
            promptTokens: run.promptTokens, generatedTokens: run.latencies.count, threads: session.threads,
            timeToFirstToken: run.prefillSeconds, prefillTokensPerSecond: Double(run.promptTokens) / run.prefillSeconds,
            decodeTokensPerSecond: Double(run.latencies.count) / (run.latencies.reduce(0, +) / 1e3),
            latencyP50: pct(0.5), latencyP90: pct(0.9), latencyP99: pct(0.99), peakRSS: ProcessMemory.peakRSS,
            modelBytes: bytes, isa: Ops.isa, expertBits: model.expertBits[session.expertLevel],
            budget: options.budget, io: session.ioSummary,
            cachePolicy: budgeted ? options.cachePolicy.rawValue : nil, cache: session.cacheStatistics,
            peakRSSOverBudget: options.budget.map { Double(ProcessMemory.peakRSS) / Double($0) }, cold: cold,
            kvType: options.kvType.rawValue, rssTrace: run.rssTrace,
            prefetchDepth: budgeted ? options.prefetchDepth : nil,
            tokenPrecision: budgeted ? session.tokenPrecision : nil, scheduler: session.schedulerStatistics)
    }

    /// The loader reading expert records of `model` at random with the session's reader (`io`):
    /// reads of one record through `level` (at least 64 KiB, at most 8 MiB), at most 16 MiB in
    /// flight and at most `memory` bytes (or the bytes of `buffer`, which it reads into; at least
    /// one read), 32 of them or 128 MiB, whichever is more — one half of the roofline's bandwidth
    /// (a probe of a few dozen reads swung with this VM's disk; RESULTS.md).
    static func diskProbe(
        model: Model, level: Int, io: BlockReaderOptions, memory: Int = 0,
        into buffer: UnsafeMutableRawBufferPointer? = nil
    ) throws(IOError) -> ReadBandwidth.Result {
        let a = BlockReaderOptions.alignment
        let record = (model.file.decodedLength(level: level) + a - 1) / a * a
        let block = min(8 << 20, max(64 << 10, record))
        guard let experts = model.file.sections.first(where: { $0.kind == .experts }) else {
            throw IOError(path: model.file.path, operation: "measure reads of experts", errno: EINVAL)
        }
        let range = Int(experts.offset)..<Int(experts.offset + experts.length)
        let depth = max(1, min(io.queueDepth, min(16 << 20, buffer?.count ?? memory) / block))
        return try ReadBandwidth.measure(
            path: model.file.path, range: range, blockSize: block, queueDepth: depth, total: max(128 << 20, 32 * block),
            options: io, buffer: buffer)
    }
}

extension Benchmark {
    /// The prompt (the text's first `promptLength` tokens, else synthetic ids) and, with a text,
    /// the `tokens` tokens after it that decode steps are fed (teacher forcing). Only as much of
    /// the text is tokenized as they need (a prefix, doubled until it gives a margin of tokens
    /// beyond them, so the cut cannot change them): a whole book would otherwise sit in the heap
    /// the budget counts, taking room from the expert cache.
    package static func promptAndForcedTokens(
        model: Model, promptLength: Int, tokens: Int, text: String?
    ) throws(SparrowError) -> (prompt: [Int], forced: [Int]?) {
        guard let text else {
            let vocab = min(model.config.vocabSize, model.tokenizer.count)
            return (syntheticPrompt(length: promptLength, vocab: vocab, avoiding: model.tokenizer.specialIds), nil)
        }
        let needed = promptLength + tokens
        let margin = 16
        var ids: [Int] = []
        var characters = max(4096, needed * 8)
        while true {
            let prefix = text.prefix(characters)
            ids = model.tokenizer.encode(String(prefix))
            if prefix.endIndex == text.endIndex || ids.count >= needed + margin { break }
            characters *= 2
        }
        guard ids.count >= needed else {
            throw .invalidArgument(
                "the prompt text has \(ids.count) tokens, fewer than the \(needed) asked for")
        }
        return (Array(ids.prefix(promptLength)), Array(ids[promptLength..<(promptLength + tokens)]))
    }
}
