import Foundation
import Testing
import SiteFitCore
@testable import SiteFitReport
import SiteFitTestSupport

@Suite("A hostile metrics.json reaches neither a path outside the output folder nor the report's Markdown")
struct HostileMetricsTests {
    static let golden = repositoryRoot.appendingPathComponent("Tests/SiteFitSimulationTests/Golden/tiny/metrics.json")

    static func read(_ change: (String) -> String, _ name: String = #function) throws -> Result<RunMetrics, any Error> {
        let url = try temporaryDirectory(name).appendingPathComponent("metrics.json")
        try change(try String(contentsOf: golden, encoding: .utf8)).write(to: url, atomically: true, encoding: .utf8)
        return Result { try ReportWriter.readMetrics(url) }
    }

    @Test("a scenario name with a path, an arm name that breaks a table, a key with an escape sequence are refused, naming where")
    func refused() throws {
        let cases: [(String, String, String)] = [
            (#""name" : "tiny","#, #""name" : "..\/..\/escaped","#, "scenario.name"),
            (#""name" : "full","#, #""name" : "full | <script>alert(1)<\/script>","#, "arms[0].name"),
            (#""name" : "tiny","#, #""name" : "tiny", "x\u001b[2J" : 1,"#, "a key of scenario"),
        ]
        for (k, (from, to, place)) in cases.enumerated() {
            let result = try Self.read({ $0.replacingOccurrences(of: from, with: to) }, "refused-\(k)")
            guard case .failure(let error as UserFacingError) = result else { Issue.record("accepted: \(to)"); continue }
            #expect(error.message.contains(place), "\(error.message)")
            #expect(!error.message.contains("script") && !error.message.contains("escaped") && !error.message.contains("\u{1B}"))
        }
    }

    @Test("a value the decoder cannot take is named by its place, never quoted")
    func notQuoted() throws {
        let result = try Self.read { $0.replacingOccurrences(of: #""dataset" : "omop""#, with: #""dataset" : "patient 4711 diabetic""#) }
        guard case .failure(let error as UserFacingError) = result else { Issue.record("accepted"); return }
        #expect(error.message.contains("scenario.dataset") && !error.message.contains("4711"), "\(error.message)")
    }

    @Test("an undefined metric is written as \"nan\" and read back, not a failure after the run")
    func nanRoundTrip() throws {
        var metrics = try ReportWriter.readMetrics(Self.golden)
        metrics.sites[0].meanAge = .nan
        let text = try ReportWriter.metricsJSON(metrics)
        #expect(text.contains(#""mean_age" : "nan""#))
        let url = try temporaryDirectory().appendingPathComponent("metrics.json")
        try text.write(to: url, atomically: true, encoding: .utf8)
        #expect(try ReportWriter.readMetrics(url).sites[0].meanAge.isNaN)
    }

    @Test("a report set is written whole: no staging folder is left, a rerun replaces the set, a file as output folder fails first")
    func writtenAsASet() throws {
        let metrics = try ReportWriter.readMetrics(Self.golden)
        let folder = try temporaryDirectory()
        let stale = folder.appendingPathComponent(".tiny.tmp-2147483646-0000")
        try FileManager.default.createDirectory(at: stale, withIntermediateDirectories: true)
        let first = try ReportWriter.write(metrics, predictions: [], checkpoint: [1, 2, 3], to: folder)
        try Data("an old chart".utf8).write(to: folder.appendingPathComponent("tiny/old.svg"))
        let second = try ReportWriter.write(metrics, predictions: [], to: folder)
        #expect(first.report == second.report)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: folder.path)) == ["tiny", "tiny.md"], "no staging or retired folder")
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("tiny").path))
        #expect(files.contains("metrics.json") && !files.contains("old.svg") && !files.contains("pretrained.safetensors"),
                "the second set replaced the first whole")
        let file = folder.appendingPathComponent("a-file")
        try Data().write(to: file)
        #expect(throws: UserFacingError.self) { try ReportWriter.checkWritable(file) }
    }

    @Test("a folder of the report's name holding other files is never replaced; a set a killed run left stepped aside is put back")
    func neverDeletesOtherFolders() throws {
        let metrics = try ReportWriter.readMetrics(Self.golden)
        let folder = try temporaryDirectory()
        let theirs = folder.appendingPathComponent("tiny")
        try FileManager.default.createDirectory(at: theirs, withIntermediateDirectories: true)
        try Data("notes".utf8).write(to: theirs.appendingPathComponent("notes.txt"))
        #expect(throws: UserFacingError.self) { try ReportWriter.write(metrics, predictions: [], to: folder) }
        #expect(FileManager.default.fileExists(atPath: theirs.appendingPathComponent("notes.txt").path))

        // A run killed after stepping the previous set aside, before moving the new one in.
        let other = try temporaryDirectory("killed")
        _ = try ReportWriter.write(metrics, predictions: [], checkpoint: [7], to: other)
        let aside = other.appendingPathComponent(".tiny.old-2147483646-0000")
        try FileManager.default.moveItem(at: other.appendingPathComponent("tiny"), to: aside)
        ReportWriter.restoreRetired("tiny", in: other)
        #expect(FileManager.default.fileExists(atPath: other.appendingPathComponent("tiny/pretrained.safetensors").path))
        #expect(!FileManager.default.fileExists(atPath: aside.path))
    }
}
