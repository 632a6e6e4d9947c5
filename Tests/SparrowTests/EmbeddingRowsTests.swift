import Foundation
import SparrowFormat
import SparrowIO
import SparrowRuntime
import Testing

/// Budgeted sessions read embedding rows from the file per token; every row is checked against a
/// per-row checksum derived (once, from the checksummed table) when the session is created.
@Suite struct EmbeddingRowsTests {
    /// The byte ranges of the embedding table's tensors.
    static func embeddingRanges(_ file: SPWFile) -> [Range<Int>] {
        file.directory.tensors.filter { $0.name.hasPrefix("embedding") }.map { $0.offset..<($0.offset + $0.length) }
    }

    /// Faults for reads inside `ranges` only: on every attempt, or on the first attempt at each offset.
    final class RowFaults: @unchecked Sendable {
        let lock = NSLock()
        let ranges: [Range<Int>]
        let fault: ReadFault
        let everyAttempt: Bool
        var seen = Set<Int>()
        var injected = 0
        init(ranges: [Range<Int>], fault: ReadFault, everyAttempt: Bool) {
            (self.ranges, self.fault, self.everyAttempt) = (ranges, fault, everyAttempt)
        }
        func decide(_ r: ReadRequest) -> ReadFault? {
            lock.withLock {
                guard ranges.contains(where: { $0.contains(r.offset) }) else { return nil }
                guard everyAttempt || seen.insert(r.offset).inserted else { return nil }
                injected += 1
                return fault
            }
        }
    }

    func run(_ faults: RowFaults?, tokens: [Int]) throws -> [Float] {
        let model = try ExpertCacheTests.demo()
        let slot = ExpertCache.slotSize(file: model.file, level: 1)
        let io = BlockReaderOptions(mode: .pread, queueDepth: 8, faults: faults.map { f in { f.decide($0) } })
        let session = try Session(
            model: model,
            options: SessionOptions(expertBits: 4, expertCacheBytes: 8 * slot, io: io, tokenPrecision: nil))
        return try session.evaluate(tokens, logits: .all)
    }

    @Test func aDamagedOrFailedRowReadIsRetriedThenReported() throws {
        let model = try ExpertCacheTests.demo()
        let ranges = Self.embeddingRanges(model.file)
        #expect(!ranges.isEmpty)
        let tokens = try ExpertCacheTests.tokens(16)
        let want = try run(nil, tokens: tokens)
        for fault in [ReadFault.flip(3), .error(EIO), .short(1)] {
            let once = RowFaults(ranges: ranges, fault: fault, everyAttempt: false)
            #expect(try run(once, tokens: tokens) == want, "\(fault) once per row")
            #expect(once.injected > 0)
        }
        for (fault, message) in [
            (ReadFault.flip(3), "checksum mismatch in embedding row"), (.error(EIO), "failed: Input/output error")
        ] {
            let always = RowFaults(ranges: ranges, fault: fault, everyAttempt: true)
            do {
                _ = try run(always, tokens: tokens)
                Issue.record("a row damaged on every read gave logits (\(fault))")
            } catch {
                #expect("\(error)".contains(message), "\(error)")
            }
        }
    }

    @Test func aDamagedTableIsRefusedWhenTheSessionIsCreated() throws {
        let path = Paths.temporaryDirectory() + "/demo.spw"
        try FileManager.default.copyItem(
            atPath: try Converted.path(of: Paths.demo, options: ExpertCacheTests.scheme, tag: "q248"), toPath: path)
        let model = try Model(path: path)
        let t = model.file.tensor("embedding")!
        try BadInputTests.flipByte(model.file.path, at: t.offset + t.length / 2)
        let slot = ExpertCache.slotSize(file: model.file, level: model.expertBits.count - 1)
        do {
            _ = try Session(model: model, options: .init(expertCacheBytes: 8 * slot, tokenPrecision: nil))
            Issue.record("a session was created over a damaged embedding table")
        } catch {
            #expect("\(error)".contains("checksum mismatch in tensor 'embedding'"), "\(error)")
        }
    }
}
