import Foundation
import Testing
@testable import SiteFitCore
@testable import SiteFitMetrics

@Suite("AUPRC, calibration, subgroup gaps, bootstrap and membership inference against hand-computed values")
struct FairnessTests {
    @Test("AUPRC is average precision over distinct thresholds")
    func auprc() {
        // 0.9 (pos): R ½, P 1 → ½·1; 0.8 (neg): no recall step; 0.7 (pos): R 1, P ⅔ → ½·⅔. Total 5/6.
        #expect(abs(Metrics.auprc(scores: [0.9, 0.8, 0.7, 0.6], labels: [1, 0, 1, 0])! - 5.0 / 6.0) < 1e-12)
        // Tied 0.5s form one threshold: R ½ at P ½, then R 1 at P ⅔ → ¼ + ⅓ = 7/12 (scikit-learn agrees).
        #expect(abs(Metrics.auprc(scores: [0.5, 0.5, 0.2], labels: [1, 0, 1])! - 7.0 / 12.0) < 1e-12)
        #expect(Metrics.auprc(scores: [0.5, 0.2], labels: [0, 0]) == nil)
        // A single-class positive site: every threshold has precision 1.
        #expect(Metrics.auprc(scores: [0.5, 0.2], labels: [1, 1]) == 1)
    }

    @Test("ECE weighs each bin's |mean score − positive rate| by its share of patients")
    func ece() {
        // Bin 1: {0.1, 0.15} vs labels {0, 1}: |0.25 − 1| = 0.75; bin 8: |0.8 − 1|; bin 9: |0.95 − 1|. (0.75 + 0.2 + 0.05)/4.
        #expect(abs(Metrics.expectedCalibrationError(scores: [0.1, 0.15, 0.8, 0.95], labels: [0, 1, 1, 1]) - 0.25) < 1e-6)
        // A score of exactly 1 lands in the last bin, and a perfectly calibrated set scores 0.
        #expect(Metrics.expectedCalibrationError(scores: [1, 1, 0, 0], labels: [1, 1, 0, 0]) == 0)
        #expect(abs(Metrics.calibrationInTheLarge(scores: [0.2, 0.4], labels: [1, 0]) - (0.3 - 0.5)) < 1e-7)
    }

    static let scores: [Float] = [0.9, 0.2, 0.6, 0.4, 0.7, 0.1]
    static let labels: [Float] = [1, 1, 0, 1, 0, 0]
    static let groups = ["a", "a", "a", "b", "b", "b"]

    @Test("group rates and gaps: two groups of three")
    func groupRates() {
        let rates = Fairness.groupRates(scores: Self.scores, labels: Self.labels, groups: Self.groups, minimumSize: 3)
        #expect(rates.map(\.group) == ["a", "b"])
        // a: decisions 1,0,1 → selection ⅔; TPR ½ (0.9 caught, 0.2 missed); FPR 1; AUROC ½; mean 0.5667 − ⅔.
        #expect(abs(rates[0].selectionRate - 2.0 / 3.0) < 1e-12 && rates[0].truePositiveRate == 0.5)
        #expect(rates[0].falsePositiveRate == 1 && rates[0].auroc == 0.5)
        #expect(abs(rates[0].calibrationInTheLarge - (-0.1)) < 1e-6)
        // b: decisions 0,1,0 → selection ⅓; TPR 0; FPR ½; AUROC ½; mean 0.4 − ⅓.
        #expect(rates[1].truePositiveRate == 0 && rates[1].falsePositiveRate == 0.5)
        let gaps = Fairness.gaps(rates, classMinimum: 1)
        #expect(abs(gaps.demographicParity! - 1.0 / 3.0) < 1e-12)
        #expect(gaps.equalOpportunity == 0.5 && gaps.equalizedOdds == 0.5 && gaps.aurocGap == 0)
        #expect(abs(gaps.calibrationGap! - (0.1 + 0.2 / 3.0)) < 1e-6)
    }

