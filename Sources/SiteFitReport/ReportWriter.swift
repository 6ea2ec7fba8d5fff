import Foundation
import SiteFitCore

/// Writes `<dir>/<scenario>.md`, `<dir>/<scenario>/metrics.json`, `predictions.csv` and the charts.
public enum ReportWriter {
    /// Paths of everything written.
    public struct Output: Sendable {
        public var report: URL
        public var metrics: URL
        public var predictions: URL
        public var charts: [URL]
    }

    public static func write(_ metrics: RunMetrics, predictions: [PredictionRow], to directory: URL) throws -> Output {
        let name = metrics.scenario.name
        let detail = directory.appendingPathComponent(name)
        do {
            try FileManager.default.createDirectory(at: detail, withIntermediateDirectories: true)
        } catch {
            throw UserFacingError("cannot create the report folder '\(detail.relativePath)': check that the path is writable")
        }
        let metricsURL = detail.appendingPathComponent("metrics.json")
        let predictionsURL = detail.appendingPathComponent("predictions.csv")
        let chartURL = detail.appendingPathComponent("accuracy-by-round.svg")
        let reportURL = directory.appendingPathComponent("\(name).md")
        try save(Data(metricsJSON(metrics).utf8), to: metricsURL)
        try save(Data(predictionsCSV(predictions).utf8), to: predictionsURL)
        try save(Data(Charts.accuracyByRound(metrics).utf8), to: chartURL)
        try save(Data(MarkdownReport.render(metrics, chartPath: "\(name)/accuracy-by-round.svg").utf8), to: reportURL)
        return Output(report: reportURL, metrics: metricsURL, predictions: predictionsURL, charts: [chartURL])
    }

    /// Sorted keys and fixed formatting: the same run gives the same bytes.
    public static func metricsJSON(_ metrics: RunMetrics) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(metrics)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// `arm,site,person_id,label,score,sex,race`, one line per test patient of the final model.
    public static func predictionsCSV(_ rows: [PredictionRow]) -> String {
        var out = "arm,site,person_id,label,score,sex,race\n"
        for row in rows {
            out += "\(csv(row.arm)),\(csv(row.site)),\(row.personId),\(row.label),\(row.score),\(row.sex),\(row.race)\n"
        }
        return out
    }

    static func csv(_ field: String) -> String {
        field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" })
            ? "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : field
    }

    static func save(_ data: Data, to url: URL) throws {
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            throw UserFacingError("cannot write '\(url.relativePath)': check that the folder is writable")
        }
    }
}

/// Formatting helpers shared by the Markdown and SVG writers.
enum Format {
    static func fixed(_ value: Double?, _ digits: Int = 3) -> String {
        guard let value, value.isFinite else { return "n/a" }
        return String(format: "%.\(digits)f", value)
    }

    static func percent(_ value: Double, _ digits: Int = 1) -> String {
        String(format: "%.\(digits)f %%", value * 100)
    }

    static func bytes(_ count: Int) -> String {
        if count >= 1_048_576 { return String(format: "%.2f MiB", Double(count) / 1_048_576) }
        if count >= 1024 { return String(format: "%.1f KiB", Double(count) / 1024) }
        return "\(count) B"
    }

    static func integer(_ value: Int) -> String {
        let digits = String(value)
        var out = ""
        for (i, c) in digits.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return String(out.reversed())
    }

    static func flops(_ value: Double) -> String {
        if value >= 1e9 { return String(format: "%.2f GFLOP", value / 1e9) }
        if value >= 1e6 { return String(format: "%.2f MFLOP", value / 1e6) }
        return String(format: "%.0f kFLOP", value / 1e3)
    }
}
