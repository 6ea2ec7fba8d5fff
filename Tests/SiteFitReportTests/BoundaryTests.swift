import Foundation
import Testing
@testable import SiteFitReport
import SiteFitTestSupport

/// The typed boundary between a run and its report: arm kinds, absence reasons and datasets are
/// stored as metrics.json has always stored them, and read back as types.
@Suite("metrics.json boundary")
struct BoundaryTests {
    /// Every metrics.json the repository commits: the reports' and the golden test's.
    static var committedMetrics: [URL] {
        let reports = repositoryRoot.appendingPathComponent("Reports")
        let folders = (try? FileManager.default.contentsOfDirectory(atPath: reports.path)) ?? []
        return folders.sorted().map { reports.appendingPathComponent("\($0)/metrics.json") }
            .filter { FileManager.default.fileExists(atPath: $0.path) }
            + [repositoryRoot.appendingPathComponent("Tests/SiteFitSimulationTests/Golden/tiny/metrics.json")]
    }

    @Test("every committed metrics.json reads back into types and writes the same bytes")
    func committedFilesRoundTrip() throws {
        let files = Self.committedMetrics
        #expect(files.count >= 13, "the twelve reports and the golden")
        for url in files {
            let metrics = try ReportWriter.readMetrics(url)
            #expect(try ReportWriter.metricsJSON(metrics) == String(contentsOf: url, encoding: .utf8), "\(url.path)")
        }
    }

    @Test("absence reasons are stored in the wording metrics.json has always held", arguments: [
        (AbsenceReason.notSampled, "not sampled"),
        (.droppedOut(scheduled: false), "dropped out"),
        (.droppedOut(scheduled: true), "dropped out (scheduled)"),
        (.missedDeadline(seconds: 1.17, deadline: 1), "missed the deadline (1.17 s > 1 s)"),
        (.missedDeadline(seconds: 1234.5, deadline: 0.0005), "missed the deadline (1.23e+03 s > 0.0005 s)"),
    ])
    func storedAbsence(_ reason: AbsenceReason, _ text: String) throws {
        #expect(reason.storedText == text)
        let read = try #require(AbsenceReason(storedText: text))
        #expect(read.storedText == text, "reading back and writing again gives the same text")
    }

    @Test("a reason written before dropout recovery, with its re-keying suffix, still reads")
    func storedRekeyedReads() throws {
        let read = try #require(AbsenceReason(storedText: "missed the deadline (1.04 s > 1 s) after masking; the round re-keyed among 1 survivors"))
        #expect(read == .missedDeadline(seconds: 1.04, deadline: 1))
        #expect(AbsenceReason(storedText: "missed the deadline (1.04 s > 1 s) after masking; the round re-keyed among x survivors") == nil)
    }

    @Test("times keep three significant digits through the file")
    func storedTimesRound() throws {
        let read = try #require(AbsenceReason(storedText: AbsenceReason.missedDeadline(seconds: 1.17549, deadline: 1).storedText))
        #expect(read == .missedDeadline(seconds: 1.18, deadline: 1))
    }

    @Test("text that is not a stored reason is refused", arguments: [
        "", "Dropped out", "dropped out (maybe)", "missed the deadline", "missed the deadline (1 s > x s)",
        "missed the deadline (1 s > 2 s) after masking; the round re-keyed among two survivors", "missed the deadline (1 s > 2 s) and more",
    ])
    func unknownAbsence(_ text: String) {
        #expect(AbsenceReason(storedText: text) == nil)
    }

    @Test("a damaged absence reason in metrics.json is a clear error naming where it is")
    func damagedReason() throws {
        let golden = try String(contentsOf: repositoryRoot.appendingPathComponent("Reports/federation-privacy/metrics.json"), encoding: .utf8)
        let damaged = golden.replacingOccurrences(of: "\"dropped out\"", with: "\"went fishing\"")
        #expect(damaged != golden)
        let url = try temporaryDirectory().appendingPathComponent("metrics.json")
        try Data(damaged.utf8).write(to: url)
        #expect {
            _ = try ReportWriter.readMetrics(url)
        } throws: { error in
            let text = "\(error)"
            // Named by place; the file's text itself is never quoted back.
            return text.contains("invalid value at") && text.contains(".absent[0].reason'") && !text.contains("fishing")
        }
    }

    @Test("every baseline's name reads back as that baseline, pretrained or not", arguments: [true, false])
    func baselineNames(_ startsPretrained: Bool) {
        let baselines: [ArmKind.Baseline] = [.startingModel, .localOnly, .pooled, .localAt(site: "cleveland"), .localAt(site: "st-agnes")]
        for baseline in baselines {
            let name = baseline.armName(startsPretrained: startsPretrained)
            #expect(ArmKind(storedStrategy: "baseline", name: name) == .baseline(baseline), "\(name)")
        }
        #expect(ArmKind.Baseline.startingModel.armName(startsPretrained: startsPretrained) == (startsPretrained ? "pretrained" : "initial model"))
    }

    @Test("a federated arm is stored by its strategy, whatever its name; an unknown baseline name is refused")
    func storedStrategy() {
        #expect(ArmKind(storedStrategy: "fedprox", name: "pooled (simulation only)") == .federated(strategy: "fedprox"))
        #expect(ArmKind.federated(strategy: "fedyogi").storedStrategy == "fedyogi")
        #expect(ArmKind.baseline(.localAt(site: "va")).storedStrategy == "baseline")
        #expect(ArmKind(storedStrategy: "baseline", name: "fedavg") == nil)
        #expect(ArmKind(storedStrategy: "baseline", name: "local ") == nil)
    }

    @Test("the dataset is stored by its raw value and the task line follows it")
    func dataset() throws {
        var metrics = try ReportWriter.readMetrics(Self.committedMetrics[0])
        metrics.scenario.dataset = .heartDisease
        let json = try ReportWriter.metricsJSON(metrics)
        #expect(json.contains("\"dataset\" : \"heart-disease\""))
        #expect(json.contains("\"task\" : \"heart disease (num > 0) from 13 clinical findings"))
        #expect(try JSONDecoder().decode(RunMetrics.self, from: Data(json.utf8)) == metrics)
    }
}
