import Foundation
import Testing
import SiteFitMetrics
@testable import SiteFitReport
import SiteFitTestSupport

/// The findings are a pure function of the metrics: each flag is checked on the golden run's
/// metrics with hand-made comparisons, where the expected sentence is known.
@Suite("Findings")
struct FindingsTests {
    /// A difference with the given estimate and interval (replicates and errors are irrelevant here).
    static func d(_ arm: String, _ against: String, _ metric: ComparisonMetric, _ estimate: Double, _ low: Double, _ high: Double) -> PairedDifference {
        PairedDifference(arm: arm, against: against, metric: metric, estimate: estimate, perSeed: [estimate], low: low, high: high,
                         replicates: 2000, usableReplicates: 2000, monteCarloError: 0.001)
    }

    /// The golden metrics with comparisons of full and bitfit against full and the pretrained model.
    static func metrics(_ differences: [PairedDifference], drift: [PairedDifference] = [], groups: [PairedDifference] = []) throws -> RunMetrics {
        var m = try RendererTests.golden()
        var c = Comparisons(reference: "full", startingModel: "pretrained", seeds: 5, minimumReplicates: 2000, targetMonteCarloError: 0.005,
                            differences: differences)
        c.biasDrift = drift
        c.groupTruePositiveRates = groups
        m.comparisons = c
        return m
    }

    static let quiet: [PairedDifference] = ComparisonMetric.standard.flatMap { metric in
        [d("bitfit", "full", metric, 0.001, -0.01, 0.012), d("full", "pretrained", metric, 0.02, 0.01, 0.03),
         d("bitfit", "pretrained", metric, 0.021, 0.011, 0.031)]
    }

