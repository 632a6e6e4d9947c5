import ArgumentParser
import Foundation
import Sparrow
import SparrowFormat

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a Hugging Face checkpoint folder into a Sparrow model file.")

    @Argument(help: "Folder with config.json, *.safetensors and tokenizer.json.")
    var input: String

    @Option(name: [.short, .long], help: "Output model file (.spw).")
    var output: String

    @Option(name: .long, help: "Weight type: auto (keep the checkpoint's), f32, f16 or bf16.")
    var dtype: String = "auto"

    @Flag(name: .long, help: "Overwrite the output file if it exists.")
    var force = false

    func run() throws {
        let type: DType?
        if dtype == "auto" {
            type = nil
        } else if let t = DType(rawValue: dtype) {
            type = t
        } else {
            throw ValidationError("--dtype must be auto, f32, f16 or bf16 (got '\(dtype)')")
        }
        let start = Date()
        var bar = ProgressBar(label: "converting")
        do {
            let s = try Converter(input: input, output: output, options: .init(weightType: type, force: force))
                .run { bar.update($0, $1) }
            let secs = Date().timeIntervalSince(start)
            print(
                "wrote \(output): \(s.config.architecture.rawValue), \(s.config.layerCount) layers, "
                    + "\(s.config.expertCount) experts (top-\(s.config.expertsPerToken)), \(s.weightType.rawValue); "
                    + "dense \(formatBytes(s.denseBytes)), experts \(formatBytes(s.expertBytes)), "
                    + "file \(formatBytes(s.fileBytes)) in \(String(format: "%.2f", secs)) s")
        } catch { throw fail(error) }
    }
}

func formatBytes(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n)
    var u = 0
    while v >= 1024 && u < units.count - 1 {
        v /= 1024
        u += 1
    }
    return u == 0 ? "\(n) B" : String(format: "%.2f %@", v, units[u])
}
