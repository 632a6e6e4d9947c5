import Foundation

/// Perplexity over non-overlapping windows: each window is evaluated from position 0 and tokens
/// 1..<window are scored given the ones before them (the protocol of the fixtures' eval.json).
public enum Perplexity {
    /// What a perplexity evaluation measured.
    public struct Result: Sendable {
        /// exp(mean negative log-likelihood).
        public var perplexity: Double
        /// Mean negative log-likelihood per scored token, in nats.
        public var meanNLL: Double
        /// Tokens whose prediction was scored.
        public var scoredTokens: Int
        /// Context windows the text was evaluated in.
        public var windows: Int
    }

    /// Tokenises `text` and scores it.
    public static func evaluate(
        model: Model, text: String, window: Int, maxWindows: Int? = nil, options: SessionOptions = .init(),
        stepwise: Bool = false, progress: ((Int, Int) -> Void)? = nil
    ) throws(SparrowError) -> Result {
        try evaluate(
            model: model, tokens: model.tokenizer.encode(text), window: window, maxWindows: maxWindows,
            options: options, stepwise: stepwise, progress: progress)
    }

    /// Scores token ids. `stepwise` evaluates each window one token at a time (the decode path,
    /// where per-token techniques such as token-level precision act) instead of in batches.
    public static func evaluate(
        model: Model, tokens: [Int], window: Int, maxWindows: Int? = nil, options: SessionOptions = .init(),
        stepwise: Bool = false, progress: ((Int, Int) -> Void)? = nil
    ) throws(SparrowError) -> Result {
        guard window >= 2 else { throw .invalidArgument("window must be at least 2 tokens") }
        var count = tokens.count / window
        if let m = maxWindows { count = min(count, m) }
        guard count > 0 else {
            throw .invalidArgument("the text has \(tokens.count) tokens, fewer than one window of \(window)")
        }
        var o = options
        o.contextLength = window
        o.batchSize = min(window, 128)
        let session = try Session(model: model, options: o)
        let vocab = model.config.vocabSize
        var nll = 0.0
        var scored = 0
        for w in 0..<count {
            session.reset()
            let ids = Array(tokens[(w * window)..<((w + 1) * window)])
            var logits: [Float]
            if stepwise {
                logits = []
                logits.reserveCapacity(window * vocab)
                for t in ids { logits += try session.evaluate([t], logits: .last) }
            } else {
                logits = try session.evaluate(ids, logits: .all)
            }
            logits.withUnsafeBufferPointer { l in
                for t in 0..<(window - 1) {
                    let row = l.baseAddress! + t * vocab
                    var m = -Float.infinity
                    for i in 0..<vocab { m = max(m, row[i]) }
                    var sum = 0.0
                    for i in 0..<vocab { sum += Double(exp(row[i] - m)) }
                    nll += Double(m) + log(sum) - Double(row[ids[t + 1]])
                    scored += 1
                }
            }
            progress?(w + 1, count)
        }
        let mean = nll / Double(scored)
        return Result(perplexity: exp(mean), meanNLL: mean, scoredTokens: scored, windows: count)
    }
}
