import Foundation
import SiteFitCore

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
            out += "| \(s.creatinineUnit ?? "—") | \(s.labMissingShare.map { Format.percent($0) } ?? "—") | \(Format.fixed(s.featureDistance)) |\n"
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
        if m.scenario.dataset == .omop && m.sites.contains(where: { $0.labMissingShare != nil }) {
            out += "Creatinine in µmol/L is converted to mg/dL by `unit_concept_id` during feature extraction (÷ 88.42)."
        } else if m.scenario.dataset == .heartDisease {
            out += "Each site standardises its features with its own train mean and standard deviation."
        }
        out += "\n\n"
        out += attritionSection(m)
        out += dataQualitySection(m)
        return out
    }

    /// What the OMOP import found at each site, in OHDSI Data Quality Dashboard terms (records,
    /// never values; counts under the small-cell threshold as <N).
    static func dataQualitySection(_ m: RunMetrics) -> String {
        let sites = m.sites.filter { !($0.dataQuality ?? []).isEmpty }
        guard !sites.isEmpty else { return "" }
        func cell(_ n: Int) -> String { n > 0 && n < smallCell ? "<\(smallCell)" : Format.integer(n) }
        var out = "### Data quality at import\n\n"
        out += "What the OMOP import counted at each site, as OHDSI's Data Quality Dashboard names its checks: records that failed, "
            + "of the records checked, and what the import did with them.\n\n"
        out += "| site | check | table.field | records failing | of | import |\n|---|---|---|---:|---:|---|\n"
        for s in sites {
            for f in s.dataQuality ?? [] {
                out += "| \(s.id) | `\(f.check)` | \(f.table).\(f.field) | \(cell(f.violatingRows)) | \(cell(f.rows)) | \(f.action.rawValue) |\n"
            }
        }
        return out + "\n"
    }

    /// Persons at each step of a concept-set task's cohort, per site, and concept ids that matched nothing.
    static func attritionSection(_ m: RunMetrics) -> String {
        let sites = m.sites.filter { $0.attrition != nil }
        guard !sites.isEmpty else { return "" }
        func cell(_ n: Int) -> String { n > 0 && n < smallCell ? "<\(smallCell)" : Format.integer(n) }
        var out = "### Cohort attrition\n\n"
        out += "Persons left after each step of the task's definition, at each site. Counts under \(smallCell) show as <\(smallCell), "
            + "and a count that would give one away by subtraction (fewer than \(smallCell) removed since the previous count) as —.\n\n"
        out += "| step | " + sites.map(\.id).joined(separator: " | ") + " |\n|---|" + String(repeating: "---:|", count: sites.count) + "\n"
        let steps: [(String, (CohortAttrition) -> Int)] = [
            ("with a target event (the first is the index date)", \.withTargetEvent),
            ("… with enough observation before it", \.withPriorObservation),
            ("… without the outcome before the time at risk", \.withoutPriorOutcome),
            ("… observed long enough at risk, or with the outcome: the cohort", \.cohort),
            ("cohort members with the outcome", \.outcomes),
        ]
        // A count is shown only when the persons removed since the last shown count are none or
        // at least the small-cell threshold: otherwise the difference would give a small count away.
        var shown: [[String]] = steps.map { _ in [] }
        for site in sites {
            let a = site.attrition!
            var last: Int?
            for (i, step) in steps.enumerated().dropLast() {
                let value = step.1(a)
                let removed = last.map { $0 - value } ?? 0
                if removed == 0 || removed >= smallCell {
                    shown[i].append(cell(value))
                    last = value
                } else {
                    shown[i].append("—")
                }
            }
            // Cases, shown when the cohort is and neither the cases nor the non-cases are a small cell.
            let cases = a.outcomes, nonCases = a.cohort - a.outcomes
            let visible = last == a.cohort && (cases == 0 || cases >= smallCell) && (nonCases == 0 || nonCases >= smallCell)
            shown[steps.count - 1].append(visible ? cell(cases) : cases < smallCell && cases > 0 ? "<\(smallCell)" : "—")
        }
        for (i, step) in steps.enumerated() {
            out += "| \(step.0) | " + shown[i].joined(separator: " | ") + " |\n"
        }
        for s in m.sites {
            if let ids = s.unmatchedConcepts, !ids.isEmpty {
                out += "\n**Warning:** at \(s.id), concept id\(ids.count == 1 ? "" : "s") \(ids.map(String.init).joined(separator: ", ")) "
                    + "of the task match\(ids.count == 1 ? "es" : "") no event, even with descendants: a typo, or a vocabulary this site does not use.\n"
            }
        }
        return out + "\n"
    }

    /// Counts of persons below this are small cells in the report (health-data disclosure rules hide 1 to 10).
    static let smallCell = 11

    /// "white 72 %, black 18 %, ..." by share, largest first.
    static func mix(_ shares: [String: Double]) -> String {
        shares.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
            .map { "\($0.key) \(String(format: "%.0f", $0.value * 100)) %" }.joined(separator: ", ")
    }
}
