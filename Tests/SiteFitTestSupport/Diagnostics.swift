import Foundation
import SiteFitCore

/// The located diagnostics `body` throws (none when it succeeds; any other error as one diagnostic).
public func diagnostics(_ body: () throws -> Void) -> [Diagnostic] {
    do {
        try body()
        return []
    } catch let list as DiagnosticList {
        return list.diagnostics
    } catch {
        return [Diagnostic(file: "?", line: 0, column: 0, field: "", problem: "\(error)")]
    }
}

/// A stable hash of a file's bytes (empty when it cannot be read), to show a file did not change.
public func fileHash(_ url: URL) -> String {
    StableHash.hex(Array(FileManager.default.contents(atPath: url.path) ?? Data()))
}
