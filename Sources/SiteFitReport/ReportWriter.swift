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
        let detail = try folder(for: metrics, in: directory)
        let metricsURL = detail.appendingPathComponent("metrics.json")
        let predictionsURL = detail.appendingPathComponent("predictions.csv")
        try save(Data(metricsJSON(metrics).utf8), to: metricsURL)
        try save(Data(predictionsCSV(predictions).utf8), to: predictionsURL)
        let (report, charts) = try writeReport(metrics, to: directory)
        return Output(report: report, metrics: metricsURL, predictions: predictionsURL, charts: charts)
    }

    /// The Markdown report and its charts from metrics alone (what `sitefit report` redraws).
    public static func writeReport(_ metrics: RunMetrics, to directory: URL) throws -> (report: URL, charts: [URL]) {
        let name = metrics.scenario.name
        let detail = try folder(for: metrics, in: directory)
        var chartURLs: [URL] = []
        for chart in ReportCharts.all(metrics) {
            let url = detail.appendingPathComponent(chart.file)
            try save(Data(chart.svg.utf8), to: url)
            chartURLs.append(url)
        }
        let reportURL = directory.appendingPathComponent("\(name).md")
        try save(Data(MarkdownReport.render(metrics).utf8), to: reportURL)
        return (reportURL, chartURLs)
    }

    static func folder(for metrics: RunMetrics, in directory: URL) throws -> URL {
        let detail = directory.appendingPathComponent(metrics.scenario.name)
        do {
            try FileManager.default.createDirectory(at: detail, withIntermediateDirectories: true)
        } catch {
            throw UserFacingError("cannot create the report folder '\(detail.relativePath)': check that the path is writable")
        }
        return detail
    }

    /// The files a report links to (metrics, predictions, checkpoint), copied from `source` into
    /// the report's own folder `<report folder>/<name>/` when that is another folder: a report
    /// redrawn elsewhere must not point at files that are not beside it.
    public static func copyData(from source: URL, report: URL, name: String) throws {
        let target = report.deletingLastPathComponent().appendingPathComponent(name, isDirectory: true)
        guard source.standardizedFileURL.resolvingSymlinksInPath().path != target.standardizedFileURL.resolvingSymlinksInPath().path else { return }
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        for file in ["metrics.json", "predictions.csv", "pretrained.safetensors"] {
            let from = source.appendingPathComponent(file)
            guard FileManager.default.fileExists(atPath: from.path), let data = FileManager.default.contents(atPath: from.path) else { continue }
            try save(data, to: target.appendingPathComponent(file))
        }
    }

    /// Reads a `metrics.json` written by `sitefit run`; a damaged or foreign file is a clear error.
    public static func readMetrics(_ url: URL) throws -> RunMetrics {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw UserFacingError("\(url.relativePath): cannot read the file (does it exist?)")
        }
        do {
            return try JSONDecoder().decode(RunMetrics.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw UserFacingError("\(url.relativePath): not a SiteFit metrics.json: missing '\(path(context.codingPath + [key]))'")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw UserFacingError("\(url.relativePath): not a SiteFit metrics.json: wrong value at '\(path(context.codingPath))'")
        } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            throw UserFacingError("\(url.relativePath): not a SiteFit metrics.json: \(context.debugDescription) at '\(path(context.codingPath))'")
        } catch {
            throw UserFacingError("\(url.relativePath): not a SiteFit metrics.json (it is not valid JSON of that shape)")
        }
    }

    static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
    }

    /// Sorted keys and fixed formatting: the same run gives the same bytes.
    public static func metricsJSON(_ metrics: RunMetrics) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(metrics)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// `arm,site,person_id,label,score,sex,race,age_band,seed`, one line per test patient of the
    /// final model, for every seed of the scenario.
    public static func predictionsCSV(_ rows: [PredictionRow]) -> String {
        var out = "arm,site,person_id,label,score,sex,race,age_band,seed\n"
        for row in rows {
            out += "\(csv(row.arm)),\(csv(row.site)),\(row.personId),\(row.label),\(row.score),\(csv(row.sex)),\(csv(row.race)),\(row.ageBand),\(row.seed)\n"
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

    /// Seconds with a unit that keeps 3 significant digits readable.
    static func seconds(_ value: Double) -> String {
        guard value.isFinite else { return "n/a" }
        if value >= 1 { return String(format: "%.2f s", value) }
        if value >= 1e-3 { return String(format: "%.1f ms", value * 1e3) }
        return String(format: "%.0f µs", value * 1e6)
    }

    static func flops(_ value: Double) -> String {
        if value >= 1e9 { return String(format: "%.2f GFLOP", value / 1e9) }
        if value >= 1e6 { return String(format: "%.2f MFLOP", value / 1e6) }
        return String(format: "%.0f kFLOP", value / 1e3)
    }
}
