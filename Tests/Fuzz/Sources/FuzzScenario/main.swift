import FuzzSupport
import Foundation
import SiteFitScenario

/// Any text as a scenario in `Scenarios/`, so relative profile paths reach the committed sites.
/// Loading only reads: it never builds a shard or writes a file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let text = text(data, size) else { return 0 }
    if let scenario = try? ScenarioLoader.load(text: text, url: repositoryRoot.appendingPathComponent("Scenarios/fuzz.yaml")) {
        _ = ResourceEstimate.of(scenario, cores: 2)
    }
    return 0
}
