import SiteFitCore
import SiteFitFederation

// What a site says about its cohort and what its reconstruction experiment found reach the
// report's tables and the server's arithmetic (feature distances index the summaries' arrays by
// column). A site in another process is another party: its answers are checked here, where they
// arrive, so nothing downstream meets a value the in-process simulation could never produce.

/// Largest count of entries a site may list in a summary's share maps and data-quality findings.
let maximumSummaryEntries = 10_000

extension SiteSummary {
    /// Refuses a summary no site of this scenario could have made: shares outside [0, 1], counts
    /// below zero or above the cohort, feature statistics that are not one per column of the task
    /// (`columns`, when the target reads feature rows), text that is not a plain label.
    func checked(columns: Int?, trainSize: Int, testSize: Int) throws(ProtocolViolation) {
        func share(_ value: Double, _ name: String) throws(ProtocolViolation) {
            // An empty cohort has no shares: NaN, as the in-process site reports it.
            guard value.isNaN || (0...1).contains(value) else { throw ProtocolViolation("a cohort summary with \(name) outside [0, 1]") }
        }
        guard (0...Int(Int32.max)).contains(cohortSize), trainSize + testSize <= cohortSize else {
            throw ProtocolViolation("a cohort summary of \(cohortSize) patients for \(trainSize) train and \(testSize) test patients")
        }
        try share(outcomePrevalence, "the outcome prevalence")
        try share(femaleShare, "the female share")
        try share(labMissingShare, "the missing-lab share")
        // Ages come from the shard's birth years, implausible ones included (the import flags them, keeps them).
        guard !meanAge.isInfinite else { throw ProtocolViolation("a cohort summary with a mean age of \(meanAge)") }
        for (name, shares) in [("race", raceShares), ("age band", ageBandShares)] {
            guard shares.count <= maximumSummaryEntries, shares.keys.allSatisfy(SafeText.isLabel),
                  shares.values.allSatisfy({ (0...1).contains($0) })
            else { throw ProtocolViolation("a cohort summary's \(name) shares are not plain labels with shares in [0, 1]") }
        }
        let statistics = featureCounts.count
        guard featureSums.count == statistics, featureSquares.count == statistics, columns.map({ $0 == statistics }) ?? (statistics <= 1_000_000)
        else { throw ProtocolViolation("a cohort summary with \(statistics) feature statistics for \(columns.map(String.init) ?? "its") columns") }
        guard featureCounts.allSatisfy({ $0 >= 0 && $0 <= Double(cohortSize) && $0.rounded() == $0 }),
              featureSums.allSatisfy(\.isFinite), featureSquares.allSatisfy({ $0.isFinite && $0 >= 0 })
        else { throw ProtocolViolation("a cohort summary's feature statistics are not counts and finite sums") }
        if let a = attrition {
            // Each step keeps some of the persons of the step before.
            guard a.withTargetEvent <= Int(Int32.max), a.withPriorObservation <= a.withTargetEvent, a.withoutPriorOutcome <= a.withPriorObservation,
                  a.cohort <= a.withoutPriorOutcome, a.cohort >= 0, a.outcomes >= 0, a.outcomes <= a.cohort
            else { throw ProtocolViolation("a cohort attrition whose steps do not each keep some of the step before") }
        }
        // Unmatched concept ids are as many as the task's concept set has (no bound of its own: the message's size bounds it).
        guard dataQuality.count <= maximumSummaryEntries,
              dataQuality.allSatisfy({ [$0.check, $0.table, $0.field].allSatisfy { $0.isEmpty || SafeText.isLabel($0) } && $0.rows >= 0
                                       && (0...$0.rows).contains($0.violatingRows) })
        else { throw ProtocolViolation("a cohort summary's data-quality findings are not plain labels with counts") }
        if let s = sequences {
            guard s.sequences >= 0, s.sequences <= cohortSize, (0...s.sequences).contains(s.full), s.codes >= 0, s.codes <= Int(Int32.max)
            else { throw ProtocolViolation("a cohort summary's sequence counts do not fit its cohort") }
        }
    }
}

extension ReconstructionTrial {
    /// Refuses trials the scenario's experiment could not have produced at `site`: another site,
    /// a batch size, step count or trial the experiment lacks, one setting twice, a score that is
    /// not a score.
    static func checked(_ trials: [ReconstructionTrial], site: String, settings: ReconstructionSettings) throws(ProtocolViolation) {
        var seen = Set<[Int]>()
        for trial in trials {
            guard trial.site == site, settings.batchSizes.contains(trial.batchSize), settings.localSteps.contains(trial.localSteps),
                  (0..<settings.trials).contains(trial.trial), seen.insert([trial.batchSize, trial.localSteps, trial.trial]).inserted
            else { throw ProtocolViolation("reconstruction trials for settings the experiment does not have, or twice") }
            for score in [trial.optimisation, trial.chance] + (trial.analytic.map { [$0] } ?? []) {
                // NaN where the in-process experiment gives NaN too (an attack that diverged, no held-out patient).
                guard score.error.isNaN || score.error >= 0, score.truePositives >= 0, score.falsePositives >= 0, score.falseNegatives >= 0,
                      score.identified.isNaN || (0...1).contains(score.identified)
                else { throw ProtocolViolation("a reconstruction score that is not a score") }
            }
            guard trial.outcomeRateError.map({ $0.isNaN || ($0.isFinite && $0 >= 0) }) ?? true else {
                throw ProtocolViolation("a reconstruction's outcome-rate error that is not a distance")
            }
        }
    }
}
