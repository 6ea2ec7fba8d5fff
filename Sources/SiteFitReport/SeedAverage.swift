import SiteFitMetrics

// Every seed's metrics folded into one: what the report's tables and charts show for a
// multi-seed run, so that no table is one seed's. Each number is its mean over the seeds that
// define it; the paired comparisons carry the intervals.

/// The mean of the finite values (NaN when there are none).
func seedMean(_ values: [Double]) -> Double {
    let finite = values.filter(\.isFinite)
    return finite.isEmpty ? .nan : finite.reduce(0, +) / Double(finite.count)
}

/// The mean of the defined values (nil when there are none).
func seedMean(_ values: [Double?]) -> Double? {
    let finite = values.compactMap { $0 }.filter(\.isFinite)
    return finite.isEmpty ? nil : finite.reduce(0, +) / Double(finite.count)
}

/// The rounded mean of counts.
func seedMean(_ values: [Int]) -> Int {
    values.isEmpty ? 0 : Int((Double(values.reduce(0, +)) / Double(values.count)).rounded())
}

extension ArmMetrics {
    /// One arm over every seed: numbers are means over seeds, ε the largest (the weakest
    /// guarantee); the lists of a round (which sites were sampled, accepted, absent) are the first
    /// seed's, as they are events, not quantities. Rounds are the first seed's; a seed that
    /// stopped earlier (a DP budget) leaves the later rounds' means to the seeds that ran them.
    public static func averaged(_ runs: [ArmMetrics]) -> ArmMetrics {
        guard var first = runs.first, runs.count > 1 else { return runs.first! }
        first.rounds = first.rounds.indices.map { r in
            RoundMetrics.averaged(runs.compactMap { r < $0.rounds.count ? $0.rounds[r] : nil })
        }
        first.final = Evaluation.averaged(runs.map(\.final))
        first.privacy.bytesUp = seedMean(runs.map(\.privacy.bytesUp))
        first.privacy.bytesDown = seedMean(runs.map(\.privacy.bytesDown))
        first.privacy.bytesUpPerUpdate = seedMean(runs.map(\.privacy.bytesUpPerUpdate))
        // A guarantee is the weakest one any seed had, not a mean.
        first.privacy.epsilon = runs.compactMap(\.privacy.epsilon).max()
        // Events, not quantities: secure rounds are counted over every seed.
        first.privacy.secureRounds = SecureAggregationTotals.summed(runs.compactMap(\.privacy.secureRounds))
        first.compute.stepsPerSiteRound = seedMean(runs.map(\.compute.stepsPerSiteRound))
        first.compute.trainingFlopsPerSiteRound = seedMean(runs.map(\.compute.trainingFlopsPerSiteRound))
        first.compute.simulatedSecondsPerSiteRound = seedMean(runs.map(\.compute.simulatedSecondsPerSiteRound))
        first.compute.optimizerStateBytes = seedMean(runs.map(\.compute.optimizerStateBytes))
        // Per-seed drift intervals do not combine; the all-seed intervals are in `comparisons`.
        first.biasDrift = first.biasDrift.map { drift in
            let same = runs.compactMap { run in run.biasDrift.first { $0.attribute == drift.attribute && $0.metric == drift.metric } }
            return BiasDrift(attribute: drift.attribute, metric: drift.metric, pretrained: seedMean(same.map(\.pretrained)),
                             final: seedMean(same.map(\.final)), low: nil, high: nil)
        }
        var attacks: [String: Double] = [:]
        for site in Set(runs.flatMap(\.membershipInference.keys)) {
            attacks[site] = seedMean(runs.compactMap { $0.membershipInference[site] })
        }
        first.membershipInference = attacks
        return first
    }
}

