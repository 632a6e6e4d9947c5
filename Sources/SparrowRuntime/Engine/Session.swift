import Foundation
import SparrowIO
import SparrowKernels

/// Options fixed when a session is created.
public struct SessionOptions: Sendable {
    /// Most tokens the KV cache holds; nil means the model's `max_position_embeddings` (capped at 8192).
    public var contextLength: Int?
    /// Compute threads; nil means one per available core.
    public var threads: Int?
    /// Most tokens evaluated in one batched step (longer inputs are split).
    public var batchSize: Int
    /// Run every expert at this stored precision (bits); nil means the highest stored level, or,
    /// under a budget whose cache cannot hold every expert at it, the stored 4-bit level.
    public var expertBits: Int?
    /// Memory budget in bytes for the whole process while this session runs: resident dense
    /// weights, KV cache, scratch and runtime, plus an expert cache filling the rest. Experts are
    /// then streamed from storage on demand. nil: experts read through the memory mapping.
    /// Counted from the session's creation on, including what other sessions hold then (several
    /// sessions each need a budget above what is already resident; docs/CACHE.md).
    public var budget: Int?
    /// Size the expert cache directly, in bytes, instead of deriving it from `budget` (for hosts
    /// that account memory themselves). Either one turns streaming on.
    public var expertCacheBytes: Int?
    /// Which cached expert to evict when the cache is full (budgeted sessions).
    public var cachePolicy: CachePolicyKind
    /// How expert bytes are read (budgeted sessions): io_uring or pread, O_DIRECT, queue depth.
    public var io: BlockReaderOptions
    /// Element type of the KV cache (f32 exact; f16 halves it).
    public var kvType: KVCacheType
    /// Token-level precision for cache misses (budgeted sessions, when the cache cannot hold every
    /// expert at full precision); nil: every expert at `expertBits`. Default: `.automatic`.
    public var tokenPrecision: TokenPrecision?
    /// Layers ahead whose experts are predicted and read before they are needed (budgeted
    /// sessions, decode); 0: off. 1–3 is useful; 1 is the default (measured best with token
    /// precision).
    public var prefetchDepth: Int
    /// With token-level precision: the share of the expert cache cut into low-precision slots
    /// (records through the low level only, several in the room of one full slot); nil: from the
    /// profile when there is one (demand: low uses × their size), else 0.25.
    public var lowPrecisionShare: Double?
    /// The model's expert profile (`sparrow profile`): sizes the low-precision share, and ranks
    /// the experts by how much their low level changes their output (`protectedShare`).
    public var profile: ExpertProfile?
    /// Order each MoE step's reads and computation by the intra-layer plan (budgeted sessions):
    /// cached experts first, then misses by Johnson's rule on measured read and compute times.
    /// Off: the router's order.
    public var intraLayerPlan: Bool

    /// Options with the defaults a user who sets nothing gets; see the properties.
    public init(
        contextLength: Int? = nil, threads: Int? = nil, batchSize: Int = 64, expertBits: Int? = nil, budget: Int? = nil,
        expertCacheBytes: Int? = nil, cachePolicy: CachePolicyKind = .score, io: BlockReaderOptions = .init(),
        kvType: KVCacheType = .f32, tokenPrecision: TokenPrecision? = .automatic, prefetchDepth: Int = 1,
        lowPrecisionShare: Double? = nil, profile: ExpertProfile? = nil, intraLayerPlan: Bool = true
    ) {
        self.intraLayerPlan = intraLayerPlan
        self.profile = profile
        self.lowPrecisionShare = lowPrecisionShare
        self.tokenPrecision = tokenPrecision
        self.prefetchDepth = prefetchDepth
        self.kvType = kvType
        self.expertCacheBytes = expertCacheBytes
        self.contextLength = contextLength
        self.threads = threads
        self.batchSize = batchSize
        self.expertBits = expertBits
        self.budget = budget
        self.cachePolicy = cachePolicy
        self.io = io
    }
}

/// Which rows of logits an evaluation returns.
public enum LogitsRequest: Sendable {
    /// Only the last token's row `[vocab]`.
    case last
    /// Every evaluated token's row `[n, vocab]`.
    case all
}

