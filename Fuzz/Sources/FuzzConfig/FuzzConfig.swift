import FuzzSupport
import Sparrow
@_spi(Internals) import SparrowRuntime

/// A checkpoint's config.json on arbitrary bytes: every architecture's fields and checks.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let path = ScratchFile.write(data, size, name: "config.json")
    _ = try? HFConfig(path: path)
    return 0
}
