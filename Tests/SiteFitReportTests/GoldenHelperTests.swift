import Foundation
import Testing
import SiteFitTestSupport

/// The shared golden-file helper (Tests/SiteFitTestSupport/Golden.swift) that every golden uses:
/// a recording is never a pass, and a mismatch names the first line that differs.
@Suite("Golden files")
struct GoldenHelperTests {
    @Test("recording writes the file and fails the test")
    func recordingFails() throws {
        let url = try temporaryDirectory().appendingPathComponent("sub/golden.txt")
        withKnownIssue("a recording run must not pass") {
            Golden.record(Data("recorded\n".utf8), to: url)
        } matching: { issue in
            issue.comments.contains { $0.rawValue.contains("recorded golden") && $0.rawValue.contains(Golden.recordVariable) }
        }
        #expect(FileManager.default.contents(atPath: url.path) == Data("recorded\n".utf8))
    }

    @Test("a mismatch fails and names the first differing line; a match passes", .enabled(if: !Golden.isRecording))
    func mismatch() throws {
        let url = try temporaryDirectory().appendingPathComponent("golden.txt")
        try Data("one\ntwo\nthree\n".utf8).write(to: url)
        Golden.expect("one\ntwo\nthree\n", matches: url)
        withKnownIssue("the text differs from the golden") {
            Golden.expect("one\nTWO\nthree\n", matches: url)
        } matching: { issue in
            issue.comments.contains { $0.rawValue.contains("first difference at line 2: got 'TWO', expected 'two'") }
        }
        withKnownIssue("a missing golden is a failure, not a silent pass") {
            Golden.expect("x", matches: url.deletingLastPathComponent().appendingPathComponent("absent.txt"))
        }
    }
}
