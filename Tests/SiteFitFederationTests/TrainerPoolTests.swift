import Testing
@testable import SiteFitCore
@testable import SiteFitFederation
@testable import SiteFitNN
@testable import SiteFitTuning
import SiteFitTestSupport

@Suite("Sites sharing a trainer pool")
struct TrainerPoolTests {
    /// Three in-memory sites, two FedAvg rounds through the real server; returns the global values.
    static func federate(pool: TrainerPool<MLP>?) async throws -> (values: [Float], idle: Int, held: Int) {
        let mlp = MLP(MLPConfiguration(inputSize: 5, hiddenSizes: [6]))
        var random = RandomStream(seed: 3, "pool")
        let start = mlp.initialParameters(random: &random)
        let model = InMemory.model(mlp, parameters: start)
        func rows(_ n: Int) -> Dataset { InMemory.rows(n, columns: 5, random: &random) }
        let sites = (0..<3).map { SiteActor(id: "s\($0)", train: rows(40), test: rows(10), model: model, seed: 9, maxBatch: 8, pool: pool) }
        let selection = FineTuningMode.full.selection(for: mlp.layout)
        let server = FederatedServer(pretrained: start, selection: selection)
        for site in sites { await site.begin(network: mlp, parameters: start, selection: selection) }
        let configuration = TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .adam, learningRate: 0.01), epochs: 1, batchSize: 8)
        for round in 1...2 {
            let message = await server.broadcast(round: round)
            var updates: [(site: String, blob: [UInt8])] = []
            for site in sites {
                updates.append((site.id, try await site.localUpdate(arm: "a", round: round, broadcast: message, configuration: configuration).blob))
            }
            _ = await server.aggregate(round: round, updates: updates)
        }
        let final = await server.broadcast(round: 2)
        let scored = try await sites[0].evaluate(broadcast: final)
        // Scoring again gives the same scores: the released model is rebuilt from the broadcast alone.
        #expect(try await sites[0].evaluate(broadcast: final).scores == scored.scores)
        var held = 0
        for site in sites { held += await site.heldLocalParameters }
        return (await server.globalValues(), pool?.idleCount ?? 0, held)
    }

    @Test("with every tensor shared, a site keeps no model copy between rounds, nor after scoring")
    func releasedModel() async throws {
        #expect(try await Self.federate(pool: TrainerPool<MLP>(maxBatch: 8)).held == 0)
    }

    @Test("borrowing trainers from a pool gives bit-identical results to each site owning one, and the pool stays small")
    func identical() async throws {
        let own = try await Self.federate(pool: nil)
        let pool = TrainerPool<MLP>(maxBatch: 8)
        let shared = try await Self.federate(pool: pool)
        #expect(own.values == shared.values)
        // Sites trained one after another here, so one trainer served all three.
        #expect(shared.idle == 1)
    }
}
