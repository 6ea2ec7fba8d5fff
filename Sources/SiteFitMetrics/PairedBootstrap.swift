import Foundation
import SiteFitCore

// Paired comparisons of two models scored on the same test patients: the difference in a metric
// with a bootstrap interval that covers both which patients happened to be tested and (over
// several seeds) how training randomness moves the result.

/// A metric two models are compared on, by its `metrics.json` name.
public enum ComparisonMetric: Hashable, Sendable, Codable, CustomStringConvertible {
    case auroc
    case balancedAccuracy
    case accuracy
    case brier
    /// |mean predicted risk − observed event rate|: how far the model's average risk is off.
    case calibrationInTheLarge
    case worstSiteAccuracy
    /// A fairness gap (max − min over the attribute's eligible groups), as `FairnessGaps` defines it.
    case gap(GapKind, attribute: String)
    /// One group's true-positive rate (sensitivity).
    case truePositiveRate(attribute: String, group: String)

    /// The gaps of `FairnessGaps`, by their `metrics.json` names.
    public enum GapKind: String, Sendable, Hashable, CaseIterable {
        case demographicParity = "demographic_parity"
        case equalOpportunity = "equal_opportunity"
        case equalizedOdds = "equalized_odds"
        case auroc = "auroc_gap"
        case calibration = "calibration_gap"
    }

    /// Spread of true-positive rates between the groups of one attribute.
    public static func equalOpportunityGap(attribute: String) -> ComparisonMetric { .gap(.equalOpportunity, attribute: attribute) }

    /// Every gap of every attribute, in `FairnessGaps.names` order per attribute.
    public static func gaps(attributes: [String]) -> [ComparisonMetric] {
        attributes.flatMap { attribute in GapKind.allCases.map { ComparisonMetric.gap($0, attribute: attribute) } }
    }

    /// The metrics every report compares arms on.
    public static let standard: [ComparisonMetric] = [.auroc, .balancedAccuracy, .brier, .calibrationInTheLarge, .worstSiteAccuracy]

    /// "auroc", "balanced_accuracy", …, "equal_opportunity_gap:sex".
    public var name: String {
        switch self {
        case .auroc: "auroc"
        case .balancedAccuracy: "balanced_accuracy"
        case .accuracy: "accuracy"
        case .brier: "brier"
        case .calibrationInTheLarge: "calibration_in_the_large"
        case .worstSiteAccuracy: "worst_site_accuracy"
        case .gap(let kind, let attribute):
            (kind.rawValue.hasSuffix("_gap") ? kind.rawValue : kind.rawValue + "_gap") + ":\(attribute)"
        case .truePositiveRate(let attribute, let group): "true_positive_rate:\(attribute)=\(group)"
        }
    }

    public var description: String { name }

    /// The metric in prose ("AUROC", "equal-opportunity gap by sex", "TPR of female patients").
    public var words: String {
        func plain(_ text: String) -> String { text.replacingOccurrences(of: "_", with: " ") }
        switch self {
        case .auroc: return "AUROC"
        case .balancedAccuracy: return "balanced accuracy"
        case .accuracy: return "accuracy"
        case .brier: return "Brier score"
        case .calibrationInTheLarge: return "calibration error in the large"
        case .worstSiteAccuracy: return "worst-site accuracy"
        case .gap(let kind, let attribute):
            let gap = switch kind {
            case .demographicParity: "demographic-parity gap"
            case .equalOpportunity: "equal-opportunity gap"
            case .equalizedOdds: "equalised-odds gap"
            case .auroc: "AUROC gap"
            case .calibration: "calibration gap"
            }
            return "\(gap) by \(plain(attribute))"
        case .truePositiveRate(let attribute, let group): return "TPR of \(plain(attribute)) \(group)"
        }
    }

    /// The metric a name stands for; nil for a name SiteFit does not compare on.
    public init?(name: String) {
        if let colon = name.firstIndex(of: ":") {
            let head = String(name[..<colon]), tail = String(name[name.index(after: colon)...])
            guard !tail.isEmpty else { return nil }
            if head == "true_positive_rate" {
                let parts = tail.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
                self = .truePositiveRate(attribute: parts[0], group: parts[1])
                return
            }
            guard let kind = GapKind.allCases.first(where: { ComparisonMetric.gap($0, attribute: tail).name == name }) else { return nil }
            self = .gap(kind, attribute: tail)
            return
        }
        let simple: [ComparisonMetric] = [.auroc, .balancedAccuracy, .accuracy, .brier, .calibrationInTheLarge, .worstSiteAccuracy]
        guard let metric = simple.first(where: { $0.name == name }) else { return nil }
        self = metric
    }

