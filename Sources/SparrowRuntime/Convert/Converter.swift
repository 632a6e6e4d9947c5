import Foundation
import SparrowFormat
import SparrowQuant

#if canImport(Glibc)
import Glibc
#endif

/// Converts a Hugging Face checkpoint directory into a `.spw` file.
///
/// Streams: each tensor is read through the safetensors mapping, converted and written before
/// the next, so peak memory is one expert record plus one dense tensor's conversion chunk,
/// not the checkpoint.
public struct Converter {
    public struct Options: Sendable {
        /// Storage type of the weights; nil keeps the checkpoint's type.
        public var weightType: DType?
        /// Replace an existing output file.
        public var force: Bool

        public init(weightType: DType? = nil, force: Bool = false) {
            self.weightType = weightType
            self.force = force
        }
    }

    /// What the conversion did.
    public struct Summary: Sendable {
        public var config: ModelConfig
        public var weightType: DType
        public var denseBytes: Int
        public var expertBytes: Int
        public var fileBytes: Int
    }

    public let input: String
    public let output: String
    public let options: Options

    public init(input: String, output: String, options: Options = .init()) {
        self.input = input
        self.output = output
        self.options = options
    }

    /// Runs the conversion; `progress(done, total)` is called after each tensor or record.
    public func run(progress: ((Int, Int) -> Void)? = nil) throws(SparrowError) -> Summary {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isDir), isDir.boolValue else {
            throw .invalidArgument("\(input): not a directory (expected a Hugging Face checkpoint folder)")
        }
        let hf = try HFConfig(path: input + "/config.json")
        guard let arch = Architecture(modelType: hf.string("model_type"), architectures: hf.json["architectures"] as? [String]) else {
            throw .unsupportedArchitecture(hf.string("model_type") ?? (hf.json["architectures"] as? [String])?.first ?? "(none given)")
        }
        let config = try arch.spec.config(from: hf)
        let checkpoint: SafeTensorsCheckpoint
        do { checkpoint = try SafeTensorsCheckpoint(directory: input) } catch { throw .format(error) }
        try checkOutputPath(inputs: checkpoint.paths + [hf.path])
        let tokenizerPath = input + "/tokenizer.json"
        guard let tokenizerBytes = FileManager.default.contents(atPath: tokenizerPath) else {
            throw .invalidArgument("\(tokenizerPath): missing (the converter embeds the tokenizer in the model file)")
        }
        _ = try Tokenizer(json: Array(tokenizerBytes), addBos: false)  // refuse a tokenizer we cannot run

        let resolver = TensorResolver(checkpoint: checkpoint, spec: arch.spec, directory: input)
        let dense = DenseLayout.items(config)
        let embedding = try resolver.find(.embedding, shape: [config.vocabSize, config.hiddenSize])
        let weightType = options.weightType ?? embedding.1.dtype!

        let writer: SPWWriter
        do { writer = try SPWWriter(destination: output) } catch { throw .format(error) }
        let moeLayers = (0..<config.layerCount).filter { config.moeLayers[$0] }
        let total = dense.count + moeLayers.count * config.expertCount
        var done = 0
        var denseBytes = 0
        var expertBytes = 0
        let level = DenseLayout.expertLevel(config, type: weightType)
        let recordSize = level.components.last.map { $0.offset + $0.length } ?? 0
        let largestDense = dense.map { $0.shape.reduce(1, *) * ($0.isVector ? 4 : weightType.size) }.max() ?? 0
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: max(largestDense, recordSize, 1), alignment: 64)
        defer { scratch.deallocate() }
        do {
            for item in dense {
                let (file, info) = try resolver.find(item.name, shape: item.shape)
                let type = item.isVector ? .f32 : weightType
                let n = info.elementCount * type.size
                DTypeConversion.convert(
                    file.bytes(of: info).baseAddress!, from: info.dtype!, to: type, count: info.elementCount,
                    into: scratch.baseAddress!)
                try formatCall { () throws(FormatError) in
                    try writer.addDense(
                        name: item.name.description, dtype: type, shape: item.shape,
                        bytes: UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
                }
                file.file.advise(offset: info.range.lowerBound, length: info.range.count, MADV_DONTNEED)
                denseBytes += n
                done += 1
                progress?(done, total)
            }

            writer.beginExperts(levels: [level])
            let record = UnsafeRawBufferPointer(rebasing: scratch[0..<recordSize])
            for l in moeLayers {
                let source = try resolver.expertSource(layer: l, config: config)
                for e in 0..<config.expertCount {
                    for (k, comp) in level.components.enumerated() {
                        let (file, info, elementOffset) = try source.part(k, expert: e)
                        let src = file.bytes(of: info).baseAddress! + elementOffset * info.dtype!.size
                        DTypeConversion.convert(
                            src, from: info.dtype!, to: weightType, count: comp.shape.reduce(1, *),
                            into: scratch.baseAddress! + comp.offset)
                    }
                    try formatCall { () throws(FormatError) in try writer.addExpert(layer: l, expert: e, levels: [record]) }
                    expertBytes += recordSize
                    done += 1
                    progress?(done, total)
                }
                source.release()
            }

            let meta = ModelMeta(
                format: "sparrow", config: config,
                provenance: .init(
                    source: URL(fileURLWithPath: input).standardizedFileURL.path, sourceType: "safetensors",
                    converter: "sparrow \(sparrowVersion)", created: ISO8601DateFormatter().string(from: Date())),
                weightType: weightType, addBosToken: TokenizerConfigFile.addBos(directory: input))
            let metaBytes = try meta.encoded()
            try formatCall { () throws(FormatError) in try writer.finish(meta: metaBytes, tokenizer: Array(tokenizerBytes)) }
        } catch {
            writer.abandon()
            throw error
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        return Summary(
            config: config, weightType: weightType, denseBytes: denseBytes, expertBytes: expertBytes, fileBytes: size)
    }

    /// Runs a format-layer call, wrapping its error.
    private func formatCall(_ body: () throws(FormatError) -> Void) throws(SparrowError) {
        do { try body() } catch { throw .format(error) }
    }

    /// Refuses an existing output (unless forced) and, always, an output that is one of the inputs.
    private func checkOutputPath(inputs: [String]) throws(SparrowError) {
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
        guard let data = FileManager.default.contents(atPath: directory + "/tokenizer_config.json"),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return false }
        return json["add_bos_token"] as? Bool ?? false
    }
}
