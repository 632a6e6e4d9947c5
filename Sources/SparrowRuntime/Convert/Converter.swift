import Foundation
import SparrowFormat
import SparrowQuant
import SparrowKernels

#if canImport(Glibc)
    import Glibc
#endif

/// Converts a Hugging Face checkpoint directory into a `.spw` file.
///
/// Streams: each tensor is read through the safetensors mapping, converted and written before
/// the next, so peak memory is one expert record plus one dense tensor's conversion chunk,
/// not the checkpoint.
public struct Converter {
    /// How a checkpoint is converted.
    public struct Options: Sendable {
        /// Storage type of float weights; nil keeps the checkpoint's type.
        public var weightType: DType?
        /// Nested quantization of the experts; nil stores them as one float level.
        public var expertScheme: MatryoshkaScheme?
        /// Quantize dense matrices to 8 or 4 bits (embedding and output head keep 8); nil keeps them float.
        public var denseBits: Int?
        /// Group size of quantized dense matrices; nil uses the expert scheme's (or 64).
        public var denseGroupSize: Int?
        /// Store an expert level zstd-compressed when that saves at least this fraction of its
        /// bytes (0.1 = 10 %); nil stores every level raw. See docs/QUANT.md for the measurement.
        public var zstdMinSaving: Double?
        /// Replace an existing output file.
        public var force: Bool
        /// Experts the checkpoint ships in MXFP4 (gpt-oss) keep their E2M1 codes, the MXFP4 level
        /// (`MatryoshkaScheme.mxfp4`, exact for them), instead of `expertScheme` (unless that is nil).
        public var keepMXFP4: Bool

        /// Options with the measured defaults (experts at 2, 4 and 8 bits, dense weights in the checkpoint's float type).
        public init(
            weightType: DType? = nil, expertScheme: MatryoshkaScheme? = Converter.defaultScheme, denseBits: Int? = nil,
            denseGroupSize: Int? = nil, zstdMinSaving: Double? = nil, force: Bool = false, keepMXFP4: Bool = true
        ) {
            self.keepMXFP4 = keepMXFP4
            self.zstdMinSaving = zstdMinSaving
            self.denseGroupSize = denseGroupSize
            self.weightType = weightType
            self.expertScheme = expertScheme
            self.denseBits = denseBits
            self.force = force
        }

        /// Experts and dense weights kept in float (exact conversion).
        public static func unquantized(force: Bool = false) -> Options { Options(expertScheme: nil, force: force) }
    }

    /// The default expert quantization (levels 2, 4, 8 bits, groups of 64; see docs/QUANT.md).
    public static let defaultScheme: MatryoshkaScheme? = MatryoshkaScheme(levels: [2, 4, 8], groupSize: 64)

    /// What the conversion did.
    public struct Summary: Sendable {
        /// The configuration read from the checkpoint.
        public var config: ModelConfig
        /// The float type dense weights were stored in.
        public var weightType: DType
        /// How the experts were quantized (the options', or the MXFP4 level they kept); nil: float.
        public var expertScheme: MatryoshkaScheme?
        /// Bytes of dense weights written.
        public var denseBytes: Int
        /// Bytes of expert records (decoded size).
        public var expertBytes: Int
        /// Size of the output file.
        public var fileBytes: Int
        /// Expert levels stored zstd-compressed, and the bytes that saved.
        public var compressedLevels: Int
        /// Bytes zstd saved over those levels.
        public var compressionSaved: Int
    }

    /// zstd level used for expert levels (fast enough to keep conversion streaming-speed).
    @_spi(Internals) public static let zstdLevel: Int32 = 3

    /// What a file records as its source: the checkpoint's own name (`_name_or_path` in its config,
    /// when that is not a local path), else the folder's base name — never the converting machine's
    /// directories, since model files are shared.
    static func sourceName(of directory: String) -> String {
        let folder = URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent
        guard let data = RegularFile.contents(atPath: directory + "/config.json"),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let name = json["_name_or_path"] as? String, !name.isEmpty, !name.hasPrefix("/"), !name.hasPrefix("."),
            !name.hasPrefix("~"), !name.contains("\\")
        else { return folder }
        return name
    }

