import Foundation
import SparrowFormat
import SparrowQuant

/// The JSON stored in a `.spw` file's meta section.
public struct ModelMeta: Codable, Sendable {
    /// Always "sparrow".
    public var format: String
    /// The hyper-parameters of the forward pass.
    public var config: ModelConfig
    /// Where the weights came from and what made the file.
    public var provenance: Provenance
    /// Storage type of the dense matrices and of the expert levels.
    public var weightType: DType
    /// How expert records are quantized; nil when they hold one float level.
    public var expertScheme: MatryoshkaScheme?
    /// Bits of quantized dense matrices (8 or 4; the embedding and output head keep 8), nil for float.
    public var denseBits: Int?
    /// The converter's zstd rule for expert levels: a level is stored compressed when that saves at
    /// least this fraction of its bytes; nil when compression was off.
    public var expertZstdMinSaving: Double?
    /// Whether the tokenizer wants a BOS token prepended (`add_bos_token` in tokenizer_config.json).
    public var addBosToken: Bool

    /// Where a model file came from and what made it.
    public struct Provenance: Codable, Sendable {
        /// The checkpoint's name (its `_name_or_path`, or its folder's name; never a local path).
        public var source: String
        /// The checkpoint format (safetensors, gguf).
        public var sourceType: String
        /// The converter and its version.
        public var converter: String
        /// When the file was written (ISO 8601).
        public var created: String
    }

    /// Encodes the meta as sorted, readable JSON.
    package func encoded() throws(SparrowError) -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        do { return Array(try e.encode(self)) } catch { throw .invalidArgument("cannot encode meta: \(error)") }
    }

    /// Decodes the meta section of `path`.
    package static func decode(_ bytes: [UInt8], path: String) throws(SparrowError) -> ModelMeta {
        do { return try JSONDecoder().decode(ModelMeta.self, from: Data(bytes)) } catch {
            throw .format(.corrupt(path: path, what: "meta JSON: \(error)"))
        }
    }
}

/// Sparrow's version, recorded in files it writes.
public let sparrowVersion = "0.1.0"
