import Foundation
import SiteFitCore

/// One subgroup's rates at the decision threshold: what the fairness gaps are computed from.
public struct GroupRates: Codable, Sendable, Equatable {
    public var group: String
    public var size: Int
    public var positives: Int
    /// P(ŷ = 1 | group).
    public var selectionRate: Double
    /// P(ŷ = 1 | y = 1, group); nil without positives.
    public var truePositiveRate: Double?
    /// P(ŷ = 1 | y = 0, group); nil without negatives.
    public var falsePositiveRate: Double?
    public var auroc: Double?
    /// Mean score − observed rate: > 0 means the model over-predicts risk for this group.
    public var calibrationInTheLarge: Double
    /// Smaller than the scenario's minimum group size: shown, never used in a gap.
    public var tooSmall: Bool

    public init(group: String, size: Int, positives: Int, selectionRate: Double, truePositiveRate: Double?, falsePositiveRate: Double?,
                auroc: Double?, calibrationInTheLarge: Double, tooSmall: Bool) {
        self.group = group
        self.size = size
        self.positives = positives
        self.selectionRate = selectionRate
        self.truePositiveRate = truePositiveRate
        self.falsePositiveRate = falsePositiveRate
        self.auroc = auroc
        self.calibrationInTheLarge = calibrationInTheLarge
        self.tooSmall = tooSmall
    }

    enum CodingKeys: String, CodingKey {
        case group, size, positives, auroc
        case selectionRate = "selection_rate", truePositiveRate = "true_positive_rate"
        case falsePositiveRate = "false_positive_rate", calibrationInTheLarge = "calibration_in_the_large"
        case tooSmall = "too_small"
    }
}

/// The gaps between the best- and worst-treated eligible groups of one attribute (max − min over
/// groups); nil when fewer than two groups are large enough and define the rate.
public struct FairnessGaps: Codable, Sendable, Equatable {
    /// Demographic parity difference: spread of selection rates.
    public var demographicParity: Double?
    /// Equal-opportunity difference: spread of true-positive rates.
    public var equalOpportunity: Double?
    /// Equalised-odds difference: the larger of the TPR and FPR spreads.
    public var equalizedOdds: Double?
    /// Spread of within-group AUROC.
    public var aurocGap: Double?
    /// Spread of calibration in the large.
    public var calibrationGap: Double?

    public init(demographicParity: Double? = nil, equalOpportunity: Double? = nil, equalizedOdds: Double? = nil,
                aurocGap: Double? = nil, calibrationGap: Double? = nil) {
        self.demographicParity = demographicParity
        self.equalOpportunity = equalOpportunity
        self.equalizedOdds = equalizedOdds
        self.aurocGap = aurocGap
        self.calibrationGap = calibrationGap
    }

    /// The gap metrics by their `metrics.json` names, in report order.
    public static let names = ["demographic_parity", "equal_opportunity", "equalized_odds", "auroc_gap", "calibration_gap"]

    public subscript(name: String) -> Double? {
        switch name {
        case "demographic_parity": demographicParity
        case "equal_opportunity": equalOpportunity
        case "equalized_odds": equalizedOdds
        case "auroc_gap": aurocGap
        case "calibration_gap": calibrationGap
        default: nil
        }
    }

    enum CodingKeys: String, CodingKey {
        case demographicParity = "demographic_parity", equalOpportunity = "equal_opportunity"
        case equalizedOdds = "equalized_odds", aurocGap = "auroc_gap", calibrationGap = "calibration_gap"
    }
}

/// Subgroup audit: per-group rates and the gaps between groups, as pure functions.
public enum Fairness {
    /// Rates of every group (sorted by name) of one attribute.
    public static func groupRates(scores: [Float], labels: [Float], groups: [String], minimumSize: Int,
                                  threshold: Float = 0.5) -> [GroupRates] {
        precondition(scores.count == labels.count && scores.count == groups.count)
        let (names, codes) = encode(groups)
        return groupRates(scores: scores, labels: labels, codes: codes, names: names, minimumSize: minimumSize, threshold: threshold)
    }

