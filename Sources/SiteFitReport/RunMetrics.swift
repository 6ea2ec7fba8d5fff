/// Everything a run measured: the content of `metrics.json` and the input of the Markdown report.
public struct RunMetrics: Codable, Sendable, Equatable {
    public var scenario: ScenarioInfo
    public var sites: [SiteInfo]
    public var model: ModelInfo
    public var pretraining: PretrainingInfo
    public var arms: [ArmMetrics]

    public init(scenario: ScenarioInfo, sites: [SiteInfo], model: ModelInfo, pretraining: PretrainingInfo, arms: [ArmMetrics]) {
        self.scenario = scenario
        self.sites = sites
        self.model = model
        self.pretraining = pretraining
        self.arms = arms
    }
}

/// Where the numbers came from (no clock time: the same seed gives the same file).
public struct ScenarioInfo: Codable, Sendable, Equatable {
    public var name: String
    public var file: String
    public var fingerprint: String
    public var seed: UInt64
    public var sitefitVersion: String

    public init(name: String, file: String, fingerprint: String, seed: UInt64, sitefitVersion: String) {
        self.name = name
        self.file = file
        self.fingerprint = fingerprint
        self.seed = seed
        self.sitefitVersion = sitefitVersion
    }

    enum CodingKeys: String, CodingKey {
        case name, file, fingerprint, seed
        case sitefitVersion = "sitefit_version"
    }
}

/// One hospital as it looks before any training: size, prevalence, mix, coding habits.
public struct SiteInfo: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var shard: String
    public var cohortSize: Int
    public var trainSize: Int
    public var testSize: Int
    public var outcomePrevalence: Double
    public var femaleShare: Double
    public var meanAge: Double
    public var creatinineUnit: String
    public var labMissingShare: Double

    public init(id: String, name: String, shard: String, cohortSize: Int, trainSize: Int, testSize: Int,
                outcomePrevalence: Double, femaleShare: Double, meanAge: Double, creatinineUnit: String, labMissingShare: Double) {
        self.id = id
        self.name = name
        self.shard = shard
        self.cohortSize = cohortSize
        self.trainSize = trainSize
        self.testSize = testSize
        self.outcomePrevalence = outcomePrevalence
        self.femaleShare = femaleShare
        self.meanAge = meanAge
        self.creatinineUnit = creatinineUnit
        self.labMissingShare = labMissingShare
    }

    enum CodingKeys: String, CodingKey {
        case id, name, shard
        case cohortSize = "cohort_size", trainSize = "train_size", testSize = "test_size"
        case outcomePrevalence = "outcome_prevalence", femaleShare = "female_share", meanAge = "mean_age"
        case creatinineUnit = "creatinine_unit", labMissingShare = "lab_missing_share"
    }
}

/// The network and its named tensors.
public struct ModelInfo: Codable, Sendable, Equatable {
    public var widths: [Int]
    public var parameters: Int
    public var tensors: [TensorInfo]
    public var features: [String]

    public init(widths: [Int], parameters: Int, tensors: [TensorInfo], features: [String]) {
        self.widths = widths
        self.parameters = parameters
        self.tensors = tensors
        self.features = features
    }
}

/// A tensor's dotted key, shape and role.
public struct TensorInfo: Codable, Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var role: String

    public init(name: String, shape: [Int], role: String) {
        self.name = name
        self.shape = shape
        self.role = role
    }
}

/// How the source model was trained and how good it was on held-out source patients.
public struct PretrainingInfo: Codable, Sendable, Equatable {
    public var sourcePatients: Int
    public var epochs: Int
    public var validationAccuracy: Double
    public var validationAuroc: Double?

    public init(sourcePatients: Int, epochs: Int, validationAccuracy: Double, validationAuroc: Double?) {
        self.sourcePatients = sourcePatients
        self.epochs = epochs
        self.validationAccuracy = validationAccuracy
        self.validationAuroc = validationAuroc
    }

    enum CodingKeys: String, CodingKey {
        case epochs
        case sourcePatients = "source_patients"
        case validationAccuracy = "validation_accuracy", validationAuroc = "validation_auroc"
    }
}

/// Test-set performance: pooled over every site's test patients, and per site.
public struct Evaluation: Codable, Sendable, Equatable {
    public var accuracy: Double
    public var balancedAccuracy: Double?
    /// Accuracy of always predicting the majority class on the same patients.
    public var majorityClassAccuracy: Double
    public var auroc: Double?
    public var brier: Double
    public var worstSiteAccuracy: Double
    public var perSite: [String: SiteEvaluation]

