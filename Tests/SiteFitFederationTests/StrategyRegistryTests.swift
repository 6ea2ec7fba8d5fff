import Testing
@testable import SiteFitFederation
import SiteFitTuning

@Suite("Strategies describe themselves to scenarios")
struct StrategyRegistryTests {
    @Test("names are unique, and each descriptor builds the strategy of its name", arguments: StrategyRegistry.all.map(\.name))
    func builds(_ name: String) throws {
        let descriptor = try #require(StrategyRegistry.named(name))
        #expect(StrategyRegistry.all.filter { $0.name == name }.count == 1)
        #expect(descriptor.make(options: [:], trainedCount: 3).name == name)
        #expect(!descriptor.summary.isEmpty && descriptor.summary.contains("arXiv:"))
        for setting in descriptor.settings { #expect(setting.range.contains(setting.defaultValue)) }
    }

    @Test("a setting left out takes its default; one given is used; keys a strategy does not read are dropped")
    func settings() {
        #expect(FedProx.descriptor.make(options: [:], trainedCount: 0).proximalMu == 0.01)
        #expect(FedProx.descriptor.make(options: ["proximal_mu": 0.5], trainedCount: 0).proximalMu == 0.5)
        let adam = FedAdam.descriptor.make(options: ["server_tau": 0.001], trainedCount: 2) as? FedAdam
        #expect(adam?.settings == ServerOptimizerSettings(learningRate: 0.01, beta1: 0.9, beta2: 0.999, tau: 0.001))
        #expect(adam?.moments.second == [1e-6, 1e-6])
        #expect(FedAvg.descriptor.resolved(["proximal_mu": 1]).isEmpty)
        #expect(FedYogi.descriptor.resolved([:]) == ["server_learning_rate": 0.01, "server_beta1": 0.9, "server_beta2": 0.999, "server_tau": 1e-8])
    }

    @Test("the registry lists every setting key once, in the strategies' order, and who reads each")
    func keys() {
        #expect(StrategyRegistry.all.prefix(6).map(\.name) == ["fedavg", "fedprox", "fedadam", "fedyogi", "fedadagrad", "personalized"])
        #expect(Array(StrategyRegistry.settingKeys.prefix(5)) == ["proximal_mu", "server_learning_rate", "server_beta1", "server_beta2", "server_tau"])
        #expect(StrategyRegistry.reading("proximal_mu").map(\.name) == ["fedprox"])
        #expect(StrategyRegistry.standard.name == "fedavg")
    }

    @Test("personalized refuses modes that train only bias terms", arguments: FineTuningMode.allCases)
    func personalizedModes(_ mode: FineTuningMode) {
        let refused = PersonalizedBitFit.descriptor.problem(with: mode) != nil
        #expect(refused == ![FineTuningMode.full, .bitfitHead, .head].contains(mode))
        #expect(FedAvg.descriptor.problem(with: mode) == nil)
    }
}
