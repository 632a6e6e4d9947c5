import FuzzSupport
import Sparrow
@_spi(Internals) import SparrowRuntime

/// The profile sidecar (MODEL.spw.profile.json) on arbitrary bytes, then what a session derives from it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let path = ScratchFile.write(data, size, name: "model.spw.profile.json")
    if let profile = try? ExpertProfile.load(from: path) {
        _ = profile.thresholds(lowLevel: 0, tolerance: 0.05)
        _ = profile.lowUseShare(fullThreshold: TokenPrecision.defaultFullThreshold)
    }
    return 0
}
