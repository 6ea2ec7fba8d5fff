import Foundation
import GRDB
import Testing
@testable import SiteFitCore
@testable import SiteFitEHR

/// Generated statistics against the profile, on 10,000 patients. With n = 10,000 the standard
/// error of a share p is √(p(1−p)/n) ≤ 0.005, so ±2 points is four standard errors.
@Suite("Generator statistics match the profile")
struct GeneratorStatisticsTests {
    static let n = 10_000

    static func shard(_ profile: SiteProfile) throws -> CohortExtract {
        let queue = try DatabaseQueue()
        return try queue.write { db in
            try ShardGenerator.populate(db, profile: profile)
            return try CohortExtraction.extract(db, spec: .heartFailure, site: profile.id, file: ":memory:")
        }
    }

    static func share(_ values: [Bool]) -> Double { Double(values.filter { $0 }.count) / Double(values.count) }

    @Test("prevalence, sex ratio, lab missingness and unit through the SQL features")
    func shardStatistics() throws {
        var profile = SiteProfile(id: "stats", name: "Stats", seed: 1, patients: Self.n, femaleFraction: 0.62,
                                  outcomePrevalence: 0.22, labMissingRate: 0.15)
        profile.labs[.creatinine] = LabKnob(unit: .micromolePerLiter)
        let extract = try Self.shard(profile)
        #expect(extract.rows == Self.n)
        #expect(abs(Metricsish.mean(extract.labels.map { Double($0) }) - 0.22) < 0.02)
        #expect(abs(Self.share(extract.sex.map { $0 == "female" }) - 0.62) < 0.02)
        let columns = extract.columns.count
        for (c, name) in extract.columns.enumerated() where name.hasPrefix("measurement.") {
            let missing = Self.share((0..<extract.rows).map { extract.features[$0 * columns + c].isNaN })
            #expect(abs(missing - 0.15) < 0.02, "\(name) missing \(missing)")
        }
        // Creatinine stored in µmol/L comes back in mg/dL: the population mean is about 1 mg/dL.
        let creatinine = extract.columns.firstIndex { $0.contains("creatinine") }!
        let values = (0..<extract.rows).map { extract.features[$0 * columns + creatinine] }.filter { !$0.isNaN }
        #expect((0.8...1.3).contains(Metricsish.mean(values)))
    }

    @Test("condition multiplier and per-condition under-coding")
    func conditions() throws {
        let base = SiteProfile(id: "c", name: "C", seed: 2, patients: Self.n)
        var knobbed = base
        knobbed.conditions[.type2Diabetes] = ConditionKnob(prevalenceMultiplier: 1.5, underCodingRate: 0.4)
        let truthBase = Self.share(ShardGenerator.patients(for: base).map { $0.has(.type2Diabetes) })
        let truthKnobbed = Self.share(ShardGenerator.patients(for: knobbed).map { $0.has(.type2Diabetes) })
        #expect(abs(truthKnobbed / truthBase - 1.5) < 0.1)
        // Coded share = true share × (1 − 0.4), read back through SQL.
        let extract = try Self.shard(knobbed)
        let column = extract.columns.firstIndex(of: "condition.type_2_diabetes_mellitus")!
        let coded = Self.share((0..<extract.rows).map { extract.features[$0 * extract.columns.count + column] == 1 })
        #expect(abs(coded - truthKnobbed * 0.6) < 0.02)
    }

    @Test("under-diagnosis removes the stated share of true outcomes in the group only")
    func underDiagnosis() {
        var profile = SiteProfile(id: "u", name: "U", seed: 3, patients: Self.n, outcomePrevalence: 0.3)
        profile.underDiagnosis = UnderDiagnosis(group: .female, rate: 0.5)
        let patients = ShardGenerator.patients(for: profile)
        let womenCases = patients.filter { $0.female && $0.trueOutcome }
        let menCases = patients.filter { !$0.female && $0.trueOutcome }
        #expect(abs(Self.share(womenCases.map(\.recordedOutcome)) - 0.5) < 0.05)
        #expect(menCases.allSatisfy { $0.recordedOutcome })
        #expect(patients.filter { !$0.trueOutcome }.allSatisfy { !$0.recordedOutcome } == true)
    }

