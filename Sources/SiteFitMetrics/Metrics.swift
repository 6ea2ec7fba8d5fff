/// Classification metrics as pure functions of scores and 0/1 labels.
///
/// Scores are probabilities; the decision is ŷ = 1[s ≥ threshold]. Every function is tested against
/// hand-computed values in SiteFitMetricsTests.
public enum Metrics {
    /// Share of correct decisions at `threshold`.
    public static func accuracy(scores: [Float], labels: [Float], threshold: Float = 0.5) -> Double {
        precondition(scores.count == labels.count)
        guard !scores.isEmpty else { return .nan }
        var correct = 0
        for (s, y) in zip(scores, labels) where (s >= threshold) == (y >= 0.5) { correct += 1 }
        return Double(correct) / Double(scores.count)
    }

    /// Mean of sensitivity and specificity at `threshold`; `nil` for a single-class set.
    /// Unlike accuracy it is 0.5 for a model that always predicts the majority class.
    public static func balancedAccuracy(scores: [Float], labels: [Float], threshold: Float = 0.5) -> Double? {
        precondition(scores.count == labels.count)
        var tp = 0, fn = 0, tn = 0, fp = 0
        for (s, y) in zip(scores, labels) {
            switch (y >= 0.5, s >= threshold) {
            case (true, true): tp += 1
            case (true, false): fn += 1
            case (false, false): tn += 1
            case (false, true): fp += 1
            }
        }
        guard tp + fn > 0, tn + fp > 0 else { return nil }
        return (Double(tp) / Double(tp + fn) + Double(tn) / Double(tn + fp)) / 2
    }

    /// Accuracy of always predicting the more common class: the floor any useful model must beat.
    public static func majorityClassAccuracy(_ labels: [Float]) -> Double {
        let p = prevalence(labels)
        return max(p, 1 - p)
    }

    /// Area under the ROC curve by the Mann–Whitney statistic; tied scores count one half.
    /// `nil` when the labels hold a single class (AUROC is undefined there, not 0.5).
    public static func auroc(scores: [Float], labels: [Float]) -> Double? {
        precondition(scores.count == labels.count)
        return mannWhitney(scores: scores.map { Double($0) }, positive: labels.map { $0 >= 0.5 })
    }

    /// The Mann–Whitney estimate of P(score of a positive > score of a negative), ties one half;
    /// nil unless both classes occur.
    public static func mannWhitney(scores: [Double], positive: [Bool]) -> Double? {
        precondition(scores.count == positive.count)
        let positives = positive.filter { $0 }.count
        let negatives = positive.count - positives
        guard positives > 0, negatives > 0 else { return nil }
        // Average ranks over ties (1-based), then U = R₊ − n₊(n₊+1)/2.
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSumPositive = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let averageRank = Double(i + j + 2) / 2
            for k in i...j where positive[order[k]] { rankSumPositive += averageRank }
            i = j + 1
        }
        let u = rankSumPositive - Double(positives) * Double(positives + 1) / 2
        return u / (Double(positives) * Double(negatives))
    }

    /// Mean squared error of the probabilities, (1/n) Σ (s − y)².
    public static func brier(scores: [Float], labels: [Float]) -> Double {
        guard !scores.isEmpty else { return .nan }
        var total = 0.0
        for (s, y) in zip(scores, labels) { total += Double(s - y) * Double(s - y) }
        return total / Double(scores.count)
    }

    /// Share of positive labels.
    public static func prevalence(_ labels: [Float]) -> Double {
        guard !labels.isEmpty else { return .nan }
        return Double(labels.filter { $0 >= 0.5 }.count) / Double(labels.count)
    }

    /// Area under the precision–recall curve as average precision, AP = Σ_k (R_k − R_{k−1})·P_k over
    /// the distinct score thresholds from high to low (tied scores form one threshold, as in
    /// scikit-learn's `average_precision_score`). `nil` without positives. Unlike AUROC its
    /// no-skill level is the prevalence, which is why rare outcomes need it beside AUROC.
    public static func auprc(scores: [Float], labels: [Float]) -> Double? {
        precondition(scores.count == labels.count)
        let positives = labels.filter { $0 >= 0.5 }.count
        guard positives > 0 else { return nil }
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var truePositives = 0, seen = 0
        var previousRecall = 0.0, area = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            for k in i...j where labels[order[k]] >= 0.5 { truePositives += 1 }
            seen += j - i + 1
            let recall = Double(truePositives) / Double(positives)
            area += (recall - previousRecall) * Double(truePositives) / Double(seen)
            previousRecall = recall
            i = j + 1
        }
        return area
    }

    /// Expected calibration error over `bins` equal-width score bins: Σ_b (n_b/N)·|mean score_b − positive rate_b|.
    /// A score of exactly 1 falls in the last bin. NaN for an empty set.
    public static func expectedCalibrationError(scores: [Float], labels: [Float], bins: Int = 10) -> Double {
        precondition(scores.count == labels.count && bins > 0)
        // A non-finite score (a model that overflowed) has no bin: the error is undefined, not a crash.
        guard !scores.isEmpty, scores.allSatisfy(\.isFinite) else { return .nan }
        var count = [Int](repeating: 0, count: bins)
        var scoreSum = [Double](repeating: 0, count: bins), positiveSum = [Double](repeating: 0, count: bins)
        for (s, y) in zip(scores, labels) {
            let b = min(max(Int(Double(s) * Double(bins)), 0), bins - 1)
            count[b] += 1
            scoreSum[b] += Double(s)
            positiveSum[b] += y >= 0.5 ? 1 : 0
        }
        var total = 0.0
        for b in 0..<bins where count[b] > 0 { total += abs(scoreSum[b] - positiveSum[b]) }
        return total / Double(scores.count)
    }

    /// Mean score minus observed positive rate ("calibration in the large"): > 0 over-predicts risk.
    public static func calibrationInTheLarge(scores: [Float], labels: [Float]) -> Double {
        guard !scores.isEmpty else { return .nan }
        return scores.reduce(0.0) { $0 + Double($1) } / Double(scores.count) - prevalence(labels)
    }
}
