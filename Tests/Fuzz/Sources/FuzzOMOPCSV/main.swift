import FuzzSupport
import Foundation
import SiteFitEHR

/// Any text as an OMOP CSV export: split at lines of `=====` into `person.csv`,
/// `observation_period.csv` and `measurement.csv`, imported into a scratch shard.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let text = text(data, size) else { return 0 }
    let folder = scratch.appendingPathComponent("export")
    try? FileManager.default.removeItem(at: folder)
    try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let parts = text.components(separatedBy: "\n=====\n")
    for (part, table) in zip(parts, ["person", "observation_period", "measurement"]) {
        try? part.write(to: folder.appendingPathComponent("\(table).csv"), atomically: false, encoding: .utf8)
    }
    _ = try? OMOPCSV.importFolder(folder, to: scratch.appendingPathComponent("fuzz.sqlite"), name: "fuzz", currentYear: 2026)
    return 0
}
