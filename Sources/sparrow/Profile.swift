import ArgumentParser
import Foundation
import Sparrow
@_spi(Internals) import SparrowRuntime
import SparrowFormat

/// Calibrates a model's experts (EdgeMoE-style profile) and stores the result beside it.
struct Profile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Profile a model's experts on calibration text: how often each is chosen, its gate weights, co-activation with the previous layer, and each precision level's output error. Written atomically to MODEL.spw.profile.json; budgeted sessions use it to size the low-precision share of the cache."
    )

    @Option(name: [.short, .long], help: "Model file (.spw).")
    var model: String

    @Option(name: .long, help: "Calibration text file.")
    var text: String

    @Option(name: .long, help: "Calibration tokens to use (default: the whole text).")
    var tokens: Int?

    @Option(name: [.short, .long], help: "Where to write the profile (default: MODEL.spw.profile.json).")
    var out: String?

    func validate() throws {
        if let t = tokens, t < 2 { throw ValidationError("--tokens must be at least 2") }
    }

    func run() throws {
        Interruption.removeTemporaryFilesOnSignal()
        do {
            guard let data = RegularFile.contents(atPath: text) else { throw ValidationError("cannot read \(text)") }
            let m = try Model(path: model)
            var bar = ProgressBar(label: "profiling")
            let profile = try Profiler.run(model: m, text: String(decoding: data, as: UTF8.self), tokens: tokens) {
                bar.update($0, $1)
            }
            let path = out ?? ExpertProfile.path(for: model)
            try profile.save(to: path)
            print("wrote \(path): \(profile.calibrationTokens) calibration tokens")
            printSummary(profile)
        } catch let e as ValidationError { throw e } catch { throw fail(error) }
    }
}

/// A few lines on a profile (for `profile` and `inspect`).
func printSummary(_ p: ExpertProfile) {
    for (l, layer) in p.experts.enumerated() where !layer.isEmpty {
        let f = layer.map(\.frequency)
        let hottest = f.indices.max { f[$0] < f[$1] }!
        let errors = p.expertBits.indices.map { k in layer.map { $0.levelError[k] }.reduce(0, +) / Float(layer.count) }
        let err = zip(p.expertBits, errors).map { String(format: "%d-bit %.3f", $0, $1) }.joined(separator: ", ")
        print(
            String(
                format: "  layer %2d: hottest expert %d (%.1f %% of selections), coldest %.2f %%; mean output error %@",
                l, hottest, 100 * f[hottest] / max(1e-12, f.reduce(0, +)),
                100 * (f.min() ?? 0) / max(1e-12, f.reduce(0, +)), err))
    }
    let share = p.lowUseShare(fullThreshold: TokenPrecision.defaultFullThreshold)
    print(
        String(
            format: "  expert uses with unimportance > %g (read at the low level on a miss): %.1f %%",
            Double(TokenPrecision.defaultFullThreshold), 100 * share))
}
