import Foundation
import Testing
@testable import SiteFitCore
@testable import SiteFitMetrics

@Suite("Paired bootstrap comparisons: weighted metrics, intervals, coverage and Monte Carlo error")
struct PairedBootstrapTests {
    /// A test set of `n` patients at `sites` sites with two models, `a` better than `b` by `shift` in signal.
    static func synthetic(n: Int, sites: Int, shift: Double, seed: UInt64, noiseA: Double = 1, noiseB: Double = 1) -> ScoredTestSet {
        var random = RandomStream(seed: seed, "synthetic")
        var labels: [Float] = [], siteOf: [Int] = [], a: [Float] = [], b: [Float] = [], sex: [String] = []
        for i in 0..<n {
            let y: Float = random.uniform() < 0.3 ? 1 : 0
            let signal = Double(y) * 1.2
            func score(_ extra: Double, _ noise: Double) -> Float {
                Float(1 / (1 + exp(-(signal + extra - 0.9 + noise * random.gaussian()))))
            }
            labels.append(y)
            siteOf.append(i % sites)
            a.append(score(Double(y) * shift, noiseA))
            b.append(score(0, noiseB))
            sex.append(random.uniform() < 0.5 ? "female" : "male")
        }
        return ScoredTestSet(labels: labels, sites: siteOf, groups: ["sex": sex], scores: ["a": a, "b": b])
    }

    @Test("unit weights reproduce the plain metrics, ties included; weight 2 equals a duplicated row")
    func weightedMetrics() {
        var set = Self.synthetic(n: 157, sites: 3, shift: 0.5, seed: 1)
        // Ties across classes: AUROC must count them one half, as Metrics.auroc does.
        set.scores["a"]![3] = 0.5; set.scores["a"]![4] = 0.5; set.scores["a"]![5] = 0.5
        let scores = set.scores["a"]!, labels = set.labels
        let model = SortedModel(scores: scores, labels: labels, sites: set.sites, siteCount: 3, layout: MetricLayout(attributes: []))
        let unit = model.evaluate(weights: [Int32](repeating: 1, count: scores.count))
        #expect(abs(unit.auroc - Metrics.auroc(scores: scores, labels: labels)!) < 1e-12)
        #expect(abs(unit.balancedAccuracy - Metrics.balancedAccuracy(scores: scores, labels: labels)!) < 1e-12)
        #expect(abs(unit.accuracy - Metrics.accuracy(scores: scores, labels: labels)) < 1e-12)
        #expect(abs(unit.brier - Metrics.brier(scores: scores, labels: labels)) < 1e-9)  // Metrics.brier subtracts in Float
        #expect(abs(unit.calibrationInTheLarge - abs(Metrics.calibrationInTheLarge(scores: scores, labels: labels))) < 1e-9)
        let worst = (0..<3).map { s in
            let rows = scores.indices.filter { set.sites[$0] == s }
            return Metrics.accuracy(scores: rows.map { scores[$0] }, labels: rows.map { labels[$0] })
        }.min()!
        #expect(abs(unit.worstSiteAccuracy - worst) < 1e-12)

        var weights = [Int32](repeating: 1, count: scores.count)
        weights[7] = 2
        weights[11] = 0
        let weighted = model.evaluate(weights: weights)
        let keep = scores.indices.filter { $0 != 11 } + [7]
        let s2 = keep.map { scores[$0] }, l2 = keep.map { labels[$0] }
        #expect(abs(weighted.auroc - Metrics.auroc(scores: s2, labels: l2)!) < 1e-12)
        #expect(abs(weighted.brier - Metrics.brier(scores: s2, labels: l2)) < 1e-9)
        #expect(abs(weighted.balancedAccuracy - Metrics.balancedAccuracy(scores: s2, labels: l2)!) < 1e-12)
    }

