import Foundation
import SiteFitCore
import SiteFitEHR
import Yams

/// Loads `Sites/<id>.yaml` hospital profiles; the id is the file's base name.
public enum SiteProfileLoader {
    static let keys = [
        "name", "seed", "patients", "age", "female_fraction", "race_mix", "outcome_prevalence", "lab_missing_rate",
        "lab_missingness", "under_coding_rate", "conditions", "labs", "under_diagnosis", "concept_shift",
        "temporal_drift", "label_noise",
    ]

    /// Parses a profile, throwing every located problem at once.
    public static func load(_ url: URL) throws -> SiteProfile {
        try load(text: try readText(url, what: "site profile"), url: url)
    }

    /// Parses profile `text` as if read from `url` (whose base name is the site id).
    public static func load(text: String, url: URL) throws -> SiteProfile {
        let file = url.relativePath
        var reader = YAMLReader(file: file)
        let id = url.deletingPathExtension().lastPathComponent
        guard let root = reader.compose(text) else { throw DiagnosticList(reader.diagnostics) }
        if !SafeText.isFileName(id) {
            reader.fail(root, "", "the profile's file name must use only letters, digits, '-' and '_' (it becomes the site id)")
        }
        guard let fields = reader.mapping(root, "", allowed: keys, required: ["name", "seed", "patients"]) else {
            throw DiagnosticList(reader.diagnostics)
        }
        let profile = parse(fields, id: id, reader: &reader)
        guard reader.diagnostics.isEmpty else {
            throw DiagnosticList(ScenarioLoader.readingOrder(reader.diagnostics))
        }
        return profile
    }