    /// Every name `init(name:)` accepts, for error messages (the gap with its attribute placeholder).
    public static let names = ["auroc", "balanced_accuracy", "accuracy", "brier", "calibration_in_the_large",
                               "worst_site_accuracy", "demographic_parity_gap:<attribute>", "equal_opportunity_gap:<attribute>",
                               "equalized_odds_gap:<attribute>", "auroc_gap:<attribute>", "calibration_gap:<attribute>",
                               "true_positive_rate:<attribute>=<group>"]

    /// The patient attribute a gap or group rate is about (nil for whole-population metrics).
    public var attribute: String? {
        switch self {
        case .gap(_, let attribute), .truePositiveRate(let attribute, _): attribute
        default: nil
        }
    }

    /// Whether a larger value is the better model (Brier, calibration error and gaps: smaller is better).
    public var higherIsBetter: Bool {
        switch self {
        case .auroc, .balancedAccuracy, .accuracy, .worstSiteAccuracy, .truePositiveRate: true
        case .brier, .calibrationInTheLarge, .gap: false
        }
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let metric = ComparisonMetric(name: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown metric '\(text)'"))
        }
        self = metric
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(name)
    }
}

/// One seed's held-out patients, scored by every model to be compared.
public struct ScoredTestSet: Sendable, Equatable {
    /// 0/1 outcome per patient.
    public var labels: [Float]
    /// Each patient's site (0-based); resampling stays within site, so every replicate keeps each site's size.
    public var sites: [Int]
    /// Per audited attribute, each patient's group.
    public var groups: [String: [String]]
    /// Model name → score per patient, in the order of `labels`.
    public var scores: [String: [Float]]

    public init(labels: [Float], sites: [Int], groups: [String: [String]] = [:], scores: [String: [Float]] = [:]) {
        self.labels = labels
        self.sites = sites
        self.groups = groups
        self.scores = scores
    }

    /// The same patients' rows at the sites in `keep` only.
    public func restricted(toSites keep: Set<Int>) -> ScoredTestSet {
        let rows = sites.indices.filter { keep.contains(sites[$0]) }
        return ScoredTestSet(labels: rows.map { labels[$0] }, sites: rows.map { sites[$0] },
                             groups: groups.mapValues { values in rows.map { values[$0] } },
                             scores: scores.mapValues { values in rows.map { values[$0] } })
    }
}

/// The difference `arm − against` in one metric, over every seed, with its interval.
public struct PairedDifference: Codable, Sendable, Equatable {
    public var arm: String
    public var against: String
    public var metric: ComparisonMetric
    /// Mean over seeds of each seed's difference on all its test patients.
    public var estimate: Double
    /// Each seed's difference, in seed order (NaN where the metric is undefined).
    public var perSeed: [Double]
    /// The 95 % percentile interval (2.5th and 97.5th percentiles of the replicates).
    public var low: Double
    public var high: Double
    /// Bootstrap replicates drawn, and how many of them defined the metric for both models.
    public var replicates: Int
    public var usableReplicates: Int
    /// Estimated Monte Carlo standard error of the less precise interval bound.
    public var monteCarloError: Double

    /// The interval excludes 0.
    public var isClear: Bool { low > 0 || high < 0 }

    /// Equal field by field, an undefined (NaN) number equal to another undefined one: a
    /// difference read back from metrics.json equals the one written.
    public static func == (a: PairedDifference, b: PairedDifference) -> Bool {
        func same(_ x: Double, _ y: Double) -> Bool { x == y || (x.isNaN && y.isNaN) }
        return a.arm == b.arm && a.against == b.against && a.metric == b.metric && same(a.estimate, b.estimate)
            && a.perSeed.count == b.perSeed.count && zip(a.perSeed, b.perSeed).allSatisfy(same)
            && same(a.low, b.low) && same(a.high, b.high) && a.replicates == b.replicates
            && a.usableReplicates == b.usableReplicates && same(a.monteCarloError, b.monteCarloError)
    }

    /// The interval excludes 0 on the side where `arm` is the better model.
    public var armIsBetter: Bool { metric.higherIsBetter ? low > 0 : high < 0 }
    /// The interval excludes 0 on the side where `arm` is the worse model.
    public var armIsWorse: Bool { metric.higherIsBetter ? high < 0 : low > 0 }
    /// `arm` is at most `margin` worse than `against` (non-inferiority: the whole interval is on the
    /// good side of −margin for a higher-is-better metric, of +margin otherwise).
    public func armIsNotWorse(margin: Double) -> Bool { metric.higherIsBetter ? low > -margin : high < margin }