    @Test("hand-computed: four patients, one seed")
    func handComputed() {
        // a: positives 0.9, 0.6; negatives 0.2, 0.7 → pairs won 3 of 4: AUROC 0.75.
        // b: positives 0.4, 0.3; negatives 0.1, 0.8 → pairs won 2 of 4: AUROC 0.5.
        let set = ScoredTestSet(labels: [1, 0, 1, 0], sites: [0, 0, 0, 0], scores: ["a": [0.9, 0.2, 0.6, 0.7], "b": [0.4, 0.1, 0.3, 0.8]])
        let d = PairedBootstrap.compare([set], pairs: [("a", "b")], metrics: [.auroc, .brier, .accuracy], seed: 1, purpose: "t",
                                        options: .init(minimumReplicates: 200, targetMonteCarloError: 1))
        #expect(abs(d[0].estimate - 0.25) < 1e-12)
        // Brier a: (0.01 + 0.04 + 0.16 + 0.49)/4 = 0.175; b: (0.36 + 0.01 + 0.49 + 0.64)/4 = 0.375.
        #expect(abs(d[1].estimate - (0.175 - 0.375)) < 1e-6)
        // Accuracy at 0.5: a gets 0.9, 0.2, 0.6 right and 0.7 wrong (3/4); b gets only 0.1 right (1/4).
        #expect(abs(d[2].estimate - 0.5) < 1e-12)
        #expect(d[0].replicates == 200 && d[0].perSeed.count == 1)
    }

    @Test("a model compared with itself differs by exactly 0, with a [0, 0] interval")
    func identical() {
        var set = Self.synthetic(n: 300, sites: 2, shift: 0, seed: 2)
        set.scores["c"] = set.scores["a"]
        let d = PairedBootstrap.compare([set, Self.synthetic(n: 300, sites: 2, shift: 0, seed: 3).renamed("a", to: "c", keeping: true)],
                                        pairs: [("a", "c")], metrics: ComparisonMetric.standard, seed: 1, purpose: "t",
                                        options: .init(minimumReplicates: 300))
        for x in d {
            #expect(x.estimate == 0 && x.low == 0 && x.high == 0 && !x.isClear, "\(x.metric)")
        }
    }

    @Test("a clearly better model is called better, and the reversed pair worse, on every standard metric it improves")
    func calls() {
        let sets = (0..<3).map { Self.synthetic(n: 600, sites: 3, shift: 1.5, seed: UInt64(10 + $0)) }
        let d = PairedBootstrap.compare(sets, pairs: [("a", "b"), ("b", "a")], metrics: [.auroc], seed: 5, purpose: "t")
        #expect(d[0].armIsBetter && !d[0].armIsWorse)
        #expect(d[1].armIsWorse && !d[1].armIsBetter)
        #expect(abs(d[0].estimate + d[1].estimate) < 1e-12)
        #expect(d[0].armIsNotWorse(margin: 0))
    }

    @Test("the same key gives the same numbers; another key other resamples")
    func deterministic() {
        let set = Self.synthetic(n: 200, sites: 2, shift: 0.3, seed: 4)
        let one = PairedBootstrap.compare([set], pairs: [("a", "b")], metrics: [.auroc], seed: 9, purpose: "x", options: .init(minimumReplicates: 500))
        let two = PairedBootstrap.compare([set], pairs: [("a", "b")], metrics: [.auroc], seed: 9, purpose: "x", options: .init(minimumReplicates: 500))
        let other = PairedBootstrap.compare([set], pairs: [("a", "b")], metrics: [.auroc], seed: 9, purpose: "y", options: .init(minimumReplicates: 500))
        #expect(one == two)
        #expect(one[0].low != other[0].low)
        #expect(one[0].estimate == other[0].estimate)
    }

    @Test("replicates double until every bound's Monte Carlo error meets the target")
    func adaptiveReplicates() {
        let set = Self.synthetic(n: 120, sites: 2, shift: 0.3, seed: 6)
        let loose = PairedBootstrap.compare([set], pairs: [("a", "b")], metrics: [.balancedAccuracy], seed: 1, purpose: "t",
                                            options: .init(minimumReplicates: 250, targetMonteCarloError: 1))
        #expect(loose[0].replicates == 250)
        let tight = PairedBootstrap.compare([set], pairs: [("a", "b")], metrics: [.balancedAccuracy], seed: 1, purpose: "t",
                                            options: .init(minimumReplicates: 250, maximumReplicates: 16_000, targetMonteCarloError: 0.002))
        #expect(tight[0].replicates > 250)
        #expect(tight[0].monteCarloError <= 0.002 || tight[0].replicates == 16_000)
        #expect(tight[0].monteCarloError < loose[0].monteCarloError)
    }

