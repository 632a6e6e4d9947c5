// swift-tools-version: 6.1
// libFuzzer targets for Sparrow's parsers of untrusted bytes, kept out of the library's package.
//   Scripts/fuzz.sh TARGET [libFuzzer options, e.g. -runs=100000 or -max_total_time=60]
import Foundation
import PackageDescription

/// The parent package's identity: the name of the folder it was checked out into.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent
    .lowercased()
let sparrow: Target.Dependency = .product(name: "Sparrow", package: root)

/// Each fuzz target defines LLVMFuzzerTestOneInput; libFuzzer (-sanitize=fuzzer) supplies main.
func fuzzTarget(_ name: String) -> Target {
    .executableTarget(name: name, dependencies: [sparrow, "FuzzSupport"])
}

let package = Package(
    name: "SparrowFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(path: "..")],
    targets: [
        .target(name: "FuzzSupport"),
        fuzzTarget("FuzzSPW"),
        fuzzTarget("FuzzSafetensors"),
        fuzzTarget("FuzzConfig"),
        fuzzTarget("FuzzTokenizerJSON"),
        fuzzTarget("FuzzTokenize"),
        fuzzTarget("FuzzProfile")
    ],
    swiftLanguageModes: [.v5]
)
