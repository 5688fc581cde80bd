// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Reel",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "reel", targets: ["reel"]),
        .library(name: "Diffusion", targets: ["Diffusion"]),
        .library(name: "Media", targets: ["Media"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // System libraries: one target per C library, found with pkg-config.
        .systemLibrary(
            name: "CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"]), .brew(["zeromq"])]
        ),
        .systemLibrary(
            name: "CFFmpeg",
            pkgConfig: "libavformat",
            providers: [.apt(["libavformat-dev", "libavcodec-dev", "libavutil-dev", "libswscale-dev"]), .brew(["ffmpeg"])]
        ),
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]
        ),

        // Debian's libsentencepiece is C++: a small C shim lets Swift call it.
        .target(name: "CSentencePiece", linkerSettings: [.linkedLibrary("sentencepiece"), .linkedLibrary("sentencepiece_train")]),

        // Domain modules.
        .target(name: "Diffusion", dependencies: ["COpenBLAS"]),
        // Model families, one folder each, on Diffusion's tensor kernels.
        .target(name: "Wan", dependencies: ["Diffusion", "CSentencePiece"]),
        .target(name: "Media", dependencies: ["CFFmpeg"]),
        .target(name: "Planning"),
        .target(name: "Evaluation"),
        .target(name: "Wire", dependencies: ["CZeroMQ", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                exclude: ["Generated/README.md"]),
        .target(name: "Worker", dependencies: ["Diffusion", "Wire", .product(name: "Logging", package: "swift-log")]),
        .target(name: "Coordinator", dependencies: ["Planning", "Diffusion", "Worker", "Wire", "Media",
                                                    .product(name: "Logging", package: "swift-log"),
                                                    .product(name: "GRDB", package: "GRDB.swift"),
                                                    .product(name: "Metrics", package: "swift-metrics")]),
        // The coordinator's web side: dashboard, JSON API and Prometheus /metrics.
        .target(name: "Dashboard", dependencies: ["Coordinator", "Media", "Planning", "Wire",
                                                  .product(name: "Hummingbird", package: "hummingbird"),
                                                  .product(name: "HTTPTypes", package: "swift-http-types"),
                                                  .product(name: "Logging", package: "swift-log"),
                                                  .product(name: "Prometheus", package: "swift-prometheus")]),

        // The command-line tool: parses, calls a library, prints.
        .executableTarget(
            name: "reel",
            dependencies: [
                "Diffusion", "Wan", "Media", "Planning", "Coordinator", "Worker", "Wire", "Evaluation", "Dashboard",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Fuzz targets for every decoder that reads the network (`make fuzz`); built normally,
        // it replays inputs and writes seed corpora.
        .executableTarget(name: "reel-fuzz", dependencies: ["Wire", "Planning", "Diffusion", "Coordinator",
                                                           .product(name: "Logging", package: "swift-log")], path: "Fuzz",
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])]),

        .testTarget(name: "SystemLibraryTests", dependencies: ["CZeroMQ", "CFFmpeg", "COpenBLAS"]),
        .target(name: "TestSupport", dependencies: ["Diffusion"], path: "Tests/TestSupport"),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion", "TestSupport"],
                    resources: [.copy("Reference"), .copy("Fixtures")]),
        .testTarget(name: "WanTests", dependencies: ["Wan", "Diffusion"], resources: [.copy("Fixtures")]),
        .testTarget(name: "MediaTests", dependencies: ["Media", "TestSupport"]),
        .testTarget(name: "PlanningTests", dependencies: ["Planning"]),
        .testTarget(name: "WireTests", dependencies: ["Wire"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation"]),
        .testTarget(name: "CoordinatorTests", dependencies: ["Coordinator", "Planning", "Diffusion", "Worker", "Wire", "Media", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["Media", "Wire", "Evaluation", "TestSupport", .product(name: "Yams", package: "Yams")]),
    ],
    cxxLanguageStandard: .cxx17
)
