import SiteFitCore

/// Site-level DP-FedAvg as a plug-in of the round driver: sites clip, the server adds noise, and
/// the RDP accountant spends the budget round by round.
///
/// The accountant bounds the Poisson-subsampled Gaussian mechanism (Mironov, Talwar & Zhang,
/// arXiv:1908.10530), so the sample rate is the Poisson rate q (or 1 when every site trains).
public struct DifferentialPrivacy: Sendable {
    public let settings: DPSettings
    /// q: the probability that a given site is sampled in a round.
    public let sampleRate: Double
    /// The fixed denominator of the noisy mean (McMahan et al., arXiv:1710.06963).
    public let expectedParticipants: Double
    /// The arm whose noise streams this is: (seed, "dp-noise", arm, round).
    public let arm: String
    public let seed: UInt64
    public private(set) var accountant = RDPAccountant()

    public init(settings: DPSettings, participation: ParticipationSettings, siteCount: Int, seed: UInt64, arm: String) throws {
        // Checked here as well as by the scenario loader, for federations built in code: the
        // accountant's ε holds for Poisson sampling only.
        if case .count(let k) = participation.sampling, k < siteCount {
            throw UserFacingError("arm '\(arm)': DP needs Poisson sampling (federation.sampling.fraction) or every site "
                                  + "each round; a fixed count of \(k) of \(siteCount) sites is not covered by the accountant")
        }
        self.settings = settings
        sampleRate = participation.sampleRate(siteCount: siteCount)
        expectedParticipants = participation.expectedParticipants(siteCount: siteCount)
        self.seed = seed
        self.arm = arm
    }

    /// Spends one round's privacy, unless that would take ε past the budget: then nothing is
    /// spent and the round must not run (a round that would overspend never starts).
    public mutating func admitRound() -> Bool {
        var next = accountant
        next.compose(noiseMultiplier: settings.noiseMultiplier, sampleRate: sampleRate)
        if let budget = settings.epsilonBudget, next.epsilon(delta: settings.delta).epsilon > budget { return false }
        accountant = next
        return true
    }

    /// Takes back the accountant's RDP after the rounds a restarted server had admitted;
    /// false when it has another number of orders.
    public mutating func restore(rdp: [Double]) -> Bool {
        accountant.restore(rdp: rdp)
    }

    /// ε after the rounds admitted so far, at the settings' δ.
    public var epsilon: Double { accountant.epsilon(delta: settings.delta).epsilon }

    /// What the server needs for round `round`: the settings, the denominator and the round's noise stream.
    public func aggregation(round: Int) -> PrivateAggregation {
        PrivateAggregation(settings: settings, expectedParticipants: expectedParticipants,
                           noise: RandomStream(seed: seed, "dp-noise", arm, String(round)))
    }
}
