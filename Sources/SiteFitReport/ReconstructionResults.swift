import SiteFitMetrics

// The reconstruction experiment in `metrics.json`: what an honest-but-curious server recovered
// from single sites' updates, per arm and setting, over every seed, site and attacked update.

/// The experiment's settings and one row per arm and setting.
public struct ReconstructionResults: Codable, Sendable, Equatable {
    /// Iterations of the optimisation attack per attacked update.
    public var budget: Int
    /// Attacked updates per site, setting and seed.
    public var trials: Int
    public var rows: [ReconstructionRow]

    public init(budget: Int, trials: Int, rows: [ReconstructionRow]) {
        self.budget = budget
        self.trials = trials
        self.rows = rows
    }
}

/// One arm at one batch size and number of local steps.
public struct ReconstructionRow: Codable, Sendable, Equatable {
    public var arm: String
    public var batchSize: Int
    public var localSteps: Int
    /// Updates attacked (over seeds and sites); 0 for a masked arm.
    public var updates: Int
    /// Secure aggregation: the server never holds one site's update, so nothing was attacked.
    public var masked: Bool
    /// Nil when the update has no input layer with both weight and bias (the attack does not apply).
    public var analytic: ReconstructionAttackSummary?
    public var optimisation: ReconstructionAttackSummary?
    /// Per update, the attack the server would use: analytic where it applies, optimisation otherwise.
    public var chosen: ReconstructionAttackSummary?
    /// The prior's guesses scored as reconstructions: what matching by chance gives.
    public var chance: ReconstructionAttackSummary?
    /// Nil when the head bias does not travel.
    public var outcomeRateError: MeanInterval?

    public init(arm: String, batchSize: Int, localSteps: Int, updates: Int, masked: Bool, analytic: ReconstructionAttackSummary?,
                optimisation: ReconstructionAttackSummary?, chosen: ReconstructionAttackSummary?, chance: ReconstructionAttackSummary? = nil,
                outcomeRateError: MeanInterval?) {
        self.chance = chance
        self.arm = arm
        self.batchSize = batchSize
        self.localSteps = localSteps
        self.updates = updates
        self.masked = masked
        self.analytic = analytic
        self.optimisation = optimisation
        self.chosen = chosen
        self.outcomeRateError = outcomeRateError
    }

    enum CodingKeys: String, CodingKey {
        case arm, batchSize = "batch_size", localSteps = "local_steps", updates, masked, analytic, optimisation, chosen, chance
        case outcomeRateError = "outcome_rate_error"
    }
}

/// One attack's means over the attacked updates, each with its 95 % interval.
public struct ReconstructionAttackSummary: Codable, Sendable, Equatable {
    public var error: MeanInterval
    public var f1: MeanInterval
    public var identified: MeanInterval

    public init(error: MeanInterval, f1: MeanInterval, identified: MeanInterval) {
        self.error = error
        self.f1 = f1
        self.identified = identified
    }
}

/// The paired difference behind a leakage claim: `arm` at its setting minus `against` at its
/// setting, over the attacked updates both share (same seed, site and trial), with its interval.
public struct LeakageDifference: Codable, Sendable, Equatable {
    public var arm: String
    public var against: String
    public var measure: LeakageMeasure
    public var batchSize: Int
    public var localSteps: Int
    public var againstBatchSize: Int
    public var againstLocalSteps: Int
    public var difference: MeanInterval

    public init(arm: String, against: String, measure: LeakageMeasure, batchSize: Int, localSteps: Int, againstBatchSize: Int,
                againstLocalSteps: Int, difference: MeanInterval) {
        self.arm = arm
        self.against = against
        self.measure = measure
        self.batchSize = batchSize
        self.localSteps = localSteps
        self.againstBatchSize = againstBatchSize
        self.againstLocalSteps = againstLocalSteps
        self.difference = difference
    }

    enum CodingKeys: String, CodingKey {
        case arm, against, measure, batchSize = "batch_size", localSteps = "local_steps", againstBatchSize = "against_batch_size"
        case againstLocalSteps = "against_local_steps", difference
    }
}
