import Foundation
import SiteFitCore

/// How a round chooses its sites, loses some of them and waits for the rest.
public struct ParticipationSettings: Sendable, Equatable {
    /// Which sites a round asks for an update.
    public enum Sampling: Sendable, Equatable {
        /// Every site, every round.
        case all
        /// Each site independently with probability `rate` (Poisson sampling: what the DP
        /// accountant's sampled Gaussian assumes).
        case fraction(Double)
        /// Exactly `count` sites, uniformly without replacement.
        case count(Int)
    }

    public var sampling: Sampling
    /// Fewest accepted updates that make a round; with fewer the round is skipped (model unchanged).
    public var quorum: Int
    /// Chance that a sampled site is unavailable in a round (independently per site and round).
    public var dropoutProbability: Double
    /// Sites that drop in given rounds, on top of the random dropout: round → site ids.
    public var dropoutSchedule: [Int: Set<String>]
    /// Simulated seconds a site needs per local step (its compute speed); sites not named use `defaultSecondsPerStep`.
    public var secondsPerStep: [String: Double]
    public var defaultSecondsPerStep: Double
    /// Log-normal spread of each site's round time (σ of log time; 0 = exactly steps × seconds per step).
    public var timeJitter: Double
    /// Updates that would arrive after this many simulated seconds are dropped; nil waits for all.
    public var deadlineSeconds: Double?

    public init(sampling: Sampling = .all, quorum: Int = 1, dropoutProbability: Double = 0,
                dropoutSchedule: [Int: Set<String>] = [:], secondsPerStep: [String: Double] = [:],
                defaultSecondsPerStep: Double = 0.001, timeJitter: Double = 0, deadlineSeconds: Double? = nil) {
        self.sampling = sampling
        self.quorum = quorum
        self.dropoutProbability = dropoutProbability
        self.dropoutSchedule = dropoutSchedule
        self.secondsPerStep = secondsPerStep
        self.defaultSecondsPerStep = defaultSecondsPerStep
        self.timeJitter = timeJitter
        self.deadlineSeconds = deadlineSeconds
    }

    /// The probability q that a given site is sampled in a round. Privacy accounting uses it only
    /// for Poisson sampling (`fraction`) or `all`; a fixed `count` is refused with DP.
    public func sampleRate(siteCount: Int) -> Double {
        switch sampling {
        case .all: return 1
        case .fraction(let rate): return rate
        case .count(let count): return Double(min(count, siteCount)) / Double(max(siteCount, 1))
        }
    }

    /// Expected number of sampled sites: DP-FedAvg divides the noisy sum by this fixed number, so
    /// one site's presence changes the mean by at most C / (q·K) (McMahan et al., arXiv:1710.06963).
    public func expectedParticipants(siteCount: Int) -> Double {
        max(sampleRate(siteCount: siteCount) * Double(siteCount), 1)
    }
}

/// Why a site contributed nothing to a round.
public enum Absence: Sendable, Equatable {
    case notSampled
    case droppedOut(scheduled: Bool)
    case missedDeadline(seconds: Double, deadline: Double)
    /// A site in another process that did not deliver: it died, stalled past the reply deadline,
    /// disconnected or refused (only a networked run has these; the reason is the transport's).
    case lost(reason: String)
}

/// Pure, seeded decisions of a round. Every draw has its own stream keyed by (seed, purpose, arm,
/// round[, site]), so a round's plan does not depend on how many draws earlier rounds made.
public enum RoundPlanner {
    /// Indices of the sites asked for an update this round, in site order.
    public static func sampled(siteIds: [String], settings: ParticipationSettings, seed: UInt64, arm: String, round: Int) -> [Int] {
        switch settings.sampling {
        case .all:
            return Array(siteIds.indices)
        case .fraction(let rate):
            return siteIds.indices.filter { index in
                var random = RandomStream(seed: seed, "sampling", arm, String(round), siteIds[index])
                return random.uniform() < rate
            }
        case .count(let count):
            var random = RandomStream(seed: seed, "sampling", arm, String(round))
            var order = Array(siteIds.indices)
            random.shuffle(&order)
            return Array(order.prefix(count)).sorted()
        }
    }

    /// Whether a sampled site drops out of this round (scheduled, or by chance).
    public static func dropsOut(site: String, settings: ParticipationSettings, seed: UInt64, arm: String, round: Int) -> Absence? {
        if settings.dropoutSchedule[round]?.contains(site) == true { return .droppedOut(scheduled: true) }
        guard settings.dropoutProbability > 0 else { return nil }
        var random = RandomStream(seed: seed, "dropout", arm, String(round), site)
        return random.uniform() < settings.dropoutProbability ? .droppedOut(scheduled: false) : nil
    }

    /// Simulated wall time of a site's local training: steps × seconds per step × a log-normal
    /// factor with median 1.
    public static func simulatedSeconds(site: String, steps: Int, settings: ParticipationSettings,
                                        seed: UInt64, arm: String, round: Int) -> Double {
        let perStep = settings.secondsPerStep[site] ?? settings.defaultSecondsPerStep
        var factor = 1.0
        if settings.timeJitter > 0 {
            var random = RandomStream(seed: seed, "straggler", arm, String(round), site)
            factor = exp(settings.timeJitter * random.gaussian())
        }
        return Double(steps) * perStep * factor
    }
}
