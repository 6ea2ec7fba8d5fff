import Foundation
import Synchronization
import SiteFitCore
import SiteFitNN

/// Runs federated rounds: sample, drop out, train, deliver in site order while the server folds
/// each update into its running sum, end the round. `sitefit run` and the benchmarks both run
/// their federations through it; secure aggregation (`UpdateChannel`) and DP
/// (`DifferentialPrivacy`) plug in without the driver knowing which it has.
///
/// Determinism: every decision comes from a stream keyed by (seed, purpose, round[, site]), and
/// updates reach the server in site order whatever order the sites finish in, so a round gives
/// the same bits however it was scheduled.
public struct RoundDriver<Network: NeuralModel>: Sendable {
    public let sites: [any FederatedSite<Network>]
    public let server: FederatedServer
    public let participation: ParticipationSettings
    public let seed: UInt64
    /// The arm's key in the sites' training streams (seed, "local-training", arm, site, round).
    public let arm: String
    public var configuration: TrainingConfiguration
    public var channel: any UpdateChannel
    public var privacy: DifferentialPrivacy?
    /// How many sites may train ahead of the next update the server needs. Why a window: with
    /// every site started at once nothing bounds how many finished updates wait for the server
    /// (10,000 sites × 87 KB); measured on the 10,000 × 100 loop, 26 s without a window, 15–17 s with.
    public var window: Int
    /// Size of the selection the sites send (for the masked message size).
    public let sharedCount: Int
    /// The sites' ids, in site order.
    let siteIds: [String]

    public init(sites: [any FederatedSite<Network>], server: FederatedServer, participation: ParticipationSettings = ParticipationSettings(),
                seed: UInt64, arm: String, configuration: TrainingConfiguration, channel: any UpdateChannel = PlainChannel(),
                privacy: DifferentialPrivacy? = nil, window: Int? = nil) {
        self.sites = sites
        self.server = server
        self.participation = participation
        self.seed = seed
        self.arm = arm
        self.configuration = configuration
        self.channel = channel
        self.privacy = privacy
        self.window = max(1, window ?? 4 * ProcessInfo.processInfo.activeProcessorCount)
        sharedCount = server.selection.count
        siteIds = sites.map(\.id)
    }

    /// Runs round `round`, or returns nil without running it when DP's budget would be overspent.
    public mutating func run(round: Int) async throws -> RoundRecord? {
        if privacy != nil, !privacy!.admitRound() { return nil }
        let broadcast = await server.broadcast(round: round)
        // Participation is keyed by round and site, not by arm: every arm meets the same samples,
        // dropouts and slow sites, so differences between arms are the arms' own.
        let sampled = RoundPlanner.sampled(siteIds: siteIds, settings: participation, seed: seed, arm: "", round: round)
        // Each absence with its site's index, to list them in site order at the end.
        var absences: [(index: Int, absence: SiteAbsence)] = []
        var training: [Int] = []
        for index in sampled {
            if let absence = RoundPlanner.dropsOut(site: siteIds[index], settings: participation, seed: seed, arm: "", round: round) {
                absences.append((index, SiteAbsence(site: siteIds[index], absence: absence)))
            } else {
                training.append(index)
            }
        }
        var record = RoundRecord(round: round, sampled: sampled.map { siteIds[$0] }, broadcastBytes: broadcast.count)
        record.bytesDown = broadcast.count * sampled.count
        record.trained.reserveCapacity(training.count)
        let aggregation = privacy?.aggregation(round: round)
        var channel = self.channel
        defer { self.channel = channel }
        let (participation, seed, sharedCount) = (self.participation, self.seed, self.sharedCount)
        let (configuration, server, ids) = (self.configuration, self.server, self.siteIds)
        let proceed = try await channel.open(round: round, training: training.lazy.map { sites[$0] as any ChannelSite },
                                             quorum: participation.quorum, server: server, privacy: aggregation)
        // A round aborted before training (secure aggregation below its threshold) trains nobody.
        try await Self.train(proceed ? training : [], of: sites, window: window, arm: arm, round: round, broadcast: broadcast,
                             configuration: configuration, clipNorm: privacy?.settings.clipNorm,
                             secure: channel.holdsUpdatesOnSite) { index, site, update in
            let seconds = RoundPlanner.simulatedSeconds(site: site.id, steps: update.steps, settings: participation,
                                                        seed: seed, arm: "", round: round)
            record.trained.append(TrainedUpdate(
                siteIndex: index, steps: update.steps, examples: Self.examples(trainSize: site.trainSize, configuration: configuration), loss: update.loss,
                optimizerStateBytes: update.optimizerStateBytes, messageBytes: channel.messageBytes(update, selectedCount: sharedCount),
                simulatedSeconds: seconds))
            record.bytesUp += update.blob.count  // sent, whether or not it arrives in time
            if let deadline = participation.deadlineSeconds, seconds > deadline {
                absences.append((index, SiteAbsence(site: site.id, absence: .missedDeadline(seconds: seconds, deadline: deadline))))
            } else {
                record.bytesUp += try await channel.deliver(update, from: site, server: server)
            }
        } lost: { index, lost in
            absences.append((index, SiteAbsence(site: ids[index], absence: .lost(reason: lost.reason))))
        }
        let closed = try await channel.close(quorum: participation.quorum, server: server)
        record.outcome = closed.outcome
        record.bytesUp += closed.bytesUp
        record.bytesDown += closed.bytesDown
        record.secure = closed.secure
        // Dropouts were found before training and late sites after it: list them in site order.
        record.absences = absences.sorted { $0.index < $1.index }.map(\.absence)
        record.epsilon = privacy?.epsilon
        return record
    }