    /// The checkpoint folder.
    public let input: String
    /// The `.spw` file to write.
    public let output: String
    /// How to convert.
    public let options: Options

    /// A conversion of the checkpoint folder `input` into `output`; nothing happens until `run`.
    public init(input: String, output: String, options: Options = .init()) {
        self.input = input
        self.output = output
        self.options = options
    }

    /// Runs the conversion; `progress(done, total)` is called after each tensor or record. Nothing
    /// is written before the checkpoint and the options have been checked; on failure the partial
    /// output is removed (an existing file is replaced only by a complete one).
    public func run(progress: ((Int, Int) -> Void)? = nil) throws(SparrowError) -> Summary {
        let plan = try makePlan()
        let writer: SPWWriter
        do { writer = try SPWWriter(destination: output) } catch { throw .format(error) }
        var tally = ConversionTally(
            total: plan.dense.count + plan.moeLayers.count * plan.config.expertCount, progress: progress)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: plan.scratchBytes, alignment: 64)
        defer { scratch.deallocate() }
        do {
            try writeDense(plan, to: writer, scratch: scratch, tally: &tally)
            try writeExperts(plan, to: writer, record: scratch.baseAddress!, tally: &tally)
            let meta = ModelMeta(
                format: "sparrow", config: plan.config,
                provenance: .init(
                    source: Self.sourceName(of: input), sourceType: "safetensors",
                    converter: "sparrow \(sparrowVersion)", created: ISO8601DateFormatter().string(from: Date())),
                weightType: plan.weightType, expertScheme: plan.scheme, denseBits: options.denseBits,
                expertZstdMinSaving: options.zstdMinSaving, addBosToken: TokenizerConfigFile.addBos(directory: input))
            // A shard that shrank while it was read gave zeros (the mapping's guard): no file from it.
            try formatCall { () throws(FormatError) in try plan.resolver.checkpoint.checkIntact() }
            let metaBytes = try meta.encoded()
            try formatCall { () throws(FormatError) in try writer.finish(meta: metaBytes, tokenizer: plan.tokenizer) }
        } catch {
            writer.abandon()
            throw error
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        return Summary(
            config: plan.config, weightType: plan.weightType, expertScheme: plan.scheme, denseBytes: tally.denseBytes,
            expertBytes: tally.expertBytes,
            fileBytes: size, compressedLevels: tally.compressedLevels, compressionSaved: tally.compressionSaved)
    }

    /// Runs a format-layer call that returns a value, wrapping its error.
    func formatValue<T>(_ body: () throws(FormatError) -> T) throws(SparrowError) -> T {
        do { return try body() } catch { throw .format(error) }
    }

    /// Runs a format-layer call, wrapping its error.
    func formatCall(_ body: () throws(FormatError) -> Void) throws(SparrowError) {
        do { try body() } catch { throw .format(error) }
    }

    /// Refuses an existing output (unless forced) and, always, an output that is one of the inputs.
    func checkOutputPath(inputs: [String]) throws(SparrowError) {
        var st = stat()
        guard stat(output, &st) == 0 else { return }
        for path in inputs {
            var si = stat()
            if stat(path, &si) == 0 && si.st_dev == st.st_dev && si.st_ino == st.st_ino {
                throw .invalidArgument("\(output) is one of the input files; refusing to overwrite it")
            }
        }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw .invalidArgument("\(output) is a directory") }
        if !options.force { throw .format(.outputExists(path: output)) }
    }
}

/// Reads `add_bos_token` from tokenizer_config.json when present.
enum TokenizerConfigFile {
    static func addBos(directory: String) -> Bool {
        guard let data = RegularFile.contents(atPath: directory + "/tokenizer_config.json"),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return false }
        return json["add_bos_token"] as? Bool ?? false
    }
}
