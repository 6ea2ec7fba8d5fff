import FuzzSupport
import SiteFitNN

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? Safetensors.decode(bytes)
    _ = try? Checkpoint.decode(bytes, file: "fuzz")
    return 0
}
