import ArgumentParser
import Foundation
import Sparrow
import SparrowFormat

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a model file's meta, section sizes and expert levels; --verify checks every checksum.")

    @Argument(help: "Model file (.spw).")
    var model: String

    @Flag(name: .long, help: "Verify the checksum of every tensor and expert level.")
    var verify = false

    func run() throws {
        do {
            let file = try SPWFile(path: model)
            print("file: \(model) (\(formatBytes(file.file.count)))")
            print("meta:")
            print(String(decoding: file.meta, as: UTF8.self))
            print("sections:")
            for s in file.sections {
                print(
                    "  \(String(describing: s.kind).padding(toLength: 16, withPad: " ", startingAt: 0)) offset \(s.offset)  length \(formatBytes(Int(s.length)))"
                )
            }
            print(
                "dense tensors: \(file.directory.tensors.count), \(formatBytes(file.directory.tensors.reduce(0) { $0 + $1.length }))"
            )
            print("expert records: \(file.experts.count)")
            for (k, level) in file.directory.expertLevels.enumerated() {
                let bytes = file.experts.reduce(0) {
                    $0 + Int($1.levels[k].end) - (k == 0 ? 0 : Int($1.levels[k - 1].end))
                }
                let comps = level.components.map { "\($0.name) \($0.shape) \($0.dtype.rawValue)" }.joined(
                    separator: ", ")
                let zstd = file.experts.filter { $0.levels[k].codec == .zstd }.count
                let decoded = file.levelSizes[k] * file.experts.count
                let codec =
                    zstd == 0
                    ? ""
                    : String(
                        format: " stored (%d of %d records zstd, %.1f %% saved)", zstd, file.experts.count,
                        100 * Double(decoded - bytes) / Double(max(1, decoded)))
                print("  level \(k): \(level.bits) bits, \(formatBytes(bytes)) in all\(codec); \(comps)")
            }
            if let profile = try ExpertProfile.load(from: ExpertProfile.path(for: model)) {
                print("profile: \(ExpertProfile.path(for: model)) (\(profile.calibrationTokens) calibration tokens)")
                printSummary(profile)
            }
            if verify {
                var bar = ProgressBar(label: "verifying")
                try file.verifyAll { bar.update($0, $1) }
                _ = try Model(path: model)
                print("verify: all checksums OK")
            }
        } catch { throw fail(error) }
    }
}