    public init(accuracy: Double, balancedAccuracy: Double?, majorityClassAccuracy: Double, auroc: Double?, brier: Double,
                worstSiteAccuracy: Double, perSite: [String: SiteEvaluation]) {
        self.accuracy = accuracy
        self.balancedAccuracy = balancedAccuracy
        self.majorityClassAccuracy = majorityClassAccuracy
        self.auroc = auroc
        self.brier = brier
        self.worstSiteAccuracy = worstSiteAccuracy
        self.perSite = perSite
    }

    enum CodingKeys: String, CodingKey {
        case accuracy, auroc, brier
        case balancedAccuracy = "balanced_accuracy", majorityClassAccuracy = "majority_class_accuracy"
        case worstSiteAccuracy = "worst_site_accuracy", perSite = "per_site"
    }
}

/// One site's test-set performance.
public struct SiteEvaluation: Codable, Sendable, Equatable {
    public var accuracy: Double
    public var balancedAccuracy: Double?
    public var majorityClassAccuracy: Double
    /// Absent when the site's test set holds a single class.
    public var auroc: Double?
    public var testSize: Int

    public init(accuracy: Double, balancedAccuracy: Double?, majorityClassAccuracy: Double, auroc: Double?, testSize: Int) {
        self.accuracy = accuracy
        self.balancedAccuracy = balancedAccuracy
        self.majorityClassAccuracy = majorityClassAccuracy
        self.auroc = auroc
        self.testSize = testSize
    }

    enum CodingKeys: String, CodingKey {
        case accuracy, auroc
        case balancedAccuracy = "balanced_accuracy", majorityClassAccuracy = "majority_class_accuracy"
        case testSize = "test_size"
    }
}

/// One round of one arm: the global model's evaluation after aggregation, and the traffic.
public struct RoundMetrics: Codable, Sendable, Equatable {
    public var round: Int
    public var evaluation: Evaluation
    public var bytesUp: Int
    public var bytesDown: Int
    public var acceptedSites: [String]
    public var rejected: [Rejection]
    public var meanLocalLoss: Double?
    /// Sites asked for an update this round (all of them unless the scenario samples).
    public var sampledSites: [String]
    /// Sampled sites that sent nothing the server could use, and why (dropped out, missed the deadline).
    public var absent: [Rejection]
    /// Fewer accepted updates than the quorum: the global model did not change this round.
    public var skipped: Bool
    /// Cumulative ε at the arm's δ after this round (DP arms only).
    public var epsilon: Double?

    public init(round: Int, evaluation: Evaluation, bytesUp: Int, bytesDown: Int, acceptedSites: [String],
                rejected: [Rejection], meanLocalLoss: Double?, sampledSites: [String] = [], absent: [Rejection] = [],
                skipped: Bool = false, epsilon: Double? = nil) {
        self.sampledSites = sampledSites
        self.absent = absent
        self.skipped = skipped
        self.epsilon = epsilon
        self.round = round
        self.evaluation = evaluation
        self.bytesUp = bytesUp
        self.bytesDown = bytesDown
        self.acceptedSites = acceptedSites
        self.rejected = rejected
        self.meanLocalLoss = meanLocalLoss
    }

    enum CodingKeys: String, CodingKey {
        case round, evaluation, rejected
        case bytesUp = "bytes_up", bytesDown = "bytes_down", acceptedSites = "accepted_sites"
        case meanLocalLoss = "mean_local_loss"
        case sampledSites = "sampled_sites", absent, skipped, epsilon
    }
}

/// An update the server refused and why.
public struct Rejection: Codable, Sendable, Equatable {
    public var site: String
    public var reason: String

    public init(site: String, reason: String) {
        self.site = site
        self.reason = reason
    }
}

/// What an arm exposed: bytes actually serialised, parameters per update.
public struct PrivacyFootprint: Codable, Sendable, Equatable {
    public var bytesUp: Int
    public var bytesDown: Int
    public var bytesUpPerUpdate: Int
    public var parametersExposed: Int
    public var parametersTotal: Int
    public var exposedShare: Double
    public var tensorsExposed: [String]
    /// Site-level DP: ε reached at `delta` (nil without DP), σ and C.
    public var epsilon: Double?
    public var delta: Double?
    public var noiseMultiplier: Double?
    public var clipNorm: Double?
    /// Rounds the ε budget allowed (training stopped before the next would exceed it), when it stopped early.
    public var stoppedByBudgetAfterRound: Int?
    /// Updates travelled pairwise-masked; the server never held one site's values.
    public var secureAggregation: Bool = false