/// One sequence being evaluated: the KV cache, scratch space and position of a model.
/// A session is used by one thread at a time; many sessions may share a model.
public final class Session {
    /// The model the session runs (shared, read-only).
    public let model: Model
    /// Most tokens the session holds.
    public let contextLength: Int
    /// Bytes of the KV cache (keys and values of every layer; sliding-window layers hold only
    /// their window and a batch).
    public var kvCacheBytes: Int { zip(keys, values).reduce(0) { $0 + $1.0.byteCount + $1.1.byteCount } }
    /// Compute threads.
    public let threads: Int
    /// Most tokens evaluated in one batched step.
    public let batchSize: Int
    /// The expert level (index into the stored levels) every expert runs at.
    public let expertLevel: Int
    /// The memory budget in bytes (nil: none).
    public let budget: Int?
    /// Tokens evaluated so far (the position of the next token).
    public internal(set) var position = 0
    /// Called for each MoE layer and token with the selected expert ids and their weights
    /// (descending router probability). For tests and profiling; nil costs nothing.
    package var routingObserver: ((_ layer: Int, _ position: Int, _ experts: [Int], _ weights: [Float]) -> Void)?
    /// Called for each expert a MoE step runs with the level it runs at (-1: skipped); `position`
    /// is the session's position when the step started. For tests and experiments.
    package var expertLevelObserver: ((_ position: Int, _ layer: Int, _ expert: Int, _ level: Int) -> Void)?
    /// Called for each expert a MoE step runs with the input rows routed to it (`count × hidden`
    /// floats, valid during the call). For profiling; nil costs nothing.
    package var expertInputObserver:
        ((_ layer: Int, _ expert: Int, _ rows: UnsafePointer<Float>, _ count: Int) -> Void)?
    /// Forces the level of each expert a MoE step runs (-1: skip it), replacing the session's
    /// choice. For tests and experiments (e.g. replaying the levels another run chose).
    package var expertLevelOverride: ((_ position: Int, _ layer: Int, _ expert: Int) -> Int)? {
        get { scheduler.levelOverride }
        set { scheduler.levelOverride = newValue }
    }
    /// Token-level precision (nil: off), its low level, and the prefetch depth (0: off).
    public var tokenPrecision: TokenPrecision? { scheduler.tokenPrecision }
    /// The level token-level precision reads below `expertLevel` (equal to it when off).
    public var lowLevel: Int { scheduler.lowLevel }
    /// Layers ahead whose experts are read before use (0: off).
    public var prefetchDepth: Int { scheduler.prefetchDepth }
    /// Records compute and I/O spans for `bench --timeline` while set (nil: nothing recorded).
    package var timeline: Timeline? {
        didSet { expertCache?.timeline = timeline }
    }
    /// Precision choices and prediction quality so far.
    public var schedulerStatistics: SchedulerStatistics { scheduler.statistics }
    /// Every decision about experts other than computing them.
    let scheduler: Scheduler

    /// The budgeted expert cache; nil when experts come from the mapping.
    package let expertCache: ExpertCache?
    /// Under a budget with a separate output head: embedding rows read per token, not kept resident.
    let embeddingRows: EmbeddingRows?
    /// What the expert cache did so far (nil without a budget).
    public var cacheStatistics: CacheStatistics? { expertCache?.statistics }
    /// How the expert cache reads (nil without a budget), e.g. "io_uring, O_DIRECT, fixed buffers, depth 32".
    public var ioSummary: String? { expertCache?.lane.summary }

    let config: ModelConfig
    /// Where experts run (the CPU today).
    let backend: ExecutionBackend
    /// How the routers choose experts.
    let routing: RouterChoice
    let keys: [KVBuffer]  // per layer [contextLength (or window + batch − 1), kvDim]
    let values: [KVBuffer]
    let scratch: Scratch

    /// Compute threads a session may ask for per core (more only adds scratch and contention).
    public static let threadsPerCore = 8

