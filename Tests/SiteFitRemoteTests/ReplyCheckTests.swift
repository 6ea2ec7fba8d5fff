import SiteFitCore
@testable import SiteFitFederation
@testable import SiteFitRemote
import Testing

/// A site's cohort summary and reconstruction trials as the server checks them on arrival.
@Suite("What a site says about its cohort and its attacked updates is checked where it arrives")
struct ReplyCheckTests {
    static let summary = SiteSummary(
        cohortSize: 100, outcomePrevalence: 0.2, femaleShare: 0.5, meanAge: 61, labMissingShare: 0.1,
        raceShares: ["White": 0.7, "Black or African American": 0.3], ageBandShares: ["45-64": 0.6, "65-74": 0.4],
        featureCounts: [100, 90, 100], featureSums: [6100, 1.5e3, 48], featureSquares: [4e5, 2.6e4, 48])

    @Test("a summary the in-process site could have made passes, NaN shares of an empty cohort included")
    func plausibleSummaryPasses() throws {
        try Self.summary.checked(columns: 3, trainSize: 70, testSize: 30)
        try Self.summary.checked(columns: nil, trainSize: 70, testSize: 30)
        var empty = Self.summary
        (empty.cohortSize, empty.outcomePrevalence, empty.femaleShare, empty.featureCounts) = (0, .nan, .nan, [0, 0, 0])
        try empty.checked(columns: 3, trainSize: 0, testSize: 0)
    }

    @Test("a summary no site could have made is refused, with what is wrong", arguments: [
        ("columns", "feature statistics"), ("share", "outcome prevalence"), ("race label", "race shares"),
        ("count", "feature statistics"), ("infinite sum", "feature statistics"), ("cohort", "patients for 70 train"),
        ("attrition", "attrition"),
    ])
    func implausibleSummaryRefused(_ change: String, _ reason: String) {
        var summary = Self.summary
        switch change {
        case "columns": summary.featureSums.removeLast()
        case "share": summary.outcomePrevalence = 1.5
        case "race label": summary.raceShares["<script>"] = 0.1
        case "count": summary.featureCounts[0] = 101
        case "infinite sum": summary.featureSums[1] = .infinity
        case "cohort": summary.cohortSize = 50
        default: summary.attrition = CohortAttrition(withTargetEvent: 10, withPriorObservation: 20, withoutPriorOutcome: 5, cohort: 5, outcomes: 1)
        }
        let refusal = #expect(throws: ProtocolViolation.self, "\(change)") { try summary.checked(columns: 3, trainSize: 70, testSize: 30) }
        #expect(refusal?.reason.contains(reason) == true, "\(change): \(String(describing: refusal))")
    }

    static let settings = ReconstructionSettings(batchSizes: [1, 4], localSteps: [1], budget: 10, trials: 2)
    static func trial(batch: Int = 1, trial: Int = 0, site: String = "north", identified: Double = 0.5) -> ReconstructionTrial {
        let score = ReconstructionScore(error: 0.3, truePositives: 1, falsePositives: 0, falseNegatives: 2, identified: identified)
        return ReconstructionTrial(site: site, batchSize: batch, localSteps: 1, trial: trial, analytic: score, optimisation: score,
                                   chance: score, outcomeRateError: 0.1)
    }

    @Test("trials of the experiment's settings pass; another site's, an unknown setting, a repeat or a score out of range is refused")
    func reconstructionTrials() throws {
        try ReconstructionTrial.checked([Self.trial(), Self.trial(batch: 4, trial: 1), Self.trial(trial: 1, identified: .nan)],
                                        site: "north", settings: Self.settings)
        for bad in [[Self.trial(site: "south")], [Self.trial(batch: 32)], [Self.trial(trial: 2)], [Self.trial(), Self.trial()],
                    [Self.trial(identified: 2)]] {
            #expect(throws: ProtocolViolation.self) { try ReconstructionTrial.checked(bad, site: "north", settings: Self.settings) }
        }
    }
}
