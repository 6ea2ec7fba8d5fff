import SiteFitMetrics

/// A lesson a scenario claims (`expect:`), checked by every run across all its seeds.
///
/// A comparison claim holds only when the paired bootstrap interval of `arm − than` (see
/// `PairedBootstrap`) lies on the claimed side; a footprint claim compares the arms' footprints
/// (means over seeds).
public struct Expectation: Sendable, Equatable {
    /// What the claim says about `arm`.
    public enum Relation: Sendable, Equatable {
        /// The interval of the difference excludes 0 on the side where `arm` is better.
        case better(than: String)
        /// The interval excludes 0 on the side where `arm` is worse.
        case worse(than: String)
        /// Non-inferiority: the whole interval is less than `margin` on the bad side.
        case notWorse(than: String, margin: Double)
        /// The interval of `arm`'s metric itself lies above `value` (a level, e.g. a calibration error).
        case above(Double)
        /// The interval of `arm`'s metric lies below `value`.
        case below(Double)
        /// `arm`'s footprint is at most `fraction` × that of `of`.
        case atMost(fraction: Double, of: String, quantity: Quantity)
        /// The reconstruction experiment: at (`batchSize`, `localSteps`) the chosen attack recovers
        /// more from `arm`'s updates than from `than`'s at (`thanBatchSize`, `thanLocalSteps`): the
        /// interval of the paired difference in `measure` excludes 0 on the leaking side.
        case leaksMore(than: String, measure: LeakageMeasure, batchSize: Int, localSteps: Int, thanBatchSize: Int, thanLocalSteps: Int)
    }

    /// A footprint a claim can bound.
    public enum Quantity: String, Sendable, Equatable, CaseIterable {
        /// Bytes the sites sent up over the run.
        case bytesUp = "bytes_up"
        /// Local training FLOPs per site and round.
        case trainingFlops = "training_flops"
        /// Parameters an update exposes.
        case parametersExposed = "parameters_exposed"
    }

    public var arm: String
    public var relation: Relation
    /// The compared metric (comparison claims only).
    public var metric: ComparisonMetric?
    /// Site ids whose test patients the comparison uses; empty means every site.
    public var sites: [String]

    public init(arm: String, relation: Relation, metric: ComparisonMetric? = nil, sites: [String] = []) {
        self.arm = arm
        self.relation = relation
        self.metric = metric
        self.sites = sites
    }

    /// The arm or baseline row the claim compares `arm` with.
    public var other: String {
        switch relation {
        case .better(let than), .worse(let than), .notWorse(let than, _): than
        case .above, .below: ""
        case .atMost(_, let of, _): of
        case .leaksMore(let than, _, _, _, _, _): than
        }
    }

    /// Whether a comparison or level claim holds on its paired difference (`arm − other`, or the
    /// arm's own metric for a level claim): the interval must lie wholly on the claimed side. An
    /// undefined interval never holds.
    public func holds(_ d: PairedDifference) -> Bool {
        guard d.low.isFinite, d.high.isFinite else { return false }
        return switch relation {
        case .better: d.armIsBetter
        case .worse: d.armIsWorse
        case .notWorse(_, let margin): d.armIsNotWorse(margin: margin)
        case .above(let value): d.low > value
        case .below(let value): d.high < value
        case .atMost, .leaksMore: false
        }
    }

    /// Whether a leakage claim holds on its paired difference (`arm − other`) over attacked updates.
    public func holds(leakage d: MeanInterval) -> Bool {
        guard case .leaksMore(_, let measure, _, _, _, _) = relation, d.low.isFinite, d.high.isFinite else { return false }
        return measure.higherLeaksMore ? d.low > PairedDifference.negligible : d.high < -PairedDifference.negligible
    }

    /// Whether a footprint claim holds: the arm's value is at most `fraction` × the other's.
    public func holds(armValue: Double, otherValue: Double) -> Bool {
        guard case .atMost(let fraction, _, _) = relation, armValue.isFinite, otherValue.isFinite else { return false }
        return armValue <= fraction * otherValue
    }

    /// The claim in words, as the report prints it.
    public var statement: String {
        let at = sites.isEmpty ? "" : " at \(sites.joined(separator: ", "))"
        let metricName = metric.map(Expectation.metricWords) ?? ""
        switch relation {
        case .better(let than): return "\(arm) is better than \(than) in \(metricName)\(at)"
        case .worse(let than): return "\(arm) is worse than \(than) in \(metricName)\(at)"
        case .notWorse(let than, let margin):
            return "\(arm) is not worse than \(than) by \(formatted(margin)) or more in \(metricName)\(at)"
        case .above(let value): return "\(arm)'s \(metricName)\(at) is above \(formatted(value))"
        case .below(let value): return "\(arm)'s \(metricName)\(at) is below \(formatted(value))"
        case .atMost(let fraction, let of, let quantity):
            return "\(arm) uses at most \(formatted(fraction)) × the \(quantity.rawValue.replacingOccurrences(of: "_", with: " ")) of \(of)"
        case .leaksMore(let than, let measure, let b, let s, let thanB, let thanS):
            func setting(_ b: Int, _ s: Int) -> String { "batch \(b), \(s) local step\(s == 1 ? "" : "s")" }
            let direction = measure.higherLeaksMore ? "higher" : "lower"
            if than == arm {
                return "\(arm)'s updates reveal more at \(setting(b, s)) than at \(setting(thanB, thanS)) (\(direction) \(measure.words))"
            }
            let at = (b, s) == (thanB, thanS) ? "at \(setting(b, s))" : "at \(setting(b, s)) (\(than) at \(setting(thanB, thanS)))"
            return "\(arm)'s updates reveal more than \(than)'s \(at) (\(direction) \(measure.words))"
        }
    }

    /// A metric's name in prose ("AUROC", "equal-opportunity gap by sex").
    public static func metricWords(_ metric: ComparisonMetric) -> String { metric.words }

    private func formatted(_ x: Double) -> String {
        var text = String(x)
        if text.hasSuffix(".0") { text.removeLast(2) }
        return text
    }
}
