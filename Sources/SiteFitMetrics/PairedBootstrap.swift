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
    /// Spread (max − min) of true-positive rates between the groups of one attribute.
    case equalOpportunityGap(attribute: String)

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
        case .equalOpportunityGap(let attribute): "equal_opportunity_gap:\(attribute)"
        }
    }

    public var description: String { name }

    /// The metric a name stands for; nil for a name SiteFit does not compare on.
    public init?(name: String) {
        if name.hasPrefix("equal_opportunity_gap:") {
            let attribute = String(name.dropFirst("equal_opportunity_gap:".count))
            guard !attribute.isEmpty else { return nil }
            self = .equalOpportunityGap(attribute: attribute)
            return
        }
        let simple: [ComparisonMetric] = [.auroc, .balancedAccuracy, .accuracy, .brier, .calibrationInTheLarge, .worstSiteAccuracy]
        guard let metric = simple.first(where: { $0.name == name }) else { return nil }
        self = metric
    }

    /// Every name `init(name:)` accepts, for error messages (the gap with its attribute placeholder).
    public static let names = ["auroc", "balanced_accuracy", "accuracy", "brier", "calibration_in_the_large",
                               "worst_site_accuracy", "equal_opportunity_gap:<attribute>"]

    /// Whether a larger value is the better model (Brier, calibration error and gaps: smaller is better).
    public var higherIsBetter: Bool {
        switch self {
        case .auroc, .balancedAccuracy, .accuracy, .worstSiteAccuracy: true
        case .brier, .calibrationInTheLarge, .equalOpportunityGap: false
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
/// every interval bound is at most `targetMonteCarloError` (or `maximumReplicates` is reached). A
/// bound's error is estimated from the order statistics around it: the 2.5th percentile of B
/// replicates is the ⌈0.025 B⌉-th value, whose rank has a binomial standard deviation of
/// √(B·0.025·0.975); half the distance between the values one such deviation either side of it is
/// its standard error (the order-statistic method, Hall & Sheather 1988). Replicate r's draws come
/// from streams keyed by r, so raising B keeps the first replicates.
public enum PairedBootstrap {
    /// The name of the "model" whose every metric is 0: comparing a row with it gives the row's own
    /// metric with its interval (a level, not a difference).
    public static let zero = ""

    /// How many replicates to draw and which groups count in a fairness gap.
    public struct Options: Sendable {
        public var minimumReplicates: Int
        public var maximumReplicates: Int
        public var targetMonteCarloError: Double
        /// Groups smaller than this are left out of a gap (the scenario's minimum group size).
        public var minimumGroupSize: Int
        /// Patients of a class a group needs before its TPR enters a gap.
        public var classMinimum: Int

        public init(minimumReplicates: Int = 2000, maximumReplicates: Int = 64_000, targetMonteCarloError: Double = 0.005,
                    minimumGroupSize: Int = 30, classMinimum: Int = Fairness.defaultClassMinimum) {
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
            for seedData in prepared { seedData.extend(to: replicates) }
            let differences = pairs.flatMap { pair in
                metrics.map { metric in
                    difference(prepared, arm: pair.arm, against: pair.against, metric: metric, replicates: replicates, seed: seed, purpose: purpose)
                }
            }
            let worst = differences.map(\.monteCarloError).filter(\.isFinite).max() ?? 0
            if worst <= options.targetMonteCarloError || replicates >= options.maximumReplicates { return differences }
            replicates = min(replicates * 2, options.maximumReplicates)
        }
    }

    static func difference(_ seeds: [PreparedSeed], arm: String, against: String, metric: ComparisonMetric, replicates: Int,
                           seed: UInt64, purpose: String) -> PairedDifference {
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
                var random = RandomStream(seed: seed, "paired-bootstrap-seeds", purpose, String(r))
                var sum = 0.0, used = 0
                for _ in 0..<k {
                    let s = random.int(below: k), j = random.int(below: replicates)
                    let d = a[s][j] - b[s][j]
                    if d.isFinite { sum += d; used += 1 }
                }
                guard used > 0, estimate.isFinite else { continue }
                statistics.append(estimate + scale * (sum / Double(used) - estimate))
            }
        }
        statistics.sort()
        guard statistics.count >= 2 else {
            return PairedDifference(arm: arm, against: against, metric: metric, estimate: estimate, perSeed: perSeed, low: .nan, high: .nan,
                                    replicates: replicates, usableReplicates: statistics.count, monteCarloError: .nan)
        }
        let error = max(quantileError(statistics, 0.025), quantileError(statistics, 0.975))
        return PairedDifference(arm: arm, against: against, metric: metric, estimate: estimate, perSeed: perSeed,
                                low: Fairness.percentile(statistics, 0.025), high: Fairness.percentile(statistics, 0.975),
                                replicates: replicates, usableReplicates: statistics.count, monteCarloError: error)
    }

    /// The order-statistic estimate of a sample quantile's standard error (see the type's comment).
    static func quantileError(_ sorted: [Double], _ q: Double) -> Double {
        let n = Double(sorted.count)
        let spread = (n * q * (1 - q)).squareRoot()
        let lower = max(Int((n * q - spread).rounded(.down)), 0), upper = min(Int((n * q + spread).rounded(.up)), sorted.count - 1)
        return (sorted[upper] - sorted[lower]) / 2
    }
}

/// One model's metrics on one (possibly resampled) test set.
struct MetricValues {
    var auroc = Double.nan, balancedAccuracy = Double.nan, accuracy = Double.nan, brier = Double.nan
    var calibrationInTheLarge = Double.nan, worstSiteAccuracy = Double.nan
    var gaps: [Double] = []

