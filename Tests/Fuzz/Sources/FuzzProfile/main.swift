import FuzzSupport
import Foundation
import SiteFitScenario

/// Any text as a site profile.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let text = text(data, size) else { return 0 }
    if let profile = try? SiteProfileLoader.load(text: text, url: repositoryRoot.appendingPathComponent("Sites/fuzz-site.yaml")) {
        _ = profile.fingerprint
    }
    return 0
}
