import Foundation

/// Timing of one generation.
public struct GenerationStats: Sendable {
    public var promptTokens = 0
    public var generatedTokens = 0
    /// Seconds spent evaluating the prompt (to the first token's logits).
    public var promptSeconds = 0.0
    /// Seconds spent generating after the prompt.
    public var decodeSeconds = 0.0

    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(promptTokens) / promptSeconds : 0 }
    public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(generatedTokens) / decodeSeconds : 0 }
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
        try sampling.validate()
        guard maxTokens >= 0 else { throw .invalidArgument("token count must be ≥ 0") }
        var stats = GenerationStats()
        stats.promptTokens = prompt.count
        var sampler = Sampler(options: sampling)
        var history = prompt
        history.reserveCapacity(prompt.count + maxTokens)
        let start = DispatchTime.now().uptimeNanoseconds
        let logits = UnsafeMutableBufferPointer<Float>.allocate(capacity: config.vocabSize)
        defer { logits.deallocate() }
        var failure: SparrowError?
        prompt.withUnsafeBufferPointer { p in
            do throws(SparrowError) { try evaluate(p, request: .last, into: logits.baseAddress!) } catch { failure = error }
        }
        if let failure { throw failure }
        let afterPrompt = DispatchTime.now().uptimeNanoseconds
        stats.promptSeconds = Double(afterPrompt - start) / 1e9
        let eos = config.eosTokenIds
        var next = 0
        for i in 0..<maxTokens {
            next = sampler.sample(UnsafeBufferPointer(logits), history: history)
            history.append(next)
            stats.generatedTokens += 1
            if !onToken(next) || (stopAtEOS && eos.contains(next)) || i == maxTokens - 1 { break }
            if position >= contextLength { break }
            try withUnsafePointer(to: &next) { (p: UnsafePointer<Int>) throws(SparrowError) in
                try evaluate(UnsafeBufferPointer(start: p, count: 1), request: .last, into: logits.baseAddress!)
            }
        }
        stats.decodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - afterPrompt) / 1e9
        return stats
    }
}