    static func parse(_ fields: [String: Node], id: String, reader: inout YAMLReader) -> SiteProfile {
        var profile = SiteProfile(id: id, name: id, seed: 0, patients: 0)
        if let node = fields["name"], let v = reader.string(node, "name") {
            if SafeText.isLabel(v) { profile.name = v } else { reader.fail(node, "name", SafeText.labelRule) }
        }
        if let node = fields["seed"], let v = reader.integer(node, "seed", in: 0...Int.max, what: "a non-negative integer") {
            profile.seed = UInt64(v)
        }
        if let node = fields["patients"],
           let v = reader.integer(node, "patients", in: 20...1_000_000, what: "an integer from 20 to 1000000") {
            profile.patients = v
        }
        if let node = fields["age"], let age = reader.mapping(node, "age", allowed: ["mean", "sd"]) {
            if let n = age["mean"], let v = reader.number(n, "age.mean", in: 0...95, what: "an age from 0 to 95") {
                profile.ageMean = v
            }
            if let n = age["sd"], let v = reader.number(n, "age.sd", in: 0...40, what: "a number from 0 to 40") {
                profile.ageStandardDeviation = v
            }
        }
        func fraction(_ node: Node?, _ field: String) -> Double? {
            guard let node else { return nil }
            return reader.number(node, field, in: 0...1, what: "a fraction from 0 to 1")
        }
        if let v = fraction(fields["female_fraction"], "female_fraction") { profile.femaleFraction = v }
        if let v = fraction(fields["lab_missing_rate"], "lab_missing_rate") { profile.labMissingRate = v }
        if let v = fraction(fields["under_coding_rate"], "under_coding_rate") { profile.underCodingRate = v }
        if let v = fraction(fields["label_noise"], "label_noise") {
            if v > 0.5 { reader.fail(fields["label_noise"], "label_noise", "a flip rate above 0.5 inverts the labels; use at most 0.5") }
            profile.labelNoise = v
        }
        if let node = fields["lab_missingness"], let v = reader.choice(node, "lab_missingness", Missingness.self) {
            profile.labMissingness = v
        }
        if let node = fields["outcome_prevalence"],
           let v = reader.number(node, "outcome_prevalence", in: 0.01...0.9, what: "a fraction from 0.01 to 0.9") {
            profile.outcomePrevalence = v
        }
        if let node = fields["race_mix"], let mix = reader.mapping(node, "race_mix", allowed: ["white", "black", "asian"]) {
            var weights = [profile.raceMix.white, profile.raceMix.black, profile.raceMix.asian]
            for (i, key) in ["white", "black", "asian"].enumerated() {
                if let n = mix[key], let v = reader.number(n, "race_mix.\(key)", in: 0...1, what: "a weight from 0 to 1") {
                    weights[i] = v
                }
            }
            if weights.reduce(0, +) <= 0 { reader.fail(node, "race_mix", "at least one weight must be positive") }
            profile.raceMix = RaceMix(white: weights[0], black: weights[1], asian: weights[2])
        }
        if let node = fields["conditions"],
           let map = reader.mapping(node, "conditions", allowed: ConditionName.allCases.map(\.rawValue)) {
            for (key, value) in map.sorted(by: { $0.key < $1.key }) {
                let field = "conditions.\(key)"
                guard let name = ConditionName(rawValue: key),
                      let knobFields = reader.mapping(value, field, allowed: ["prevalence_multiplier", "under_coding_rate"])
                else { continue }
                var knob = ConditionKnob()
                if let n = knobFields["prevalence_multiplier"],
                   let v = reader.number(n, "\(field).prevalence_multiplier", in: 0...20, what: "a multiplier from 0 to 20") {
                    knob.prevalenceMultiplier = v
                }
                knob.underCodingRate = fraction(knobFields["under_coding_rate"], "\(field).under_coding_rate")
                profile.conditions[name] = knob
            }
        }
        if let node = fields["labs"], let map = reader.mapping(node, "labs", allowed: LabName.allCases.map(\.rawValue)) {
            for (key, value) in map.sorted(by: { $0.key < $1.key }) {
                let field = "labs.\(key)"
                guard let lab = LabName(rawValue: key),
                      let knobFields = reader.mapping(value, field, allowed: ["unit", "offset", "scale", "missing_rate"])
                else { continue }
                var knob = LabKnob()
                if let n = knobFields["unit"], let unit = reader.choice(n, "\(field).unit", LabUnit.self) {
                    if lab.allowedUnits.contains(unit) { knob.unit = unit } else {
                        reader.fail(n, "\(field).unit", "\(key) is recorded in \(lab.allowedUnits.map { "'\($0.rawValue)'" }.joined(separator: " or ")), not '\(unit.rawValue)'")
                    }
                }
                if let n = knobFields["offset"], let v = reader.number(n, "\(field).offset", in: -1000...1000, what: "a number from -1000 to 1000") {
                    knob.offset = v
                }
                if let n = knobFields["scale"], let v = reader.number(n, "\(field).scale", in: 0.01...100, what: "a number from 0.01 to 100") {
                    knob.scale = v
                }
                knob.missingRate = fraction(knobFields["missing_rate"], "\(field).missing_rate")
                profile.labs[lab] = knob
            }
        }
        if let node = fields["under_diagnosis"],
           let under = reader.mapping(node, "under_diagnosis", allowed: ["group", "rate"], required: ["group", "rate"]),
           let g = under["group"], let group = reader.choice(g, "under_diagnosis.group", Subgroup.self),
           let rate = fraction(under["rate"], "under_diagnosis.rate") {
            profile.underDiagnosis = UnderDiagnosis(group: group, rate: rate)
        }
        if let node = fields["concept_shift"],
           let map = reader.mapping(node, "concept_shift", allowed: RiskFactor.allCases.map(\.rawValue)) {
            for (key, value) in map {
                if let factor = RiskFactor(rawValue: key),
                   let v = reader.number(value, "concept_shift.\(key)", in: -10...10, what: "a coefficient change from -10 to 10") {
                    profile.conceptShift[factor] = v
                }
            }
        }
        if let node = fields["temporal_drift"],
           let drift = reader.mapping(node, "temporal_drift", allowed: ["from", "outcome_odds_multiplier", "age_shift"],
                                      required: ["from"]) {
            var value = TemporalDrift(from: 0)
            if let n = drift["from"] {
                if let text = n.scalar?.string, let day = isoDay(text) { value.from = day } else {
                    reader.fail(n, "temporal_drift.from", "expected an ISO date YYYY-MM-DD, found \(reader.describe(n))")
                }
            }
            if let n = drift["outcome_odds_multiplier"],
               let v = reader.number(n, "temporal_drift.outcome_odds_multiplier", in: 0.01...100, what: "a multiplier from 0.01 to 100") {
                value.outcomeOddsMultiplier = v
            }
            if let n = drift["age_shift"], let v = reader.number(n, "temporal_drift.age_shift", in: -50...50, what: "years from -50 to 50") {
                value.ageShift = v
            }
            profile.temporalDrift = value
        }
        return profile
    }

    /// Days since 1970-01-01 of a strict `YYYY-MM-DD` date, or nil.
    static func isoDay(_ text: String) -> Int? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]), (1...12).contains(m), (1...31).contains(d)
        else { return nil }
        let days = CivilDate.days(year: y, month: m, day: d)
        return CivilDate.iso(days) == text ? days : nil
    }
}