    enum CodingKeys: String, CodingKey {
        case arm, against, metric, estimate, low, high, replicates
        case perSeed = "per_seed", usableReplicates = "usable_replicates", monteCarloError = "monte_carlo_error"
    }

    public init(arm: String, against: String, metric: ComparisonMetric, estimate: Double, perSeed: [Double], low: Double, high: Double,
                replicates: Int, usableReplicates: Int, monteCarloError: Double) {
        self.arm = arm
        self.against = against
        self.metric = metric
        self.estimate = estimate
        self.perSeed = perSeed
        self.low = low
        self.high = high
        self.replicates = replicates
        self.usableReplicates = usableReplicates
        self.monteCarloError = monteCarloError
    }

    // Non-finite numbers (a metric undefined on every seed) are stored as null: JSON has no NaN.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        arm = try c.decode(String.self, forKey: .arm)
        against = try c.decode(String.self, forKey: .against)
        metric = try c.decode(ComparisonMetric.self, forKey: .metric)
        estimate = try c.decodeIfPresent(Double.self, forKey: .estimate) ?? .nan
        perSeed = try c.decode([Double?].self, forKey: .perSeed).map { $0 ?? .nan }
        low = try c.decodeIfPresent(Double.self, forKey: .low) ?? .nan
        high = try c.decodeIfPresent(Double.self, forKey: .high) ?? .nan
        replicates = try c.decode(Int.self, forKey: .replicates)
        usableReplicates = try c.decode(Int.self, forKey: .usableReplicates)
        monteCarloError = try c.decodeIfPresent(Double.self, forKey: .monteCarloError) ?? .nan
    }

    public func encode(to encoder: any Encoder) throws {
        func finite(_ x: Double) -> Double? { x.isFinite ? x : nil }
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(arm, forKey: .arm)
        try c.encode(against, forKey: .against)
        try c.encode(metric, forKey: .metric)
        try c.encode(finite(estimate), forKey: .estimate)
        try c.encode(perSeed.map(finite), forKey: .perSeed)
        try c.encode(finite(low), forKey: .low)
        try c.encode(finite(high), forKey: .high)
        try c.encode(replicates, forKey: .replicates)
        try c.encode(usableReplicates, forKey: .usableReplicates)
        try c.encode(finite(monteCarloError), forKey: .monteCarloError)
    }
}

/// Paired bootstrap comparisons of models scored on the same test patients, over one or more seeds.
///
/// **The estimate** is the mean over seeds of each seed's difference `metric(arm) − metric(against)`
/// on all of that seed's test patients.
///
/// **The interval** is a 95 % percentile interval of a hierarchical (two-level) bootstrap
/// (Davison & Hinkley 1997 §3.8; Saravanan et al. 2020, doi:10.46471/gigabyte.12):
/// - *patients*: a replicate resamples each seed's test patients with replacement **within each
///   site** (every site keeps its size, as in the study design), and scores both models on that one
///   resample, so the difference is paired;
/// - *seeds* (with k > 1 seeds): a replicate also draws k seeds with replacement and averages the
///   paired differences of the drawn seeds, so training randomness (initialisation, batch order,
///   sampling, noise) widens the interval as much as it moves the result. Resampling k values
///   understates their variance by (k − 1)/k, so the replicate's deviation from the estimate is
///   scaled by √(k/(k − 1)).
///
/// **Replicates** start at `minimumReplicates` and double until the Monte Carlo standard error of
/// every interval bound is at most `targetMonteCarloError` (or `maximumReplicates` is reached;
/// secondary metrics stop driving it at `secondaryMaximumReplicates`). A
/// bound's error is estimated by batch means: the replicates are cut into 20 batches in draw order,
/// the percentile is taken in each, and the standard deviation of the 20 batch percentiles over √20
/// is the standard error of the percentile of all B (a batch of B/20 has √20 times the error of
/// all B). Unlike an order-statistic estimate it stays honest when a statistic takes few distinct
/// values (a small group's true-positive rate), where the percentile sits on one value whatever B
/// is. Replicate r's draws come from streams keyed by r, so raising B keeps the first replicates.
public enum PairedBootstrap {
    /// The name of the "model" whose every metric is 0: comparing a row with it gives the row's own
    /// metric with its interval (a level, not a difference).
    public static let zero = ""

