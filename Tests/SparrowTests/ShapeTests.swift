import Foundation
import SparrowRuntime
import Testing

/// The shape of the big MoE models at tiny width (`Scripts/reference/make_shaped.py`: 48 layers ×
/// 128 experts top-8, like Qwen3-30B-A3B — 6 144 expert records): it converts, opens, verifies, and
/// runs resident and under a budget with the same logits (one level throughout).
@Suite struct ShapeTests {
    @Test func bigModelShapeRunsResidentAndBudgeted() throws {
        let dir = Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: WidenTests.python[0])
        p.arguments =
            Array(WidenTests.python.dropFirst()) + [
                Paths.repo + "/Scripts/reference/make_shaped.py", dir + "/shaped", "--layers", "48", "--experts", "128",
                "--top-k", "8"
            ]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "make_shaped.py failed")

        let path = try Converted.path(of: dir + "/shaped", options: ExpertCacheTests.scheme, tag: "shaped-q248")
        let model = try Model(path: path)
        #expect(model.config.layerCount == 48 && model.config.expertCount == 128 && model.config.expertsPerToken == 8)
        #expect(model.file.experts.count == 6144)
        try model.file.verifyAll()

        let tokens = try Paths.demoTokens(24)
        func run(_ session: Session) throws -> [Float] {
            var out = try session.evaluate(Array(tokens.prefix(8)), logits: .all)
            for t in tokens.dropFirst(8) { out += try session.evaluate([t], logits: .all) }
            return out
        }
        let resident = try run(try Session(model: model, options: .init(expertBits: 4)))
        let slot = ExpertCache.slotSize(file: model.file, level: 1)
        // Room for two layers' worth of experts out of 48: nearly every use is read from the file.
        let budgeted = try Session(
            model: model, options: .init(expertBits: 4, expertCacheBytes: 16 * slot, tokenPrecision: nil))
        #expect(try run(budgeted) == resident)
        #expect(budgeted.expertCache!.statistics.misses > 1000)
    }
}
