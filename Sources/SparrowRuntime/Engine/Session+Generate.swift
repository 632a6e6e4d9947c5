import Foundation

/// Timing of one generation.
public struct GenerationStats: Sendable, Equatable {
    /// Tokens of the prompt evaluated.
    public var promptTokens = 0
    /// Tokens generated so far.
    public var generatedTokens = 0
    /// Seconds spent evaluating the prompt (to the first token's logits).
    public var promptSeconds = 0.0
    /// Seconds spent generating after the prompt.
    public var decodeSeconds = 0.0

    /// Nothing counted yet.
    public init() {}

    /// Prompt tokens per second (0 before the prompt ran).
    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(promptTokens) / promptSeconds : 0 }
    /// Generated tokens per second (0 before the first).
    public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(generatedTokens) / decodeSeconds : 0 }
}

/// What to generate: how many tokens, how each is chosen, and whether an end-of-sequence token stops.
public struct GenerationOptions: Sendable, Equatable {
    /// Tokens to generate at most (≥ 0).
    public var maxTokens: Int
    /// How each token is drawn from the logits.
    public var sampling: SamplingOptions
    /// Stop after the model's end-of-sequence token.
    public var stopAtEOS: Bool

    /// Generation of up to `maxTokens` tokens drawn with `sampling`, stopping at an end-of-sequence token when `stopAtEOS`.
    public init(maxTokens: Int = 64, sampling: SamplingOptions = .greedy, stopAtEOS: Bool = true) {
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopAtEOS = stopAtEOS
    }
}

/// One generated token.
public struct GeneratedToken: Sendable, Equatable {
    /// The token's id.
    public var id: Int
    /// The whole UTF-8 characters this token completes: bytes of a character split over several
    /// tokens arrive with the last of them (so concatenating `text` gives the generated text).
    public var text: String
}

/// A generation driven one token at a time: the first `next()` evaluates the prompt, each call
/// samples a token, and the token is evaluated at the following call (so the last one is never
/// evaluated needlessly). `Session.generate` and the async `TokenStream` both step one.
public struct TokenGenerator {
    /// The session the tokens are generated in.
    public let session: Session
    /// How many tokens, and how they are drawn.
    public let options: GenerationOptions
    /// Timing so far.
    public private(set) var stats = GenerationStats()
    private var prompt: [Int]?
    private var pending: Int?
    private var finished = false
    private var sampler: Sampler
    private var history: [Int]
    private var logits: [Float]
    private var decoder = TextStreamDecoder()
    private var afterPrompt: UInt64 = 0

    /// A generator that evaluates `prompt` in `session` on the first `next()`, then yields one token per call.
    public init(session: Session, prompt: [Int], options: GenerationOptions) {
        self.session = session
        self.options = options
        self.prompt = prompt
        sampler = Sampler(options: options.sampling)
        history = prompt
        // What the context can still take, not what was asked for (max_tokens may be INT32_MAX).
        history.reserveCapacity(
            prompt.count + min(max(0, options.maxTokens), max(0, session.contextLength - session.position)))
        logits = [Float](repeating: 0, count: session.model.config.vocabSize)
        stats.promptTokens = prompt.count
    }

    /// The next token, nil when the generation is over (token limit, end of sequence, full context).
    public mutating func next() throws(SparrowError) -> GeneratedToken? {
        if finished { return nil }
        if let p = prompt {
            try options.sampling.validate()
            guard options.maxTokens >= 0 else { throw .invalidArgument("token count must be ≥ 0") }
            prompt = nil
            let start = DispatchTime.now().uptimeNanoseconds
            try evaluate(p)
            afterPrompt = DispatchTime.now().uptimeNanoseconds
            stats.promptSeconds = Double(afterPrompt - start) / 1e9
        } else if let t = pending {
            pending = nil
            try evaluate([t])
        }
        guard stats.generatedTokens < options.maxTokens else {
            finished = true
            return nil
        }
        let id = logits.withUnsafeBufferPointer { sampler.sample($0, history: history) }
        history.append(id)
        stats.generatedTokens += 1
        var text = decoder.append(session.model.tokenizer.bytes(of: id))
        let eos = options.stopAtEOS && session.model.config.eosTokenIds.contains(id)
        if eos || stats.generatedTokens == options.maxTokens || session.position >= session.contextLength {
            finished = true
            text += decoder.flush()
        } else {
            pending = id
        }
        stats.decodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - afterPrompt) / 1e9
        return GeneratedToken(id: id, text: text)
    }

    private mutating func evaluate(_ tokens: [Int]) throws(SparrowError) {
        var failure: SparrowError?
        tokens.withUnsafeBufferPointer { t in
            logits.withUnsafeMutableBufferPointer { l in
                do throws(SparrowError) { try session.evaluate(t, request: .last, into: l.baseAddress!) } catch {
                    failure = error
                }
            }
        }
        if let failure { throw failure }
    }
}

extension Session {
    /// Generates up to `maxTokens` tokens after `prompt` (token ids). `onToken(id)` is called for each
    /// new token, on the caller's thread; return false to stop. Stops at an end-of-sequence token
    /// when `stopAtEOS` is true.
    @discardableResult
    public func generate(
        prompt: [Int], maxTokens: Int, sampling: SamplingOptions = .greedy, stopAtEOS: Bool = true,
        onToken: (Int) -> Bool
    ) throws(SparrowError) -> GenerationStats {
        try generate(
            prompt: prompt, options: GenerationOptions(maxTokens: maxTokens, sampling: sampling, stopAtEOS: stopAtEOS)
        ) { onToken($0.id) }
    }

    /// Generates after `prompt` as `options` say, calling `onToken` for each token (with its text)
    /// on the caller's thread; return false to stop.
    @discardableResult
    public func generate(
        prompt: [Int], options: GenerationOptions, onToken: (GeneratedToken) -> Bool
    ) throws(SparrowError) -> GenerationStats {
        var generator = TokenGenerator(session: self, prompt: prompt, options: options)
        while let token = try generator.next() {
            if !onToken(token) { break }
        }
        return generator.stats
    }
}
