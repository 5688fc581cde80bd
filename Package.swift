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
    // Exact versions: a build is the same build on every machine and in CI.
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-metrics", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", exact: "1.8.0"),
        .package(url: "https://github.com/jpsim/Yams", exact: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", exact: "3.12.3"),
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
        // The registry of families: one line per family folder.
        .target(name: "Families", dependencies: ["Diffusion", "Wan"]),
        .target(name: "Media", dependencies: ["CFFmpeg", .product(name: "Crypto", package: "swift-crypto")]),
        // What made a video, signed: the manifest every MP4 carries, its keys, and its checks.
        .target(name: "Provenance", dependencies: ["Media", "Planning", "Wire", .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "Planning"),
        .target(name: "Evaluation"),
        .target(name: "Wire", dependencies: ["CZeroMQ", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                exclude: ["Generated/README.md"], plugins: ["BuildStamp"]),
        // Writes the commit a build is made from into Wire (`ReelVersion.commit`).
        .plugin(name: "BuildStamp", capability: .buildTool()),
        .target(name: "Worker", dependencies: ["Diffusion", "Families", "Media", "Planning", "Provenance", "Wire", .product(name: "Logging", package: "swift-log")]),
        .target(name: "Coordinator", dependencies: ["Planning", "Diffusion", "Families", "Wire", "Media", "Provenance",
                                                    .product(name: "Logging", package: "swift-log"),
                                                    .product(name: "GRDB", package: "GRDB.swift"),
                                                    .product(name: "Metrics", package: "swift-metrics")]),
        // A coordinator and workers in one process (`reel render`, `reel eval`), and a job's
        // shards run one after another for tests.
        .target(name: "InProcessFarm", dependencies: ["Coordinator", "Worker", "Diffusion", "Media", "Planning", "Wire"]),
        // The coordinator's web side: dashboard, JSON API and Prometheus /metrics.
        .target(name: "Dashboard", dependencies: ["Coordinator", "Media", "Planning", "Wire",
                                                  .product(name: "Hummingbird", package: "hummingbird"),
                                                  .product(name: "HTTPTypes", package: "swift-http-types"),
                                                  .product(name: "Logging", package: "swift-log"),
                                                  .product(name: "Prometheus", package: "swift-prometheus"),
                                                  .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),

        // The command-line tool: parses, calls a library, prints.
        .executableTarget(
            name: "reel",
            dependencies: [
                "Diffusion", "Families", "Wan", "Media", "Planning", "Coordinator", "InProcessFarm", "Worker", "Wire", "Evaluation", "Dashboard", "Provenance",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
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
        .testTarget(name: "CoordinatorTests", dependencies: ["Coordinator", "InProcessFarm", "Planning", "Diffusion", "Families", "Wan", "Worker", "Wire", "Media", "Provenance", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["Coordinator", "Media", "Wire", "Evaluation", "TestSupport", "Provenance",
                                                .product(name: "Crypto", package: "swift-crypto"), .product(name: "Yams", package: "Yams")]),
    ],
    cxxLanguageStandard: .cxx17
)