    @Test("the batch-means error of a percentile: √(q(1−q)/B)/f for normal draws, and 0 when every batch agrees")
    func quantileError() {
        // 40,000 standard normal draws: the 2.5th percentile's standard error is
        // √(0.025·0.975/40000)/φ(1.96) = 0.000781/0.0584 ≈ 0.0134.
        var random = RandomStream(seed: 5, "normal")
        let draws = (0..<40_000).map { _ in random.gaussian() }
        let error = PairedBootstrap.quantileError(draws, 0.025)
        #expect(error > 0.0134 * 0.6 && error < 0.0134 * 1.5, "\(error)")
        // A statistic with two values, 0 at 30 % and 1 at 70 %: every batch's 2.5th percentile is 0.
        let discrete = (0..<4000).map { $0 % 10 < 3 ? 0.0 : 1.0 }
        #expect(PairedBootstrap.quantileError(discrete, 0.025) == 0)
    }

    @Test("over 120 simulated studies the 95 % interval covers the true AUROC difference about 95 % of the time")
    func coverage() {
        // The truth: the difference on a very large test set from the same population.
        let truth = PairedBootstrap.compare([Self.synthetic(n: 200_000, sites: 1, shift: 0.4, seed: 999)], pairs: [("a", "b")],
                                            metrics: [.auroc], seed: 1, purpose: "t", options: .init(minimumReplicates: 2))[0].estimate
        var covered = 0
        let studies = 120
        for study in 0..<studies {
            let set = Self.synthetic(n: 250, sites: 2, shift: 0.4, seed: UInt64(1000 + study))
            let d = PairedBootstrap.compare([set], pairs: [("a", "b")], metrics: [.auroc], seed: UInt64(study), purpose: "t",
                                            options: .init(minimumReplicates: 250, targetMonteCarloError: 1))[0]
            if d.low <= truth && truth <= d.high { covered += 1 }
        }
        // Binomial sd of 95 % of 120 is 2.4 studies: 104 is 4 sd short. Every study covered would
        // itself be a 1-in-470 event, and a sign of intervals too wide.
        #expect((104...119).contains(covered), "covered \(covered) of \(studies)")
    }

    @Test("an attribute's equal-opportunity gap is the spread of the eligible groups' true-positive rates")
    func equalOpportunityGap() {
        // Two groups of 40, 20 positives each: group f catches 15 (0.75), group m 10 (0.5): gap 0.25.
        var labels: [Float] = [], scores: [Float] = [], sex: [String] = []
        for g in ["f", "m"] {
            for i in 0..<40 {
                let positive = i < 20
                labels.append(positive ? 1 : 0)
                sex.append(g)
                let caught = positive && i < (g == "f" ? 15 : 10)
                scores.append(caught ? 0.8 : 0.2)
            }
        }
        let set = ScoredTestSet(labels: labels, sites: labels.map { _ in 0 }, groups: ["sex": sex], scores: ["a": scores, "b": scores.map { _ in 0.2 }])
        let d = PairedBootstrap.compare([set], pairs: [("a", "b")], metrics: [.equalOpportunityGap(attribute: "sex")], seed: 1, purpose: "t",
                                        options: .init(minimumReplicates: 100, targetMonteCarloError: 1, minimumGroupSize: 20))
        // b never predicts positive: both TPRs are 0, gap 0.
        #expect(abs(d[0].estimate - 0.25) < 1e-12)
        #expect(!ComparisonMetric.equalOpportunityGap(attribute: "sex").higherIsBetter)
        #expect(ComparisonMetric(name: "equal_opportunity_gap:sex") == .equalOpportunityGap(attribute: "sex"))
        #expect(ComparisonMetric(name: "roc") == nil)
    }

