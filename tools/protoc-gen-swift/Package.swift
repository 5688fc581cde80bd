// swift-tools-version:6.0
// Builds swift-protobuf's protoc plugin for `make proto`. Kept apart from the main package so
// ordinary builds never compile it (it takes about ten minutes on two cores).
import PackageDescription

let package = Package(
    name: "ProtocGenSwift",
    dependencies: [.package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0")],
    targets: [
        .executableTarget(
            name: "BuildPlugin",
            dependencies: [.product(name: "protoc-gen-swift", package: "swift-protobuf")],
            path: "Sources")
    ]
)
