import Foundation
import SparrowFormat

/// A Hugging Face `config.json`, read with typed accessors that name the missing or malformed key.
@_spi(Internals) public struct HFConfig {
    package let path: String
    let json: [String: Any]

    /// Reads and parses `path`.
    @_spi(Internals) public init(path: String) throws(SparrowError) {
        self.path = path
        guard let data = RegularFile.contents(atPath: path) else {
            throw .config(path: path, problem: "cannot read config.json (missing or unreadable)")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: data), let dict = obj as? [String: Any] else {
            throw .config(path: path, problem: "config.json is not a valid JSON object")
        }
        json = dict
    }

    init(path: String, json: [String: Any]) {
        self.path = path
        self.json = json
    }

    /// The model's configuration: its architecture recognised, that family's fields read and
    /// the result checked for consistency.
    @_spi(Internals) public func modelConfig() throws(SparrowError) -> ModelConfig {
        let architectures = json["architectures"] as? [String]
        guard let arch = Architecture(modelType: string("model_type"), architectures: architectures) else {
            throw .unsupportedArchitecture(string("model_type") ?? architectures?.first ?? "(none given)")
        }
        let config = try arch.spec.config(from: self)
        if let problem = config.inconsistency { throw .config(path: path, problem: problem) }
        return config
    }

    /// Integers beyond this (2⁴⁰) are refused: no count or size of a model comes near it, and
    /// products of a few of them stay far from overflowing.
    static let largestInteger = 1 << 40
    /// Layers beyond this are refused before any per-layer table is sized from the count.
    static let mostLayers = 1 << 16

    /// A JSON number that is not a boolean (Foundation bridges both to NSNumber).
    static func number(_ v: Any) -> NSNumber? {
        guard let n = v as? NSNumber, String(describing: type(of: v)) != "__NSCFBoolean" else { return nil }
        return n
    }

    func has(_ key: String) -> Bool { json[key] != nil && !(json[key] is NSNull) }

    func int(_ key: String) throws(SparrowError) -> Int {
        guard let v = json[key] else { throw .config(path: path, problem: "missing key '\(key)'") }
        guard let n = Self.number(v), n.doubleValue == n.doubleValue.rounded() else {
            throw .config(path: path, problem: "'\(key)' must be an integer, found \(v)")
        }
        guard abs(n.doubleValue) <= Double(Self.largestInteger) else {
            throw .config(path: path, problem: "'\(key)' \(v) is out of range")
        }
        return n.intValue
    }

    /// The first of several spellings of a key that is present (transformers renames keys between
    /// versions, e.g. `num_experts` / `num_local_experts`).
    func int(anyOf keys: [String]) throws(SparrowError) -> Int {
        for k in keys where has(k) { return try int(k) }
        throw .config(path: path, problem: "missing key '\(keys.joined(separator: "' or '"))'")
    }

    func int(_ key: String, default d: Int) throws(SparrowError) -> Int { has(key) ? try int(key) : d }

    func positive(_ key: String) throws(SparrowError) -> Int {
        let v = try int(key)
        guard v > 0 else { throw .config(path: path, problem: "'\(key)' must be positive, found \(v)") }
        return v
    }

    func double(_ key: String) throws(SparrowError) -> Double {
        guard let v = json[key] else { throw .config(path: path, problem: "missing key '\(key)'") }
        guard let n = Self.number(v) else {
            throw .config(path: path, problem: "'\(key)' must be a number, found \(v)")
        }
        return n.doubleValue
    }

    func double(_ key: String, default d: Double) throws(SparrowError) -> Double { has(key) ? try double(key) : d }

    func bool(_ key: String, default d: Bool) throws(SparrowError) -> Bool {
        guard has(key) else { return d }
        guard let b = json[key] as? Bool,
            String(describing: type(of: json[key]!)) == "__NSCFBoolean" || !(json[key] is NSNumber)
        else { throw .config(path: path, problem: "'\(key)' must be true or false") }
        return b
    }

    func string(_ key: String) -> String? { json[key] as? String }

    func intList(_ key: String) throws(SparrowError) -> [Int] {
        guard has(key) else { return [] }
        let numbers = (json[key] as? NSNumber).map { [$0] } ?? json[key] as? [NSNumber]
        guard let numbers, numbers.allSatisfy({ abs($0.doubleValue) <= Double(Self.largestInteger) }) else {
            throw .config(path: path, problem: "'\(key)' must be a list of integers")
        }
        return numbers.map(\.intValue)
    }

    /// RoPE's base and scaling from `rope_theta` + `rope_scaling` (transformers 4) or
    /// `rope_parameters` (transformers 5): plain or YaRN; other scaled variants are refused.
    func rope(default d: Double) throws(SparrowError) -> (theta: Double, scaling: RopeScaling?) {
        var theta = try double("rope_theta", default: d)
        var scaling: RopeScaling?
        for key in ["rope_scaling", "rope_parameters"] {
            guard let p = json[key] as? [String: Any] else { continue }
            if let t = p["rope_theta"].flatMap(Self.number) { theta = t.doubleValue }
            if let f = p["partial_rotary_factor"].flatMap(Self.number), f.doubleValue != 1 {
                throw .config(path: path, problem: "\(key).partial_rotary_factor \(f) is not supported yet")
            }
            let type = (p["rope_type"] as? String) ?? (p["type"] as? String) ?? "default"
            switch type {
            case "default": continue
            case "yarn": scaling = try yarn(HFConfig(path: path + " (\(key))", json: p))
            default: throw .config(path: path, problem: "RoPE scaling type '\(type)' is not supported yet")
            }
        }
        guard theta > 0 else { throw .config(path: path, problem: "rope_theta must be positive") }
        return (theta, scaling)
    }

