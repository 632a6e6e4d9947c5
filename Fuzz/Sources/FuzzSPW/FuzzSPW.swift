import FuzzSupport
import Sparrow
import SparrowFormat

/// The .spw reader on arbitrary bytes: open (header, sections, meta JSON, directories, tokenizer),
/// every checksum, every expert level's record. Errors are expected; a crash or hang is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let path = ScratchFile.write(data, size, name: "model.spw")
    if let file = try? SPWFile(path: path) { _ = try? file.verifyAll() }
    _ = try? Model(path: path, verifyDense: true)
    return 0
}
