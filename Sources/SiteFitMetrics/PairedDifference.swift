// What a paired comparison takes (each seed's scored test patients) and gives (a difference
// with its interval).

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
    /// Who each patient is (person ids; empty when unknown): seeds whose test sets hold the same
    /// patients share their patient resamples (see `PairedBootstrap`).
    public var patients: [Int64]

    public init(labels: [Float], sites: [Int], groups: [String: [String]] = [:], scores: [String: [Float]] = [:], patients: [Int64] = []) {
        self.labels = labels
        self.sites = sites
        self.groups = groups
        self.scores = scores
        self.patients = patients
    }

    /// The same patients' rows at the sites in `keep` only.
    public func restricted(toSites keep: Set<Int>) -> ScoredTestSet {
        let rows = sites.indices.filter { keep.contains(sites[$0]) }
        return ScoredTestSet(labels: rows.map { labels[$0] }, sites: rows.map { sites[$0] },
                             groups: groups.mapValues { values in rows.map { values[$0] } },
                             scores: scores.mapValues { values in rows.map { values[$0] } },
                             patients: patients.isEmpty ? [] : rows.map { patients[$0] })
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

    /// Bounds closer to 0 than this are 0: two models that agree on every patient can still
    /// differ in the last bits of a sum (a calibration error summed in another order), and such
    /// rounding must never read as a finding.
    public static let negligible = 1e-9

    /// The interval excludes 0 (by more than rounding).
    public var isClear: Bool { low > Self.negligible || high < -Self.negligible }

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
    public var armIsBetter: Bool { metric.higherIsBetter ? low > Self.negligible : high < -Self.negligible }
    /// The interval excludes 0 on the side where `arm` is the worse model.
    public var armIsWorse: Bool { metric.higherIsBetter ? high < -Self.negligible : low > Self.negligible }
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