    /// A session of `model` with `options`: throws for options the model or the machine cannot honour (a context beyond the model's, a budget too small, a precision not stored).
    public init(model: Model, options: SessionOptions = .init()) throws(SparrowError) {
        self.model = model
        config = model.config
        let ctx = options.contextLength ?? min(config.maxPositions, 8192)
        guard ctx > 0 else { throw .invalidArgument("context length must be positive") }
        guard ctx <= config.maxPositions else {
            throw .invalidArgument(
                "context length \(ctx) exceeds the model's \(config.maxPositions) positions (max_position_embeddings)")
        }
        guard options.batchSize > 0 else { throw .invalidArgument("batch size must be positive") }
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
        if let t = options.threads, t > Self.threadsPerCore * cores {
            throw .invalidArgument(
                "\(t) threads for \(cores) cores: at most \(Self.threadsPerCore * cores) (\(Self.threadsPerCore) per core)"
            )
        }
        contextLength = ctx
        threads = max(1, options.threads ?? cores)
        // A batch never holds more tokens than the context, nor, under a budget, more scratch than an
        // eighth of it (wide experts make a 64-token batch's intermediates tens of MiB).
        let affordable = options.budget.map { max(8, $0 / 8 / Scratch.bytesPerBatchToken(config: model.config)) }
        batchSize = min(options.batchSize, ctx, affordable ?? .max)
        budget = options.budget
        let top = try Self.requestedLevel(options.expertBits, stored: model.expertBits)
        let kvDim = config.latentAttention?.cachedWidth ?? config.kvHeadCount * config.headDim
        let valueDim = config.latentAttention == nil ? kvDim : 0  // the latent serves keys and values
        let rows = (0..<config.layerCount).map { [batchSize, config] l in
            config.window(layer: l).map { min(ctx, $0 + batchSize - 1) } ?? ctx
        }
        keys = rows.map { KVBuffer(rows: $0, width: kvDim, type: options.kvType) }
        values = rows.map { KVBuffer(rows: $0, width: valueDim, type: options.kvType) }
        let budgeted = options.budget != nil || options.expertCacheBytes != nil
        let span = budgeted ? min(ctx, Self.promptSpanBatches * batchSize) : 0  // `Session+Prompt`
        scratch = Scratch(config: config, batch: batchSize, context: ctx, threads: threads, promptSpan: span)
        backend = CPUBackend(scratch: scratch, config: config)
        routing = RouterChoice(config: config)
        embeddingRows = try Self.residentForBudget(model: model, options: options)
        // Without a requested precision, a budget too small for a level's top-k gets the highest
        // stored level it can hold (the error of the starting level if none fits).
        var level = Self.defaultLevel(model: model, requested: top, options: options)
        var firstFailure: SparrowError?
        while true {
            let scheduler = try Scheduler(model: model, expertLevel: level, options: options)
            do throws(SparrowError) {
                expertCache =
                    budgeted
                    ? try Self.cache(model: model, scheduler: scheduler, options: options) : nil
                self.scheduler = scheduler
                expertLevel = level
                break
            } catch {
                guard case .budgetTooSmall = error, options.expertBits == nil, level > 0 else {
                    throw firstFailure ?? error
                }
                firstFailure = firstFailure ?? error
                level -= 1
            }
        }
    }

    /// Under a budget: the embedding rows read per use (when the output head is separate), and,
    /// when the cache is sized from the budget, the rest of the dense weights made resident now,
    /// once, so that every measurement of what is resident sees them.
    private static func residentForBudget(model: Model, options: SessionOptions) throws(SparrowError)
        -> EmbeddingRows?
    {
        guard options.budget != nil || options.expertCacheBytes != nil else { return nil }
        let rows = model.config.tieWordEmbeddings ? nil : try EmbeddingRows(model: model, faults: options.io.faults)
        if options.expertCacheBytes == nil { model.touchDense(skipping: rows?.ranges ?? []) }
        return rows
    }

    /// The level a session starts from: the `requested` one, except that without a requested
    /// precision a budgeted cache that cannot hold every expert at the highest stored level
    /// streams the stored 4-bit level when there is one below it (half the bytes per miss of 8
    /// bits: 1.7× the decode speed at 40 % of the widened demo for +0.03 % perplexity; RESULTS.md).
    private static func defaultLevel(model: Model, requested: Int, options: SessionOptions) -> Int {
        guard options.expertBits == nil, options.budget != nil || options.expertCacheBytes != nil,
            let four = model.expertBits.firstIndex(of: 4), four < requested,
            !ExpertCache.wouldHoldEveryRecord(model: model, level: requested, options: options)
        else { return requested }
        return four
    }