    /// Group names sorted, and each row's index into them.
    static func encode(_ groups: [String]) -> (names: [String], codes: [Int]) {
        let names = Set(groups).sorted()
        let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        return (names, groups.map { index[$0]! })
    }

    /// The rates from integer group codes in one pass over the rows plus one sort: the bootstrap
    /// calls this thousands of times, so it avoids string hashing and a sort per group.
    static func groupRates(scores: [Float], labels: [Float], codes: [Int], names: [String], minimumSize: Int,
                           threshold: Float) -> [GroupRates] {
        let g = names.count
        var size = [Int](repeating: 0, count: g), positives = size, selected = size, tp = size, fp = size
        var scoreSum = [Double](repeating: 0, count: g)
        for i in scores.indices {
            let c = codes[i], positive = labels[i] >= 0.5, decision = scores[i] >= threshold
            size[c] += 1
            scoreSum[c] += Double(scores[i])
            if decision { selected[c] += 1 }
            if positive { positives[c] += 1; if decision { tp[c] += 1 } } else if decision { fp[c] += 1 }
        }
        // Within-group Mann–Whitney from one ascending sort: in each block of tied scores, a
        // group's positives beat the group's negatives seen before the block and tie with the
        // block's own negatives (½ each).
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var u = [Double](repeating: 0, count: g), negativesSeen = [Int](repeating: 0, count: g)
        var blockPositives = [Int](repeating: 0, count: g), blockNegatives = blockPositives
        var touched: [Int] = []
        touched.reserveCapacity(g)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            for k in i...j {
                let row = order[k], c = codes[row]
                if blockPositives[c] == 0 && blockNegatives[c] == 0 { touched.append(c) }
                if labels[row] >= 0.5 { blockPositives[c] += 1 } else { blockNegatives[c] += 1 }
            }
            for c in touched {
                u[c] += Double(blockPositives[c]) * (Double(negativesSeen[c]) + 0.5 * Double(blockNegatives[c]))
                negativesSeen[c] += blockNegatives[c]
                blockPositives[c] = 0
                blockNegatives[c] = 0
            }
            touched.removeAll(keepingCapacity: true)
            i = j + 1
        }
        return Fairness.rates(names: names, size: size, positives: positives, selected: selected, truePositives: tp,
                              falsePositives: fp, scoreSum: scoreSum, mannWhitney: u, minimumSize: minimumSize)
    }

    /// Each non-empty group's rates from its counts and Mann–Whitney sum U.
    static func rates(names: [String], size: [Int], positives: [Int], selected: [Int], truePositives tp: [Int], falsePositives fp: [Int],
                      scoreSum: [Double], mannWhitney u: [Double], minimumSize: Int) -> [GroupRates] {
        names.indices.compactMap { c in
            guard size[c] > 0 else { return nil }
            let negatives = size[c] - positives[c]
            return GroupRates(group: names[c], size: size[c], positives: positives[c],
                              selectionRate: Double(selected[c]) / Double(size[c]),
                              truePositiveRate: positives[c] > 0 ? Double(tp[c]) / Double(positives[c]) : nil,
                              falsePositiveRate: negatives > 0 ? Double(fp[c]) / Double(negatives) : nil,
                              auroc: positives[c] > 0 && negatives > 0 ? u[c] / (Double(positives[c]) * Double(negatives)) : nil,
                              calibrationInTheLarge: scoreSum[c] / Double(size[c]) - Double(positives[c]) / Double(size[c]),
                              tooSmall: size[c] < minimumSize)
        }
    }

    /// max − min of the groups' defined values; nil below two.
    static func spread(_ values: [Double?]) -> Double? {
        let defined = values.compactMap { $0 }
        guard defined.count >= 2, let low = defined.min(), let high = defined.max() else { return nil }
        return high - low
    }

    /// Fewest patients of a class a class-conditional rate (TPR, FPR, AUROC) needs to enter a gap:
    /// a group of 100 with one positive has a TPR of 0 or 1 by chance alone.
    public static let defaultClassMinimum = 10

    /// The gaps over the groups that are not too small; TPR, FPR and AUROC also need
    /// `classMinimum` patients of the class they condition on.
    public static func gaps(_ rates: [GroupRates], classMinimum: Int = defaultClassMinimum) -> FairnessGaps {
        let eligible = rates.filter { !$0.tooSmall }
        let withPositives = eligible.filter { $0.positives >= classMinimum }
        let withNegatives = eligible.filter { $0.size - $0.positives >= classMinimum }
        let withBoth = withPositives.filter { $0.size - $0.positives >= classMinimum }
        let tpr = spread(withPositives.map(\.truePositiveRate)), fpr = spread(withNegatives.map(\.falsePositiveRate))
        let odds: Double? = switch (tpr, fpr) {
        case let (t?, f?): max(t, f)
        case let (t?, nil): t
        case let (nil, f?): f
        case (nil, nil): nil
        }
        return FairnessGaps(demographicParity: spread(eligible.map(\.selectionRate)), equalOpportunity: tpr,
                            equalizedOdds: odds, aurocGap: spread(withBoth.map(\.auroc)),
                            calibrationGap: spread(eligible.map(\.calibrationInTheLarge)))
    }

    /// A percentile bootstrap interval for the change of every gap between two models scored on
    /// the same patients (`before`, `after`): each replicate resamples patients with replacement
    /// and recomputes both gaps on that one resample, so the interval reflects which patients
    /// happened to be tested, not only the models. Group sizes are checked per replicate.
    /// Returns the 2.5th and 97.5th percentiles per gap name; a gap undefined in most replicates
    /// is left out.
    public static func bootstrapDrift(before: [Float], after: [Float], labels: [Float], groups: [String], minimumSize: Int,
                                      classMinimum: Int = defaultClassMinimum, replicates: Int, random: inout RandomStream) -> [String: (low: Double, high: Double)] {
        precondition(before.count == after.count)
        return BootstrapReference(before: before, labels: labels, groups: groups, minimumSize: minimumSize, classMinimum: classMinimum,
                                  replicates: replicates, random: &random).drift(after: after)
    }

    /// Linear interpolation between order statistics (numpy's default "linear" method).
    public static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        precondition(!sorted.isEmpty)
        let position = q * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down)), upper = min(lower + 1, sorted.count - 1)
        return sorted[lower] + (position - Double(lower)) * (sorted[upper] - sorted[lower])
    }

    /// Age band of an age in years, as the report groups patients (`AgeBands`).
    public static func ageBand(_ years: Float) -> String { AgeBands.label(Double(years)) }
}

