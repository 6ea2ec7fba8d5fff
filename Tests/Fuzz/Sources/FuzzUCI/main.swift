import FuzzSupport
import SiteFitEHR

/// Any text as a UCI heart-disease `processed.*.data` file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let text = text(data, size) else { return 0 }
    _ = try? HeartDiseaseImport.parse(text: text, file: "processed.fuzz.data", site: "fuzz")
    return 0
}
