import ArgumentParser
import Foundation
import Sparrow
import SparrowFormat
import SparrowQuant

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a Hugging Face checkpoint folder into a Sparrow model file.")

    @Argument(help: "Folder with config.json, *.safetensors and tokenizer.json.")
    var input: String

    @Option(name: [.short, .long], help: "Output model file (.spw).")
    var output: String

    @Option(name: .long, help: "Float type of unquantized weights: auto (keep the checkpoint's), f32, f16 or bf16.")
    var dtype: String = "auto"

    @Option(
        name: .customLong("expert-levels"),
        help:
            "Nested expert precision levels in bits, e.g. 2,4,8 or 4,8; 'mxfp4': E2M1 codes, exact for experts shipped in MXFP4, levels 2,4 (group 64, or 32); 'none' keeps experts in float. Default: mxfp4 for experts shipped in MXFP4 (gpt-oss), else 2,4,8."
    )
    var expertLevels: String?

    @Option(
        name: .customLong("group-size"),
        help: "Weights per quantization group (a multiple of 16 dividing every input dimension).")
    var groupSize: Int = 64

    @Option(
        name: .long,
        help:
            "Dense (non-expert) matrices: float (the --dtype), bf16, f16, f32, q8 or q4 (embedding and output head keep 8 bits)."
    )
    var dense: String = "float"

    @Option(
        name: .customLong("zstd-min-saving"),
        help:
            "Store an expert level zstd-compressed when that saves at least this fraction of its bytes (e.g. 0.1); 'off' stores all raw."
    )
    var zstdMinSaving: String = "off"

    @Flag(name: .long, help: "Overwrite the output file if it exists.")
    var force = false

    /// The converter's options from the flags, each checked.
    private func converterOptions() throws -> Converter.Options {
        var dtype = dtype
        if ["bf16", "f16", "f32"].contains(dense) {  // --dense bf16: float dense weights of that type
            guard dtype == "auto" || dtype == dense else {
                throw ValidationError("--dense \(dense) contradicts --dtype \(dtype)")
            }
            dtype = dense
        }
        let type: DType?
        if dtype == "auto" {
            type = nil
        } else if let t = DType(rawValue: dtype) {
            type = t
        } else {
            throw ValidationError("--dtype must be auto, f32, f16 or bf16 (got '\(dtype)')")
        }
        var scheme: MatryoshkaScheme?
        let expertLevels = self.expertLevels ?? "2,4,8"
        if expertLevels == "mxfp4" {
            scheme = .mxfp4(groupSize: groupSize)
            do { try scheme!.validate() } catch { throw ValidationError("--expert-levels/--group-size: \(error)") }
        } else if expertLevels != "none" {
            let levels = expertLevels.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !levels.isEmpty, levels.allSatisfy({ $0 != nil }) else {
                throw ValidationError("--expert-levels must be a comma-separated list of bits (e.g. 2,4,8) or 'none'")
            }
            scheme = MatryoshkaScheme(levels: levels.map { $0! }, groupSize: groupSize)
            do { try scheme!.validate() } catch { throw ValidationError("--expert-levels/--group-size: \(error)") }
        }
        let denseBits: Int?
        switch dense {
        case "float", "bf16", "f16", "f32": denseBits = nil
        case "q8": denseBits = 8
        case "q4": denseBits = 4
        default: throw ValidationError("--dense must be float, bf16, f16, f32, q8 or q4 (got '\(dense)')")
        }
        var zstd: Double?
        if zstdMinSaving != "off" {
            guard let z = Double(zstdMinSaving), z >= 0, z < 1 else {
                throw ValidationError(
                    "--zstd-min-saving must be 'off' or a fraction in [0, 1) (got '\(zstdMinSaving)')")
            }
            zstd = z
        }
        return .init(
            weightType: type, expertScheme: scheme, denseBits: denseBits, denseGroupSize: groupSize,
            zstdMinSaving: zstd, force: force, keepMXFP4: self.expertLevels == nil)
    }

    func run() throws {
        Interruption.removeTemporaryFilesOnSignal()
        let options = try converterOptions()
        let denseBits = options.denseBits
        let zstd = options.zstdMinSaving
        let start = Date()
        var bar = ProgressBar(label: "converting")
        do {
            let s = try Converter(
                input: input, output: output,
                options: options
            )
            .run { bar.update($0, $1) }
            let secs = Date().timeIntervalSince(start)
            print(
                "wrote \(output): \(s.config.architecture.rawValue), \(s.config.layerCount) layers, "
                    + "\(s.config.expertCount) experts (top-\(s.config.expertsPerToken)), "
                    + (s.expertScheme.map {
                        "experts at \($0.levels.map(String.init).joined(separator: "/")) bits"
                            + "\($0.codebook == .e2m1 ? " MXFP4" : "") (group \($0.groupSize)), "
                    } ?? "experts \(s.weightType.rawValue), ")
                    + "dense \(denseBits.map { "q\($0)" } ?? s.weightType.rawValue); "
                    + "dense \(formatBytes(s.denseBytes)), experts \(formatBytes(s.expertBytes)), "
                    + "file \(formatBytes(s.fileBytes)) in \(String(format: "%.2f", secs)) s"
                    + (zstd == nil
                        ? ""
                        : "; zstd: \(s.compressedLevels) levels compressed, \(formatBytes(s.compressionSaved)) saved"))
        } catch { throw fail(error) }
    }
}

func formatBytes(_ n: Int) -> String { ByteSize.format(n) }
