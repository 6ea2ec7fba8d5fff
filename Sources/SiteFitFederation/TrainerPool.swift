import Foundation
import SiteFitNN

/// Trainers (workspaces, gradient buffers) shared by many sites. A site borrows one for a round of
/// local training or an evaluation and gives it back, so workspace memory grows with the number of
/// sites training at the same moment (the cores), not with the number of sites: 10,000 sites
/// need a handful of workspaces, not 10,000.
public final class TrainerPool<Network: NeuralModel>: @unchecked Sendable {
    // @unchecked: `idle` is only touched under `lock`, and a borrowed Trainer belongs to one site
    // (one actor) until it is returned.
    private let lock = NSLock()
    private var idle: [Trainer<Network>] = []
    public let maxBatch: Int

    public init(maxBatch: Int) {
        self.maxBatch = maxBatch
    }

    /// An idle trainer for `network` (the same architecture), or a new one.
    func borrow(for network: Network) -> Trainer<Network> {
        lock.lock()
        defer { lock.unlock() }
        if let index = idle.lastIndex(where: { $0.model.signature == network.signature }) { return idle.remove(at: index) }
        return Trainer(model: network, maxBatch: maxBatch)
    }

    func giveBack(_ trainer: Trainer<Network>) {
        lock.lock()
        defer { lock.unlock() }
        idle.append(trainer)
    }

    /// Trainers created so far and not in use (for tests and the memory benchmark).
    public var idleCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return idle.count
    }
}
