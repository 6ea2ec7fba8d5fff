// What an arm cost in `metrics.json`: bytes and parameters exposed, and local compute.

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
    /// Secure arms: how the rounds went and what the protocol's steps cost (summed over seeds).
    public var secureRounds: SecureAggregationTotals?

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
        case secureRounds = "secure_rounds"
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
    /// Simulated seconds of local training per site per round (mean), from the scenario's
    /// per-step compute speeds: a modelled time, so reports stay byte-identical.
    public var simulatedSecondsPerSiteRound: Double = 0

    public init(stepsPerSiteRound: Double, trainingFlopsPerSiteRound: Double, optimizerStateBytes: Int) {
        self.stepsPerSiteRound = stepsPerSiteRound
        self.trainingFlopsPerSiteRound = trainingFlopsPerSiteRound
        self.optimizerStateBytes = optimizerStateBytes
    }

    enum CodingKeys: String, CodingKey {
        case stepsPerSiteRound = "steps_per_site_round"
        case trainingFlopsPerSiteRound = "training_flops_per_site_round"
        case optimizerStateBytes = "optimizer_state_bytes"
        case simulatedSecondsPerSiteRound = "simulated_seconds_per_site_round"
    }
}
