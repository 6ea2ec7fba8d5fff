import Foundation
import SiteFitEHR

/// Building a shard and extracting its features, timed over several runs (the median is reported).
public enum ShardBench {
    public static func run(patients: Int, repetitions: Int) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sitefit-bench-\(ProcessInfo.processInfo.processIdentifier)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("bench.sqlite")
        let profile = SiteProfile(id: "bench", name: "Benchmark", seed: 1, patients: patients)
        let clock = ContinuousClock()
        var build: [Double] = [], extract: [Double] = [], count: [Double] = [], automatic: [Double] = []
        var rows = 0, automaticColumns = 0
        // FeatureExtraction-style covariates: what one site reports for the agreement, then the
        // extraction of every agreed covariate (the generator's concepts, in both windows).
        var spec = FeatureSpec.heartFailure
        (spec.conditions, spec.measurements, spec.drugs, spec.automatic) = ([], [], [], true)
        for _ in 0..<max(1, repetitions) {
            build.append(BenchClock.seconds(try clock.measure { try ShardBuilder.build(profile: profile, to: url) }))
            let shard = try SiteShard(site: "bench", url: url)
            extract.append(BenchClock.seconds(try clock.measure { rows = try shard.extractCohort(.heartFailure).rows }))
            var report: [CovariateKey: Int] = [:]
            count.append(BenchClock.seconds(try clock.measure {
                report = try shard.reader.read { try AutomaticCovariates.siteCounts($0, spec: spec, settings: .init()) }
            }))
            spec.automaticCovariates = AutomaticCovariates.agree([report], settings: .init(minimumSites: 1))
            automatic.append(BenchClock.seconds(try clock.measure { automaticColumns = try shard.extractCohort(spec).columns.count }))
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        return String(format: "build shard, %d patients:        %7.3f s  (%.1f MB)\n", patients, median(build), Double(size) / 1e6)
            + String(format: "extract features, %d patients:   %7.3f s  (%d rows × %d features)\n", rows, median(extract),
                     rows, FeatureSpec.heartFailure.columnNames.count)
            + String(format: "count covariates for agreement:   %7.3f s  (%d covariates reported)\n", median(count), spec.automaticCovariates.count)
            + String(format: "extract automatic covariates:     %7.3f s  (%d rows × %d features)", median(automatic), rows, automaticColumns)
    }
}
