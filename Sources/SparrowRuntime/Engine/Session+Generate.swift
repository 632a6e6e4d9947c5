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
        let start = DispatchTime.now().uptimeNanoseconds
        var logits = try evaluate(prompt, logits: .last)
        let afterPrompt = DispatchTime.now().uptimeNanoseconds
        stats.promptSeconds = Double(afterPrompt - start) / 1e9
        let eos = Set(config.eosTokenIds)
        for i in 0..<maxTokens {
            let next = logits.withUnsafeBufferPointer { sampler.sample($0, history: history) }
            history.append(next)
            stats.generatedTokens += 1
            if !onToken(next) || (stopAtEOS && eos.contains(next)) || i == maxTokens - 1 { break }
            if position >= contextLength { break }
            logits = try evaluate([next], logits: .last)
        }
        stats.decodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - afterPrompt) / 1e9
        return stats
    }
}
