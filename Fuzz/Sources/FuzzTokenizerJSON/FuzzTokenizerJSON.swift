import Sparrow

/// tokenizer.json on arbitrary bytes, then a short encode/decode with whatever it defines.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    if let t = try? Tokenizer(json: Array(UnsafeBufferPointer(start: data, count: size)), addBos: false) {
        let ids = t.encode("Hello, world 12 ÿ 日本")
        _ = t.decode(ids)
    }
    return 0
}
