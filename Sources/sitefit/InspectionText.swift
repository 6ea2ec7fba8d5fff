import Foundation
import SiteFitEHR

/// Plain-text rendering of a shard inspection for the terminal.
enum InspectionText {
    static func render(_ i: ShardInspection) -> String {
        func pct(_ v: Double) -> String { String(format: "%5.1f %%", v * 100) }
        var out = "site: \(i.site)"
        if let name = i.sourceName { out += " (\(name))" }
        if let generator = i.generator { out += ", built by \(generator)" }
        out += "\n\ntables\n"
        for t in i.tables { out += "  \(t.table.padding(toLength: 22, withPad: " ", startingAt: 0)) \(i.cell(t.rows).leftPadded(9)) rows\n" }
        out += "\ncohort: \(i.cell(i.cohortSize)) patients, outcome prevalence \(i.outcomePrevalence.map(pct) ?? "suppressed"), "
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
        return out
    }
}

extension String {
    /// Right-aligned in `width` columns.
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
