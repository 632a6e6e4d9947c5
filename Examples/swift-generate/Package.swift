// swift-tools-version: 6.1
// A separate package using Sparrow as a dependency (by path here; by URL in a real project).
import PackageDescription

let package = Package(
    name: "swift-generate",
    platforms: [.macOS(.v14)],
    dependencies: [.package(name: "Sparrow", path: "../..")],
    targets: [
        .executableTarget(name: "swift-generate", dependencies: [.product(name: "Sparrow", package: "Sparrow")])
    ]
)