    /// How many replicates to draw and which groups count in a fairness gap.
    public struct Options: Sendable {
        public var minimumReplicates: Int
        public var maximumReplicates: Int
        public var targetMonteCarloError: Double
        /// Differences in metrics that `isSecondary` selects stop driving the doubling at this many
        /// replicates (their errors are still reported): subgroup rates of small groups are noisy
        /// enough to need many times the replicates of the headline comparisons.
        public var secondaryMaximumReplicates: Int
        public var isSecondary: @Sendable (ComparisonMetric) -> Bool
        /// Groups smaller than this are left out of a gap (the scenario's minimum group size).
        public var minimumGroupSize: Int
        /// Patients of a class a group needs before its TPR enters a gap.
        public var classMinimum: Int

        public init(minimumReplicates: Int = 2000, maximumReplicates: Int = 64_000, targetMonteCarloError: Double = 0.005,
                    minimumGroupSize: Int = 30, classMinimum: Int = Fairness.defaultClassMinimum,
                    secondaryMaximumReplicates: Int = 64_000, isSecondary: @escaping @Sendable (ComparisonMetric) -> Bool = { _ in false }) {
            self.secondaryMaximumReplicates = secondaryMaximumReplicates
            self.isSecondary = isSecondary
            self.minimumReplicates = minimumReplicates
            self.maximumReplicates = maximumReplicates
            self.targetMonteCarloError = targetMonteCarloError
            self.minimumGroupSize = minimumGroupSize
            self.classMinimum = classMinimum
        }
    }

    /// One difference per (pair, metric), pair-major. `seed` and `purpose` key the resampling
    /// streams, so two calls with the same key resample the same patients.
    public static func compare(_ testSets: [ScoredTestSet], pairs: [(arm: String, against: String)], metrics: [ComparisonMetric],
                               seed: UInt64, purpose: String, options: Options = Options()) -> [PairedDifference] {
        guard !pairs.isEmpty, !metrics.isEmpty else { return [] }
        var models: [String] = []
        for (a, b) in pairs {
            for name in [a, b] where name != zero && !models.contains(name) { models.append(name) }
        }
        let prepared = testSets.enumerated().map { index, set in
            PreparedSeed(set, models: models, metrics: metrics, options: options, seed: seed, purpose: purpose, index: index)
        }
        var replicates = max(options.minimumReplicates, 1)
        while true {
            // Seeds resample independently (streams keyed by seed index and replicate), so they
            // extend in parallel with the same result as in sequence.
            let target = replicates
            DispatchQueue.concurrentPerform(iterations: prepared.count) { prepared[$0].extend(to: target) }
            let draws = seedDraws(seeds: prepared.count, replicates: replicates, seed: seed, purpose: purpose)
            let differences = pairs.flatMap { pair in
                metrics.map { metric in
                    difference(prepared, arm: pair.arm, against: pair.against, metric: metric, replicates: replicates, draws: draws)
                }
            }
            func worst(_ secondary: Bool) -> Double {
                differences.filter { options.isSecondary($0.metric) == secondary }.map(\.monteCarloError).filter(\.isFinite).max() ?? 0
            }
            let primaryDone = worst(false) <= options.targetMonteCarloError
            let secondaryDone = worst(true) <= options.targetMonteCarloError || replicates >= options.secondaryMaximumReplicates
            if (primaryDone && secondaryDone) || replicates >= options.maximumReplicates { return differences }
            replicates = min(replicates * 2, options.maximumReplicates)
        }
    }

    /// For each hierarchical replicate, the k (seed, patient replicate) pairs it draws: shared by
    /// every difference, so all comparisons of a run use the same draws (empty for one seed).
    static func seedDraws(seeds k: Int, replicates: Int, seed: UInt64, purpose: String) -> [Int32] {
        guard k > 1 else { return [] }
        var draws = [Int32](repeating: 0, count: replicates * k * 2)
        for r in 0..<replicates {
            var random = RandomStream(seed: seed, "paired-bootstrap-seeds", purpose, String(r))
            for j in 0..<k {
                draws[(r * k + j) * 2] = Int32(random.int(below: k))
                draws[(r * k + j) * 2 + 1] = Int32(random.int(below: replicates))
            }
        }
        return draws
    }