    @Test("label noise flips the stated share of labels")
    func labelNoise() {
        var profile = SiteProfile(id: "n", name: "N", seed: 4, patients: Self.n)
        profile.labelNoise = 0.1
        let patients = ShardGenerator.patients(for: profile)
        #expect(abs(Self.share(patients.map { $0.trueOutcome != $0.recordedOutcome }) - 0.1) < 0.02)
    }

    @Test("missing-not-at-random: healthier patients miss more labs, the average is kept")
    func healthierMissingness() {
        var profile = SiteProfile(id: "m", name: "M", seed: 5, patients: Self.n, labMissingRate: 0.2)
        profile.labMissingness = .healthier
        let patients = ShardGenerator.patients(for: profile)
        let probabilities = ShardGenerator.missingProbabilities(patients, profile: profile)
        let mean = probabilities.map { $0[0] }.reduce(0, +) / Double(patients.count)
        #expect(abs(mean - 0.2) < 0.01)
        let healthy = patients.indices.filter { patients[$0].burden == 0 }.map { probabilities[$0][0] }
        let sick = patients.indices.filter { patients[$0].burden >= 3 }.map { probabilities[$0][0] }
        #expect(Metricsish.mean(healthy) > 2 * Metricsish.mean(sick))
    }

    @Test("temporal drift lowers the outcome rate from its date on, and shifts the age mix")
    func temporalDrift() {
        let from = CivilDate.days(year: 2021, month: 1, day: 1)
        var rate = SiteProfile(id: "t", name: "T", seed: 6, patients: Self.n, outcomePrevalence: 0.2)
        rate.temporalDrift = TemporalDrift(from: from, outcomeOddsMultiplier: 0.3)
        var patients = ShardGenerator.patients(for: rate)
        var before = patients.filter { $0.indexDay < from }, after = patients.filter { $0.indexDay >= from }
        // Odds × 0.3 takes a rate near 0.2 to about 0.07.
        #expect(Self.share(after.map(\.trueOutcome)) < Self.share(before.map(\.trueOutcome)) - 0.08)

        var mix = rate
        mix.temporalDrift = TemporalDrift(from: from, ageShift: 6)
        patients = ShardGenerator.patients(for: mix)
        before = patients.filter { $0.indexDay < from }
        after = patients.filter { $0.indexDay >= from }
        #expect(abs(Metricsish.mean(after.map(\.age)) - Metricsish.mean(before.map(\.age)) - 6) < 1)
    }

    @Test("concept shift strengthens one risk factor at one site")
    func conceptShift() {
        let base = SiteProfile(id: "s", name: "S", seed: 7, patients: Self.n, outcomePrevalence: 0.2)
        var shifted = base
        shifted.conceptShift[.atrialFibrillation] = 1.5
        func relativeRisk(_ p: [ShardGenerator.Patient]) -> Double {
            let af = p.filter { $0.has(.atrialFibrillation) }, other = p.filter { !$0.has(.atrialFibrillation) }
            return Self.share(af.map(\.trueOutcome)) / Self.share(other.map(\.trueOutcome))
        }
        #expect(relativeRisk(ShardGenerator.patients(for: shifted)) > 1.3 * relativeRisk(ShardGenerator.patients(for: base)))
    }

    @Test("lab calibration offset moves the recorded values")
    func calibration() throws {
        var profile = SiteProfile(id: "k", name: "K", seed: 8, patients: 2000, labMissingRate: 0)
        let plain = try Self.shard(profile)
        profile.labs[.hba1c] = LabKnob(offset: 0.5)
        let offset = try Self.shard(profile)
        let column = plain.columns.firstIndex { $0.contains("hemoglobin_a1c") }!
        let columns = plain.columns.count
        let difference = Metricsish.mean((0..<plain.rows).map { offset.features[$0 * columns + column] - plain.features[$0 * columns + column] })
        #expect(abs(difference - 0.5) < 0.01)
    }
}

enum Metricsish {
    static func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(max(values.count, 1)) }
}
