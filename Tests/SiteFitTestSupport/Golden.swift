import Foundation
import Testing

/// Golden files: expected outputs committed beside the tests, compared byte for byte. They are
/// re-recorded only on purpose, with `SITEFIT_RECORD_GOLDEN=1`, and a recording run fails (each
/// file it writes is an issue), so a run that rewrote its own expectations is never green.
public enum Golden {
    /// The environment variable that turns comparing into recording.
    public static let recordVariable = "SITEFIT_RECORD_GOLDEN"

    /// True when this run records golden files instead of checking them.
    public static var isRecording: Bool { ProcessInfo.processInfo.environment[recordVariable] == "1" }

    /// Writes `data` as the golden file `url` and records an issue saying so.
    public static func record(_ data: Data, to url: URL, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try data.write(to: url)
            Issue.record("recorded golden \(relative(url)); review the diff, then rerun without \(recordVariable)",
                         sourceLocation: sourceLocation)
        } catch {
            Issue.record("cannot record golden \(relative(url)): \(error)", sourceLocation: sourceLocation)
        }
    }

    /// Expects `actual` to be the golden file's bytes; when recording, writes it there instead.
    public static func expect(_ actual: Data, matches url: URL, sourceLocation: SourceLocation = #_sourceLocation) {
        if isRecording { return record(actual, to: url, sourceLocation: sourceLocation) }
        guard let expected = FileManager.default.contents(atPath: url.path) else {
            Issue.record("no golden file \(relative(url)); record it with \(recordVariable)=1", sourceLocation: sourceLocation)
            return
        }
        guard actual != expected else { return }
        let message = "differs from golden \(relative(url))\(firstDifference(actual, expected)); "
            + "if the change is intended, re-record with \(recordVariable)=1"
        Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
    }

    /// Text against a golden file (compared as UTF-8 bytes).
    public static func expect(_ actual: String, matches url: URL, sourceLocation: SourceLocation = #_sourceLocation) {
        expect(Data(actual.utf8), matches: url, sourceLocation: sourceLocation)
    }

    /// The golden file's path from the repository root, as a reader finds it.
    static func relative(_ url: URL) -> String {
        let root = repositoryRoot.path + "/"
        return url.path.hasPrefix(root) ? String(url.path.dropFirst(root.count)) : url.path
    }

    /// " (first difference at line N: got …, expected …)" for text; "" when either side is not text.
    static func firstDifference(_ actual: Data, _ expected: Data) -> String {
        guard let a = String(data: actual, encoding: .utf8), let e = String(data: expected, encoding: .utf8) else { return "" }
        let got = a.components(separatedBy: "\n"), want = e.components(separatedBy: "\n")
        for line in 0..<max(got.count, want.count) where (line < got.count ? got[line] : nil) != (line < want.count ? want[line] : nil) {
            func show(_ lines: [String]) -> String { line < lines.count ? "'\(lines[line].prefix(160))'" : "end of file" }
            return " (first difference at line \(line + 1): got \(show(got)), expected \(show(want)))"
        }
        return ""
    }
}