/// Loss-threshold membership inference (Yeom et al., arXiv:1709.01604): an attacker who sees a
/// patient's loss under the final model guesses "was in training" when the loss is low. Its AUC
/// over a site's train (members) and held-out (non-members) patients measures how much the model
/// memorised: 0.5 is nothing learned about membership.
public enum MembershipInference {
    /// Binary cross-entropy of one prediction, with the score clamped away from 0 and 1.
    public static func loss(score: Float, label: Float) -> Double {
        let p = min(max(Double(score), 1e-7), 1 - 1e-7)
        return label >= 0.5 ? -log(p) : -log(1 - p)
    }

    /// AUC of the attack: P(loss of a non-member > loss of a member), ties one half.
    public static func auc(memberLosses: [Double], nonMemberLosses: [Double]) -> Double? {
        // Score = −loss, positive = member: the tie-aware Mann–Whitney AUROC, in Double so that
        // nearly equal losses are not merged into ties.
        Metrics.mannWhitney(scores: (memberLosses + nonMemberLosses).map { -$0 },
                            positive: [Bool](repeating: true, count: memberLosses.count)
                                + [Bool](repeating: false, count: nonMemberLosses.count))
    }
}

/// The resamples of one bootstrap and the reference model's gaps on each. Built once per run and
/// attribute, it judges every compared model on the same resamples: the intervals are paired
/// across arms, and the reference's side of each replicate is computed once, not once per arm.
public struct BootstrapReference: Sendable {
    public let before: [Float]
    let names: [String]
    let codes: [Int]
    let labels: [Float]
    let count: Int
    let replicates: Int
    /// Replicate r's multiplicity of row i at r·count + i.
    let weights: [Int32]
    let beforeGaps: [FairnessGaps]
    let minimumSize: Int
    let classMinimum: Int