    /// Examples a site's local training sees in a round: an epoch's last batch may be short, so rows, not steps × batch.
    static func examples(trainSize: Int, configuration: TrainingConfiguration) -> Int {
        configuration.steps.map { min($0 * configuration.batchSize, $0 * trainSize) } ?? trainSize * configuration.epochs
    }

    /// Trains the sites at `indices` concurrently, at most `window` ahead of the next update
    /// needed, and hands each update to `deliver` in site order (a small reorder buffer holds
    /// the ones that finish early), so neither side holds the whole round's updates.
    private static func train(
        _ indices: [Int], of sites: [any FederatedSite<Network>], window: Int, arm: String, round: Int, broadcast: [UInt8],
        configuration: TrainingConfiguration, clipNorm: Double?, secure: Bool,
        deliver: (Int, any FederatedSite<Network>, LocalUpdate) async throws -> Void,
        lost: (Int, SiteUnavailable) -> Void
    ) async throws {
        // Sites that could not answer, by position; the child records its failure before it returns.
        let failures = Failures()
        try await withThrowingTaskGroup(of: (Int, LocalUpdate).self) { group in
            var started = 0
            func start(upTo limit: Int) {
                while started < min(limit, indices.count) {
                    let position = started, site = sites[indices[position]]
                    group.addTask {
                        // A site that cannot answer is this round's dropout, not the run's end:
                        // a federation goes on without a hospital whose process died.
                        do {
                            return (position, try await site.localUpdate(arm: arm, round: round, broadcast: broadcast, configuration: configuration,
                                                                         clipNorm: clipNorm, secure: secure))
                        } catch let failure as SiteUnavailable {
                            failures.record(failure, at: position)
                            return (position, LocalUpdate(site: failure.site, blob: [], steps: 0, loss: 0, optimizerStateBytes: 0, updateNorm: nil))
                        }
                    }
                    started += 1
                }
            }
            start(upTo: window)
            var next = 0
            var early: [Int: LocalUpdate] = [:]
            for try await (position, update) in group {
                early[position] = update
                while let ready = early.removeValue(forKey: next) {
                    if let failure = failures.take(next) {
                        lost(indices[next], failure)
                    } else {
                        try await deliver(indices[next], sites[indices[next]], ready)
                    }
                    next += 1
                }
                start(upTo: next + window)
            }
        }
    }
}

/// The failures of a round's sites by position, written by their child tasks.
private final class Failures: Sendable {
    private let byPosition = Mutex<[Int: SiteUnavailable]>([:])
    func record(_ failure: SiteUnavailable, at position: Int) { byPosition.withLock { $0[position] = failure } }
    func take(_ position: Int) -> SiteUnavailable? { byPosition.withLock { $0.removeValue(forKey: position) } }
}

/// A sampled site that contributed nothing to a round, and why.
public struct SiteAbsence: Sendable, Equatable {
    public var site: String
    public var absence: Absence
}

/// What one site's local training cost in a round (its update itself went to the server).
public struct TrainedUpdate: Sendable, Equatable, Codable {
    /// The site's position in the driver's site list (an index, not its id: 10,000 sites' records stay small).
    public var siteIndex: Int
    public var steps: Int
    public var examples: Int
    public var loss: Double
    public var optimizerStateBytes: Int
    /// Bytes of the update message on the round's channel (plain blob or masked vector).
    public var messageBytes: Int
    /// Simulated wall time of the local training (compared with the deadline).
    public var simulatedSeconds: Double
}

/// Everything the driver observed in one round, for metrics and progress lines.
public struct RoundRecord: Sendable, Equatable {
    public var round: Int
    /// Sites asked for an update, in site order.
    public var sampled: [String]
    public var broadcastBytes: Int
    /// Sites that trained, in site order (late ones included).
    public var trained: [TrainedUpdate] = []
    /// Sampled sites that contributed nothing (dropped out or late), in site order.
    public var absences: [SiteAbsence] = []
    public var outcome = AggregationOutcome(acceptedSites: [], rejected: [], skipped: true)
    public var bytesUp = 0
    public var bytesDown = 0
    /// Secure aggregation: the masking set, survivors, abort, recovery, clamping and message costs.
    public var secure: SecureRoundSummary?
    /// ε spent after this round (DP only).
    public var epsilon: Double?

    public init(round: Int, sampled: [String], broadcastBytes: Int) {
        self.round = round
        self.sampled = sampled
        self.broadcastBytes = broadcastBytes
    }

    /// Mean final local loss of the sites that trained, or nil when none did.
    public var meanLocalLoss: Double? {
        trained.isEmpty ? nil : trained.reduce(0) { $0 + $1.loss } / Double(trained.count)
    }
}
