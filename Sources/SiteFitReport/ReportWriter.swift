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

    /// Writes the whole set (report, metrics, predictions, charts and `checkpoint` when given) into
    /// a staging folder first, then moves the folder and the report into place. The previous
    /// folder steps aside as `.<name>.old-…` and is removed only once the new one is in place; a
    /// failure puts it back, and a run killed between the two moves finds it and puts it back
    /// next time. What remains possible is a kill between moving the folder and the report (two
    /// renames): the new folder beside the previous report until the next run.
    public static func write(_ metrics: RunMetrics, predictions: [PredictionRow], checkpoint: [UInt8]? = nil,
                             to directory: URL) throws -> Output {
        let name = metrics.scenario.name
        try checkWritable(directory, name: name)
        let fm = FileManager.default
        let detail = directory.appendingPathComponent(name)
        let report = directory.appendingPathComponent("\(name).md")
        restoreRetired(name, in: directory)
        StaleFiles.remove(prefix: ".\(name).tmp-", in: directory)
        let staging = directory.appendingPathComponent(StaleFiles.temporaryName(".\(name).tmp-"))
        defer { try? fm.removeItem(at: staging) }
        let stagedDetail = try folder(for: metrics, in: staging)
        try save(Data(metricsJSON(metrics).utf8), to: stagedDetail.appendingPathComponent("metrics.json"))
        try save(Data(predictionsCSV(predictions).utf8), to: stagedDetail.appendingPathComponent("predictions.csv"))
        if let checkpoint { try save(Data(checkpoint), to: stagedDetail.appendingPathComponent("pretrained.safetensors")) }
        let (stagedReport, stagedCharts) = try writeReport(metrics, to: staging)

        let retired = directory.appendingPathComponent(StaleFiles.temporaryName(".\(name).old-"))
        var steppedAside = false
        do {
            // A folder cannot be renamed over a full one: the old one steps aside first.
            if fm.fileExists(atPath: detail.path) {
                try fm.moveItem(at: detail, to: retired)
                steppedAside = true
            }
            try fm.moveItem(at: stagedDetail, to: detail)
        } catch {
            if steppedAside && !fm.fileExists(atPath: detail.path) { try? fm.moveItem(at: retired, to: detail) }
            throw UserFacingError("cannot move the new report into '\(directory.relativePath)': check that the folder is writable")
        }
        guard rename(stagedReport.path, report.path) == 0 else {
            // The new folder is in place but not its report: put the previous set back whole.
            if steppedAside {
                try? fm.removeItem(at: detail)
                try? fm.moveItem(at: retired, to: detail)
            }
            throw UserFacingError("cannot move the new report into '\(directory.relativePath)': check that the folder is writable")
        }
        try? fm.removeItem(at: retired)
        return Output(report: report, metrics: detail.appendingPathComponent("metrics.json"),
                      predictions: detail.appendingPathComponent("predictions.csv"),
                      charts: stagedCharts.map { detail.appendingPathComponent($0.lastPathComponent) })
    }

    /// Files a report folder holds; a folder with anything else is not SiteFit's to replace.
    static func isReportFile(_ name: String) -> Bool {
        ["metrics.json", "predictions.csv", "pretrained.safetensors"].contains(name) || name.hasSuffix(".svg")
    }

    /// A previous folder a killed run left stepped aside, put back when nothing replaced it.
    static func restoreRetired(_ name: String, in directory: URL) {
        let fm = FileManager.default
        let detail = directory.appendingPathComponent(name)
        let prefix = ".\(name).old-"
        let retired = ((try? fm.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasPrefix(prefix) }.sorted()
        if !fm.fileExists(atPath: detail.path), let last = retired.last {
            try? fm.moveItem(at: directory.appendingPathComponent(last), to: detail)
        }
        StaleFiles.remove(prefix: prefix, in: directory)
    }

    /// Fails now, before a run's minutes are spent, when `directory` cannot take a report: it is
    /// a file, or it cannot be created or written, or `<name>/` there is a folder that is not a
    /// report's (replacing it would delete what it holds).
    public static func checkWritable(_ directory: URL, name: String? = nil) throws {
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        if fm.fileExists(atPath: directory.path, isDirectory: &isFolder), !isFolder.boolValue {
            throw UserFacingError("the output folder '\(directory.relativePath)' is a file; choose a folder with --output-dir")
        }
        if let name {
            let detail = directory.appendingPathComponent(name)
            if fm.fileExists(atPath: detail.path, isDirectory: &isFolder) {
                let contents = isFolder.boolValue ? ((try? fm.contentsOfDirectory(atPath: detail.path)) ?? []) : ["(a file)"]
                if !isFolder.boolValue || !contents.allSatisfy(isReportFile) {
                    throw UserFacingError("'\(detail.relativePath)' is not a SiteFit report folder (it holds other files), and the "
                                          + "report would replace it: choose another --output-dir or scenario name")
                }
            }
        }
        let probe = directory.appendingPathComponent(StaleFiles.temporaryName(".sitefit-probe-"))
        do {
            try fm.createDirectory(at: directory, withIntermediateDirectories: true)
            try Data().write(to: probe)
            try fm.removeItem(at: probe)
        } catch {
            throw UserFacingError("cannot write into the output folder '\(directory.relativePath)': check that it is writable")
        }
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
        return try readMetrics(data: data, url: url)
    }

    /// Reads `metrics.json` bytes as `readMetrics(_:)` does; errors name `url`.
    public static func readMetrics(data: Data, url: URL) throws -> RunMetrics {
        let metrics: RunMetrics
        do {
            let decoder = JSONDecoder()
            decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            metrics = try decoder.decode(RunMetrics.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw UserFacingError("\(url.relativePath): not a SiteFit metrics.json: missing '\(path(context.codingPath + [key]))'")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw UserFacingError("\(url.relativePath): not a SiteFit metrics.json: wrong value at '\(path(context.codingPath))'")
        } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            // Not the decoder's description: it quotes the offending value from the file.
            throw UserFacingError("\(url.relativePath): not a SiteFit metrics.json: invalid value at '\(path(context.codingPath))'")
        } catch {
            throw UserFacingError("\(url.relativePath): not a SiteFit metrics.json (it is not valid JSON of that shape)")
        }
        // Names become a file name and text in Markdown: a hostile file must not reach either.
        guard SafeText.isFileName(metrics.scenario.name) else {
            throw UserFacingError("\(url.relativePath): scenario.name must be letters, digits, '-' and '_' only (it names the report file)")
        }
        if let site = metrics.sites.firstIndex(where: { !SafeText.isFileName($0.id) }) {
            throw UserFacingError("\(url.relativePath): sites[\(site)].id must be letters, digits, '-' and '_' only")
        }
        if let where_ = unsafeText(in: (try? JSONSerialization.jsonObject(with: data)) ?? [:], at: "") {
            throw UserFacingError("\(url.relativePath): text at '\(where_)' holds a control character or one of | < ` [ that SiteFit never writes")
        }
        return metrics
    }

    /// The path of the first key or string holding a character a report's Markdown or a terminal
    /// would act on, or nil.
    static func unsafeText(in value: Any, at path: String) -> String? {
        func unsafe(_ text: String) -> Bool {
            text.unicodeScalars.contains { SafeText.isControl($0) || "|<`[".unicodeScalars.contains($0) }
        }
        switch value {
        case let text as String: return unsafe(text) ? path : nil
        case let list as [Any]:
            for (i, item) in list.enumerated() { if let found = unsafeText(in: item, at: "\(path)[\(i)]") { return found } }
        case let object as [String: Any]:
            for key in object.keys.sorted() {
                let here = path.isEmpty ? key : "\(path).\(key)"
                if unsafe(key) { return path.isEmpty ? "a top-level key" : "a key of \(path)" }
                if let found = unsafeText(in: object[key]!, at: here) { return found }
            }
        default: break
        }
        return nil
    }

    static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
    }

    /// Sorted keys and fixed formatting: the same run gives the same bytes.
    public static func metricsJSON(_ metrics: RunMetrics) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // An undefined metric (NaN) is written as "nan", not a failure after the whole run.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
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
