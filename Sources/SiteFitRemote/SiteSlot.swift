import Foundation
import SiteFitFederation

/// How long the server waits on a site in a distributed run.
public struct SiteDeadlines: Sendable {
    /// Longest wait for one answer (a round's training included); a site that takes longer is
    /// that round's dropout, reported as lost.
    public var reply: Duration = .seconds(600)
    /// Longest wait for a site that is gone to connect again, when the run cannot go on without
    /// it (opening a seed, evaluating, counting). A round never waits: it goes on without the site.
    public var rejoin: Duration = .seconds(600)
    public init() {}
}

/// One scenario site's place in a distributed run. The site's current stream can change: a site
/// whose process died or whose connection dropped connects again with a new stream, and the slot
/// then tells it again what the lost process knew (the seeds it had opened with their checkpoints,
/// and the arm each had begun) before the next command, so it answers exactly as before.
public actor SiteSlot {
    public nonisolated let site: String
    let deadlines: SiteDeadlines
    private var link: SiteLink?
    /// How many streams the site has had; what a target was restored on is compared with it.
    private var generation = 0
    private var opens: [Target: Opening] = [:]
    private var begins: [Target: Sitefit_V1_Begin] = [:]
    private var restoredOn: [Target: Int] = [:]
    /// Restores under way, with the stream generation each is for.
    private var restoring: [Target: (generation: Int, task: Task<Void, any Error>)] = [:]
    /// Each target's test patients as its first evaluation named them.
    private var testSets: [Target: TestSet] = [:]

    /// Who a site's test patients are: every evaluation of a seed must score the same ones, or the
    /// per-round and paired comparisons would compare different patients.
    struct TestSet: Equatable {
        var personIds: [Int64], labels: [Float], sex: [String], race: [String], ageBand: [String]
    }

    /// A seed's network at the site: the target of most commands.
    struct Target: Hashable, Sendable {
        var seed: UInt64
        var mlp: Bool
        init(_ t: Sitefit_V1_Target) { seed = t.seed; mlp = t.mlp }
    }

    struct Opening {
        var command: Sitefit_V1_Open
        var reply: Sitefit_V1_Opened
    }

    init(site: String, deadlines: SiteDeadlines = SiteDeadlines()) {
        self.site = site
        self.deadlines = deadlines
    }

    /// A new stream for the site: later commands go on it, each target restored first.
    func connect(_ link: SiteLink) {
        self.link = link
        generation += 1
    }

    /// Whether the site has a stream open now.
    var isConnected: Bool {
        get async {
            guard let link else { return false }
            return await link.endReason == nil
        }
    }

    /// Whether the site has connected at least once.
    var hasJoined: Bool { generation > 0 }

    /// The open stream, waiting up to the rejoin deadline for the site to come back when `wait`.
    private func current(wait: Bool) async throws -> SiteLink {
        let clock = ContinuousClock()
        let giveUp = clock.now.advanced(by: deadlines.rejoin)
        while true {
            if let link, await link.endReason == nil { return link }
            guard wait else { throw SiteUnavailable(site: site, reason: await link?.endReason ?? "not connected") }
            guard clock.now < giveUp else {
                throw SiteUnavailable(site: site, reason: "gone, and did not connect again within \(deadlines.rejoin)")
            }
            // Polling keeps the wait cancellable and needs no bookkeeping of waiters; a rejoin is rare.
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// A command that needs no seed opened (counts).
    func call(_ body: Sitefit_V1_ServerMessage.OneOf_Body) async throws -> Sitefit_V1_Reply.OneOf_Body {
        try await current(wait: true).call(body, deadline: deadlines.reply)
    }

    /// Opens a seed at the site and remembers the command, to open it again after a reconnection.
    func open(_ command: Sitefit_V1_Open) async throws -> Sitefit_V1_Opened {
        let link = try await current(wait: true)
        let generation = self.generation
        guard case .opened(let opened) = try await link.call(.open(command), deadline: deadlines.reply) else {
            throw SiteUnavailable(site: site, reason: "did not answer an open command with its summary")
        }
        let target = Target(command.target)
        opens[target] = Opening(command: command, reply: opened)
        begins[target] = nil
        restoredOn[target] = generation
        return opened
    }

    /// Begins an arm. A site that is gone now begins it when it comes back, so the arm starts
    /// without it; a site that refuses stops the run.
    func begin(_ command: Sitefit_V1_Begin) async throws {
        let target = Target(command.target)
        begins[target] = command
        do {
            guard case .done = try await send(.begin(command), to: target, wait: false) else {
                throw SiteUnavailable(site: site, reason: "did not answer a begin command")
            }
        } catch let failure as SiteUnavailable {
            guard await isGone else { throw failure }
            // Whatever stream the site has next, the next command restores the target from scratch.
            restoredOn[target] = nil
        }
    }

    /// Whether the site's stream has ended (a transport failure, not a refusal).
    private var isGone: Bool {
        get async {
            guard let link else { return true }
            return await link.endReason != nil
        }
    }

    /// A command for an opened target. `wait`: whether to wait for a site that is gone to come
    /// back (an evaluation), or to fail at once (a round's step, where the site is a dropout).
    /// When waiting, a stream that ends during the command is waited out too, and the command
    /// sent again on the next one.
    func send(_ body: Sitefit_V1_ServerMessage.OneOf_Body, to target: Target, wait: Bool) async throws -> Sitefit_V1_Reply.OneOf_Body {
        while true {
            let link = try await current(wait: wait)
            do {
                try await restore(target, on: link)
                return try await link.call(body, deadline: deadlines.reply)
            } catch let failure as SiteUnavailable {
                // A refusal, a timeout or a round's step ends here; a lost stream while waiting is retried.
                guard wait, await link.endReason != nil else { throw failure }
            }
        }
    }

    /// Forgets a seed (the run closed it) and tells the site, if it is there.
    func close(seed: UInt64) async {
        for target in opens.keys where target.seed == seed {
            testSets[target] = nil
            opens[target] = nil
            begins[target] = nil
            restoredOn[target] = nil
        }
        guard let link, await link.endReason == nil else { return }
        _ = try? await link.call(.close(.with { $0.seed = seed }), deadline: deadlines.reply)
    }

    /// Tells the site the run is over, if it is there.
    func finish(reason: String) async {
        guard let link else { return }
        try? await link.notify(.finish(.with { $0.reason = reason }))
    }

    /// Refuses an evaluation whose patients, outcomes or subgroups differ from the target's first.
    func checkSameTestSet(_ p: SitePredictions, target: Target) throws {
        let set = TestSet(personIds: p.personIds, labels: p.labels, sex: p.sex, race: p.race, ageBand: p.ageBand)
        if let first = testSets[target] {
            guard first == set else { throw SiteUnavailable(site: site, reason: "scored other test patients than in its first evaluation") }
        } else {
            testSets[target] = set
        }
    }

    /// Replays what the site's earlier process knew about `target` on a stream that has not had it.
    private func restore(_ target: Target, on link: SiteLink) async throws {
        while true {
            let generation = self.generation
            guard restoredOn[target] != generation, let opening = opens[target] else { return }
            if let pending = restoring[target] {
                if pending.generation == generation { return try await pending.task.value }
                // A restore for an earlier stream: let it end, then restore on this one.
                _ = try? await pending.task.value
                continue
            }
            let begin = begins[target]
            let site = self.site, deadline = deadlines.reply
            let task = Task {
                guard case .opened(let opened) = try await link.call(.open(opening.command), deadline: deadline) else {
                    throw SiteUnavailable(site: site, reason: "did not answer an open command with its summary")
                }
                // The same shard and seed give the same split: anything else is not the site that left.
                guard opened == opening.reply else { throw SiteUnavailable(site: site, reason: "came back with a different cohort") }
                if let begin {
                    guard case .done = try await link.call(.begin(begin), deadline: deadline) else {
                        throw SiteUnavailable(site: site, reason: "did not answer a begin command")
                    }
                }
            }
            restoring[target] = (generation, task)
            defer { if restoring[target]?.generation == generation { restoring[target] = nil } }
            try await task.value
            restoredOn[target] = generation
            return
        }
    }
}
