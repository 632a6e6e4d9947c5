import Foundation

/// How the next token is chosen from logits.
public struct SamplingOptions: Sendable, Equatable {
    /// 0 means greedy (argmax).
    public var temperature: Float
    /// Keep only the k most likely tokens (0: all).
    public var topK: Int
    /// Keep the smallest set whose probability reaches p (1: all).
    public var topP: Float
    /// Divide positive logits (multiply negative ones) of already seen tokens by this (1: off).
    public var repetitionPenalty: Float
    /// How many recent tokens the repetition penalty looks at.
    public var repetitionWindow: Int
    /// Seed of the random generator (same seed, same options, same logits → same tokens).
    public var seed: UInt64

    /// Sampling options; the defaults are greedy decoding.
    public init(
        temperature: Float = 0, topK: Int = 0, topP: Float = 1, repetitionPenalty: Float = 1,
        repetitionWindow: Int = 64, seed: UInt64 = 0
    ) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.repetitionPenalty = repetitionPenalty
        self.repetitionWindow = repetitionWindow
        self.seed = seed
    }

    /// Argmax decoding.
    public static let greedy = SamplingOptions()

    /// Checks the ranges; returns a message for the first bad value.
    public func validate() throws(SparrowError) {
        guard temperature >= 0, temperature.isFinite else { throw .invalidArgument("temperature must be ≥ 0") }
        guard topK >= 0 else { throw .invalidArgument("top-k must be ≥ 0") }
        guard topP > 0, topP <= 1 else { throw .invalidArgument("top-p must be in (0, 1]") }
        guard repetitionPenalty > 0, repetitionPenalty.isFinite else {
            throw .invalidArgument("repetition penalty must be > 0")
        }
    }
}

/// Chooses tokens from logits. Holds its random state, so one sampler per sequence.
public struct Sampler {
    /// How tokens are drawn.
    public let options: SamplingOptions
    private var rng: SplitMix64
    private var probs: [Float] = []
    private var order: [Int32] = []

    /// A sampler drawing with `options` (seeded: the same seed gives the same tokens).
    public init(options: SamplingOptions) {
        self.options = options
        rng = SplitMix64(seed: options.seed)
    }

    /// The next token given `logits` (one row) and the tokens seen so far (for the repetition penalty).
    public mutating func sample(_ logits: UnsafeBufferPointer<Float>, history: [Int] = []) -> Int {
        let n = logits.count
        if probs.count != n { probs = [Float](repeating: 0, count: n) }
        for i in 0..<n { probs[i] = logits[i] }
        if options.repetitionPenalty != 1 {
            for t in Set(history.suffix(options.repetitionWindow)) where t >= 0 && t < n {
                probs[t] = probs[t] > 0 ? probs[t] / options.repetitionPenalty : probs[t] * options.repetitionPenalty
            }
        }
        if options.temperature == 0 {
            var best = 0
            for i in 1..<n where probs[i] > probs[best] { best = i }
            return best
        }
        // Candidates sorted by logit, cut by top-k, softmax with temperature, cut by top-p.
        if order.count != n { order = (0..<Int32(n)).map { $0 } }
        for i in 0..<n { order[i] = Int32(i) }
        let p = probs
        order.sort { p[Int($0)] > p[Int($1)] || (p[Int($0)] == p[Int($1)] && $0 < $1) }
        let k = options.topK > 0 ? min(options.topK, n) : n
        let top = p[Int(order[0])]
        var weights = [Float](repeating: 0, count: k)
        var sum: Float = 0
        for j in 0..<k {
            weights[j] = exp((p[Int(order[j])] - top) / options.temperature)
            sum += weights[j]
        }
        var keep = k
        if options.topP < 1 {
            var acc: Float = 0
            for j in 0..<k {
                acc += weights[j] / sum
                if acc >= options.topP {
                    keep = j + 1
                    break
                }
            }
        }
        var total: Float = 0
        for j in 0..<keep { total += weights[j] }
        let r = Float(rng.nextDouble()) * total
        var acc: Float = 0
        for j in 0..<keep {
            acc += weights[j]
            if r < acc { return Int(order[j]) }
        }
        return Int(order[keep - 1])
    }
}

/// A small, fast, seedable generator (SplitMix64) so sampling is reproducible across platforms.
package struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    package init(seed: UInt64) { state = seed }
    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    package mutating func nextDouble() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}