    @Test("with unit weights every gap and group TPR equals Fairness.gaps and groupRates on the same patients")
    func gapsMatchTheAudit() {
        var set = Self.synthetic(n: 400, sites: 2, shift: 0.6, seed: 21)
        var random = RandomStream(seed: 3, "groups")
        // Three age bands, one too small to enter any gap; a sex split.
        set.groups["age_band"] = set.labels.indices.map { _ in ["18-44", "45-64", "75+"][random.uniform() < 0.05 ? 2 : random.int(below: 2)] }
        let metrics = ComparisonMetric.gaps(attributes: ["sex", "age_band"]) + [.truePositiveRate(attribute: "sex", group: "female")]
        let d = PairedBootstrap.compare([set], pairs: [("a", PairedBootstrap.zero)], metrics: metrics, seed: 1, purpose: "t",
                                        options: .init(minimumReplicates: 2, targetMonteCarloError: 1, minimumGroupSize: 30))
        for attribute in ["sex", "age_band"] {
            let rates = Fairness.groupRates(scores: set.scores["a"]!, labels: set.labels, groups: set.groups[attribute]!, minimumSize: 30)
            let gaps = Fairness.gaps(rates)
            for kind in ComparisonMetric.GapKind.allCases {
                let value = d.first { $0.metric == .gap(kind, attribute: attribute) }!.estimate
                let expected = gaps[kind.rawValue]
                #expect(expected.map { abs($0 - value) < 1e-9 } ?? value.isNaN, "\(kind) by \(attribute): \(value) vs \(String(describing: expected))")
            }
            if attribute == "sex" {
                let female = rates.first { $0.group == "female" }!.truePositiveRate!
                #expect(abs(d.last!.estimate - female) < 1e-12)
            }
        }
        #expect(ComparisonMetric(name: "equalized_odds_gap:race") == .gap(.equalizedOdds, attribute: "race"))
        #expect(ComparisonMetric(name: "auroc_gap:sex") == .gap(.auroc, attribute: "sex"))
        #expect(ComparisonMetric(name: "true_positive_rate:sex=female") == .truePositiveRate(attribute: "sex", group: "female"))
        #expect(ComparisonMetric.gap(.auroc, attribute: "sex").name == "auroc_gap:sex")
        #expect(ComparisonMetric(name: "auroc_gap_gap:sex") == nil && ComparisonMetric(name: "true_positive_rate:sex") == nil)
    }

    @Test("seeds that test the same patients share one patient resample per replicate, so their patient noise does not average out")
    func sharedTestSets() {
        var one = Self.synthetic(n: 300, sites: 2, shift: 0.3, seed: 31)
        one.patients = one.labels.indices.map { Int64($0) }
        let single = PairedBootstrap.compare([one], pairs: [("a", "b")], metrics: [.auroc], seed: 1, purpose: "t",
                                             options: .init(minimumReplicates: 2000, targetMonteCarloError: 1))[0]
        // Four seeds whose models score identically: the seed-to-seed spread is 0, so all width is patient sampling.
        let shared = PairedBootstrap.compare(Array(repeating: one, count: 4), pairs: [("a", "b")], metrics: [.auroc], seed: 1, purpose: "t",
                                             options: .init(minimumReplicates: 2000, targetMonteCarloError: 1))[0]
        var anonymous = one
        anonymous.patients = []
        let independent = PairedBootstrap.compare(Array(repeating: anonymous, count: 4), pairs: [("a", "b")], metrics: [.auroc], seed: 1,
                                                  purpose: "t", options: .init(minimumReplicates: 2000, targetMonteCarloError: 1))[0]
        let width = { (d: PairedDifference) in d.high - d.low }
        // Shared: the single seed's width times the small-sample factor √(4/3)·3.182/1.96 = 1.87.
        #expect(width(shared) / width(single) > 1.6 && width(shared) / width(single) < 2.2, "\(width(shared) / width(single))")
        // Resampled independently, four copies average their patient noise: about half of that.
        #expect(width(independent) / width(single) < 1.2, "\(width(independent) / width(single))")
        #expect(abs(PairedBootstrap.studentT975(degrees: 3) - 3.182) < 1e-9)
    }

    @Test("the interval is bias-corrected: an absolute calibration error keeps its estimate inside its interval")
    func biasCorrected() {
        #expect(abs(PairedBootstrap.normalQuantile(0.975) - 1.959964) < 1e-6)
        #expect(abs(PairedBootstrap.normalQuantile(0.01) + 2.326348) < 1e-6)
        #expect(abs(PairedBootstrap.normalCDF(1.959964) - 0.975) < 1e-7)
        // With no bias (half the replicates below the estimate) BC is the plain percentile interval.
        let plain = PairedBootstrap.biasCorrectedLevels(below: 0.5, count: 1000)
        #expect(abs(plain.low - 0.025) < 1e-6 && abs(plain.high - 0.975) < 1e-6)
        // a is calibrated in the large (mean score = event rate), b over-predicts by 0.05.
        var set = Self.synthetic(n: 400, sites: 2, shift: 0, seed: 41)
        let rate = Float(set.labels.reduce(0, +)) / Float(set.labels.count)
        let mean = set.scores["a"]!.reduce(0, +) / Float(set.labels.count)
        set.scores["a"] = set.scores["a"]!.map { min(max($0 + rate - mean, 0), 1) }
        set.scores["b"] = set.scores["a"]!.map { min($0 + 0.05, 1) }
        let d = PairedBootstrap.compare([set], pairs: [("a", "b")], metrics: [.calibrationInTheLarge], seed: 1, purpose: "t",
                                        options: .init(minimumReplicates: 4000, targetMonteCarloError: 1))[0]
        #expect(d.low <= d.estimate && d.estimate <= d.high, "\(d.low) ≤ \(d.estimate) ≤ \(d.high)")
        #expect(d.armIsBetter)
    }

