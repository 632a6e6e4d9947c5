import CSparrowABI
import Foundation
import Sparrow

// The C interface's model calls (Include/sparrow.h). Each checks every pointer first.

@_cdecl("sparrow_model_open")
public func sparrow_model_open_impl(
    _ path: UnsafePointer<CChar>?, _ params: UnsafePointer<sparrow_model_params>?,
    _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> sparrow_status {
    entry { () throws(CFailure) in
        guard let out else { throw .null("model (the output pointer)") }
        out.pointee = nil
        guard let path else { throw .null("path") }
        let p = try readParams(params, defaults: sparrow_model_default_params(), "sparrow_model_params")
        // Bytes that are not UTF-8 would be replaced and name another file: refused instead.
        guard let file = String(validatingCString: path) else {
            throw CFailure(SPARROW_ERR_INVALID_ARGUMENT, "path is not valid UTF-8")
        }
        let model = try runtime { () throws(SparrowError) in try Model(path: file, verifyDense: p.verify_checksums) }
        out.pointee = Handles.add(ModelHandle(model: model))
    }
}

@_cdecl("sparrow_model_close")
public func sparrow_model_close_impl(_ model: OpaquePointer?) -> sparrow_status {
    entry { () throws(CFailure) in
        guard Handles.remove(model, as: ModelHandle.self) else { throw .invalidHandle("model") }
    }
}

@_cdecl("sparrow_model_get_info")
public func sparrow_model_get_info_impl(_ model: OpaquePointer?, _ info: UnsafeMutablePointer<sparrow_model_info>?)
    -> sparrow_status
{
    entry { () throws(CFailure) in
        let h = try modelHandle(model)
        guard let info else { throw .null("info") }
        try checkSize(info.pointee.struct_size, of: sparrow_model_info.self, "sparrow_model_info")
        let m = h.model
        let c = m.config
        var i = sparrow_model_info()
        i.struct_size = MemoryLayout<sparrow_model_info>.size
        i.vocab_size = Int32(c.vocabSize)
        i.layer_count = Int32(c.layerCount)
        i.hidden_size = Int32(c.hiddenSize)
        i.expert_count = Int32(c.expertCount)
        i.experts_per_token = Int32(c.expertsPerToken)
        i.max_context = Int32(c.maxPositions)
        let bits = m.expertBits.prefix(8)
        i.level_count = Int32(bits.count)
        withUnsafeMutableBytes(of: &i.level_bits) { raw in
            for (k, b) in bits.enumerated() { raw.storeBytes(of: Int32(b), toByteOffset: k * 4, as: Int32.self) }
        }
        let sizes = ModelSizes(m)
        i.file_bytes = UInt64(sizes.file)
        i.dense_bytes = UInt64(sizes.dense)
        i.expert_bytes = UInt64(sizes.experts)
        i.live_sessions = Int32(Handles.lock.withLock { h.sessions })
        info.pointee = i
    }
}

/// Byte counts of a model's file and sections.
struct ModelSizes: Encodable {
    var file: Int
    var dense: Int
    var experts: Int
    init(_ m: Model) {
        file = m.file.file.bytes.count
        dense = m.file.sections.filter { $0.kind == .dense }.reduce(0) { $0 + Int($1.length) }
        experts = m.file.sections.filter { $0.kind == .experts }.reduce(0) { $0 + Int($1.length) }
    }
}

@_cdecl("sparrow_model_info_json")
public func sparrow_model_info_json_impl(
    _ model: OpaquePointer?, _ json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> sparrow_status {
    entry { () throws(CFailure) in
        guard let json else { throw .null("json") }
        json.pointee = nil
        let h = try modelHandle(model)
        struct Info: Encodable {
            var path: String
            var config: ModelConfig
            var expertBits: [Int]
            var bytes: ModelSizes
            var liveSessions: Int
        }
        let info = Info(
            path: h.model.file.path, config: h.model.config, expertBits: h.model.expertBits, bytes: ModelSizes(h.model),
            liveSessions: Handles.lock.withLock { h.sessions })
        json.pointee = mallocString(try jsonString(info))
    }
}

@_cdecl("sparrow_tokenize")
public func sparrow_tokenize_impl(
    _ model: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ length: Int, _ tokens: UnsafeMutablePointer<Int32>?,
    _ capacity: Int, _ count: UnsafeMutablePointer<Int>?
) -> sparrow_status {
    entry { () throws(CFailure) in
        let h = try modelHandle(model)
        guard let count else { throw .null("count") }
        guard let text else { throw .null("text") }
        let length = try cLength(length, "length"), capacity = cCapacity(capacity)
        guard tokens != nil || capacity == 0 else { throw .null("tokens (with a non-zero capacity)") }
        let bytes = UnsafeRawBufferPointer(start: text, count: length)
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw CFailure(SPARROW_ERR_INVALID_ARGUMENT, "text is not valid UTF-8")
        }
        let ids = h.model.tokenizer.encode(s)
        count.pointee = ids.count
        guard ids.count <= capacity else {
            throw CFailure(SPARROW_ERR_BUFFER_TOO_SMALL, "\(ids.count) tokens do not fit in a buffer of \(capacity)")
        }
        for (i, id) in ids.enumerated() { tokens![i] = Int32(id) }
    }
}

@_cdecl("sparrow_detokenize")
public func sparrow_detokenize_impl(
    _ model: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ count: Int, _ text: UnsafeMutablePointer<CChar>?,
    _ capacity: Int, _ length: UnsafeMutablePointer<Int>?
) -> sparrow_status {
    entry { () throws(CFailure) in
        let h = try modelHandle(model)
        guard let length else { throw .null("length") }
        let count = try cLength(count, "count"), capacity = cCapacity(capacity)
        guard tokens != nil || count == 0 else { throw .null("tokens (with a non-zero count)") }
        guard text != nil || capacity == 0 else { throw .null("text (with a non-zero capacity)") }
        let vocab = h.model.config.vocabSize
        var ids: [Int] = []
        ids.reserveCapacity(min(count, 1 << 16))  // grows past that: a count is no promise of memory
        for i in 0..<count {
            let id = Int(tokens![i])
            guard id >= 0 && id < vocab else {
                throw CFailure(
                    SPARROW_ERR_INVALID_ARGUMENT,
                    "token id \(id) at index \(i) is outside the vocabulary (0..<\(vocab))")
            }
            ids.append(id)
        }
        let utf8 = Array(h.model.tokenizer.decode(ids).utf8)
        length.pointee = utf8.count
        try copyOut(utf8, into: text, capacity: capacity)
    }
}

/// Copies `bytes` plus a NUL into a caller's buffer of `capacity` bytes.
func copyOut(_ bytes: [UInt8], into text: UnsafeMutablePointer<CChar>?, capacity: Int) throws(CFailure) {
    guard bytes.count + 1 <= capacity, let text else {
        throw CFailure(
            SPARROW_ERR_BUFFER_TOO_SMALL,
            "\(bytes.count + 1) bytes (with the NUL) do not fit in a buffer of \(capacity)")
    }
    for (i, b) in bytes.enumerated() { text[i] = CChar(bitPattern: b) }
    text[bytes.count] = 0
}
