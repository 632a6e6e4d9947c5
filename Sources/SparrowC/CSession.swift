import CSparrowABI
import Foundation
import Sparrow

// The C interface's session calls (Include/sparrow.h). Each checks every pointer first.

/// Session options from C params (zero fields: defaults); with token-level precision, the
/// profile beside the model file when there is one.
private func sessionOptions(_ p: sparrow_session_params, modelPath: String) throws(CFailure) -> SessionOptions {
    guard p.threads >= 0, p.context_length >= 0, p.batch_size >= 0, p.expert_bits >= 0 else {
        throw CFailure(
            SPARROW_ERR_INVALID_ARGUMENT, "threads, context_length, batch_size and expert_bits must be ≥ 0 (0: default)"
        )
    }
    let io: IOMode
    switch p.io_backend {
    case SPARROW_IO_AUTO: io = .auto
    case SPARROW_IO_URING: io = .uring
    case SPARROW_IO_PREAD: io = .pread
    default:
        throw CFailure(SPARROW_ERR_INVALID_ARGUMENT, "io_backend \(p.io_backend.rawValue) is not a sparrow_io_backend")
    }
    let policy: CachePolicyKind
    switch p.cache_policy {
    case SPARROW_CACHE_LRU: policy = .lru
    case SPARROW_CACHE_LFU: policy = .lfu
    case SPARROW_CACHE_SCORE: policy = .score
    case SPARROW_CACHE_DISTANCE: policy = .distance
    default:
        throw CFailure(
            SPARROW_ERR_INVALID_ARGUMENT, "cache_policy \(p.cache_policy.rawValue) is not a sparrow_cache_policy")
    }
    let precision = try tokenPrecision(p)
    let kv: KVCacheType
    switch p.kv_type {
    case SPARROW_KV_F32: kv = .f32
    case SPARROW_KV_F16: kv = .f16
    default: throw CFailure(SPARROW_ERR_INVALID_ARGUMENT, "kv_type \(p.kv_type.rawValue) is not a sparrow_kv_type")
    }
    // A budget above what the model can use is capped (the expert cache never outgrows the experts).
    let budget = Int(clamping: p.memory_budget)
    return SessionOptions(
        contextLength: p.context_length > 0 ? Int(p.context_length) : nil,
        threads: p.threads > 0 ? Int(p.threads) : nil,
        batchSize: p.batch_size > 0 ? Int(p.batch_size) : 64, expertBits: p.expert_bits > 0 ? Int(p.expert_bits) : nil,
        budget: budget > 0 ? budget : nil, cachePolicy: policy, io: BlockReaderOptions(mode: io),
        kvType: kv, tokenPrecision: precision, prefetchDepth: Int(p.prefetch_depth),
        profile: precision == nil
            ? nil
            : try runtime { () throws(SparrowError) in try ExpertProfile.load(from: ExpertProfile.path(for: modelPath))
            },
        intraLayerPlan: p.intra_layer_plan)
}

/// Token-level precision from C params: nil with SPARROW_PRECISION_FIXED.
private func tokenPrecision(_ p: sparrow_session_params) throws(CFailure) -> TokenPrecision? {
    switch p.precision_policy {
    case SPARROW_PRECISION_FIXED: return nil
    case SPARROW_PRECISION_TOKEN:
        guard p.low_bits >= 0 else {
            throw CFailure(SPARROW_ERR_INVALID_ARGUMENT, "low_bits must be ≥ 0 (0: the lowest stored level)")
        }
        guard p.token_profile_tolerance >= 0, p.token_profile_tolerance <= 1 else {
            throw CFailure(SPARROW_ERR_INVALID_ARGUMENT, "token_profile_tolerance must be in 0…1 (0: off)")
        }
        return TokenPrecision(
            fullThreshold: p.token_full_threshold, lowThreshold: p.token_low_threshold,
            lowBits: p.low_bits > 0 ? Int(p.low_bits) : nil, allowSkip: p.allow_skip,
            upgradeInBackground: p.background_upgrades,
            profileTolerance: p.token_profile_tolerance > 0 ? Double(p.token_profile_tolerance) : nil)
    default:
        throw CFailure(
            SPARROW_ERR_INVALID_ARGUMENT,
            "precision_policy \(p.precision_policy.rawValue) is not a sparrow_precision_policy")
    }
}

/// Sampling options from C params, checked.
private func samplingOptions(_ p: sparrow_sample_params) throws(CFailure) -> SamplingOptions {
    try checkSize(p.struct_size, of: sparrow_sample_params.self, "sparrow_sample_params")
    guard p.repetition_window >= 0 else {
        throw CFailure(SPARROW_ERR_INVALID_ARGUMENT, "repetition_window must be ≥ 0")
    }
    let o = SamplingOptions(
        temperature: p.temperature, topK: Int(p.top_k), topP: p.top_p, repetitionPenalty: p.repetition_penalty,
        repetitionWindow: Int(p.repetition_window), seed: p.seed)
    try runtime { () throws(SparrowError) in try o.validate() }
    return o
}

