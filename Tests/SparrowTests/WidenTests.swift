import Foundation
import SparrowRuntime
import Testing

/// `Scripts/reference/widen_experts.py` widens a trained checkpoint's experts without changing what
/// it computes: the demo widened 2× (expert intermediate 256 → 512) keeps its greedy continuations
/// and its perplexity within 0.05 %, and its routing.
@Suite struct WidenTests {
    /// A Python that has numpy: the one on PATH, else the system's (Scripts/setup.sh installs
    /// python3-numpy for it).
    static let python: [String] = {
        for candidate in [["/usr/bin/env", "python3"], ["/usr/bin/python3"]] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: candidate[0])
            p.arguments = Array(candidate.dropFirst()) + ["-c", "import numpy"]
            p.standardError = FileHandle.nullDevice
            if (try? p.run()) != nil {
                p.waitUntilExit()
                if p.terminationStatus == 0 { return candidate }
            }
        }
        return ["/usr/bin/env", "python3"]
    }()

    /// Runs the script.
    static func widen(_ source: String, factor: Int, noise: Double = 0.005, into out: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python[0])
        p.arguments =
            Array(python.dropFirst()) + [
                Paths.repo + "/Scripts/reference/widen_experts.py", source, out, "--factor", "\(factor)", "--seed", "1",
                "--noise", "\(noise)"
            ]
        let errors = Pipe()
        p.standardError = errors
        try p.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "widen_experts.py failed: \(message)")
    }

    @Test func widenedDemoComputesTheSame() throws {
        let dir = Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.widen(Paths.demo, factor: 2, into: dir + "/wide")
        let wide = try Model(path: try Converted.path(of: dir + "/wide", tag: "wide-float"))
        let demo = try Converted.model(Paths.demo)
        #expect(wide.config.expertIntermediateSize == 2 * demo.config.expertIntermediateSize)
        #expect(wide.config.hiddenSize == demo.config.hiddenSize && wide.config.expertCount == demo.config.expertCount)

        let tokens = try Paths.demoTokens(2048)
        let a = try Perplexity.evaluate(model: demo, tokens: tokens, window: 256)
        let b = try Perplexity.evaluate(model: wide, tokens: tokens, window: 256)
        #expect(abs(b.perplexity / a.perplexity - 1) < 0.0005, "perplexity \(b.perplexity) vs \(a.perplexity)")

        func continuation(_ model: Model, routes: inout [String]) throws -> [Int] {
            let session = try Session(model: model, options: .init(contextLength: 128))
            var seen: [String] = []
            session.routingObserver = { layer, position, experts, _ in seen.append("\(layer)/\(position):\(experts)") }
            var out: [Int] = []
            _ = try session.generate(prompt: Array(tokens.prefix(32)), maxTokens: 32, stopAtEOS: false) {
                out.append($0)
                return true
            }
            routes = seen
            return out
        }
        var routesA: [String] = []
        var routesB: [String] = []
        #expect(try continuation(demo, routes: &routesA) == continuation(wide, routes: &routesB))
        let same = zip(routesA, routesB).filter { $0 == $1 }.count
        #expect(Double(same) >= 0.99 * Double(routesA.count), "routing agrees on \(same) of \(routesA.count) choices")
    }

    /// Every layout the script knows (Qwen2-MoE with its shared expert in bf16, Mixtral's w1/w3/w2
    /// in f16, OLMoE in f32, Qwen3-MoE): the widened fixture's logits match the original's. (Without
    /// gate noise: these random-init routers have near ties that a 0.5 % noise can flip.)
    @Test(arguments: Paths.widenable)
    func everyLayoutComputesTheSame(architecture: String) throws {
        let source = Paths.fixtures + "/" + architecture
        let dir = Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.widen(source, factor: 3, noise: 0, into: dir + "/wide")
        let wide = try Model(path: try Converted.path(of: dir + "/wide", tag: "wide3-\(architecture)"))
        let original = try Converted.model(source)
        #expect(wide.config.expertIntermediateSize == 3 * original.config.expertIntermediateSize)
        #expect(wide.config.sharedExpertIntermediateSize == 3 * original.config.sharedExpertIntermediateSize)
        let tokens = Array(0..<24).map { ($0 * 7919 + 11) % original.config.vocabSize }
        let a = try Session(model: original).evaluate(tokens, logits: .all)
        let b = try Session(model: wide).evaluate(tokens, logits: .all)
        let scale = a.map(abs).max()!
        #expect(maxAbsDiff(a, b) <= 0.01 * scale, "max difference \(maxAbsDiff(a, b)) of max |logit| \(scale)")
    }
}
