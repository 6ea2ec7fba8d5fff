/// A hospital's description: who its patients are and how its records deviate from the norm.
///
/// Profiles are read from `Sites/<id>.yaml` by SiteFitScenario; the generator turns one into a
/// shard deterministically (same profile, same seed ⇒ same shard).
public struct SiteProfile: Sendable, Equatable, Codable {
    /// Short identifier used in file names, reports and random-stream keys (`riverside-general`).
    public var id: String
    /// Human-readable hospital name.
    public var name: String
    public var seed: UInt64
    public var patients: Int
    public var ageMean: Double
    public var ageStandardDeviation: Double
    public var femaleFraction: Double
    /// Unnormalised weights of White, Black or African American, Asian.
    public var raceMix: RaceMix
    /// Target share of patients with the outcome; the generator calibrates the latent intercept to it.
    public var outcomePrevalence: Double
    /// Probability that a lab value is not recorded at all.
    public var labMissingRate: Double
    /// Probability that a present chronic condition is never coded.
    public var underCodingRate: Double
    /// Unit the site records creatinine in; µmol/L sites store 88.42× the mg/dL value.
    public var creatinineUnit: CreatinineUnit

    public init(
        id: String, name: String, seed: UInt64, patients: Int, ageMean: Double = 62,
        ageStandardDeviation: Double = 13, femaleFraction: Double = 0.5,
        raceMix: RaceMix = RaceMix(white: 0.7, black: 0.2, asian: 0.1), outcomePrevalence: Double = 0.15,
        labMissingRate: Double = 0.1, underCodingRate: Double = 0, creatinineUnit: CreatinineUnit = .milligramPerDeciliter
    ) {
        self.id = id
        self.name = name
        self.seed = seed
        self.patients = patients
        self.ageMean = ageMean
        self.ageStandardDeviation = ageStandardDeviation
        self.femaleFraction = femaleFraction
        self.raceMix = raceMix
        self.outcomePrevalence = outcomePrevalence
        self.labMissingRate = labMissingRate
        self.underCodingRate = underCodingRate
        self.creatinineUnit = creatinineUnit
    }

    /// A stable fingerprint of every field, stored in the shard to detect a stale shard.
    public var fingerprint: String {
        let text = [
            id, name, String(seed), String(patients), "\(ageMean)", "\(ageStandardDeviation)",
            "\(femaleFraction)", "\(raceMix.white)", "\(raceMix.black)", "\(raceMix.asian)",
            "\(outcomePrevalence)", "\(labMissingRate)", "\(underCodingRate)", creatinineUnit.rawValue,
            ShardGenerator.version,
        ].joined(separator: "|")
        return SiteFitCoreHash.hex(text)
    }
}

/// Relative weights of the race categories a site's patients are drawn from.
public struct RaceMix: Sendable, Equatable, Codable {
    public var white: Double
    public var black: Double
    public var asian: Double

    public init(white: Double, black: Double, asian: Double) {
        self.white = white
        self.black = black
        self.asian = asian
    }
}

/// Units a site may record serum creatinine in.
public enum CreatinineUnit: String, Sendable, Codable, CaseIterable {
    case milligramPerDeciliter = "mg/dL"
    case micromolePerLiter = "umol/L"
}

import SiteFitCore

enum SiteFitCoreHash {
    static func hex(_ text: String) -> String { StableHash.hex(Array(text.utf8)) }
}
