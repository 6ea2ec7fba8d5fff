// swift-tools-version: 6.1
import PackageDescription

// Coverage-guided fuzz targets for SiteFit's readers (libFuzzer), a package of its own so the
// main package's `swift build` never builds them: they have no `main`, libFuzzer brings one.
//   swift build --package-path Tests/Fuzz --sanitize=fuzzer --sanitize=address --product FuzzSafetensors
//   Tests/Fuzz/.build/debug/FuzzSafetensors Tests/Fuzz/Corpus/safetensors -max_total_time=600
// `.ci/fuzz` builds every target and runs each for a bounded time.
let library: [Target.Dependency] = [.product(name: "SiteFitSimulation", package: "SiteFit"), "FuzzSupport"]
let harness: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "SiteFitFuzz",
    dependencies: [.package(name: "SiteFit", path: "../..")],
    targets: [
        .target(name: "FuzzSupport"),
        .executableTarget(name: "FuzzSafetensors", dependencies: library, swiftSettings: harness),
        .executableTarget(name: "FuzzScenario", dependencies: library, swiftSettings: harness),
        .executableTarget(name: "FuzzProfile", dependencies: library, swiftSettings: harness),
        .executableTarget(name: "FuzzOMOPCSV", dependencies: library, swiftSettings: harness),
        .executableTarget(name: "FuzzUCI", dependencies: library, swiftSettings: harness),
        .executableTarget(name: "FuzzMetrics", dependencies: library, swiftSettings: harness),
    ]
)