    func value(_ metric: ComparisonMetric, attributeIndex: [String: Int]) -> Double {
        switch metric {
        case .auroc: auroc
        case .balancedAccuracy: balancedAccuracy
        case .accuracy: accuracy
        case .brier: brier
        case .calibrationInTheLarge: calibrationInTheLarge
        case .worstSiteAccuracy: worstSiteAccuracy
        case .equalOpportunityGap(let attribute): attributeIndex[attribute].map { gaps[$0] } ?? .nan
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
        // The attributes a gap is asked for, each with the groups large enough to enter it (decided
        // once on all patients, so every replicate compares the same groups).
        var attributes: [(name: String, codes: [Int32], eligible: [Bool])] = []
        for metric in metrics {
            guard case .equalOpportunityGap(let attribute) = metric, !attributes.contains(where: { $0.name == attribute }) else { continue }
            let values = set.groups[attribute] ?? Array(repeating: "", count: set.labels.count)
            let names = Array(Set(values)).sorted()
            let code = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, Int32($0)) })
            let codes = values.map { code[$0]! }
            var size = [Int](repeating: 0, count: names.count), positives = size
            for (c, y) in zip(codes, set.labels) {
                size[Int(c)] += 1
                if y >= 0.5 { positives[Int(c)] += 1 }
            }
            let eligible = names.indices.map { size[$0] >= options.minimumGroupSize && positives[$0] >= options.classMinimum }
            attributes.append((attribute, codes, eligible))
        }
        attributeIndex = Dictionary(uniqueKeysWithValues: attributes.enumerated().map { ($1.name, $0) })
        var models: [String: SortedModel] = [:]
        for name in names {
            let scores = set.scores[name] ?? Array(repeating: .nan, count: set.labels.count)
            models[name] = SortedModel(scores: scores, labels: set.labels, sites: set.sites, siteCount: siteCount,
                                       attributes: attributes.map { ($0.codes, $0.eligible) })
        }
        self.models = models
        let unit = [Int32](repeating: 1, count: count)
        for (name, model) in models { points[name] = model.evaluate(weights: unit) }
    }

    func point(_ model: String, _ metric: ComparisonMetric) -> Double {
        if model == PairedBootstrap.zero { return 0 }
        return points[model]?.value(metric, attributeIndex: attributeIndex) ?? .nan
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
                for (m, metric) in metrics.enumerated() { values[name]![m].append(result.value(metric, attributeIndex: attributeIndex)) }
            }
        }
        drawn = target
    }
}

/// One model's scores sorted ascending once, so that every weighted replicate is a single pass.
struct SortedModel {
    let order: [Int32]
    let scores: [Float]
    let positive: [Bool]
    let sites: [Int32]
    let siteCount: Int
    /// Per attribute: each sorted row's group, and which groups may enter the gap.
    let attributes: [(codes: [Int32], eligible: [Bool])]
    let defined: Bool

    init(scores raw: [Float], labels: [Float], sites raw2: [Int], siteCount: Int, attributes raw3: [(codes: [Int32], eligible: [Bool])]) {
        defined = raw.allSatisfy(\.isFinite)
        let order = raw.indices.sorted { raw[$0] < raw[$1] || (raw[$0] == raw[$1] && $0 < $1) }
        self.order = order.map { Int32($0) }
        scores = order.map { raw[$0] }
        positive = order.map { labels[$0] >= 0.5 }
        sites = order.map { Int32(raw2[$0]) }
        self.siteCount = siteCount
        attributes = raw3.map { a in (order.map { a.codes[$0] }, a.eligible) }
    }

    /// Every metric with patient i counted weights[i] times (0 = not drawn).
    func evaluate(weights: [Int32]) -> MetricValues {
        var values = MetricValues()
        guard defined else {
            values.gaps = attributes.map { _ in .nan }
            return values
        }
        let n = order.count
        var total = 0.0, positives = 0.0, scoreSum = 0.0, squares = 0.0
        var tp = 0.0, tn = 0.0, negativesBelow = 0.0, pairs = 0.0
        var siteTotal = [Double](repeating: 0, count: siteCount), siteCorrect = siteTotal
        var groupPositives = attributes.map { [Double](repeating: 0, count: $0.eligible.count) }
        var groupHits = groupPositives
        var i = 0
        // Rows are in ascending score; a run of tied scores is one step of the ROC curve (ties count ½).
        while i < n {
            var j = i, tiedPositives = 0.0, tiedNegatives = 0.0
            let s = scores[i]
            while j < n && scores[j] == s {
                let w = Double(weights[Int(order[j])])
                if w > 0 {
                    let y = positive[j], predicted = s >= 0.5, site = Int(sites[j])
                    total += w
                    scoreSum += w * Double(s)
                    let error = Double(s) - (y ? 1 : 0)
                    squares += w * error * error
                    siteTotal[site] += w
                    if predicted == y { siteCorrect[site] += w }
                    if y {
                        positives += w
                        tiedPositives += w
                        if predicted { tp += w }
                        for a in attributes.indices {
                            let g = Int(attributes[a].codes[j])
                            groupPositives[a][g] += w
                            if predicted { groupHits[a][g] += w }
                        }
                    } else {
                        tiedNegatives += w
                        if !predicted { tn += w }
                    }
                }
                j += 1
            }
            pairs += tiedPositives * negativesBelow + 0.5 * tiedPositives * tiedNegatives
            negativesBelow += tiedNegatives
            i = j
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
        values.gaps = attributes.indices.map { a in
            var low = Double.infinity, high = -Double.infinity, used = 0
            for g in attributes[a].eligible.indices where attributes[a].eligible[g] && groupPositives[a][g] > 0 {
                let rate = groupHits[a][g] / groupPositives[a][g]
                low = min(low, rate)
                high = max(high, rate)
                used += 1
            }
            return used >= 2 ? high - low : .nan
        }
        return values
    }
}