    static func difference(_ seeds: [PreparedSeed], arm: String, against: String, metric: ComparisonMetric, replicates: Int,
                           draws: [Int32]) -> PairedDifference {
        let k = seeds.count
        let perSeed = seeds.map { $0.point(arm, metric) - $0.point(against, metric) }
        let defined = perSeed.filter(\.isFinite)
        let estimate = defined.isEmpty ? .nan : defined.reduce(0, +) / Double(defined.count)
        var statistics: [Double] = []
        statistics.reserveCapacity(replicates)
        if k == 1 {
            let a = seeds[0].replicates(arm, metric), b = seeds[0].replicates(against, metric)
            for r in 0..<replicates where (a[r] - b[r]).isFinite { statistics.append(a[r] - b[r]) }
        } else if k > 1 {
            let scale = (Double(k) / Double(k - 1)).squareRoot()
            let a = seeds.map { $0.replicates(arm, metric) }, b = seeds.map { $0.replicates(against, metric) }
            for r in 0..<replicates {
                var sum = 0.0, used = 0
                for t in 0..<k {
                    let s = Int(draws[(r * k + t) * 2]), j = Int(draws[(r * k + t) * 2 + 1])
                    let d = a[s][j] - b[s][j]
                    if d.isFinite { sum += d; used += 1 }
                }
                guard used > 0, estimate.isFinite else { continue }
                statistics.append(estimate + scale * (sum / Double(used) - estimate))
            }
        }
        let error = max(quantileError(statistics, 0.025), quantileError(statistics, 0.975))
        statistics.sort()
        guard statistics.count >= 2 else {
            return PairedDifference(arm: arm, against: against, metric: metric, estimate: estimate, perSeed: perSeed, low: .nan, high: .nan,
                                    replicates: replicates, usableReplicates: statistics.count, monteCarloError: .nan)
        }
        return PairedDifference(arm: arm, against: against, metric: metric, estimate: estimate, perSeed: perSeed,
                                low: Fairness.percentile(statistics, 0.025), high: Fairness.percentile(statistics, 0.975),
                                replicates: replicates, usableReplicates: statistics.count, monteCarloError: error)
    }

    /// The batch-means estimate of the standard error of the `q` percentile of `values` (in draw
    /// order, not sorted; see the type's comment).
    static func quantileError(_ values: [Double], _ q: Double, batches: Int = 20) -> Double {
        let size = values.count / batches
        guard size >= 2 else { return .nan }
        let estimates = (0..<batches).map { b in Fairness.percentile(values[(b * size)..<((b + 1) * size)].sorted(), q) }
        let mean = estimates.reduce(0, +) / Double(batches)
        let variance = estimates.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(batches - 1)
        return (variance / Double(batches)).squareRoot()
    }
}

/// One model's metrics on one (possibly resampled) test set.
struct MetricValues {
    var auroc = Double.nan, balancedAccuracy = Double.nan, accuracy = Double.nan, brier = Double.nan
    var calibrationInTheLarge = Double.nan, worstSiteAccuracy = Double.nan
    /// Per attribute, each gap kind's value (`GapKind.allCases` order).
    var gaps: [[Double]] = []
    /// Per attribute, each group's TPR (NaN without positives).
    var groupTruePositiveRates: [[Double]] = []

    /// Where a metric's value sits, resolved once per test set so a replicate reads it without hashing names.
    enum Slot {
        case auroc, balancedAccuracy, accuracy, brier, calibrationInTheLarge, worstSiteAccuracy
        case gap(attribute: Int, kind: Int)
        case truePositiveRate(attribute: Int, group: Int)
        case undefined
    }

    static func slot(_ metric: ComparisonMetric, attributeIndex: [String: Int], groupIndex: [String: [String: Int]]) -> Slot {
        switch metric {
        case .auroc: .auroc
        case .balancedAccuracy: .balancedAccuracy
        case .accuracy: .accuracy
        case .brier: .brier
        case .calibrationInTheLarge: .calibrationInTheLarge
        case .worstSiteAccuracy: .worstSiteAccuracy
        case .gap(let kind, let attribute):
            attributeIndex[attribute].map { .gap(attribute: $0, kind: ComparisonMetric.GapKind.allCases.firstIndex(of: kind)!) } ?? .undefined
        case .truePositiveRate(let attribute, let group):
            attributeIndex[attribute].flatMap { a in groupIndex[attribute]?[group].map { .truePositiveRate(attribute: a, group: $0) } } ?? .undefined
        }
    }

    func value(_ slot: Slot) -> Double {
        switch slot {
        case .auroc: auroc
        case .balancedAccuracy: balancedAccuracy
        case .accuracy: accuracy
        case .brier: brier
        case .calibrationInTheLarge: calibrationInTheLarge
        case .worstSiteAccuracy: worstSiteAccuracy
        case .gap(let a, let k): a < gaps.count ? gaps[a][k] : .nan
        case .truePositiveRate(let a, let g): a < groupTruePositiveRates.count ? groupTruePositiveRates[a][g] : .nan
        case .undefined: .nan
        }
    }

