// "Reproducibility".
extension MarkdownReport {
    /// The scenario, its hash, the seeds and the version: what reproduces this report byte for byte.
    static func reproducibilitySection(_ m: RunMetrics) -> String {
        let folder = m.scenario.name
        var out = "## Reproducibility\n\n"
        out += "| | |\n|---|---|\n"
        out += "| scenario | `\(m.scenario.file)` |\n| scenario hash (FNV-1a) | `\(m.scenario.fingerprint)` |\n"
        out += "| seed | \(m.scenario.seed) |\n"
        if let seeds = m.seeds, seeds.seeds.count > 1 { out += "| all seeds | \(seeds.seeds.map(String.init).joined(separator: ", ")) |\n" }
        out += "| SiteFit | \(m.scenario.sitefitVersion) |\n\n"
        out += "Every number is in `\(folder)/metrics.json`; final test-set scores are in `\(folder)/predictions.csv`. "
        out += "The same scenario and seed give a byte-identical report; `sitefit report \(folder)/metrics.json` redraws it and its charts.\n"
        return out
    }
}
