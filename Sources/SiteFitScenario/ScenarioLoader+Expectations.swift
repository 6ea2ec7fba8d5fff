import SiteFitFederation
import SiteFitMetrics
import Yams

extension ScenarioLoader {
    static let expectationKeys = ["arm", "better_than", "worse_than", "not_worse_than", "margin", "metric", "sites",
                                  "at_most", "of", "quantity", "above", "below", "leaks_more_than", "leakage", "batch_size", "local_steps",
                                  "than_batch_size", "than_local_steps"]

    /// `compare_to`: the arm (or baseline row) every other arm is compared with (default: the first arm).
    static func compareTo(_ node: Node?, rows: [String], reader: inout YAMLReader) -> String? {
        guard let node, let name = reader.string(node, "compare_to") else { return nil }
        guard rows.contains(name) else {
            reader.fail(node, "compare_to", "'\(name)' is neither an arm nor a baseline row of this scenario; use one of: "
                        + rows.map { "'\($0)'" }.joined(separator: ", "))
            return nil
        }
        return name
    }

    /// `expect`: the lessons the scenario claims, each checked across seeds by the run.
    static func expectations(_ node: Node?, rows: [String], siteIds: [String], attributes: [String], armNames: [String] = [],
                             maskedArms: [String] = [], reconstruction: ReconstructionSettings? = nil, reader: inout YAMLReader) -> [Expectation] {
        guard let node, let list = reader.sequence(node, "expect") else { return [] }
        var claims: [Expectation] = []
        for (i, item) in list.enumerated() {
            let field = "expect[\(i)]"
            guard let m = reader.mapping(item, field, allowed: expectationKeys, required: ["arm"]) else { continue }
            func row(_ key: String) -> String? {
                guard let n = m[key], let name = reader.string(n, "\(field).\(key)") else { return nil }
                guard rows.contains(name) else {
                    reader.fail(n, "\(field).\(key)", "'\(name)' is neither an arm nor a baseline row of this scenario; use one of: "
                                + rows.map { "'\($0)'" }.joined(separator: ", "))
                    return nil
                }
                return name
            }
            let relations = ["better_than", "worse_than", "not_worse_than", "at_most", "above", "below", "leaks_more_than"].filter { m[$0] != nil }
            guard relations.count == 1 else {
                reader.fail(item, field, relations.isEmpty
                            ? "say what the claim is: one of better_than, worse_than, not_worse_than (with margin), above, below, at_most (with of and quantity) or leaks_more_than (with leakage, batch_size and local_steps)"
                            : "give only one of \(relations.joined(separator: " and "))")
                continue
            }
            guard let arm = row("arm") else { continue }
            let relationKey = relations[0]
            if relationKey == "leaks_more_than" {
                guard let than = row("leaks_more_than") else { continue }
                if let claim = leakageClaim(m, item: item, field: field, arm: arm, than: than, armNames: armNames, maskedArms: maskedArms, settings: reconstruction,
                                            reader: &reader) { claims.append(claim) }
                continue
            }
            for key in ["leakage", "batch_size", "local_steps", "than_batch_size", "than_local_steps"] where m[key] != nil {
                reader.fail(m[key], "\(field).\(key)", "\(key) belongs to a leaks_more_than claim")
            }
            var metric: ComparisonMetric?
            var sites: [String] = []
            if relationKey == "at_most" {
                for key in ["metric", "sites", "margin"] where m[key] != nil {
                    reader.fail(m[key], "\(field).\(key)", "an at_most claim bounds a footprint; it takes of and quantity, not \(key)")
                }
                guard let ofNode = m["of"], m["quantity"] != nil else {
                    reader.fail(item, field, "an at_most claim needs of (the arm it is a fraction of) and quantity (\(Expectation.Quantity.allCases.map(\.rawValue).joined(separator: ", ")))")
                    continue
                }
                guard let f = m["at_most"], let fraction = reader.number(f, "\(field).at_most", in: 0...1_000_000, what: "a non-negative fraction"),
                      let of = row("of"), let q = m["quantity"], let quantity = reader.choice(q, "\(field).quantity", Expectation.Quantity.self)
                else { continue }
                if of == arm { reader.fail(ofNode, "\(field).of", "a claim compares two different rows") }
                claims.append(Expectation(arm: arm, relation: .atMost(fraction: fraction, of: of, quantity: quantity)))
                continue
            }
            for key in ["of", "quantity"] where m[key] != nil {
                reader.fail(m[key], "\(field).\(key)", "\(key) belongs to an at_most claim")
            }
            guard let metricNode = m["metric"] else {
                reader.fail(item, field, "a \(relationKey) claim needs metric (one of \(ComparisonMetric.names.joined(separator: ", ")))")
                continue
            }
            if let name = reader.string(metricNode, "\(field).metric") {
                if let parsed = ComparisonMetric(name: name) {
                    if let attribute = parsed.attribute, !attributes.contains(attribute) {
                        reader.fail(metricNode, "\(field).metric", "'\(attribute)' is not an audited attribute; use one of: \(attributes.joined(separator: ", "))")
                    } else {
                        metric = parsed
                    }
                } else {
                    reader.fail(metricNode, "\(field).metric", "unknown metric '\(name)'; use one of: \(ComparisonMetric.names.joined(separator: ", "))")
                }
            }
            if let n = m["sites"], let ids = siteList(n, "\(field).sites", siteIds: siteIds, reader: &reader) { sites = ids }
            var margin: Double?
            if let n = m["margin"] {
                if relationKey != "not_worse_than" { reader.fail(n, "\(field).margin", "margin belongs to a not_worse_than claim") }
                margin = reader.number(n, "\(field).margin", in: 0...1, what: "a margin from 0 to 1")
            } else if relationKey == "not_worse_than" {
                reader.fail(item, field, "a not_worse_than claim needs margin: how much worse still counts as not worse")
            }
            if relationKey == "above" || relationKey == "below" {
                guard let n = m[relationKey], let value = reader.number(n, "\(field).\(relationKey)", in: -1...1, what: "a metric value from -1 to 1"),
                      let metric else { continue }
                claims.append(Expectation(arm: arm, relation: relationKey == "above" ? .above(value) : .below(value), metric: metric, sites: sites))
                continue
            }
            guard let other = row(relationKey), let metric else { continue }
            if other == arm { reader.fail(m[relationKey], "\(field).\(relationKey)", "a claim compares two different rows"); continue }
            let relation: Expectation.Relation
            switch relationKey {
            case "better_than": relation = .better(than: other)
            case "worse_than": relation = .worse(than: other)
            default:
                guard let margin else { continue }
                relation = .notWorse(than: other, margin: margin)
            }
            claims.append(Expectation(arm: arm, relation: relation, metric: metric, sites: sites))
        }
        return claims
    }
}
