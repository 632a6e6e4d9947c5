import FuzzSupport
import Sparrow
@_spi(Internals) import SparrowRuntime

/// A checkpoint's config.json on arbitrary bytes: parsed, its architecture's fields read and
/// checked (every family's).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let path = ScratchFile.write(data, size, name: "config.json")
    _ = try? HFConfig(path: path).modelConfig()
    return 0
}
