import Foundation
import SparrowFormat
import SparrowRuntime
import Testing

/// A model file changed under a running session: truncated (the mapping would raise SIGBUS) or
/// deleted. Truncation is an error on every call from then on, never a crash or silent zeros;
/// deletion changes nothing (the open file lives on).
@Suite struct ChangedFileTests {
    static func truncate(_ path: String, to size: Int) throws {
        let h = FileHandle(forUpdatingAtPath: path)!
        try h.truncate(atOffset: UInt64(size))
        try h.close()
    }

    @Test func mappingReadsPastTheNewEndGiveZerosAndAreCounted() throws {
        let path = Paths.temporaryDirectory() + "/bytes"
        try Data(repeating: 0xA5, count: 3 * 4096).write(to: URL(fileURLWithPath: path))
        let mapped = try MappedFile(path: path)
        #expect(mapped.bytes[3 * 4096 - 1] == 0xA5)
        try mapped.checkIntact()
        try Self.truncate(path, to: 4096)
        #expect(mapped.bytes[4096 + 10] == 0)  // SIGBUS without the guard
        #expect(mapped.bytes[2 * 4096 + 10] == 0)
        #expect(mapped.bytes[10] == 0xA5)
        #expect(mapped.lostPages == 2)
        #expect(throws: FormatError.self) { try mapped.checkIntact() }
    }

    @Test func truncatedWhileRunningIsAnErrorOnEveryCall() throws {
        let tokens = try Paths.demoTokens(12)
        for budgeted in [false, true] {
            let path = try BadInputTests.modelCopy()
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
            let model = try Model(path: path)
            let slot = ExpertCache.slotSize(file: model.file, level: model.expertBits.count - 1)
            let options =
                budgeted
                ? SessionOptions(expertCacheBytes: 6 * slot, tokenPrecision: nil) : SessionOptions()
            let session = try Session(model: model, options: options)
            _ = try session.evaluate(Array(tokens.prefix(4)).map { $0 % model.config.vocabSize })
            let position = session.position
            try Self.truncate(path, to: size / 3)
            for _ in 0..<3 {
                do {
                    _ = try session.evaluate(Array(tokens.suffix(8)).map { $0 % model.config.vocabSize })
                    Issue.record("a session of a truncated model returned logits (budgeted: \(budgeted))")
                } catch {
                    let message = "\(error)"
                    #expect(message.contains("truncated") || message.contains("cannot load layer"), "\(message)")
                }
            }
            #expect(session.position == position)
        }
    }

    @Test func deletedWhileRunningChangesNothing() throws {
        let tokens = try Paths.demoTokens(16)
        let path = try BadInputTests.modelCopy()
        let model = try Model(path: path)
        let ids = tokens.map { $0 % model.config.vocabSize }
        let first = try Session(model: model).evaluate(ids)
        try FileManager.default.removeItem(atPath: path)
        let slot = ExpertCache.slotSize(file: model.file, level: model.expertBits.count - 1)
        for options in [SessionOptions(), SessionOptions(expertCacheBytes: 6 * slot, tokenPrecision: nil)] {
            #expect(try Session(model: model, options: options).evaluate(ids) == first)
        }
    }
}
