import Foundation
import SiteFitCore
import SiteFitEHR

/// Plain-text rendering of a shard inspection for the terminal.
enum InspectionText {
    static func render(_ i: ShardInspection) -> String {
        func pct(_ v: Double) -> String { String(format: "%5.1f %%", v * 100) }
        var out = "site: \(i.site)"
        if let name = i.sourceName { out += " (\(name))" }
        if let generator = i.generator { out += ", built by \(generator)" }
        if let provenance = i.provenance, i.generator == nil { out += ", \(provenance)" }
        if let version = i.cdmVersion { out += ", OMOP CDM \(version)" }
        out += "\n\ntables\n"
        for t in i.tables { out += "  \(t.table.padding(toLength: 22, withPad: " ", startingAt: 0)) \(i.cell(t.rows).leftPadded(9)) rows\n" }
        out += i.cohortSize == 0 ? "\ncohort: none yet (no rows with cohort_definition_id 1; an OMOP export gets one from a task)\n" : "\ncohort: \(i.cell(i.cohortSize)) patients, outcome prevalence \(i.outcomePrevalence.map(pct) ?? "suppressed"), "
            + "mean age \(i.meanAge.map { String(format: "%.1f", $0) } ?? "suppressed")\n"
        out += "\nmeasurements (share of cohort members with no value; units)\n"
        for lab in i.labs {
            let units = lab.units.map { "\($0.unit) × \(i.cell($0.rows))" }.joined(separator: ", ")
            out += "  \(lab.name.padding(toLength: 46, withPad: " ", startingAt: 0)) missing \(lab.missingShare.map(pct) ?? "suppressed")   units: \(units.isEmpty ? "none" : units)\n"
        }
        out += "\noutcome prevalence by subgroup (counts under \(i.minimumCellCount) and the one that would give them away by "
            + "subtraction are hidden; no rate for groups under \(ShardInspection.minimumGroupSize) or with under \(i.minimumCellCount) "
            + "patients with or without the outcome)\n"
        for g in i.subgroups {
            let rate = g.prevalence.map(pct) ?? "suppressed"
            let patients = g.patients.map(String.init) ?? "hidden"
            out += "  \(g.attribute.padding(toLength: 9, withPad: " ", startingAt: 0)) \(g.group.padding(toLength: 8, withPad: " ", startingAt: 0)) \(patients.leftPadded(6)) patients   \(rate)\n"
        }
        if !i.dataQuality.isEmpty {
            out += "\n" + dataQuality(i.dataQuality, cell: i.cell)
        }
        return out
    }

    /// The import's data-quality findings, one line each, in the Data Quality Dashboard's terms.
    static func dataQuality(_ findings: [DataQualityFinding], cell: (Int) -> String) -> String {
        var out = "data quality at import (OHDSI Data Quality Dashboard check types; records failing, of records checked, and what the import did)\n"
        for f in findings {
            let place = "\(f.table).\(f.field)"
            out += "  \(f.check.padding(toLength: 24, withPad: " ", startingAt: 0)) \(place.padding(toLength: 52, withPad: " ", startingAt: 0)) "
                + "\(cell(f.violatingRows).leftPadded(7)) of \(cell(f.rows).leftPadded(7))   \(f.action.rawValue)\n"
        }
        return out
    }
}

/// Plain-text summary of an OMOP import for the terminal: counts only, never a value.
enum OMOPImportText {
    static func render(_ s: OMOPImportSummary) -> String {
        var out = "imported site '\(s.site)'" + (s.cdmVersion.map { " (OMOP CDM \($0))" } ?? "") + "\n"
        for t in s.tables {
            out += "  \(t.table.padding(toLength: 22, withPad: " ", startingAt: 0)) \(String(t.imported).leftPadded(9)) of \(String(t.read).leftPadded(9)) rows\n"
        }
        if s.findings.isEmpty { return out + "no data-quality findings\n" }
        return out + dataQualityText(s.findings)
    }

    static func dataQualityText(_ findings: [DataQualityFinding]) -> String {
        InspectionText.dataQuality(findings) { String($0) }
    }
}

extension String {
    /// Right-aligned in `width` columns.
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