extension RoundMetrics {
    /// One round over seeds: the evaluation, traffic, loss, ε and drift averaged; the site lists the first seed's.
    static func averaged(_ rounds: [RoundMetrics]) -> RoundMetrics {
        guard var first = rounds.first, rounds.count > 1 else { return rounds.first! }
        first.evaluation = Evaluation.averaged(rounds.map(\.evaluation))
        first.bytesUp = seedMean(rounds.map(\.bytesUp))
        first.bytesDown = seedMean(rounds.map(\.bytesDown))
        first.meanLocalLoss = seedMean(rounds.map(\.meanLocalLoss))
        first.epsilon = seedMean(rounds.map(\.epsilon))
        let drifts = rounds.compactMap(\.parameterDrift)
        if !drifts.isEmpty {
            first.parameterDrift = ParameterDrift(l2: seedMean(drifts.map(\.l2)), relative: seedMean(drifts.map(\.relative)))
        }
        return first
    }
}

extension Evaluation {
    /// Every field's mean over seeds; a subgroup is too small if it was at any seed.
    public static func averaged(_ runs: [Evaluation]) -> Evaluation {
        guard let first = runs.first, runs.count > 1 else { return runs.first! }
        var perSite: [String: SiteEvaluation] = [:]
        for site in Set(runs.flatMap(\.perSite.keys)) {
            let same = runs.compactMap { $0.perSite[site] }
            perSite[site] = SiteEvaluation(
                accuracy: seedMean(same.map(\.accuracy)), balancedAccuracy: seedMean(same.map(\.balancedAccuracy)),
                majorityClassAccuracy: seedMean(same.map(\.majorityClassAccuracy)), auroc: seedMean(same.map(\.auroc)),
                auprc: seedMean(same.map(\.auprc)), brier: seedMean(same.map(\.brier)), testSize: seedMean(same.map(\.testSize)))
        }
        let subgroups = first.subgroups.map { audit in
            let same = runs.compactMap { run in run.subgroups.first { $0.attribute == audit.attribute } }
            var names = audit.groups.map(\.group)
            for group in same.flatMap(\.groups) where !names.contains(group.group) { names.append(group.group) }
            let groups = names.map { name in
                let rates = same.compactMap { $0.groups.first { $0.group == name } }
                return GroupRates(group: name, size: seedMean(rates.map(\.size)), positives: seedMean(rates.map(\.positives)),
                                  selectionRate: seedMean(rates.map(\.selectionRate)),
                                  truePositiveRate: seedMean(rates.map(\.truePositiveRate)),
                                  falsePositiveRate: seedMean(rates.map(\.falsePositiveRate)), auroc: seedMean(rates.map(\.auroc)),
                                  calibrationInTheLarge: seedMean(rates.map(\.calibrationInTheLarge)),
                                  tooSmall: rates.contains(where: \.tooSmall) || rates.count < same.count)
            }
            let gaps = FairnessGaps(demographicParity: seedMean(same.map(\.gaps.demographicParity)),
                                    equalOpportunity: seedMean(same.map(\.gaps.equalOpportunity)),
                                    equalizedOdds: seedMean(same.map(\.gaps.equalizedOdds)),
                                    aurocGap: seedMean(same.map(\.gaps.aurocGap)), calibrationGap: seedMean(same.map(\.gaps.calibrationGap)))
            return SubgroupAudit(attribute: audit.attribute, groups: groups, gaps: gaps)
        }
        var mean = Evaluation(accuracy: seedMean(runs.map(\.accuracy)), balancedAccuracy: seedMean(runs.map(\.balancedAccuracy)),
                              majorityClassAccuracy: seedMean(runs.map(\.majorityClassAccuracy)), auroc: seedMean(runs.map(\.auroc)),
                              auprc: seedMean(runs.map(\.auprc)), brier: seedMean(runs.map(\.brier)), ece: seedMean(runs.map(\.ece)),
                              worstSiteAccuracy: seedMean(runs.map(\.worstSiteAccuracy)), perSite: perSite, subgroups: subgroups)
        // Each seed's own mean over sites, averaged (equal to the mean over sites of the averaged sites).
        mean.meanSiteAccuracy = seedMean(runs.map(\.meanSiteAccuracy))
        return mean
    }
}
