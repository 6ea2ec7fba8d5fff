// swift-tools-version: 6.1
import PackageDescription

// Kernels are compiled with these flags in every configuration: without `-target-cpu native` the
// SIMD code falls back to SSE2 and runs ~100x slower, which would make even `swift test` crawl.
// `native` means the binary uses the build machine's instruction set (AVX-512 or AVX2 with FMA on the machines this
// project has run on); build on the machine that runs it.
let kernelFlags: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-target-cpu", "native"])]
// The metrics are optimised in every configuration too: a report's paired bootstrap makes some
// 10^8 weighted row updates, which unoptimised takes minutes in `swift test` instead of seconds.
let metricsFlags: [SwiftSetting] = [.unsafeFlags(["-O"])]

let package = Package(
    name: "SiteFit",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sitefit", targets: ["sitefit"]),
        .library(name: "SiteFitSimulation", targets: ["SiteFitSimulation"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swiftcsv/SwiftCSV", from: "0.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.0.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.0"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.0"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.96.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.34.0"),
    ],
    targets: [
        // Ids, seeded random streams, located diagnostics. No dependencies.
        .target(name: "SiteFitCore"),
        // The only unsafe/SIMD code: matrix products and fused element-wise kernels, each with a naive twin.
        .target(name: "SiteFitKernels", swiftSettings: kernelFlags),
        // Flat parameter store, layers, MLP, loss, optimisers, safetensors.
        .target(name: "SiteFitNN", dependencies: ["SiteFitCore", "SiteFitKernels"]),
        // Fine-tuning modes (full, BitFit, ...) → parameter selections.
        .target(name: "SiteFitTuning", dependencies: ["SiteFitCore", "SiteFitKernels", "SiteFitNN"]),
        // The encoder over medical-code sequences: a NeuralModel built of the MLP's units plus attention.
        .target(name: "SiteFitTransformer", dependencies: ["SiteFitCore", "SiteFitKernels", "SiteFitNN", "SiteFitTuning"]),
        // OMOP-shaped SQLite shards: generator, schema, read-only cohort → feature matrix.
        .target(name: "SiteFitEHR", dependencies: [
            "SiteFitCore",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "SwiftCSV", package: "SwiftCSV"),
        ]),
        // Pure metric functions.
        .target(name: "SiteFitMetrics", dependencies: ["SiteFitCore"], swiftSettings: metricsFlags),
        // Site and server actors, FedAvg, the selected-parameter wire format.
        .target(name: "SiteFitFederation", dependencies: [
            "SiteFitCore", "SiteFitKernels", "SiteFitNN", "SiteFitTuning", "SiteFitEHR", "SiteFitMetrics",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // YAML scenarios and site profiles → typed values, with file:line:column errors.
        .target(name: "SiteFitScenario", dependencies: [
            "SiteFitCore", "SiteFitEHR", "SiteFitTuning", "SiteFitFederation", "SiteFitMetrics", "SiteFitTransformer",
            .product(name: "Yams", package: "Yams"), .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        // Markdown report, metrics.json, predictions.csv.
        .target(name: "SiteFitReport", dependencies: ["SiteFitCore", "SiteFitMetrics"]),
        // Scenario → run result: builds shards, pretrains, runs each arm's federation.
        .target(name: "SiteFitSimulation", dependencies: [
            "SiteFitCore", "SiteFitNN", "SiteFitTuning", "SiteFitEHR", "SiteFitFederation",
            "SiteFitScenario", "SiteFitMetrics", "SiteFitReport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // A consortium's certificate authority: the server's and each site's certificates, and
        // which site a presented certificate names (for sites that run as separate processes).
        .target(name: "SiteFitIdentity", dependencies: [
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Sites as separate processes: the protocol's messages (generated from Protos/, committed),
        // the server's end of each site's stream, the site agent, and the gRPC transport over mutual TLS.
        .target(name: "SiteFitRemote", dependencies: [
            "SiteFitCore", "SiteFitEHR", "SiteFitNN", "SiteFitFederation", "SiteFitScenario", "SiteFitSimulation", "SiteFitTransformer",
            "SiteFitIdentity", "SiteFitTuning",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
        ], exclude: ["Protos"]),
        // Benchmarks: the product's own federated loop, kernels against the core's peak, shards.
        .target(name: "SiteFitBenchmarks", dependencies: [
            "SiteFitCore", "SiteFitKernels", "SiteFitNN", "SiteFitTuning", "SiteFitEHR", "SiteFitFederation", "SiteFitMetrics",
            "SiteFitTransformer",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: kernelFlags),
        // The thin command-line front end.
        .executableTarget(name: "sitefit", dependencies: [
            "SiteFitSimulation", "SiteFitScenario", "SiteFitEHR", "SiteFitReport", "SiteFitKernels", "SiteFitNN",
            "SiteFitTuning", "SiteFitCore", "SiteFitFederation", "SiteFitBenchmarks", "SiteFitTransformer", "SiteFitIdentity",
            "SiteFitRemote",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Fixtures the test targets share: temporary folders, the tiny scenario, in-memory sites, golden files.
        .target(name: "SiteFitTestSupport", dependencies: ["SiteFitCore", "SiteFitNN"], path: "Tests/SiteFitTestSupport"),

        .testTarget(name: "SiteFitCoreTests", dependencies: ["SiteFitCore"]),
        .testTarget(name: "SiteFitKernelsTests", dependencies: ["SiteFitKernels"]),
        .testTarget(name: "SiteFitNNTests", dependencies: ["SiteFitNN", "SiteFitTuning", "SiteFitCore"]),
        .testTarget(name: "SiteFitTransformerTests", dependencies: ["SiteFitTransformer", "SiteFitNN", "SiteFitTuning", "SiteFitKernels", "SiteFitCore",
                                                              "SiteFitTestSupport"]),
        .testTarget(name: "SiteFitEHRTests", dependencies: [
            "SiteFitEHR", "SiteFitCore", "SiteFitTestSupport", .product(name: "GRDB", package: "GRDB.swift"),
        ], exclude: ["Fixtures"]),
        .testTarget(name: "SiteFitMetricsTests", dependencies: ["SiteFitMetrics", "SiteFitCore"]),
        .testTarget(name: "SiteFitFederationTests", dependencies: [
            "SiteFitFederation", "SiteFitNN", "SiteFitTuning", "SiteFitEHR", "SiteFitCore", "SiteFitTestSupport",
        ]),
        .testTarget(name: "SiteFitScenarioTests", dependencies: [
            "SiteFitScenario", "SiteFitFederation", "SiteFitTuning", "SiteFitMetrics", "SiteFitEHR", "SiteFitTestSupport"]),
        .testTarget(name: "SiteFitIdentityTests", dependencies: ["SiteFitIdentity", "SiteFitTestSupport",
                                                              .product(name: "X509", package: "swift-certificates")]),
        .testTarget(name: "SiteFitRemoteTests", dependencies: [
            "SiteFitRemote", "SiteFitSimulation", "SiteFitScenario", "SiteFitFederation", "SiteFitReport", "SiteFitIdentity", "SiteFitTestSupport", "SiteFitNN",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
        ]),
        .testTarget(name: "SiteFitReportTests", dependencies: ["SiteFitReport", "SiteFitCore", "SiteFitTestSupport"]),
        .testTarget(name: "SiteFitSimulationTests", dependencies: ["SiteFitSimulation", "SiteFitScenario", "SiteFitFederation", "SiteFitTestSupport",
                                                              .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log")],
                    exclude: ["Golden"]),
        .testTarget(name: "SiteFitCLITests", dependencies: ["sitefit", "SiteFitTestSupport"], exclude: ["Golden"]),
    ],
    swiftLanguageModes: [.v6]
)
