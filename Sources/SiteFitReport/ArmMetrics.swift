// One compared arm in `metrics.json`: its rounds and what each round accepted or missed. Its
// `kind` is stored as the `strategy` field (`baseline` for every baseline, told apart by name).

/// One compared arm: its rounds, final evaluation and footprints.
public struct ArmMetrics: Codable, Sendable, Equatable {
    public var name: String
    public var mode: String
    /// A federation and its strategy, or which baseline (stored as metrics.json's `strategy` field).
    public var kind: ArmKind
    public var learningRate: Double
    public var localEpochs: Int
    /// Round 0 is the pretrained model before any fine-tuning.
    public var rounds: [RoundMetrics]
    public var final: Evaluation
    public var privacy: PrivacyFootprint
    public var compute: ComputeFootprint
    /// Every audited gap's change since the pretrained model, with its bootstrap interval.
    public var biasDrift: [BiasDrift] = []
    /// Loss-threshold membership-inference AUC per site (train vs held-out patients, final model).
    public var membershipInference: [String: Double] = [:]

    /// The audited change with the largest magnitude.
    public var largestBiasDrift: BiasDrift? { biasDrift.max { abs($0.drift) < abs($1.drift) } }

    /// Mean over sites of the membership-inference AUC.
    public var meanMembershipInference: Double? {
        membershipInference.isEmpty ? nil
            : membershipInference.sorted { $0.key < $1.key }.reduce(0) { $0 + $1.value } / Double(membershipInference.count)
    }

    public init(name: String, mode: String, kind: ArmKind, learningRate: Double, localEpochs: Int, rounds: [RoundMetrics],
                final: Evaluation, privacy: PrivacyFootprint, compute: ComputeFootprint) {
        self.name = name
        self.mode = mode
        self.kind = kind
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
        case biasDrift = "bias_drift", membershipInference = "membership_inference"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        mode = try container.decode(String.self, forKey: .mode)
        let strategy = try container.decode(String.self, forKey: .strategy)
        guard let kind = ArmKind(storedStrategy: strategy, name: name) else {
            throw DecodingError.dataCorruptedError(forKey: .name, in: container,
                                                   debugDescription: "'\(name)' is not the name of a baseline SiteFit runs")
        }
        self.kind = kind
        learningRate = try container.decode(Double.self, forKey: .learningRate)
        localEpochs = try container.decode(Int.self, forKey: .localEpochs)
        rounds = try container.decode([RoundMetrics].self, forKey: .rounds)
        final = try container.decode(Evaluation.self, forKey: .final)
        privacy = try container.decode(PrivacyFootprint.self, forKey: .privacy)
        compute = try container.decode(ComputeFootprint.self, forKey: .compute)
        biasDrift = try container.decode([BiasDrift].self, forKey: .biasDrift)
        membershipInference = try container.decode([String: Double].self, forKey: .membershipInference)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(mode, forKey: .mode)
        try container.encode(kind.storedStrategy, forKey: .strategy)
        try container.encode(learningRate, forKey: .learningRate)
        try container.encode(localEpochs, forKey: .localEpochs)
        try container.encode(rounds, forKey: .rounds)
        try container.encode(final, forKey: .final)
        try container.encode(privacy, forKey: .privacy)
        try container.encode(compute, forKey: .compute)
        try container.encode(biasDrift, forKey: .biasDrift)
        try container.encode(membershipInference, forKey: .membershipInference)
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
    public var absent: [AbsentSite]
    /// Fewer accepted updates than the quorum: the global model did not change this round.
    public var skipped: Bool
    /// Cumulative ε at the arm's δ after this round (DP arms only).
    public var epsilon: Double?
    /// How far the shared parameters are from the pretrained ones after this round (federated arms).
    public var parameterDrift: ParameterDrift?
    /// How secure aggregation went this round (secure arms only).
    public var secureAggregation: SecureAggregationRound?

    public init(round: Int, evaluation: Evaluation, bytesUp: Int, bytesDown: Int, acceptedSites: [String],
                rejected: [Rejection], meanLocalLoss: Double?, sampledSites: [String] = [], absent: [AbsentSite] = [],
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
        case sampledSites = "sampled_sites", absent, skipped, epsilon, parameterDrift = "parameter_drift"
        case secureAggregation = "secure_aggregation"
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
