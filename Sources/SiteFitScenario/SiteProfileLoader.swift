import Foundation
import SiteFitCore
import SiteFitEHR

/// Loads `Sites/<id>.yaml` hospital profiles; the id is the file's base name.
public enum SiteProfileLoader {
    static let keys = ["name", "seed", "patients", "age", "female_fraction", "race_mix", "outcome_prevalence",
                       "lab_missing_rate", "under_coding_rate", "creatinine_unit"]

    /// Parses a profile, throwing every located problem at once.
    public static func load(_ url: URL) throws -> SiteProfile {
        let file = url.relativePath
        let text = try readText(url, what: "site profile")
        var reader = YAMLReader(file: file)
        let id = url.deletingPathExtension().lastPathComponent
        guard let root = reader.compose(text) else { throw DiagnosticList(reader.diagnostics) }
        if id.isEmpty || !id.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) {
            reader.fail(root, "", "the profile's file name '\(id)' must use only letters, digits, '-' and '_' (it becomes the site id)")
        }
        var profile = SiteProfile(id: id, name: id, seed: 0, patients: 0)
        guard let fields = reader.mapping(root, "", allowed: keys, required: ["name", "seed", "patients"]) else {
            throw DiagnosticList(reader.diagnostics)
        }
        if let node = fields["name"], let v = reader.string(node, "name") { profile.name = v }
        if let node = fields["seed"], let v = reader.integer(node, "seed", in: 0...Int.max, what: "a non-negative integer") {
            profile.seed = UInt64(v)
        }
        if let node = fields["patients"],
           let v = reader.integer(node, "patients", in: 20...1_000_000, what: "an integer from 20 to 1000000") {
            profile.patients = v
        }
        if let node = fields["age"], let age = reader.mapping(node, "age", allowed: ["mean", "sd"]) {
            if let n = age["mean"], let v = reader.number(n, "age.mean", in: 18...95, what: "an age from 18 to 95") {
                profile.ageMean = v
            }
            if let n = age["sd"], let v = reader.number(n, "age.sd", in: 0...40, what: "a number from 0 to 40") {
                profile.ageStandardDeviation = v
            }
        }
        func fraction(_ key: String, _ apply: (Double) -> Void) {
            if let node = fields[key], let v = reader.number(node, key, in: 0...1, what: "a fraction from 0 to 1") { apply(v) }
        }
        fraction("female_fraction") { profile.femaleFraction = $0 }
        fraction("lab_missing_rate") { profile.labMissingRate = $0 }
        fraction("under_coding_rate") { profile.underCodingRate = $0 }
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
        if let node = fields["creatinine_unit"], let v = reader.choice(node, "creatinine_unit", CreatinineUnit.self) {
            profile.creatinineUnit = v
        }
        guard reader.diagnostics.isEmpty else { throw DiagnosticList(reader.diagnostics) }
        return profile
    }
}