    @Test("groups below the minimum size are flagged and kept out of every gap")
    func tooSmall() {
        let rates = Fairness.groupRates(scores: Self.scores, labels: Self.labels, groups: Self.groups, minimumSize: 4)
        #expect(rates.allSatisfy { $0.tooSmall })
        #expect(Fairness.gaps(rates) == FairnessGaps())
        // A group without positives has no TPR: the equal-opportunity gap ignores it.
        let r = Fairness.groupRates(scores: [0.9, 0.1, 0.8, 0.2, 0.6], labels: [1, 0, 1, 0, 0], groups: ["a", "a", "b", "b", "c"], minimumSize: 1)
        #expect(r[2].truePositiveRate == nil && Fairness.gaps(r, classMinimum: 1).equalOpportunity == 0)
        // With the default class minimum of 10, one or two positives per group cannot make a TPR gap.
        #expect(Fairness.gaps(r).equalOpportunity == nil && Fairness.gaps(r).demographicParity != nil)
    }

    @Test("bootstrap drift: zero for an unchanged model, excludes zero for a model that favours one group, same seed same interval")
    func bootstrap() {
        var random = RandomStream(seed: 9, "test")
        var scores: [Float] = [], labels: [Float] = [], groups: [String] = []
        for i in 0..<400 {
            labels.append(random.bernoulli(0.4) ? 1 : 0)
            scores.append(Float(random.uniform()))
            groups.append(i % 2 == 0 ? "f" : "m")
        }
        var stream = RandomStream(seed: 1, "bootstrap")
        let same = Fairness.bootstrapDrift(before: scores, after: scores, labels: labels, groups: groups, minimumSize: 20,
                                           replicates: 100, random: &stream)
        #expect(same["demographic_parity"]! == (0, 0))
        // After: every "m" patient is flagged positive → selection gap grows by about ½.
        let after = zip(scores, groups).map { $1 == "m" ? Float(0.99) : $0 }
        var s1 = RandomStream(seed: 1, "bootstrap"), s2 = RandomStream(seed: 1, "bootstrap")
        let drift = Fairness.bootstrapDrift(before: scores, after: after, labels: labels, groups: groups, minimumSize: 20, replicates: 200, random: &s1)
        let again = Fairness.bootstrapDrift(before: scores, after: after, labels: labels, groups: groups, minimumSize: 20, replicates: 200, random: &s2)
        #expect(drift["demographic_parity"]!.low > 0.3)
        #expect(drift["demographic_parity"]! == again["demographic_parity"]!)
        #expect(Fairness.percentile([1, 2, 3, 4], 0.5) == 2.5 && Fairness.percentile([1, 2, 3, 4], 1) == 4)
    }

    @Test("membership-inference AUC: how often a non-member's loss exceeds a member's")
    func membership() {
        // (0.3>0.1)(0.3>0.2)(0.2>0.1)(0.2=0.2 → ½) = 3.5/4
        #expect(MembershipInference.auc(memberLosses: [0.1, 0.2], nonMemberLosses: [0.3, 0.2]) == 0.875)
        #expect(abs(MembershipInference.loss(score: 0.8, label: 1) - (-log(0.8))) < 1e-7)
        #expect(abs(MembershipInference.loss(score: 0.8, label: 0) - (-log(0.2))) < 1e-6)
        #expect(MembershipInference.loss(score: 0, label: 1).isFinite)
        #expect(Fairness.ageBand(17.9) == "0-17" && Fairness.ageBand(18) == "18-44" && Fairness.ageBand(44.9) == "18-44" && Fairness.ageBand(70) == "65-74" && Fairness.ageBand(.nan) == "unknown")
    }
}