    /// YaRN's parameters with transformers' defaults; the attention factor from `factor` (and
    /// DeepSeek's `mscale` / `mscale_all_dim`) unless given.
    private func yarn(_ p: HFConfig) throws(SparrowError) -> RopeScaling {
        let maxPositions = try int("max_position_embeddings", default: 4096)
        let original =
            has("original_max_position_embeddings")
            ? try int("original_max_position_embeddings")
            : try p.int("original_max_position_embeddings", default: maxPositions)
        guard original > 0 else {
            throw .config(path: p.path, problem: "original_max_position_embeddings must be positive")
        }
        let factor = try p.double("factor", default: Double(maxPositions) / Double(original))
        guard factor > 0 else { throw .config(path: p.path, problem: "'factor' must be positive") }
        func mscale(_ m: Double) -> Double { RopeScaling.mscale(factor: factor, m) }
        var attention = mscale(1)
        if p.has("attention_factor") {
            attention = try p.double("attention_factor")
        } else if p.has("mscale"), p.has("mscale_all_dim") {
            let (m, all) = (try p.double("mscale"), try p.double("mscale_all_dim"))
            if m != 0 && all != 0 { attention = mscale(m) / mscale(all) }
        }
        let betaFast = try p.double("beta_fast", default: 32)
        let betaSlow = try p.double("beta_slow", default: 1)
        guard betaFast >= 0, betaSlow >= 0, attention > 0, attention.isFinite else {
            throw .config(
                path: p.path, problem: "beta_fast, beta_slow must not be negative, the attention factor positive")
        }
        return RopeScaling(
            factor: factor, originalMaxPositions: original, betaFast: betaFast == 0 ? 32 : betaFast,
            betaSlow: betaSlow == 0 ? 1 : betaSlow, truncate: try p.bool("truncate", default: true),
            attentionFactor: attention)
    }

    /// The shared parts of every supported family: attention shape, vocabulary, norms, RoPE.
    func baseConfig(architecture: Architecture) throws(SparrowError) -> ModelConfig {
        let hidden = try positive("hidden_size")
        let heads = try positive("num_attention_heads")
        let kvHeads = try int("num_key_value_heads", default: heads)
        guard kvHeads > 0, heads % kvHeads == 0 else {
            throw .config(
                path: path, problem: "num_attention_heads \(heads) is not a multiple of num_key_value_heads \(kvHeads)")
        }
        let headDim = try int("head_dim", default: hidden / heads)
        guard headDim > 0, headDim % 2 == 0 else {
            throw .config(path: path, problem: "head_dim \(headDim) must be positive and even")
        }
        let layers = try positive("num_hidden_layers")
        guard layers <= Self.mostLayers else {
            throw .config(
                path: path, problem: "num_hidden_layers \(layers) is more than Sparrow supports (\(Self.mostLayers))")
        }
        let act = string("hidden_act") ?? "silu"
        guard act == "silu" else {
            throw .config(path: path, problem: "hidden_act '\(act)' is not supported (only silu)")
        }
        let eps = try double("rms_norm_eps", default: 1e-6)
        var eos = try intList("eos_token_id")
        if eos.isEmpty, let e = try? int("eos_token_id") { eos = [e] }
        let rope = try rope(default: 10000)
        var c = ModelConfig(
            architecture: architecture, hiddenSize: hidden, layerCount: layers, headCount: heads,
            kvHeadCount: kvHeads, headDim: headDim, vocabSize: try positive("vocab_size"),
            expertCount: 0, expertsPerToken: 0, expertIntermediateSize: 0, denseIntermediateSize: 0,
            sharedExpertIntermediateSize: 0, normalizeTopK: false, rmsNormEps: Float(eps),
            ropeTheta: rope.theta, qkNorm: .none, qkvBias: false, outputBias: false, clipQKV: nil,
            slidingWindow: nil, tieWordEmbeddings: try bool("tie_word_embeddings", default: false),
            moeLayers: Array(repeating: true, count: layers),
            maxPositions: try int("max_position_embeddings", default: 4096), eosTokenIds: eos,
            bosTokenId: has("bos_token_id") ? try int("bos_token_id") : nil)
        c.ropeScaling = rope.scaling
        return c
    }

    /// The block scales of an FP8 checkpoint (`quantization_config.quant_method: fp8`, E4M3,
    /// `weight_block_size`), nil when it has none.
    func fp8Blocks() throws(SparrowError) -> FP8Blocks? {
        guard let q = json["quantization_config"] as? [String: Any], q["quant_method"] as? String == "fp8" else {
            return nil
        }
        let p = HFConfig(path: path + " (quantization_config)", json: q)
        if let f = p.string("fmt"), f != "e4m3" {
            throw .config(path: p.path, problem: "fmt '\(f)' is not supported (e4m3)")
        }
        let block = try p.intList("weight_block_size")
        let (rows, cols) = block.isEmpty ? (128, 128) : (block[0], block.count == 2 ? block[1] : 0)
        guard block.isEmpty || block.count == 2, rows > 0, cols > 0 else {
            throw .config(path: p.path, problem: "weight_block_size must be two positive sizes")
        }
        return FP8Blocks(block: (rows, cols))
    }

    /// Checks the routed-expert counts every family shares.
    func checkExperts(_ c: ModelConfig) throws(SparrowError) {
        guard c.expertCount > 0 else { throw .config(path: path, problem: "the model has no experts") }
        guard c.expertsPerToken > 0, c.expertsPerToken <= c.expertCount else {
            throw .config(
                path: path, problem: "experts per token (\(c.expertsPerToken)) must be in 1...\(c.expertCount)")
        }
        guard c.expertIntermediateSize > 0 else {
            throw .config(path: path, problem: "expert intermediate size must be positive")
        }
    }
}