    public init(bytesUp: Int, bytesDown: Int, bytesUpPerUpdate: Int, parametersExposed: Int, parametersTotal: Int,
                tensorsExposed: [String]) {
        self.bytesUp = bytesUp
        self.bytesDown = bytesDown
        self.bytesUpPerUpdate = bytesUpPerUpdate
        self.parametersExposed = parametersExposed
        self.parametersTotal = parametersTotal
        self.exposedShare = Double(parametersExposed) / Double(max(parametersTotal, 1))
        self.tensorsExposed = tensorsExposed
    }

    enum CodingKeys: String, CodingKey {
        case bytesUp = "bytes_up", bytesDown = "bytes_down", bytesUpPerUpdate = "bytes_up_per_update"
        case parametersExposed = "parameters_exposed", parametersTotal = "parameters_total"
        case exposedShare = "exposed_share", tensorsExposed = "tensors_exposed"
        case epsilon, delta, noiseMultiplier = "noise_multiplier", clipNorm = "clip_norm"
        case stoppedByBudgetAfterRound = "stopped_by_budget_after_round", secureAggregation = "secure_aggregation"
    }
}

/// Local compute per site and round, counted (not timed, so reports stay reproducible).
public struct ComputeFootprint: Codable, Sendable, Equatable {
    /// Optimiser steps per site per round (mean over sites).
    public var stepsPerSiteRound: Double
    /// Multiply-add FLOPs of local training per site per round (mean), counting only the
    /// products the mode needs (a frozen weight has no weight-gradient product).
    public var trainingFlopsPerSiteRound: Double
    /// Bytes of optimiser state a site holds.
    public var optimizerStateBytes: Int

    public init(stepsPerSiteRound: Double, trainingFlopsPerSiteRound: Double, optimizerStateBytes: Int) {
        self.stepsPerSiteRound = stepsPerSiteRound
        self.trainingFlopsPerSiteRound = trainingFlopsPerSiteRound
        self.optimizerStateBytes = optimizerStateBytes
    }

    enum CodingKeys: String, CodingKey {
        case stepsPerSiteRound = "steps_per_site_round"
        case trainingFlopsPerSiteRound = "training_flops_per_site_round"
        case optimizerStateBytes = "optimizer_state_bytes"
    }
}

/// One compared arm: its rounds, final evaluation and footprints.
public struct ArmMetrics: Codable, Sendable, Equatable {
    public var name: String
    public var mode: String
    /// fedavg, fedprox, fedadam, fedyogi or fedadagrad.
    public var strategy: String
    public var learningRate: Double
    public var localEpochs: Int
    /// Round 0 is the pretrained model before any fine-tuning.
    public var rounds: [RoundMetrics]
    public var final: Evaluation
    public var privacy: PrivacyFootprint
    public var compute: ComputeFootprint

    public init(name: String, mode: String, strategy: String, learningRate: Double, localEpochs: Int, rounds: [RoundMetrics],
                final: Evaluation, privacy: PrivacyFootprint, compute: ComputeFootprint) {
        self.name = name
        self.mode = mode
        self.strategy = strategy
        self.learningRate = learningRate
        self.localEpochs = localEpochs
        self.rounds = rounds
        self.final = final
        self.privacy = privacy
        self.compute = compute
    }

    enum CodingKeys: String, CodingKey {
        case name, mode, strategy, rounds, final, privacy, compute
        case learningRate = "learning_rate", localEpochs = "local_epochs"
    }
}

/// One test patient's final score, for `predictions.csv`.
public struct PredictionRow: Sendable, Equatable {
    public var arm: String
    public var site: String
    public var personId: Int64
    public var label: Int
    public var score: Float
    public var sex: String
    public var race: String

    public init(arm: String, site: String, personId: Int64, label: Int, score: Float, sex: String, race: String) {
        self.arm = arm
        self.site = site
        self.personId = personId
        self.label = label
        self.score = score
        self.sex = sex
        self.race = race
    }
}
