// swift-tools-version: 6.1
import Foundation
import PackageDescription

/// The package's directory (the linker needs absolute paths).
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path

/// The Swift runtime and Foundation linked in statically, with what Foundation needs named in one
/// group (the linker must see them together; autolinking alone leaves ICU symbols unresolved).
let staticRuntime = [
    "-static-stdlib",
    "-Xlinker", "--start-group", "-lFoundation", "-lFoundationEssentials",
    "-lFoundationInternationalization", "-lCoreFoundation", "-l_FoundationICU",
    "-l_FoundationCollections", "-l_FoundationCShims", "-lswiftSynchronization", "-lswiftDispatch",
    "-ldispatch", "-lBlocksRuntime", "-Xlinker", "--end-group"
]

let package = Package(
    name: "Sparrow",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Sparrow", targets: ["Sparrow"]),
        .executable(name: "sparrow", targets: ["sparrow"]),
        // The C interface (Include/sparrow.h) as a shared library: libSparrowC.so, installed as
        // libsparrow.so by Scripts/install-lib.sh (SwiftPM forbids a second product named sparrow).
        // The Swift runtime is linked in statically; only sparrow_* is exported.
        .library(name: "SparrowC", type: .dynamic, targets: ["SparrowC"]),
        // The kernels alone, for the micro-benchmarks in Benchmarks/.
        .library(name: "SparrowKernels", targets: ["SparrowKernels"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0")
    ],
    targets: [
        // System libraries (module maps over the Debian -dev packages).
        .systemLibrary(
            name: "CURing", pkgConfig: "liburing", providers: [.apt(["liburing-dev"])]),
        .systemLibrary(
            name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),

        // Hot kernels in C with per-ISA variants chosen at start-up.
        .target(name: "CSparrowKernels"),
        .target(name: "SparrowKernels", dependencies: ["CSparrowKernels"]),

        // The lock every module uses (Mutex; a pthread mutex under ThreadSanitizer, Scripts/tsan.sh).
        .target(name: "SparrowSync"),
        // CRC-32C in C (the SSE4.2 instruction): the checksums of the .spw format.
        .target(name: "CChecksum"),
        // A SIGBUS guard for file mappings (a file truncated under the process reads as zeros, counted).
        .target(name: "CMapGuard"),
        // The .spw file, the safetensors reader, checksums.
        .target(name: "SparrowFormat", dependencies: ["CChecksum", "CMapGuard", "CZstd", "SparrowSync"]),
        // Number formats and matryoshka quantization.
        .target(name: "SparrowQuant", dependencies: ["CSparrowKernels", "SparrowFormat", "SparrowKernels"]),
        // Moving expert bytes from storage into memory.
        .target(
            name: "SparrowIO",
            dependencies: ["CURing", "SparrowSync", .product(name: "DequeModule", package: "swift-collections")]),
        // Model, Session, architectures, tokenizer, sampler, converter.
        .target(
            name: "SparrowRuntime",
            dependencies: [
                "SparrowFormat", "SparrowQuant", "SparrowKernels", "CSparrowKernels", "SparrowIO", "SparrowSync"
            ]),
        // Public Swift API.
        .target(name: "Sparrow", dependencies: ["SparrowRuntime", "SparrowFormat", "SparrowQuant", "SparrowIO"]),
        // The C interface: the header's module, its plain-data parts in C, the rest in Swift.
        .target(name: "CSparrowABI"),
        .target(
            name: "SparrowC", dependencies: ["Sparrow", "CSparrowABI"], exclude: ["exports.map"],
            linkerSettings: [
                .unsafeFlags(
                    staticRuntime + [
                        "-Xlinker", "--version-script=\(root)/Sources/SparrowC/exports.map",
                        "-Xlinker", "-soname=libsparrow.so.0"
                    ])
            ]),
        // The CLI. The Swift runtime and Foundation are linked in statically: their shared
        // libraries' code pages were 6 MiB more of the resident memory a budget counts before any
        // expert (Benchmarks/RESULTS.md, issue 14).
        .executableTarget(
            name: "sparrow",
            dependencies: [
                "Sparrow", "SparrowRuntime", "SparrowFormat", "SparrowQuant", "SparrowIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser")
            ],
            linkerSettings: [.unsafeFlags(staticRuntime)]),

        .testTarget(
            name: "SparrowTests",
            dependencies: [
                "Sparrow", "SparrowRuntime", "SparrowFormat", "SparrowKernels", "CSparrowKernels", "SparrowQuant",
                "SparrowIO",
                "CSparrowABI"
            ],
            exclude: ["Fixtures"])
    ],
    // Kernels share raw buffers across worker threads by design; strict Sendable checking of
    // those captures would need unchecked wrappers everywhere, so the package uses Swift 5 mode.
    swiftLanguageModes: [.v5]
)