    func value(_ metric: ComparisonMetric, attributeIndex: [String: Int], groupIndex: [String: [String: Int]]) -> Double {
        switch metric {
        case .auroc: auroc
        case .balancedAccuracy: balancedAccuracy
        case .accuracy: accuracy
        case .brier: brier
        case .calibrationInTheLarge: calibrationInTheLarge
        case .worstSiteAccuracy: worstSiteAccuracy
        case .gap(let kind, let attribute):
            attributeIndex[attribute].map { gaps[$0][ComparisonMetric.GapKind.allCases.firstIndex(of: kind)!] } ?? .nan
        case .truePositiveRate(let attribute, let group):
            attributeIndex[attribute].flatMap { a in groupIndex[attribute]?[group].map { groupTruePositiveRates[a][$0] } } ?? .nan
        }
    }
}

/// One seed's patients sorted once per model, and every model's metric on each replicate so far.
final class PreparedSeed: @unchecked Sendable {
    // @unchecked: used by one thread at a time inside `PairedBootstrap.compare`.
    let count: Int
    let siteRows: [[Int32]]
    let metrics: [ComparisonMetric]
    let attributeIndex: [String: Int]
    /// Per attribute, each group's index in the model's per-group arrays.
    let groupIndex: [String: [String: Int]]
    /// Where each of `metrics` sits in a model's `MetricValues`.
    let slots: [MetricValues.Slot]
    let models: [String: SortedModel]
    let seed: UInt64
    let purpose: String
    let index: Int
    private var points: [String: MetricValues] = [:]
    /// Per model and metric, one value per replicate drawn so far.
    private var values: [String: [[Double]]] = [:]
    private(set) var drawn = 0

    init(_ set: ScoredTestSet, models names: [String], metrics: [ComparisonMetric], options: PairedBootstrap.Options,
         seed: UInt64, purpose: String, index: Int) {
        count = set.labels.count
        let siteCount = (set.sites.max() ?? -1) + 1
        var rows = [[Int32]](repeating: [], count: siteCount)
        for (i, s) in set.sites.enumerated() { rows[s].append(Int32(i)) }
        siteRows = rows.filter { !$0.isEmpty }
        self.metrics = metrics
        self.seed = seed
        self.purpose = purpose
        self.index = index
        // The attributes a gap or group rate is asked for, each group with what it is large enough
        // to enter (decided once on all patients, so every replicate compares the same groups, by
        // the rules of `Fairness.gaps`).
        var attributes: [AttributeGroups] = []
        var groupIndex: [String: [String: Int]] = [:]
        for metric in metrics {
            let attribute: String
            switch metric {
            case .gap(_, let a), .truePositiveRate(let a, _): attribute = a
            default: continue
            }
            guard !attributes.contains(where: { $0.name == attribute }) else { continue }
            let values = set.groups[attribute] ?? Array(repeating: "", count: set.labels.count)
            let names = Array(Set(values)).sorted()
            let code = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, Int32($0)) })
            let codes = values.map { code[$0]! }
            var size = [Int](repeating: 0, count: names.count), positives = size
            for (c, y) in zip(codes, set.labels) {
                size[Int(c)] += 1
                if y >= 0.5 { positives[Int(c)] += 1 }
            }
            let large = names.indices.map { size[$0] >= options.minimumGroupSize }
            attributes.append(AttributeGroups(
                name: attribute, codes: codes, large: large,
                withPositives: names.indices.map { large[$0] && positives[$0] >= options.classMinimum },
                withNegatives: names.indices.map { large[$0] && size[$0] - positives[$0] >= options.classMinimum }))
            groupIndex[attribute] = code.mapValues(Int.init)
        }
        self.groupIndex = groupIndex
        let attributeIndex = Dictionary(uniqueKeysWithValues: attributes.enumerated().map { ($1.name, $0) })
        slots = metrics.map { MetricValues.slot($0, attributeIndex: attributeIndex, groupIndex: groupIndex) }
        self.attributeIndex = attributeIndex
        var models: [String: SortedModel] = [:]
        for name in names {
            let scores = set.scores[name] ?? Array(repeating: .nan, count: set.labels.count)
            models[name] = SortedModel(scores: scores, labels: set.labels, sites: set.sites, siteCount: siteCount, attributes: attributes)
        }
        self.models = models
        let unit = [Int32](repeating: 1, count: count)
        for (name, model) in models { points[name] = model.evaluate(weights: unit) }
    }

    func point(_ model: String, _ metric: ComparisonMetric) -> Double {
        if model == PairedBootstrap.zero { return 0 }
        return points[model]?.value(metric, attributeIndex: attributeIndex, groupIndex: groupIndex) ?? .nan
    }

    func replicates(_ model: String, _ metric: ComparisonMetric) -> [Double] {
        if model == PairedBootstrap.zero { return Array(repeating: 0, count: drawn) }
        guard let m = metrics.firstIndex(of: metric), let all = values[model] else { return [] }
        return all[m]
    }

    /// Draws replicates `drawn..<target`: each resamples every site's patients (as many as it has),
    /// from a stream keyed by the replicate, and scores every model on that resample.
    func extend(to target: Int) {
        guard target > drawn else { return }
        var weights = [Int32](repeating: 0, count: count)
        for name in models.keys where values[name] == nil { values[name] = Array(repeating: [], count: metrics.count) }
        let names = models.keys.sorted()
        for r in drawn..<target {
            for i in weights.indices { weights[i] = 0 }
            var random = RandomStream(seed: seed, "paired-bootstrap", purpose, String(index), String(r))
            for rows in siteRows {
                for _ in 0..<rows.count { weights[Int(rows[random.int(below: rows.count)])] += 1 }
            }
            for name in names {
                let result = models[name]!.evaluate(weights: weights)
                for m in slots.indices { values[name]![m].append(result.value(slots[m])) }
            }
        }
        drawn = target
    }
}

