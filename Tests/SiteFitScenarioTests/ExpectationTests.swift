import Foundation
import Testing
@testable import SiteFitCore
@testable import SiteFitScenario
import SiteFitMetrics
import SiteFitFederation
import SiteFitEHR
import SiteFitTestSupport

/// `compare_to:` and `expect:`: what the claims parse to, and the exact errors users see.
@Suite("A scenario's claims and its comparison reference")
struct ExpectationTests {
    static func load(_ tail: String, name: String = #function) throws -> Scenario {
        let folder = try fixture(["Sites/alpha.yaml": profile, "Scenarios/demo.yaml": scenario + "\n" + tail], name: name)
        return try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/demo.yaml"))
    }

    @Test("every kind of claim parses, names resolve to arms and baseline rows, and the reference defaults to the first arm")
    func valid() throws {
        let s = try Self.load("""
            baselines: [pretrained, local, local_each]
            expect:
              - {arm: bitfit-fast, not_worse_than: full, metric: auroc, margin: 0.02}
              - {arm: full, better_than: pretrained, metric: brier, sites: [alpha]}
              - {arm: local only, worse_than: full, metric: equal_opportunity_gap:sex}
              - {arm: bitfit-fast, at_most: 0.1, of: full, quantity: bytes_up}
              - {arm: local alpha, better_than: pretrained, metric: calibration_in_the_large}
              - {arm: pretrained, metric: calibration_in_the_large, sites: [alpha], above: 0.05}
              - {arm: full, metric: auroc, below: 0.99}
            """)
        #expect(s.compareTo == nil && s.comparisonReference == "full")
        #expect(s.expectations == [
            Expectation(arm: "bitfit-fast", relation: .notWorse(than: "full", margin: 0.02), metric: .auroc),
            Expectation(arm: "full", relation: .better(than: "pretrained"), metric: .brier, sites: ["alpha"]),
            Expectation(arm: "local only", relation: .worse(than: "full"), metric: .equalOpportunityGap(attribute: "sex")),
            Expectation(arm: "bitfit-fast", relation: .atMost(fraction: 0.1, of: "full", quantity: .bytesUp)),
            Expectation(arm: "local alpha", relation: .better(than: "pretrained"), metric: .calibrationInTheLarge),
            Expectation(arm: "pretrained", relation: .above(0.05), metric: .calibrationInTheLarge, sites: ["alpha"]),
            Expectation(arm: "full", relation: .below(0.99), metric: .auroc),
        ])
        #expect(s.expectations[5].statement == "pretrained's calibration error in the large at alpha is above 0.05")
        #expect(s.expectations[0].statement == "bitfit-fast is not worse than full by 0.02 or more in AUROC")
        #expect(s.expectations[1].statement == "full is better than pretrained in Brier score at alpha")
        #expect(s.expectations[3].statement == "bitfit-fast uses at most 0.1 × the bytes up of full")
        #expect(try Self.load("compare_to: bitfit-fast\n").comparisonReference == "bitfit-fast")
        // The starting model can be compared with even when it is not listed as a baseline.
        #expect(try Self.load("baselines: []\ncompare_to: pretrained\n").comparisonReference == "pretrained")
    }

    @Test("unknown rows, metrics, sites and attributes, missing or extra keys and several relations are located errors")
    func errors() {
        let found = diagnostics {
            _ = try Self.load("""
                baselines: [pretrained]
                compare_to: pooled
                subgroups: {attributes: [sex]}
                expect:
                  - {arm: fulll, better_than: pretrained, metric: auroc}
                  - {arm: full, better_than: pretrained, worse_than: bitfit-fast, metric: auroc}
                  - {arm: full, better_than: pretrained, metric: roc}
                  - {arm: full, not_worse_than: bitfit-fast, metric: auroc}
                  - {arm: full, better_than: pretrained, metric: auroc, sites: [beta], margin: 0.1}
                  - {arm: full, at_most: 0.1, of: bitfit-fast}
                  - {arm: full, better_than: full, metric: auroc}
                  - {arm: full, better_than: pretrained, metric: equal_opportunity_gap:race}
                  - {arm: full}
                """)
        }
        #expect(found.map { "\($0.line):\($0.column) \($0.field): \($0.problem)" } == [
            "12:13 compare_to: 'pooled' is neither an arm nor a baseline row of this scenario; use one of: 'full', 'bitfit-fast', 'pretrained'",
            "15:11 expect[0].arm: 'fulll' is neither an arm nor a baseline row of this scenario; use one of: 'full', 'bitfit-fast', 'pretrained'",
            "16:5 expect[1]: give only one of better_than and worse_than",
            "17:50 expect[2].metric: unknown metric 'roc'; use one of: auroc, balanced_accuracy, accuracy, brier, calibration_in_the_large, worst_site_accuracy, demographic_parity_gap:<attribute>, equal_opportunity_gap:<attribute>, equalized_odds_gap:<attribute>, auroc_gap:<attribute>, calibration_gap:<attribute>, true_positive_rate:<attribute>=<group>",
            "18:5 expect[3]: a not_worse_than claim needs margin: how much worse still counts as not worse",
            "19:65 expect[4].sites[0]: 'beta' is not a site of this scenario; use one of: alpha",
            "19:80 expect[4].margin: margin belongs to a not_worse_than claim",
            "20:5 expect[5]: an at_most claim needs of (the arm it is a fraction of) and quantity (bytes_up, training_flops, parameters_exposed)",
            "21:30 expect[6].better_than: a claim compares two different rows",
            "22:50 expect[7].metric: 'race' is not an audited attribute; use one of: sex",
            "23:5 expect[8]: say what the claim is: one of better_than, worse_than, not_worse_than (with margin), above, below, at_most (with of and quantity) or leaks_more_than (with leakage, batch_size and local_steps)",
        ])
    }

    @Test("reconstruction: its settings load with defaults, and leakage claims name settings the experiment runs")
    func leakageClaims() throws {
        let s = try Self.load("""
            reconstruction: {batch_sizes: [1, 8], local_steps: [1, 5]}
            expect:
              - {arm: full, leaks_more_than: bitfit-fast, leakage: reconstruction_f1, batch_size: 1, local_steps: 1}
              - {arm: full, leaks_more_than: full, leakage: reconstruction_error, batch_size: 1, local_steps: 1, than_batch_size: 8}
            """)
        #expect(s.reconstruction == ReconstructionSettings(batchSizes: [1, 8], localSteps: [1, 5], budget: 300, trials: 3))
        #expect(s.expectations == [
            Expectation(arm: "full", relation: .leaksMore(than: "bitfit-fast", measure: .f1, batchSize: 1, localSteps: 1, thanBatchSize: 1, thanLocalSteps: 1)),
            Expectation(arm: "full", relation: .leaksMore(than: "full", measure: .error, batchSize: 1, localSteps: 1, thanBatchSize: 8, thanLocalSteps: 1)),
        ])
        #expect(s.expectations[0].statement == "full's updates reveal more than bitfit-fast's at batch 1, 1 local step (higher reconstruction F1)")
        #expect(s.expectations[1].statement == "full's updates reveal more at batch 1, 1 local step than at batch 8, 1 local step (lower reconstruction error)")
        #expect(s.expectations[0].holds(leakage: MeanInterval(estimate: 0.5, low: 0.1, high: 0.9, count: 9)))
        #expect(!s.expectations[0].holds(leakage: MeanInterval(estimate: 0.5, low: -0.1, high: 0.9, count: 9)))
        #expect(s.expectations[1].holds(leakage: MeanInterval(estimate: -0.5, low: -0.9, high: -0.1, count: 9)))
        #expect(!s.expectations[1].holds(leakage: MeanInterval(estimate: .nan, low: .nan, high: .nan, count: 0)))

        let found = diagnostics {
            _ = try Self.load("""
                baselines: [pretrained]
                reconstruction: {batch_sizes: [1, 1], local_steps: [], budget: 0}
                expect:
                  - {arm: full, leaks_more_than: pretrained, leakage: reconstruction_f1, batch_size: 1, local_steps: 1}
                  - {arm: full, leaks_more_than: bitfit-fast, leakage: leaks, batch_size: 1, local_steps: 1}
                  - {arm: full, leaks_more_than: bitfit-fast, leakage: identified, batch_size: 4, local_steps: 1}
                  - {arm: full, better_than: bitfit-fast, metric: auroc, batch_size: 1}
                """)
        }
        #expect(found.map { "\($0.line):\($0.column) \($0.field): \($0.problem)" } == [
            "12:31 reconstruction.batch_sizes: a value is listed twice",
            "12:52 reconstruction.local_steps: list from 1 to 8 values",
            "12:64 reconstruction.budget: expected an integer from 1 to 5000, found '0'",
            "14:5 expect[0]: 'pretrained' is a baseline row: only arms send updates to attack",
            "15:56 expect[1].leakage: expected one of 'reconstruction_f1', 'reconstruction_error', 'identified', 'outcome_rate_error', found 'leaks'",
            "16:80 expect[2].batch_size: 4 is not in the reconstruction experiment's list: 1, 1",
            "17:70 expect[3].batch_size: batch_size belongs to a leaks_more_than claim",
        ])
        let masked = diagnostics {
            let folder = try fixture(["Sites/alpha.yaml": profile, "Scenarios/demo.yaml": scenario + "\n" + """
                  - {name: secure, mode: full, secure_aggregation: true}
                reconstruction: {batch_sizes: [1], local_steps: [1]}
                expect:
                  - {arm: full, leaks_more_than: secure, leakage: identified, batch_size: 1, local_steps: 1}
                """], name: "leakage-masked")
            _ = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/demo.yaml"))
        }
        #expect(masked.map(\.problem) == ["'secure' uses secure aggregation: the server never holds one of its updates, so none is attacked"])
        let without = diagnostics { _ = try Self.load("expect:\n  - {arm: full, leaks_more_than: bitfit-fast, leakage: identified, batch_size: 1, local_steps: 1}\n") }
        #expect(without.map(\.problem) == ["a leaks_more_than claim needs the scenario's `reconstruction:` experiment"])
    }

    @Test("an arm's training_sites name sites of the scenario, once each")
    func trainingSites() throws {
        let folder = try fixture(["Sites/alpha.yaml": profile, "Scenarios/demo.yaml": scenario + """

              - {name: without, mode: full, training_sites: [alpha]}
              - {name: bad, mode: full, training_sites: [beta, alpha, alpha]}
            """])
        let found = diagnostics { _ = try ScenarioLoader.load(folder.appendingPathComponent("Scenarios/demo.yaml")) }
        #expect(found.map { "\($0.line):\($0.column) \($0.field): \($0.problem)" } == [
            "12:46 arms[3].training_sites[0]: 'beta' is not a site of this scenario; use one of: alpha",
            "12:59 arms[3].training_sites[2]: site 'alpha' is listed twice",
        ])
        let good = try fixture(["Sites/alpha.yaml": profile, "Scenarios/demo.yaml": scenario + "\n  - {name: without, mode: full, training_sites: [alpha]}\n"],
                               name: "trainingSitesGood")
        let s = try ScenarioLoader.load(good.appendingPathComponent("Scenarios/demo.yaml"))
        #expect(s.arms.map(\.trainingSites) == [nil, nil, ["alpha"]])
    }

    @Test("temporal_split takes ISO dates in order, and not beside test_fraction")
    func temporalSplit() throws {
        let s = try Self.load("temporal_split: {train_from: 2021-01-01, test_from: 2021-07-01}\n")
        #expect(s.temporalSplit == TemporalSplit(trainFrom: "2021-01-01", testFrom: "2021-07-01"))
        let found = diagnostics { _ = try Self.load("test_fraction: 0.2\ntemporal_split: {train_from: 2021-09-01, test_from: 2021-02-30}\n") }
        #expect(found.map { "\($0.line):\($0.column) \($0.field): \($0.problem)" } == [
            "11:16 test_fraction: give either test_fraction (a random split) or temporal_split (by index date), not both",
            "12:53 temporal_split.test_from: expected a date YYYY-MM-DD, found '2021-02-30'",
        ])
        let order = diagnostics { _ = try Self.load("temporal_split: {train_from: 2021-09-01, test_from: 2021-07-01}\n") }
        #expect(order.map(\.problem) == ["train_from (2021-09-01) must come before test_from (2021-07-01)"])
    }

    @Test("a claim holds only when the whole interval is on its side, for higher- and lower-is-better metrics alike")
    func decisions() {
        func d(_ metric: ComparisonMetric, _ low: Double, _ high: Double) -> PairedDifference {
            PairedDifference(arm: "a", against: "b", metric: metric, estimate: (low + high) / 2, perSeed: [], low: low, high: high,
                             replicates: 2000, usableReplicates: 2000, monteCarloError: 0.001)
        }
        let better = Expectation(arm: "a", relation: .better(than: "b"), metric: .auroc)
        #expect(better.holds(d(.auroc, 0.001, 0.02)) && !better.holds(d(.auroc, -0.001, 0.02)) && !better.holds(d(.auroc, -0.02, -0.01)))
        // Brier is better when smaller: "better" needs the whole interval below 0.
        let brierBetter = Expectation(arm: "a", relation: .better(than: "b"), metric: .brier)
        #expect(brierBetter.holds(d(.brier, -0.02, -0.001)) && !brierBetter.holds(d(.brier, 0.001, 0.02)))
        let worse = Expectation(arm: "a", relation: .worse(than: "b"), metric: .gap(.equalOpportunity, attribute: "sex"))
        #expect(worse.holds(d(.gap(.equalOpportunity, attribute: "sex"), 0.1, 0.4)) && !worse.holds(d(.gap(.equalOpportunity, attribute: "sex"), -0.1, 0.4)))
        let notWorse = Expectation(arm: "a", relation: .notWorse(than: "b", margin: 0.02), metric: .auroc)
        #expect(notWorse.holds(d(.auroc, -0.019, 0.05)) && !notWorse.holds(d(.auroc, -0.021, 0.05)))
        let notWorseBrier = Expectation(arm: "a", relation: .notWorse(than: "b", margin: 0.005), metric: .brier)
        #expect(notWorseBrier.holds(d(.brier, -0.01, 0.004)) && !notWorseBrier.holds(d(.brier, -0.01, 0.006)))
        let above = Expectation(arm: "a", relation: .above(0.03), metric: .calibrationInTheLarge)
        #expect(above.holds(d(.calibrationInTheLarge, 0.031, 0.1)) && !above.holds(d(.calibrationInTheLarge, 0.029, 0.1)))
        let below = Expectation(arm: "a", relation: .below(0.9), metric: .auroc)
        #expect(below.holds(d(.auroc, 0.8, 0.89)) && !below.holds(d(.auroc, 0.8, 0.91)))
        #expect(!better.holds(d(.auroc, .nan, .nan)), "an undefined interval never holds")
        let footprint = Expectation(arm: "a", relation: .atMost(fraction: 0.1, of: "b", quantity: .bytesUp))
        #expect(footprint.holds(armValue: 100, otherValue: 1000) && !footprint.holds(armValue: 101, otherValue: 1000))
        #expect(!footprint.holds(armValue: .nan, otherValue: 1000) && !better.holds(armValue: 1, otherValue: 10))
    }
}
