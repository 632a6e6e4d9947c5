import Foundation
import SparrowRuntime
import Testing

@Suite struct SamplerTests {
    let logits: [Float] = [0.1, 2.0, -1.0, 1.9, 0.5]

    func draw(_ o: SamplingOptions, history: [Int] = [], n: Int = 1) -> [Int] {
        var s = Sampler(options: o)
        return (0..<n).map { _ in logits.withUnsafeBufferPointer { s.sample($0, history: history) } }
    }

    @Test func greedyIsArgmax() { #expect(draw(.greedy) == [1]) }

    @Test func topKOneAndTinyTopPAreGreedy() {
        #expect(Set(draw(.init(temperature: 1, topK: 1, seed: 3), n: 50)) == [1])
        #expect(Set(draw(.init(temperature: 1, topP: 0.01, seed: 3), n: 50)) == [1])
    }

    @Test func topKLimitsTheCandidates() {
        #expect(Set(draw(.init(temperature: 5, topK: 2, seed: 1), n: 400)) == [1, 3])
    }

    @Test func seedReproduces() {
        let o = SamplingOptions(temperature: 1.5, seed: 42)
        #expect(draw(o, n: 100) == draw(o, n: 100))
        #expect(draw(o, n: 100) != draw(.init(temperature: 1.5, seed: 43), n: 100))
    }

    @Test func frequenciesFollowSoftmax() {
        let n = 20000
        let d = draw(.init(temperature: 1, seed: 9), n: n)
        let z = logits.map { exp($0) }.reduce(0, +)
        for i in 0..<logits.count {
            let f = Double(d.filter { $0 == i }.count) / Double(n)
            #expect(abs(f - Double(exp(logits[i]) / z)) < 0.015)
        }
    }

    @Test func repetitionPenaltyDemotesSeenTokens() {
        #expect(draw(.init(repetitionPenalty: 2), history: [1]) == [3])
    }

    @Test func badOptionsAreRejected() {
        #expect(throws: SparrowError.self) { try SamplingOptions(temperature: -1).validate() }
        #expect(throws: SparrowError.self) { try SamplingOptions(topP: 0).validate() }
        #expect(throws: SparrowError.self) { try SamplingOptions(repetitionPenalty: 0).validate() }
    }
}