    /// The stored level of `bits` (nil: the highest), or an error naming the stored ones.
    private static func requestedLevel(_ bits: Int?, stored: [Int]) throws(SparrowError) -> Int {
        guard let bits else { return max(0, stored.count - 1) }
        guard let level = stored.firstIndex(of: bits) else {
            throw .invalidArgument(
                "\(bits)-bit experts requested but the file stores levels \(stored.map(String.init).joined(separator: ", ")) bits"
            )
        }
        return level
    }

    /// The budgeted session's expert cache at the scheduler's level (token-level precision off when
    /// every expert fits at full precision: it has nothing to save then).
    private static func cache(
        model: Model, scheduler: Scheduler, options: SessionOptions
    ) throws(SparrowError) -> ExpertCache {
        let low = scheduler.lowSlotShare.map { (level: scheduler.lowLevel, share: $0) }
        let cache = try ExpertCache.forSession(model: model, level: scheduler.expertLevel, low: low, options: options)
        if cache.holdsEveryRecord { scheduler.fullPrecisionOnly() }
        return cache
    }

    /// Runs `body(task)` for task in 0..<tasks on the shared worker pool, or on the calling thread
    /// alone when the session has one thread (sessions of one thread each never meet in the pool).
    @inline(__always)
    func split(_ tasks: Int, _ body: (Int) -> Void) {
        if threads > 1 { Parallel.forEach(tasks, body) } else { for t in 0..<tasks { body(t) } }
    }

    /// Forgets all tokens (the KV cache is reused).
    public func reset() { position = 0 }

    /// Evaluates `tokens` after those already in the session and returns logits, row-major
    /// `[rows, vocab]` where rows is 1 for `.last` and `tokens.count` for `.all`.
    public func evaluate(_ tokens: [Int], logits request: LogitsRequest = .last) throws(SparrowError) -> [Float] {
        var out = [Float](repeating: 0, count: (request == .all ? tokens.count : 1) * config.vocabSize)
        var failure: SparrowError?
        tokens.withUnsafeBufferPointer { t in
            out.withUnsafeMutableBufferPointer { o in
                do throws(SparrowError) { try evaluate(t, request: request, into: o.baseAddress!) } catch {
                    failure = error
                }
            }
        }
        if let failure { throw failure }
        return out
    }

    /// The non-allocating form: evaluates `tokens` and writes the requested logits rows to `dest`
    /// (room for `vocab` floats, or `tokens.count × vocab` for `.all`).
    public func evaluate(
        _ tokens: UnsafeBufferPointer<Int>, request: LogitsRequest, into dest: UnsafeMutablePointer<Float>
    ) throws(SparrowError) {
        guard !tokens.isEmpty else { throw .invalidArgument("no tokens to evaluate") }
        guard position + tokens.count <= contextLength else { throw .contextFull(limit: contextLength) }
        let vocab = config.vocabSize
        for t in tokens where t < 0 || t >= vocab {
            throw .invalidArgument("token id \(t) is outside the vocabulary (0..<\(vocab))")
        }
        try model.checkFile()
        var start = 0
        while start < tokens.count {
            let rest = tokens.count - start
            // More than a batch under a budget: layer by layer over a span (its experts read once).
            let n = rest > batchSize && promptSpan > batchSize ? min(rest, promptSpan) : min(batchSize, rest)
            let wantAll = request == .all
            let isLast = start + n == tokens.count
            let rows: UnsafeMutablePointer<Float>? = wantAll ? dest + start * vocab : (isLast ? dest : nil)
            let part = UnsafeBufferPointer(rebasing: tokens[start..<(start + n)])
            if n > batchSize {
                try prompt(part, logitsInto: rows, allRows: wantAll)
            } else {
                try forward(part, logitsInto: rows, allRows: wantAll)
            }
            do throws(SparrowError) { try model.checkFile() } catch {
                position -= n  // what this step computed came from zeros
                throw error
            }
            start += n
        }
    }

}