    /// Draws `replicates` resamples of the rows (n draws with replacement each, from `random`)
    /// and the gaps of `before` on each. A resample is a multiplicity per patient, so a replicate
    /// is one weighted pass over rows sorted once instead of copying and re-sorting n rows.
    public init(before: [Float], labels: [Float], groups: [String], minimumSize: Int,
                classMinimum: Int = Fairness.defaultClassMinimum, replicates: Int, random: inout RandomStream) {
        precondition(before.count == labels.count && labels.count == groups.count)
        self.before = before
        self.labels = labels
        self.minimumSize = minimumSize
        self.classMinimum = classMinimum
        (names, codes) = Fairness.encode(groups)
        count = labels.count
        let replicateCount = count > 0 ? max(replicates, 0) : 0
        self.replicates = replicateCount
        var weights = [Int32](repeating: 0, count: replicateCount * count)
        for r in 0..<replicateCount {
            for _ in 0..<count { weights[r * count + random.int(below: count)] += 1 }
        }
        self.weights = weights
        let audit = WeightedAudit(scores: before, labels: labels, codes: codes, groups: names.count)
        let (names, minimumSize, classMinimum, count) = (names, minimumSize, classMinimum, count)
        beforeGaps = weights.withUnsafeBufferPointer { all in
            (0..<replicateCount).map { r in
                Fairness.gaps(audit.rates(weights: UnsafeBufferPointer(rebasing: all[(r * count)..<((r + 1) * count)]),
                                          names: names, minimumSize: minimumSize), classMinimum: classMinimum)
            }
        }
    }

    /// The 2.5th and 97.5th percentiles of (gap under `after` − gap under `before`) over the
    /// resamples, per gap name; a gap undefined in most replicates is left out.
    public func drift(after: [Float]) -> [String: (low: Double, high: Double)] {
        precondition(after.count == count)
        guard replicates > 0 else { return [:] }
        let audit = WeightedAudit(scores: after, labels: labels, codes: codes, groups: names.count)
        var samples: [String: [Double]] = [:]
        weights.withUnsafeBufferPointer { all in
            for r in 0..<replicates {
                let gapsAfter = Fairness.gaps(audit.rates(weights: UnsafeBufferPointer(rebasing: all[(r * count)..<((r + 1) * count)]),
                                                          names: names, minimumSize: minimumSize), classMinimum: classMinimum)
                for name in FairnessGaps.names {
                    if let x = beforeGaps[r][name], let z = gapsAfter[name] { samples[name, default: []].append(z - x) }
                }
            }
        }
        var intervals: [String: (low: Double, high: Double)] = [:]
        for (name, values) in samples where values.count * 2 > replicates {
            let sorted = values.sorted()
            intervals[name] = (Fairness.percentile(sorted, 0.025), Fairness.percentile(sorted, 0.975))
        }
        return intervals
    }
}

/// One model's scores prepared for weighted (bootstrap) group rates: rows sorted by score once,
/// with each sorted row's group, score, label and decision laid out contiguously, and the ends of
/// the blocks of tied scores.
struct WeightedAudit {
    let groups: Int
    /// Row index of each sorted position (weights are drawn per row).
    let order: [Int]
    let sortedCodes: [Int]
    let sortedScores: [Double]
    let sortedPositive: [Bool]
    let sortedDecision: [Bool]
    /// Exclusive end, in sorted positions, of each block of equal scores.
    let blockEnds: [Int]

