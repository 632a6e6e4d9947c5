import ArgumentParser
import Foundation
import Sparrow
import SparrowIO

/// Sparrow's loader alone: random aligned reads of one block size at one queue depth, as fio's
/// `randread` does, so the two can be compared on the same file (Benchmarks/loader-vs-fio).
struct IOBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iobench",
        abstract: "Measure the expert loader's read throughput on a file (random aligned reads).")

    @Argument(help: "File to read (O_DIRECT where the file system allows).")
    var file: String

    @Option(name: .customLong("block-size"), help: "Bytes per read, e.g. 1MiB (a multiple of 4 KiB).")
    var blockSize: String = "1MiB"

    @Option(name: .customLong("queue-depth"), help: "Reads in flight.")
    var queueDepth: Int = 8

    @Option(name: .long, help: "Total bytes to read, e.g. 1GiB (default: the file size).")
    var total: String?

    @Option(name: .long, help: "auto, uring or pread.")
    var io: String = "auto"

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func validate() throws {
        guard let bs = ByteSize.parse(blockSize), bs % 4096 == 0 else {
            throw ValidationError("--block-size must be a multiple of 4 KiB (got '\(blockSize)')")
        }
        if queueDepth < 1 || queueDepth > 4096 { throw ValidationError("--queue-depth must be in 1...4096") }
        if IOMode(rawValue: io) == nil { throw ValidationError("--io must be auto, uring or pread (got '\(io)')") }
        if let t = total, ByteSize.parse(t) == nil {
            throw ValidationError("--total must be a size like 1GiB (got '\(t)')")
        }
    }

    struct Result: Codable {
        var file: String
        var blockSize: Int
        var queueDepth: Int
        var bytes: Int
        var seconds: Double
        var megabytesPerSecond: Double
        var reader: String
    }

    func run() throws {
        let bs = ByteSize.parse(blockSize)!
        do {
            guard let size = try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int, size >= bs else {
                throw ValidationError("\(file) is smaller than one block")
            }
            let want = total.flatMap { ByteSize.parse($0) } ?? size
            let blocks = size / bs
            var arenaPointer: UnsafeMutableRawPointer?
            guard posix_memalign(&arenaPointer, 4096, bs * queueDepth) == 0, let base = arenaPointer else {
                throw ValidationError("cannot allocate \(bs * queueDepth) bytes")
            }
            defer { free(base) }
            let arena = UnsafeMutableRawBufferPointer(start: base, count: bs * queueDepth)
            let reader = try BlockReaders.open(
                path: file, arena: arena, tags: queueDepth,
                options: BlockReaderOptions(mode: IOMode(rawValue: io)!, queueDepth: queueDepth, notice: printNotice))
            // A fresh sequence each run: a repeated one would find the host's cache warm.
            var rng = UInt64.random(in: 1...UInt64.max)
            func nextOffset() -> Int {
                rng = rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Int((rng >> 33) % UInt64(blocks)) * bs
            }
            let count = max(1, want / bs)
            let start = DispatchTime.now().uptimeNanoseconds
            var issued = 0
            for t in 0..<min(queueDepth, count) {
                reader.enqueue(ReadRequest(offset: nextOffset(), length: bs, destination: base + t * bs, tag: t))
                issued += 1
            }
            try reader.submit()
            var done = 0
            while done < count {
                guard let tag = try reader.next() else { continue }
                try reader.wait(tag: tag)  // its error, if any
                done += 1
                if issued < count {
                    // Submitted by the `next()` that would block: reads finished together go in one batch.
                    reader.enqueue(
                        ReadRequest(offset: nextOffset(), length: bs, destination: base + tag * bs, tag: tag))
                    issued += 1
                }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let r = Result(
                file: file, blockSize: bs, queueDepth: queueDepth, bytes: count * bs, seconds: seconds,
                megabytesPerSecond: Double(count * bs) / seconds / 1e6, reader: reader.summary)
            if json {
                let e = JSONEncoder()
                e.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try e.encode(r), as: UTF8.self))
            } else {
                print(
                    String(
                        format: "%@: %d × %@ at depth %d in %.2f s = %.0f MB/s (%@)", file, count, formatBytes(bs),
                        queueDepth, seconds, r.megabytesPerSecond, r.reader))
            }
        } catch let e as ValidationError { throw e } catch { throw fail(error) }
    }
}