    @Test("each row against the reference: better, worse and indistinguishable, each with its interval")
    func againstReference() throws {
        var differences = Self.quiet.filter { $0.against != "full" }
        differences.append(Self.d("bitfit", "full", .auroc, -0.004, -0.015, 0.008))
        differences.append(Self.d("bitfit", "full", .brier, -0.01, -0.02, -0.004))
        differences.append(Self.d("bitfit", "full", .balancedAccuracy, -0.05, -0.08, -0.02))
        let lines = Findings.lines(try Self.metrics(differences))
        #expect(lines.contains("**bitfit** against **full**: better in Brier score −0.010 [−0.020, −0.004]; worse in balanced accuracy "
                               + "−0.050 [−0.080, −0.020]; indistinguishable in AUROC −0.004 [−0.015, +0.008]."))
        #expect(lines[0].hasPrefix("Every difference below is a mean over 5 seeds"))
    }

    @Test("a row none of whose differences from the starting model excludes 0 did not move; one that does moved")
    func didNotMove() throws {
        var differences = Self.quiet.filter { !($0.arm == "bitfit" && $0.against == "pretrained") }
        differences += ComparisonMetric.standard.map { Self.d("bitfit", "pretrained", $0, 0.001, -0.002, 0.004) }
        let lines = Findings.lines(try Self.metrics(differences))
        #expect(lines.contains { $0.hasPrefix("**bitfit** did not measurably move from the pretrained model") })
        #expect(!lines.contains { $0.hasPrefix("**full** did not measurably move") })
    }

    @Test("a drop in balanced accuracy and in a group's TPR is said, with levels and interval; a rise is not a drop")
    func drops() throws {
        var differences = Self.quiet.filter { !($0.arm == "full" && $0.against == "pretrained" && $0.metric == .balancedAccuracy) }
        differences.append(Self.d("full", "pretrained", .balancedAccuracy, -0.067, -0.094, -0.041))
        let groups = [Self.d("full", "pretrained", .truePositiveRate(attribute: "sex", group: "female"), -0.15, -0.23, -0.07),
                      Self.d("full", "pretrained", .truePositiveRate(attribute: "sex", group: "male"), 0.1, 0.02, 0.2),
                      Self.d("bitfit", "pretrained", .truePositiveRate(attribute: "sex", group: "male"), -0.1, -0.2, 0.01)]
        let m = try Self.metrics(differences, groups: groups)
        let lines = Findings.lines(m)
        let start = Format.fixed(m.arms[0].rounds[0].evaluation.balancedAccuracy), end = Format.fixed(m.arms[0].final.balancedAccuracy)
        #expect(lines.contains("**full** lowers balanced accuracy from \(start) to \(end) (−0.067 [−0.094, −0.041]): at the 0.5 threshold "
                               + "it catches fewer cases or raises more false alarms."))
        let female = m.arms[0].final.subgroups.first { $0.attribute == "sex" }!.groups.first { $0.group == "female" }!.truePositiveRate
        let before = m.arms[0].rounds[0].evaluation.subgroups.first { $0.attribute == "sex" }!.groups.first { $0.group == "female" }!.truePositiveRate
        #expect(lines.contains("**full** lowers the true-positive rate (the share of cases it catches) for female patients "
                               + "\(Format.fixed(before)) → \(Format.fixed(female)) (−0.150 [−0.230, −0.070])."))
        #expect(!lines.contains { $0.hasPrefix("**bitfit** lowers the true-positive rate") }, "an interval including 0 is not a drop")
    }

    @Test("a row at the majority-class rate is flagged")
    func majorityRate() throws {
        var m = try Self.metrics(Self.quiet)
        m.arms[1].final.accuracy = m.arms[1].final.majorityClassAccuracy
        m.arms[1].final.balancedAccuracy = 0.5
        #expect(Findings.lines(m).contains { $0.hasPrefix("**bitfit** is at the majority-class rate") })
        #expect(!Findings.lines(m).contains { $0.hasPrefix("**full** is at the majority-class rate") })
    }

    @Test("ε above 10 is called a weak guarantee, ε of 10 or less is stated")
    func epsilon() throws {
        var m = try Self.metrics(Self.quiet)
        m.arms[0].privacy.epsilon = 14.2
        m.arms[0].privacy.delta = 1e-5
        m.arms[1].privacy.epsilon = 2.5
        m.arms[1].privacy.delta = 1e-5
        let lines = Findings.lines(m)
        #expect(lines.contains { $0.hasPrefix("**full**'s differential-privacy guarantee is ε = 14.20 at δ = 1e-05: above 10, a weak guarantee") })
        #expect(lines.contains("**bitfit**'s differential-privacy guarantee is ε = 2.50 at δ = 1e-05."))
    }

    @Test("the membership-inference AUC is tested against 0.5 with a t-interval over seeds")
    func membership() throws {
        var m = try Self.metrics(Self.quiet)
        // 20 seeds, mean 0.547, sd 0.024: half-width 2.093 · 0.024/√20 = 0.011, so [0.536, 0.558] excludes 0.5.
        m.seeds = try JSONDecoder().decode(SeedSummary.self, from: Data("""
            {"seeds": [1, 2], "arms": [\(m.arms.map { arm in
                let mia = arm.name == "bitfit" ? #"{"mean": 0.547, "standard_deviation": 0.024, "count": 20}"# : #"{"mean": 0.51, "standard_deviation": 0.05, "count": 20}"#
                let any = #"{"mean": 0.8, "standard_deviation": 0.01, "count": 20}"#
                return #"{"name": "\#(arm.name)", "accuracy": \#(any), "mean_site_accuracy": \#(any), "worst_site_accuracy": \#(any), "auroc": \#(any), "auprc": \#(any), "membership_inference": \#(mia)}"#
            }.joined(separator: ","))]}
            """.utf8))
        let lines = Findings.lines(m)
        #expect(lines.contains("A loss-threshold membership-inference attack tells **bitfit**'s training patients from held-out ones better than "
                               + "chance: AUC 0.547 (95 % interval 0.536 to 0.558 over 20 seeds; 0.5 = no signal)."))
        #expect(lines.contains { $0.hasPrefix("The membership-inference attack's AUC is not measurably above 0.5 (no signal) for **full** 0.510 [0.487, 0.533]") })
        #expect(abs(Findings.studentT975(degrees: 19) - 2.093) < 1e-9 && abs(Findings.studentT975(degrees: 120) - 1.98) < 0.001)
    }

    @Test("one fairness metric per row: the equalised-odds drift where it moved most, in the findings and the summary alike")
    func oneFairnessMetric() throws {
        let drift = [Self.d("full", "pretrained", .gap(.equalizedOdds, attribute: "sex"), 0.08, 0.02, 0.14),
                     Self.d("full", "pretrained", .gap(.equalizedOdds, attribute: "age_band"), 0.03, -0.05, 0.1),
                     Self.d("full", "pretrained", .gap(.demographicParity, attribute: "sex"), -0.2, -0.3, -0.1),
                     Self.d("bitfit", "pretrained", .gap(.equalizedOdds, attribute: "sex"), 0.01, -0.05, 0.07)]
        let m = try Self.metrics(Self.quiet, drift: drift)
        let lines = Findings.lines(m)
        #expect(lines.contains("Under **full** the equalised-odds gap by sex widened since the pretrained model (+0.080 [+0.020, +0.140]): "
                               + "the groups are treated less alike."))
        #expect(lines.contains("The equalised-odds gap of **bitfit** (by sex) did not change measurably: each interval includes 0."))
        #expect(!lines.contains { $0.contains("demographic-parity") }, "the findings use one fairness metric")
        #expect(MarkdownReport.fairnessCell(m.arms[0], m) == "+0.080 (sex) [+0.020, +0.140] **clear**")
        #expect(MarkdownReport.fairnessCell(m.arms[1], m) == "+0.010 (sex) [−0.050, +0.070]")
    }
}
