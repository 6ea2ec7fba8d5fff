import Foundation

/// The repository this package sits in (`Tests/Fuzz/Sources/FuzzSupport/Support.swift` → root), so
/// a fuzzed scenario's relative paths reach the committed site profiles.
public let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

/// A folder of this process's own for readers that need files (removed by the OS with /tmp).
public let scratch: URL = {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("sitefit-fuzz-\(getpid())")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}()

/// The fuzzer's input as UTF-8 text, or nil (the readers take text; invalid UTF-8 is their
/// callers' concern and is tested there).
public func text(_ data: UnsafePointer<UInt8>, _ size: Int) -> String? {
    String(validating: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
}