@Suite("The one-sort group AUROC agrees with the per-group Mann–Whitney")
struct GroupAurocTests {
    @Test("random scores with ties, three groups")
    func agrees() {
        var random = RandomStream(seed: 4, "group-auroc")
        for _ in 0..<20 {
            let n = 60
            // Scores on a coarse grid so that ties across and within groups are common.
            let scores = (0..<n).map { _ in Float(random.int(below: 8)) / 8 }
            let labels = (0..<n).map { _ in Float(random.bernoulli(0.4) ? 1 : 0) }
            let groups = (0..<n).map { _ in ["a", "b", "c"][random.int(below: 3)] }
            for rates in Fairness.groupRates(scores: scores, labels: labels, groups: groups, minimumSize: 1) {
                let rows = groups.indices.filter { groups[$0] == rates.group }
                let direct = Metrics.auroc(scores: rows.map { scores[$0] }, labels: rows.map { labels[$0] })
                #expect(rates.auroc == direct || abs((rates.auroc ?? -1) - (direct ?? -2)) < 1e-12)
                let calibration = Metrics.calibrationInTheLarge(scores: rows.map { scores[$0] }, labels: rows.map { labels[$0] })
                #expect(abs(rates.calibrationInTheLarge - calibration) < 1e-6)
            }
        }
    }
}

@Suite("Weighted bootstrap rates equal the rates of the expanded resample")
struct WeightedAuditTests {
    @Test("row i repeated weights[i] times gives the same group rates")
    func expanded() {
        var random = RandomStream(seed: 11, "weighted")
        for _ in 0..<20 {
            let n = 40
            let scores = (0..<n).map { _ in Float(random.int(below: 6)) / 6 }
            let labels = (0..<n).map { _ in Float(random.bernoulli(0.5) ? 1 : 0) }
            let groups = (0..<n).map { _ in ["f", "m"][random.int(below: 2)] }
            let weights = (0..<n).map { _ in Int32(random.int(below: 3)) }
            let (names, codes) = Fairness.encode(groups)
            let weighted = weights.withUnsafeBufferPointer {
                WeightedAudit(scores: scores, labels: labels, codes: codes, groups: names.count).rates(weights: $0, names: names, minimumSize: 5)
            }
            let rows = (0..<n).flatMap { i in [Int](repeating: i, count: Int(weights[i])) }
            let expanded = Fairness.groupRates(scores: rows.map { scores[$0] }, labels: rows.map { labels[$0] },
                                               groups: rows.map { groups[$0] }, minimumSize: 5)
            #expect(weighted.count == expanded.count)
            for (w, e) in zip(weighted, expanded) {
                #expect(w.group == e.group && w.size == e.size && w.positives == e.positives && w.tooSmall == e.tooSmall)
                #expect(w.selectionRate == e.selectionRate && w.truePositiveRate == e.truePositiveRate)
                #expect(w.falsePositiveRate == e.falsePositiveRate)
                #expect(abs((w.auroc ?? -1) - (e.auroc ?? -1)) < 1e-12)
                #expect(abs(w.calibrationInTheLarge - e.calibrationInTheLarge) < 1e-6)
            }
        }
    }
}

@Suite("A bootstrap reference is shared by every compared model")
struct BootstrapReferenceTests {
    @Test("one reference judges several models on the same resamples; it equals the one-shot bootstrap")
    func shared() {
        var random = RandomStream(seed: 5, "reference")
        let n = 300
        let labels = (0..<n).map { _ in Float(random.bernoulli(0.4) ? 1 : 0) }
        let groups = (0..<n).map { i in i % 3 == 0 ? "a" : "b" }
        let before = (0..<n).map { _ in Float(random.uniform()) }
        let after = zip(before, groups).map { $1 == "a" ? min($0 + 0.3, 1) : $0 }
        var stream = RandomStream(seed: 1, "bootstrap")
        let reference = BootstrapReference(before: before, labels: labels, groups: groups, minimumSize: 10, replicates: 150, random: &stream)
        // The reference model against itself: every replicate's change is 0.
        #expect(reference.drift(after: before)["demographic_parity"]! == (0, 0))
        var again = RandomStream(seed: 1, "bootstrap")
        let oneShot = Fairness.bootstrapDrift(before: before, after: after, labels: labels, groups: groups, minimumSize: 10,
                                              replicates: 150, random: &again)
        #expect(reference.drift(after: after)["demographic_parity"]! == oneShot["demographic_parity"]!)
        #expect(reference.drift(after: after)["demographic_parity"]!.low > 0)
    }
}
