// swift-tools-version: 6.1
// Micro-benchmarks of Sparrow's kernels, kept out of the library's dependencies.
//   cd Benchmarks && swift package benchmark --target KernelBenchmarks
import PackageDescription

let package = Package(
    name: "SparrowBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "KernelBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "SparrowKernels", package: "main"),
                .product(name: "Sparrow", package: "main"),
            ],
            path: "Benchmarks/KernelBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),
    ],
    swiftLanguageModes: [.v5]
)