    init(scores: [Float], labels: [Float], codes: [Int], groups: Int, threshold: Float = 0.5) {
        self.groups = groups
        order = scores.indices.sorted { scores[$0] < scores[$1] }
        sortedCodes = order.map { codes[$0] }
        sortedScores = order.map { Double(scores[$0]) }
        sortedPositive = order.map { labels[$0] >= 0.5 }
        sortedDecision = order.map { scores[$0] >= threshold }
        var ends: [Int] = []
        for k in order.indices where k + 1 == order.count || scores[order[k + 1]] != scores[order[k]] { ends.append(k + 1) }
        blockEnds = ends
    }

    /// `Fairness.groupRates` of the resample in which row i appears `weights[i]` times.
    func rates(weights: UnsafeBufferPointer<Int32>, names: [String], minimumSize: Int) -> [GroupRates] {
        let g = groups
        // One flat buffer of counters per kind: size, positives, selected, tp, fp, negatives seen,
        // block positives, block negatives (ints); score sums and U (doubles).
        var counts = [Int](repeating: 0, count: 8 * g)
        var sums = [Double](repeating: 0, count: 2 * g)
        // Unchecked buffers: this runs once per bootstrap replicate and model, over every patient.
        counts.withUnsafeMutableBufferPointer { n in
        sums.withUnsafeMutableBufferPointer { d in
        order.withUnsafeBufferPointer { order in
        sortedCodes.withUnsafeBufferPointer { codes in
        sortedScores.withUnsafeBufferPointer { scores in
        sortedPositive.withUnsafeBufferPointer { positive in
        sortedDecision.withUnsafeBufferPointer { decision in
            let size = 0, positives = g, selected = 2 * g, tp = 3 * g, fp = 4 * g, seen = 5 * g, blockPos = 6 * g, blockNeg = 7 * g
            let scoreSum = 0, u = g
            /// Counts row k (weight w, group c) in every counter that does not depend on ties.
            @inline(__always) func count(_ k: Int, _ w: Int, _ c: Int) {
                n[size + c] += w
                d[scoreSum + c] += Double(w) * scores[k]
                if decision[k] { n[selected + c] += w }
                if positive[k] {
                    n[positives + c] += w
                    if decision[k] { n[tp + c] += w }
                } else if decision[k] {
                    n[fp + c] += w
                }
            }
            var start = 0
            for end in blockEnds {
                if end == start + 1 {
                    // A score no other patient shares (nearly every block): the general path's
                    // per-group pass below reduces to these updates, with the same arithmetic.
                    let k = start
                    start = end
                    let w = Int(weights[order[k]])
                    guard w > 0 else { continue }
                    let c = codes[k]
                    count(k, w, c)
                    if positive[k] { d[u + c] += Double(w) * Double(n[seen + c]) } else { n[seen + c] += w }
                    continue
                }
                var touched = false
                for k in start..<end {
                    let w = Int(weights[order[k]])
                    guard w > 0 else { continue }
                    touched = true
                    let c = codes[k]
                    count(k, w, c)
                    if positive[k] { n[blockPos + c] += w } else { n[blockNeg + c] += w }
                }
                start = end
                guard touched else { continue }
                for c in 0..<g where n[blockPos + c] > 0 || n[blockNeg + c] > 0 {
                    d[u + c] += Double(n[blockPos + c]) * (Double(n[seen + c]) + 0.5 * Double(n[blockNeg + c]))
                    n[seen + c] += n[blockNeg + c]
                    n[blockPos + c] = 0
                    n[blockNeg + c] = 0
                }
            }
        } } } } } } }
        return Fairness.rates(names: names, size: Array(counts[0..<g]), positives: Array(counts[g..<(2 * g)]),
                              selected: Array(counts[(2 * g)..<(3 * g)]), truePositives: Array(counts[(3 * g)..<(4 * g)]),
                              falsePositives: Array(counts[(4 * g)..<(5 * g)]), scoreSum: Array(sums[0..<g]),
                              mannWhitney: Array(sums[g..<(2 * g)]), minimumSize: minimumSize)
    }
}