    @Test("scoring only the drawn replicates, in any order and over several calls, gives what scoring all of them gives")
    func lazyReplicates() {
        let set = Self.synthetic(n: 120, sites: 2, shift: 0.4, seed: 9)
        let metrics = ComparisonMetric.standard + ComparisonMetric.gaps(attributes: ["sex"])
        func prepared() -> PreparedSeed {
            PreparedSeed(set, models: ["a", "b"], metrics: metrics, options: .init(minimumGroupSize: 10), seed: 3, purpose: "t", streamKey: "0")
        }
        let all = prepared()
        all.extend(to: 300)
        let lazy = prepared()
        lazy.extend(to: 100, needed: (0..<100).map { $0 % 3 == 0 })
        #expect(lazy.replicates("a", .auroc)[1].isNaN, "a replicate nobody drew is not scored")
        lazy.extend(to: 300, needed: (0..<300).map { $0 % 3 != 0 })
        lazy.extend(to: 300, needed: (0..<300).map { $0 % 3 == 0 })
        for model in ["a", "b"] {
            for metric in metrics {
                let x = all.replicates(model, metric), y = lazy.replicates(model, metric)
                #expect(x.count == 300 && zip(x, y).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }, "\(model) \(metric.name)")
            }
        }
    }

    @Test("an interval that misses 0 only by rounding (two models that agree on every patient) is not a finding")
    func rounding() {
        let d = PairedDifference(arm: "a", against: "b", metric: .calibrationInTheLarge, estimate: -3e-17, perSeed: [-3e-17],
                                 low: -5e-17, high: -1e-18, replicates: 2000, usableReplicates: 2000, monteCarloError: 0)
        #expect(!d.isClear && !d.armIsBetter && !d.armIsWorse)
        let real = PairedDifference(arm: "a", against: "b", metric: .auroc, estimate: 0.01, perSeed: [0.01],
                                    low: 0.002, high: 0.02, replicates: 2000, usableReplicates: 2000, monteCarloError: 0)
        #expect(real.isClear && real.armIsBetter)
    }

    @Test("restricting to sites keeps only their patients, in order")
    func restricted() {
        let set = ScoredTestSet(labels: [1, 0, 1, 0], sites: [0, 1, 2, 1], groups: ["sex": ["f", "m", "f", "m"]], scores: ["a": [0.1, 0.2, 0.3, 0.4]])
        let kept = set.restricted(toSites: [1])
        #expect(kept.labels == [0, 0] && kept.sites == [1, 1] && kept.scores["a"] == [0.2, 0.4] && kept.groups["sex"] == ["m", "m"])
    }

    @Test("a difference survives metrics.json: undefined numbers are stored as null and read back as NaN")
    func codable() throws {
        let d = PairedDifference(arm: "a", against: "b", metric: .equalOpportunityGap(attribute: "sex"), estimate: .nan, perSeed: [.nan, 0.1],
                                 low: .nan, high: .nan, replicates: 10, usableReplicates: 0, monteCarloError: .nan)
        let back = try JSONDecoder().decode(PairedDifference.self, from: JSONEncoder().encode(d))
        #expect(back.metric == d.metric && back.estimate.isNaN && back.perSeed[0].isNaN && back.perSeed[1] == 0.1 && !back.isClear)
    }
}

extension ScoredTestSet {
    /// This set with model `name`'s scores copied to `newName` (and `name` kept).
    func renamed(_ name: String, to newName: String, keeping: Bool) -> ScoredTestSet {
        var copy = self
        copy.scores[newName] = scores[name]
        if !keeping { copy.scores[name] = nil }
        return copy
    }
}
