import SiteFitMetrics

// The paired comparisons and the checked claims in `metrics.json`.

/// Every arm against the reference arm and against the starting model, over all seeds.
public struct Comparisons: Codable, Sendable, Equatable {
    /// The row every other row is compared with (`compare_to:`, default the first arm).
    public var reference: String
    /// The starting model's row name ("pretrained" or "initial model").
    public var startingModel: String
    public var seeds: Int
    /// Fewest replicates the bootstrap starts with, and the Monte Carlo error it aims for.
    public var minimumReplicates: Int
    public var targetMonteCarloError: Double
    public var differences: [PairedDifference]
    /// Every row's fairness gaps against the starting model's (its bias drift), per audited attribute.
    public var biasDrift: [PairedDifference] = []
    /// Every row's true-positive rate in each group large enough for one, against the starting model's.
    public var groupTruePositiveRates: [PairedDifference] = []
    /// The most replicates the subgroup gaps and rates doubled to.
    public var subgroupMaximumReplicates = 8000

    public init(reference: String, startingModel: String, seeds: Int, minimumReplicates: Int, targetMonteCarloError: Double,
                differences: [PairedDifference]) {
        self.reference = reference
        self.startingModel = startingModel
        self.seeds = seeds
        self.minimumReplicates = minimumReplicates
        self.targetMonteCarloError = targetMonteCarloError
        self.differences = differences
    }

    /// The difference `arm − against` in `metric`, if it was computed.
    public func difference(_ arm: String, _ against: String, _ metric: ComparisonMetric) -> PairedDifference? {
        differences.first { $0.arm == arm && $0.against == against && $0.metric == metric }
    }

    /// The bias drift of `arm` in `metric` (a gap), if it was computed.
    public func drift(_ arm: String, _ metric: ComparisonMetric) -> PairedDifference? {
        biasDrift.first { $0.arm == arm && $0.metric == metric }
    }

    /// The largest Monte Carlo error of any interval bound of the headline comparisons.
    public var largestMonteCarloError: Double { differences.map(\.monteCarloError).filter(\.isFinite).max() ?? 0 }

    /// The largest Monte Carlo error of the subgroup gaps' and rates' interval bounds.
    public var largestSubgroupMonteCarloError: Double {
        (biasDrift + groupTruePositiveRates).map(\.monteCarloError).filter(\.isFinite).max() ?? 0
    }

    enum CodingKeys: String, CodingKey {
        case reference, seeds, differences, biasDrift = "bias_drift", groupTruePositiveRates = "group_true_positive_rates"
        case subgroupMaximumReplicates = "subgroup_maximum_replicates"
        case startingModel = "starting_model", minimumReplicates = "minimum_replicates", targetMonteCarloError = "target_monte_carlo_error"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        reference = try c.decode(String.self, forKey: .reference)
        startingModel = try c.decode(String.self, forKey: .startingModel)
        seeds = try c.decode(Int.self, forKey: .seeds)
        minimumReplicates = try c.decode(Int.self, forKey: .minimumReplicates)
        targetMonteCarloError = try c.decode(Double.self, forKey: .targetMonteCarloError)
        differences = try c.decode([PairedDifference].self, forKey: .differences)
        biasDrift = try c.decodeIfPresent([PairedDifference].self, forKey: .biasDrift) ?? []
        groupTruePositiveRates = try c.decodeIfPresent([PairedDifference].self, forKey: .groupTruePositiveRates) ?? []
        subgroupMaximumReplicates = try c.decodeIfPresent(Int.self, forKey: .subgroupMaximumReplicates) ?? 8000
    }
}

/// One `expect:` claim after the run: whether it holds, and the numbers that decide it.
public struct ClaimResult: Codable, Sendable, Equatable {
    /// The claim in words.
    public var statement: String
    public var holds: Bool
    /// The paired difference behind a comparison claim.
    public var difference: PairedDifference?
    /// A footprint claim's two values and their ratio.
    public var armValue: Double?
    public var otherValue: Double?
    /// A leakage claim's paired difference over attacked updates.
    public var leakage: LeakageDifference?

    public init(statement: String, holds: Bool, difference: PairedDifference? = nil, armValue: Double? = nil, otherValue: Double? = nil,
                leakage: LeakageDifference? = nil) {
        self.leakage = leakage
        self.statement = statement
        self.holds = holds
        self.difference = difference
        self.armValue = armValue
        self.otherValue = otherValue
    }

    enum CodingKeys: String, CodingKey {
        case statement, holds, difference, leakage
        case armValue = "arm_value", otherValue = "other_value"
    }
}
