import Foundation
import Sparrow

/// The demo model's tokenizer on arbitrary text: bytes that are UTF-8 are encoded and decoded back.
let tokenizer: Tokenizer = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../..")
        .standardized.path
    let json = FileManager.default.contents(atPath: root + "/Models/tiny-qwen3moe/tokenizer.json")!
    return try! Tokenizer(json: Array(json), addBos: false)
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let text = String(validating: UnsafeBufferPointer(start: data, count: size), as: UTF8.self) else { return 0 }
    let ids = tokenizer.encode(text)
    let back = tokenizer.decode(ids)
    // The byte-level tokenizer must round-trip (normalisation aside, this tokenizer has none).
    if back != text { fatalError("round trip changed the text: \(Array(text.utf8)) → \(Array(back.utf8))") }
    return 0
}
