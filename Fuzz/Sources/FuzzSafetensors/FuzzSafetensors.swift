import FuzzSupport
import Sparrow
import SparrowFormat

/// A safetensors file's header (length, JSON, dtypes, shapes, offsets) on arbitrary bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let path = ScratchFile.write(data, size, name: "model.safetensors")
    if let file = try? SafeTensorsFile(path: path) {
        for info in file.tensors.values { _ = file.bytes(of: info) }
    }
    return 0
}
