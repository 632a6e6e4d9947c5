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
            let m = try ReadBandwidth.measure(
                path: file, blockSize: bs, queueDepth: queueDepth, total: total.flatMap { ByteSize.parse($0) } ?? size,
                options: BlockReaderOptions(mode: IOMode(rawValue: io)!, notice: printNotice))
            let count = m.bytes / bs
            let seconds = m.seconds
            let r = Result(
                file: file, blockSize: bs, queueDepth: queueDepth, bytes: m.bytes, seconds: seconds,
                megabytesPerSecond: m.bytesPerSecond / 1e6, reader: m.reader)
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
