import Foundation

// "Sites at a glance".
extension MarkdownReport {
    /// Each site's size, prevalence, mix and coding habits, and how far its features sit from the pooled cohort's.
    static func sitesSection(_ m: RunMetrics) -> String {
        let folder = m.scenario.name
        var out = "## Sites at a glance\n\n"
        out += "![Sites at a glance](\(folder)/sites.svg)\n\n"
        out += "| site | hospital | patients | train / test | outcome prevalence | majority-class test accuracy | female | mean age | aged 65+ | race mix | creatinine unit | labs missing | feature distance |\n"
        out += "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|\n"
        for s in m.sites {
            out += "| \(s.id) | \(s.name) | \(Format.integer(s.cohortSize)) | \(s.trainSize) / \(s.testSize) "
            let floor = m.arms.first?.final.perSite[s.id]?.majorityClassAccuracy
            out += "| \(Format.percent(s.outcomePrevalence)) | \(Format.fixed(floor)) | \(Format.percent(s.femaleShare)) | \(Format.fixed(s.meanAge, 1)) "
            out += "| \(Format.percent((s.ageBandShares["65-74"] ?? 0) + (s.ageBandShares["75+"] ?? 0))) | \(mix(s.raceShares)) "
            out += "| \(s.creatinineUnit) | \(Format.percent(s.labMissingShare)) | \(Format.fixed(s.featureDistance)) |\n"
        }
        let distances = m.sites.map(\.featureDistance)
        if let most = m.sites.max(by: { $0.featureDistance < $1.featureDistance }) {
            out += "\n**How different are the sites?** Mean feature distance \(Format.fixed(distances.reduce(0, +) / Double(max(distances.count, 1)))); "
            out += "the most distinct site is \(most.id) (\(Format.fixed(most.featureDistance))). The feature distance is the root-mean-square "
            out += "standardised mean difference between a site's features and the pooled cohort's, computed from per-site column sums only "
            out += "(0 = identical means; above 0.1 is commonly read as a meaningful imbalance). "
        } else {
            out += "\n"
        }
        if m.scenario.dataset == .omop {
            out += "Creatinine in µmol/L is converted to mg/dL by `unit_concept_id` during feature extraction (÷ 88.42)."
        } else {
            out += "Each site standardises its features with its own train mean and standard deviation."
        }
        out += "\n\n"
        return out
    }

    /// "white 72 %, black 18 %, ..." by share, largest first.
    static func mix(_ shares: [String: Double]) -> String {
        shares.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
            .map { "\($0.key) \(String(format: "%.0f", $0.value * 100)) %" }.joined(separator: ", ")
    }
}