/// One attribute's groups: each patient's group code, and which groups may enter which gap.
struct AttributeGroups {
    var name: String
    var codes: [Int32]
    /// At least the minimum group size: enters demographic parity and calibration gaps.
    var large: [Bool]
    /// Large, with enough positives for a TPR (and, with `withNegatives`, a within-group AUROC).
    var withPositives: [Bool]
    /// Large, with enough negatives for an FPR.
    var withNegatives: [Bool]
}

/// One model's scores sorted ascending once, so that every weighted replicate is a single pass.
struct SortedModel {
    let order: [Int32]
    let scores: [Float]
    let positive: [Bool]
    let sites: [Int32]
    let siteCount: Int
    /// Per attribute, its groups; each group's tallies start at `groupOffsets[a] + group`.
    let attributes: [AttributeGroups]
    let groupOffsets: [Int]
    /// Row-major (sorted row, attribute): the row's group slot.
    let rowSlots: [Int32]
    let defined: Bool

    init(scores raw: [Float], labels: [Float], sites rawSites: [Int], siteCount: Int, attributes: [AttributeGroups]) {
        defined = raw.allSatisfy(\.isFinite)
        let order = raw.indices.sorted { raw[$0] < raw[$1] || (raw[$0] == raw[$1] && $0 < $1) }
        self.order = order.map { Int32($0) }
        scores = order.map { raw[$0] }
        positive = order.map { labels[$0] >= 0.5 }
        sites = order.map { Int32(rawSites[$0]) }
        self.siteCount = siteCount
        self.attributes = attributes
        var offsets = [0]
        for a in attributes { offsets.append(offsets.last! + a.large.count) }
        groupOffsets = offsets
        var slots = [Int32](repeating: 0, count: order.count * attributes.count)
        for (k, row) in order.enumerated() {
            for (a, attribute) in attributes.enumerated() { slots[k * attributes.count + a] = Int32(offsets[a]) + attribute.codes[row] }
        }
        rowSlots = slots
    }

