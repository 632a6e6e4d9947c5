// swift-tools-version: 6.1
// Micro-benchmarks of Sparrow's kernels, kept out of the library's dependencies.
//   cd Benchmarks && swift package benchmark --target KernelBenchmarks
import Foundation
import PackageDescription

/// The parent package's identity: the name of the folder it was checked out into.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent
    .lowercased()

let package = Package(
    name: "SparrowBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"])
    ],
    targets: [
        .executableTarget(
            name: "KernelBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "SparrowKernels", package: root),
                .product(name: "Sparrow", package: root)
            ],
            path: "Benchmarks/KernelBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")])
    ],
    swiftLanguageModes: [.v5]
)
