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

        public init(
            weightType: DType? = nil, expertScheme: MatryoshkaScheme? = Converter.defaultScheme, denseBits: Int? = nil,
            denseGroupSize: Int? = nil, zstdMinSaving: Double? = nil, force: Bool = false
        ) {
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
        public var config: ModelConfig
        public var weightType: DType
        public var denseBytes: Int
        public var expertBytes: Int
        public var fileBytes: Int
        /// Expert levels stored zstd-compressed, and the bytes that saved.
        public var compressedLevels: Int
        public var compressionSaved: Int
    }

    /// zstd level used for expert levels (fast enough to keep conversion streaming-speed).
    package static let zstdLevel: Int32 = 3

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
        guard let tokenizerBytes = RegularFile.contents(atPath: tokenizerPath) else {
            throw .invalidArgument("\(tokenizerPath): missing (the converter embeds the tokenizer in the model file)")
        }
        _ = try Tokenizer(json: Array(tokenizerBytes), addBos: false)  // refuse a tokenizer we cannot run

        let resolver = TensorResolver(checkpoint: checkpoint, spec: arch.spec, directory: input)
        let dense = DenseLayout.items(config)
        let embedding = try resolver.find(.embedding, shape: [config.vocabSize, config.hiddenSize])
        let weightType = options.weightType ?? embedding.1.dtype!
        guard weightType.isFloat else { throw .invalidArgument("weight type must be f32, f16 or bf16") }
        let scheme = options.expertScheme
        do {
            if let scheme {
                try scheme.validate(cols: config.hiddenSize, name: "the expert gate/up projections (hidden size)")
                try scheme.validate(cols: config.expertIntermediateSize, name: "the expert down projection (expert size)")
            }
        } catch { throw .invalidArgument(error.description) }
        if let b = options.denseBits, b != 8 && b != 4 { throw .invalidArgument("dense bits must be 8 or 4") }
        if let z = options.zstdMinSaving, !(z >= 0 && z < 1) {
            throw .invalidArgument("zstd minimum saving must be a fraction in [0, 1), got \(z)")
        }
        let denseGroup = options.denseGroupSize ?? scheme?.groupSize ?? 64
        func denseScheme(_ item: DenseLayout.Item) throws(SparrowError) -> MatryoshkaScheme? {
            guard let bits = options.denseBits, item.isQuantizable else { return nil }
            let s = MatryoshkaScheme(levels: [item.isVocabulary ? 8 : bits], groupSize: denseGroup)
            do { try s.validate(cols: item.shape[1], name: item.name.description) } catch {
                throw .invalidArgument(error.description)
            }
            return s
        }
        for item in dense { _ = try denseScheme(item) }  // refuse before writing anything

        let writer: SPWWriter
        do { writer = try SPWWriter(destination: output) } catch { throw .format(error) }
        let moeLayers = (0..<config.layerCount).filter { config.moeLayers[$0] }
        let total = dense.count + moeLayers.count * config.expertCount
        var done = 0
        var denseBytes = 0
        var expertBytes = 0
        var compressedLevels = 0
        var compressionSaved = 0
        let levels = DenseLayout.expertLevels(config, type: weightType, scheme: scheme)
        let recordSize = levels.last?.components.last.map { $0.offset + $0.length } ?? 0
        let largestDense = dense.map { $0.shape.reduce(1, *) * max(4, weightType.size) }.max() ?? 0
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: max(largestDense, recordSize, 1), alignment: 64)
        defer { scratch.deallocate() }
        let expertF32 = UnsafeMutablePointer<Float>.allocate(capacity: max(1, config.expertIntermediateSize * config.hiddenSize))
        defer { expertF32.deallocate() }
        do {
            for item in dense {
                let (file, info) = try resolver.find(item.name, shape: item.shape)
                let src = file.bytes(of: info).baseAddress!
                if let ds = try denseScheme(item) {
                    let q = try quantizeChunked(src, from: info.dtype!, rows: item.shape[0], cols: item.shape[1], scheme: ds, scratch: scratch)
                    try writeQuantized(q, name: item.name.description, to: writer)
                    denseBytes += q.scales.count * 2 + q.planes.reduce(0) { $0 + $1.count }
                } else {
                    let type = item.isVector ? .f32 : weightType
                    let n = type.bytes(count: info.elementCount)
                    DTypeConversion.convert(src, from: info.dtype!, to: type, count: info.elementCount, into: scratch.baseAddress!)
                    try formatCall { () throws(FormatError) in
                        try writer.addDense(
                            name: item.name.description, dtype: type, shape: item.shape,
                            bytes: UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
                    }
                    denseBytes += n
                }
                file.file.advise(offset: info.range.lowerBound, length: info.range.count, MADV_DONTNEED)
                done += 1
                progress?(done, total)
            }

            writer.beginExperts(levels: levels)
            let record = scratch.baseAddress!
            let levelRanges: [Range<Int>] = levels.indices.map { k in
                let start = k == 0 ? 0 : levels[k - 1].components.last.map { $0.offset + $0.length }!
                return start..<levels[k].components.last.map { $0.offset + $0.length }!
            }
            for l in moeLayers {
                let source = try resolver.expertSource(layer: l, config: config)
                for e in 0..<config.expertCount {
                    record.initializeMemory(as: UInt8.self, repeating: 0, count: recordSize)
                    for (k, projection) in Projection.allCases.enumerated() {
                        let name = projection.rawValue
                        let (file, info, elementOffset) = try source.part(k, expert: e)
                        let src = file.bytes(of: info).baseAddress! + info.dtype!.bytes(count: elementOffset)
                        let shape = projection.shape(intermediate: config.expertIntermediateSize, hidden: config.hiddenSize)
                        let rows = shape[0], cols = shape[1]
                        if let scheme {
                            DTypeConversion.convert(src, from: info.dtype!, to: .f32, count: rows * cols, into: expertF32)
                            let q = MatryoshkaQuantizer.quantize(expertF32, rows: rows, cols: cols, scheme: scheme)
                            copy(q, base: name, levels: levels, into: record)
                        } else {
                            let comp = levels[0].components[k]
                            DTypeConversion.convert(src, from: info.dtype!, to: weightType, count: rows * cols, into: record + comp.offset)
                        }
                    }
                    let parts = levelRanges.map { UnsafeRawBufferPointer(start: record + $0.lowerBound, count: $0.count) }
                    if let minSaving = options.zstdMinSaving {
                        var stored: [[UInt8]] = []
                        var codecs: [LevelCodec] = []
                        for part in parts {
                            let z = try formatValue { () throws(FormatError) in try Zstd.compress(part, level: Self.zstdLevel) }
                            if Double(part.count - z.count) >= minSaving * Double(part.count) && z.count < part.count {
                                stored.append(z)
                                codecs.append(.zstd)
                                compressedLevels += 1
                                compressionSaved += part.count - z.count
                            } else {
                                stored.append(Array(part))
                                codecs.append(.raw)
                            }
                        }
                        try formatCall { () throws(FormatError) in
                            try withBuffers(stored) { (b) throws(FormatError) in
                                try writer.addExpert(layer: l, expert: e, levels: b, codecs: codecs)
                            }
                        }
                    } else {
                        try formatCall { () throws(FormatError) in try writer.addExpert(layer: l, expert: e, levels: parts) }
                    }
                    expertBytes += recordSize
                    done += 1
                    progress?(done, total)
                }
                source.release()
            }

            let meta = ModelMeta(
                format: "sparrow", config: config,
                provenance: .init(
                    source: Self.sourceName(of: input), sourceType: "safetensors",
                    converter: "sparrow \(sparrowVersion)", created: ISO8601DateFormatter().string(from: Date())),
                weightType: weightType, expertScheme: scheme, denseBits: options.denseBits,
                expertZstdMinSaving: options.zstdMinSaving,
                addBosToken: TokenizerConfigFile.addBos(directory: input))
            let metaBytes = try meta.encoded()
            try formatCall { () throws(FormatError) in try writer.finish(meta: metaBytes, tokenizer: Array(tokenizerBytes)) }
        } catch {
            writer.abandon()
            throw error
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        return Summary(
            config: config, weightType: weightType, denseBytes: denseBytes, expertBytes: expertBytes, fileBytes: size,
            compressedLevels: compressedLevels, compressionSaved: compressionSaved)
    }

    /// Quantizes a dense matrix, converting the source to f32 a chunk of rows at a time.
    private func quantizeChunked(
        _ src: UnsafeRawPointer, from type: DType, rows: Int, cols: Int, scheme: MatryoshkaScheme,
        scratch: UnsafeMutableRawBufferPointer
    ) throws(SparrowError) -> QuantizedMatrix {
        let chunkRows = max(1, min(rows, (1 << 20) / cols))
        let f32 = UnsafeMutablePointer<Float>.allocate(capacity: chunkRows * cols)
        defer { f32.deallocate() }
        var out = QuantizedMatrix(rows: 0, cols: cols, scheme: scheme, scales: [], planes: scheme.levels.map { _ in [] })
        var r = 0
        while r < rows {
            let n = min(chunkRows, rows - r)
            DTypeConversion.convert(src + type.bytes(count: r * cols), from: type, to: .f32, count: n * cols, into: f32)
            let q = MatryoshkaQuantizer.quantize(f32, rows: n, cols: cols, scheme: scheme)
            out.scales += q.scales
            for k in q.planes.indices { out.planes[k] += q.planes[k] }
            out.rows += n
            r += n
        }
        return out
    }

    /// Writes a quantized dense matrix as its scales and planes.
    private func writeQuantized(_ q: QuantizedMatrix, name: String, to writer: SPWWriter) throws(SparrowError) {
        for level in q.scheme.levels.indices {
            for part in QuantLayout.components(name, rows: q.rows, cols: q.cols, scheme: q.scheme, level: level) {
                let bytes: [UInt8] = part.name.hasSuffix(".scales")
                    ? q.scales.withUnsafeBytes { Array($0) } : q.planes[level]
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 64)
                defer { buffer.deallocate() }
                buffer.copyBytes(from: bytes)
                try formatCall { () throws(FormatError) in
                    try writer.addDense(name: part.name, dtype: part.dtype, shape: part.shape, bytes: UnsafeRawBufferPointer(buffer))
                }
            }
        }
    }

    /// Copies a quantized expert projection's scales and planes to their places in the record.
    private func copy(_ q: QuantizedMatrix, base: String, levels: [ExpertLevelLayout], into record: UnsafeMutableRawPointer) {
        for (k, level) in levels.enumerated() {
            for c in level.components where c.name.hasPrefix(base + ".") {
                if c.name == QuantLayout.scalesName(base) {
                    q.scales.withUnsafeBytes { (record + c.offset).copyMemory(from: $0.baseAddress!, byteCount: c.length) }
                } else {
                    q.planes[k].withUnsafeBytes { (record + c.offset).copyMemory(from: $0.baseAddress!, byteCount: c.length) }
                }
            }
        }
    }

    /// Runs a format-layer call that returns a value, wrapping its error.
    private func formatValue<T>(_ body: () throws(FormatError) -> T) throws(SparrowError) -> T {
        do { return try body() } catch { throw .format(error) }
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

/// Calls `body` with raw views of `arrays` (kept alive for the call).
private func withBuffers(
    _ arrays: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) throws(FormatError) -> Void
) throws(FormatError) {
    let copies = arrays.map { a in
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: a.count, alignment: 16)
        b.copyBytes(from: a)
        return b
    }
    defer { for c in copies { c.deallocate() } }
    try body(copies.map { UnsafeRawBufferPointer($0) })
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