    /// Every metric with patient i counted weights[i] times (0 = not drawn), in one pass over the
    /// rows in ascending score. Group tallies of every attribute live in flat buffers indexed by
    /// `groupOffsets[a] + group`, so the pass allocates nothing per row.
    func evaluate(weights: [Int32]) -> MetricValues {
        var values = MetricValues()
        let kinds = ComparisonMetric.GapKind.allCases.count
        values.gaps = attributes.map { _ in Array(repeating: .nan, count: kinds) }
        values.groupTruePositiveRates = attributes.map { a in a.large.map { _ in .nan } }
        guard defined else { return values }
        let n = order.count, attributeCount = attributes.count, groupSlots = groupOffsets.last ?? 0
        var total = 0.0, positives = 0.0, scoreSum = 0.0, squares = 0.0
        var tp = 0.0, tn = 0.0, negativesBelow = 0.0, pairs = 0.0
        var siteTotal = [Double](repeating: 0, count: siteCount), siteCorrect = siteTotal
        // Per group slot: size, positives, selected, true positives, false positives, score sum,
        // AUROC pairs won, negatives below the current score, negatives tied at it.
        var tally = [Double](repeating: 0, count: groupSlots * 9)
        tally.withUnsafeMutableBufferPointer { t in
            let size = 0, pos = groupSlots, sel = 2 * groupSlots, tps = 3 * groupSlots, fps = 4 * groupSlots
            let sum = 5 * groupSlots, won = 6 * groupSlots, below = 7 * groupSlots, tied = 8 * groupSlots
            var i = 0
            // A run of tied scores is one step of the ROC curve: its positives beat the negatives
            // below it and tie (½) with the negatives in it.
            while i < n {
                var j = i + 1
                let s = scores[i]
                while j < n && scores[j] == s { j += 1 }
                let predicted = s >= 0.5
                // A run of one row (nearly every run: scores are continuous) needs no tie bookkeeping.
                let single = j - i == 1
                var runPositives = 0.0, runNegatives = 0.0
                for k in i..<j {
                    let w = Double(weights[Int(order[k])])
                    guard w > 0 else { continue }
                    let y = positive[k], site = Int(sites[k])
                    total += w
                    scoreSum += w * Double(s)
                    let error = Double(s) - (y ? 1 : 0)
                    squares += w * error * error
                    siteTotal[site] += w
                    if predicted == y { siteCorrect[site] += w }
                    if y {
                        positives += w
                        runPositives += w
                        if predicted { tp += w }
                    } else {
                        runNegatives += w
                        if !predicted { tn += w }
                    }
                    let base = k * attributeCount
                    for a in 0..<attributeCount {
                        let g = Int(rowSlots[base + a])
                        t[size + g] += w
                        t[sum + g] += w * Double(s)
                        if predicted { t[sel + g] += w }
                        if y {
                            t[pos + g] += w
                            if predicted { t[tps + g] += w }
                            t[won + g] += w * t[below + g]
                        } else {
                            if predicted { t[fps + g] += w }
                            if single { t[below + g] += w } else { t[tied + g] += w }
                        }
                    }
                }
                pairs += runPositives * negativesBelow + 0.5 * runPositives * runNegatives
                negativesBelow += runNegatives
                if attributeCount > 0 && !single {
                    // Within-group ties: each positive of the run ties with its group's negatives of the run.
                    for k in i..<j where positive[k] {
                        let w = Double(weights[Int(order[k])])
                        guard w > 0 else { continue }
                        for a in 0..<attributeCount {
                            let g = Int(rowSlots[k * attributeCount + a])
                            t[won + g] += 0.5 * w * t[tied + g]
                        }
                    }
                    for k in i..<j where !positive[k] {
                        for a in 0..<attributeCount {
                            let g = Int(rowSlots[k * attributeCount + a])
                            t[below + g] += t[tied + g]
                            t[tied + g] = 0
                        }
                    }
                }
                i = j
            }
        }
        let negatives = total - positives
        guard total > 0 else { return values }
        values.accuracy = (tp + tn) / total
        values.brier = squares / total
        values.calibrationInTheLarge = abs(scoreSum / total - positives / total)
        if positives > 0 && negatives > 0 {
            values.auroc = pairs / (positives * negatives)
            values.balancedAccuracy = (tp / positives + tn / negatives) / 2
        }
        var worst = Double.infinity
        for s in 0..<siteCount where siteTotal[s] > 0 { worst = min(worst, siteCorrect[s] / siteTotal[s]) }
        values.worstSiteAccuracy = worst.isFinite ? worst : .nan
        for (a, groups) in attributes.enumerated() {
            var selection: [Double] = [], tpr: [Double] = [], fpr: [Double] = [], auroc: [Double] = [], calibration: [Double] = []
            for g in groups.large.indices {
                let slot = groupOffsets[a] + g
                let size = tally[slot], pos = tally[groupSlots + slot], sel = tally[2 * groupSlots + slot]
                let tps = tally[3 * groupSlots + slot], fps = tally[4 * groupSlots + slot], sum = tally[5 * groupSlots + slot]
                let won = tally[6 * groupSlots + slot]
                let neg = size - pos
                if pos > 0 { values.groupTruePositiveRates[a][g] = tps / pos }
                guard groups.large[g], size > 0 else { continue }
                selection.append(sel / size)
                calibration.append((sum - pos) / size)
                if groups.withPositives[g] && pos > 0 { tpr.append(tps / pos) }
                if groups.withNegatives[g] && neg > 0 { fpr.append(fps / neg) }
                if groups.withPositives[g] && groups.withNegatives[g] && pos > 0 && neg > 0 { auroc.append(won / (pos * neg)) }
            }
            func spread(_ x: [Double]) -> Double { x.count >= 2 ? x.max()! - x.min()! : .nan }
            let (tprGap, fprGap) = (spread(tpr), spread(fpr))
            let odds = tprGap.isNaN ? fprGap : fprGap.isNaN ? tprGap : max(tprGap, fprGap)
            // GapKind.allCases order: demographic parity, equal opportunity, equalised odds, AUROC, calibration.
            values.gaps[a] = [spread(selection), tprGap, odds, spread(auroc), spread(calibration)]
        }
        return values
    }
}