/// `count` token ids from C, for a session with `room` positions left: more than fit is the
/// session's context-full error, raised before any is read.
private func tokenArray(_ tokens: UnsafePointer<Int32>?, _ count: Int, _ name: String, room: Int, limit: Int)
    throws(CFailure) -> [Int]
{
    let count = try cLength(count, "\(name) count")
    guard count > 0 else { throw CFailure(SPARROW_ERR_INVALID_ARGUMENT, "\(name): no tokens (count is 0)") }
    guard count <= room else { throw CFailure(SparrowError.contextFull(limit: limit)) }
    guard let tokens else { throw .null(name) }
    return (0..<count).map { Int(tokens[$0]) }
}

@_cdecl("sparrow_session_create")
public func sparrow_session_create_impl(
    _ model: OpaquePointer?, _ params: UnsafePointer<sparrow_session_params>?,
    _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> sparrow_status {
    entry { () throws(CFailure) in
        guard let out else { throw .null("session (the output pointer)") }
        out.pointee = nil
        let m = try modelHandle(model)
        let p = try readParams(params, defaults: sparrow_session_default_params(), "sparrow_session_params")
        let options = try sessionOptions(p, modelPath: m.model.file.path)
        let session = try runtime { () throws(SparrowError) in try Session(model: m.model, options: options) }
        Handles.lock.withLock { m.sessions += 1 }
        out.pointee = Handles.add(SessionHandle(session: session, owner: m))
    }
}

@_cdecl("sparrow_session_free")
public func sparrow_session_free_impl(_ session: OpaquePointer?) -> sparrow_status {
    entry { () throws(CFailure) in
        guard Handles.remove(session, as: SessionHandle.self, { $0.owner.sessions -= 1 }) else {
            throw .invalidHandle("session")
        }
    }
}

@_cdecl("sparrow_session_reset")
public func sparrow_session_reset_impl(_ session: OpaquePointer?) -> sparrow_status {
    entry { () throws(CFailure) in
        let h = try sessionHandle(session)
        h.session.reset()
        h.logits = []
        h.sampler = nil
        h.history = []
    }
}

@_cdecl("sparrow_session_evaluate")
public func sparrow_session_evaluate_impl(_ session: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ count: Int)
    -> sparrow_status
{
    entry { () throws(CFailure) in
        let h = try sessionHandle(session)
        let ids = try tokenArray(
            tokens, count, "tokens", room: h.session.contextLength - h.session.position, limit: h.session.contextLength)
        h.logits = try runtime { () throws(SparrowError) in try h.session.evaluate(ids) }
        h.history += ids
    }
}

@_cdecl("sparrow_session_copy_state")
public func sparrow_session_copy_state_impl(_ destination: OpaquePointer?, _ source: OpaquePointer?) -> sparrow_status {
    entry { () throws(CFailure) in
        guard let d = Handles.find(destination, as: SessionHandle.self) else {
            throw .invalidHandle("destination session")
        }
        guard let s = Handles.find(source, as: SessionHandle.self) else { throw .invalidHandle("source session") }
        guard d.session.model === s.session.model else {
            throw CFailure(SPARROW_ERR_MODEL_MISMATCH, "the source and destination sessions belong to different models")
        }
        try runtime { () throws(SparrowError) in try d.session.copyState(from: s.session) }
        d.logits = s.logits
        d.history = s.history
        d.sampler = nil
    }
}

@_cdecl("sparrow_session_logits")
public func sparrow_session_logits_impl(
    _ session: OpaquePointer?, _ logits: UnsafeMutablePointer<Float>?, _ capacity: Int,
    _ count: UnsafeMutablePointer<Int>?
) -> sparrow_status {
    entry { () throws(CFailure) in
        let h = try sessionHandle(session)
        guard let count else { throw .null("count") }
        let capacity = cCapacity(capacity)
        let vocab = h.session.model.config.vocabSize
        count.pointee = vocab
        guard !h.logits.isEmpty else { throw CFailure(SPARROW_ERR_NO_DATA, "no logits yet: evaluate tokens first") }
        guard capacity >= vocab else {
            throw CFailure(SPARROW_ERR_BUFFER_TOO_SMALL, "\(vocab) logits do not fit in a buffer of \(capacity)")
        }
        guard let logits else { throw .null("logits") }
        h.logits.withUnsafeBufferPointer { logits.update(from: $0.baseAddress!, count: vocab) }
    }
}

@_cdecl("sparrow_session_sample")
public func sparrow_session_sample_impl(
    _ session: OpaquePointer?, _ params: UnsafePointer<sparrow_sample_params>?, _ token: UnsafeMutablePointer<Int32>?
) -> sparrow_status {
    entry { () throws(CFailure) in
        let h = try sessionHandle(session)
        guard let token else { throw .null("token") }
        let options =
            try params == nil
            ? .greedy
            : samplingOptions(readParams(params, defaults: sparrow_sample_default_params(), "sparrow_sample_params"))
        guard !h.logits.isEmpty else { throw CFailure(SPARROW_ERR_NO_DATA, "no logits yet: evaluate tokens first") }
        if h.sampler == nil || h.samplerOptions != options {
            h.sampler = Sampler(options: options)
            h.samplerOptions = options
        }
        let id = h.logits.withUnsafeBufferPointer { h.sampler!.sample($0, history: h.history) }
        token.pointee = Int32(id)
    }
}

@_cdecl("sparrow_generate")
public func sparrow_generate_impl(
    _ session: OpaquePointer?, _ prompt: UnsafePointer<Int32>?, _ promptCount: Int,
    _ params: UnsafePointer<sparrow_generate_params>?, _ callback: sparrow_token_callback?,
    _ userData: UnsafeMutableRawPointer?, _ stats: UnsafeMutablePointer<sparrow_generation_stats>?
) -> sparrow_status {
    entry { () throws(CFailure) in
        let h = try sessionHandle(session)
        if let stats {
            try checkSize(stats.pointee.struct_size, of: sparrow_generation_stats.self, "sparrow_generation_stats")
        }
        let p = try readParams(params, defaults: sparrow_generate_default_params(), "sparrow_generate_params")
        guard p.max_tokens >= 0 else { throw CFailure(SPARROW_ERR_INVALID_ARGUMENT, "max_tokens must be ≥ 0") }
        let options = GenerationOptions(
            maxTokens: Int(p.max_tokens), sampling: try samplingOptions(p.sample), stopAtEOS: p.stop_at_eos)
        let ids = try tokenArray(
            prompt, promptCount, "prompt", room: h.session.contextLength - h.session.position,
            limit: h.session.contextLength)
        var generator = TokenGenerator(session: h.session, prompt: ids, options: options)
        h.logits = []
        h.history += ids
        defer {
            if let stats {
                let s = generator.stats
                stats.pointee = sparrow_generation_stats(
                    struct_size: MemoryLayout<sparrow_generation_stats>.size, prompt_tokens: Int32(s.promptTokens),
                    generated_tokens: Int32(s.generatedTokens), prompt_seconds: s.promptSeconds,
                    decode_seconds: s.decodeSeconds)
            }
        }
        while let t = try runtime({ () throws(SparrowError) in try generator.next() }) {
            h.history.append(t.id)
            guard let callback else { continue }
            let more = t.text.withCString { callback(Int32(t.id), $0, t.text.utf8.count, userData) }
            if !more { break }
        }
    }
}

@_cdecl("sparrow_session_get_stats")
public func sparrow_session_get_stats_impl(
    _ session: OpaquePointer?, _ stats: UnsafeMutablePointer<sparrow_session_stats>?
) -> sparrow_status {
    entry { () throws(CFailure) in
        let h = try sessionHandle(session)
        guard let stats else { throw .null("stats") }
        try checkSize(stats.pointee.struct_size, of: sparrow_session_stats.self, "sparrow_session_stats")
        let s = h.session.statistics
        let c = s.cache ?? CacheStatistics()
        stats.pointee = sparrow_session_stats(
            struct_size: MemoryLayout<sparrow_session_stats>.size, position: Int32(s.position),
            context_length: Int32(s.contextLength), threads: Int32(s.threads), expert_bits: Int32(s.expertBits),
            memory_budget: UInt64(s.budget ?? 0), peak_rss: UInt64(s.peakRSS), cache_slots: Int32(c.slots),
            cache_slot_bytes: UInt64(c.slotBytes), cache_hits: UInt64(c.hits), cache_misses: UInt64(c.misses),
            cache_evictions: UInt64(c.evictions), bytes_read: UInt64(c.bytesRead), stall_seconds: c.stallSeconds)
    }
}

@_cdecl("sparrow_session_stats_json")
public func sparrow_session_stats_json_impl(
    _ session: OpaquePointer?, _ json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> sparrow_status {
    entry { () throws(CFailure) in
        guard let json else { throw .null("json") }
        json.pointee = nil
        let h = try sessionHandle(session)
        json.pointee = mallocString(try jsonString(h.session.statistics))
    }
}
