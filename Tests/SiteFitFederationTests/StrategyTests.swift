import Testing
@testable import SiteFitCore
@testable import SiteFitFederation
@testable import SiteFitNN
@testable import SiteFitTuning

@Suite("Federated strategies against hand-computed values")
struct StrategyTests {
    // One coordinate: global 1.0, weighted average 1.5, so Δ = 0.5; η = 0.1, β₁ = 0.9, β₂ = 0.99, τ = 0.01.
    // m = 0.1·0.5 = 0.05 in every case; v starts at τ² = 1e-4.
    static let settings = ServerOptimizerSettings(learningRate: 0.1, beta1: 0.9, beta2: 0.99, tau: 0.01)

    @Test("FedAvg installs the average", arguments: [[Float(1.5)], [0.25, -3]])
    func fedAvg(_ average: [Float]) {
        var strategy = FedAvg()
        #expect(strategy.nextGlobal(current: [Float](repeating: 1, count: average.count), average: average) == average)
        #expect(strategy.proximalMu == 0)
    }

    @Test("FedAdam: v = 0.99·1e-4 + 0.01·0.25 = 0.002599; w = 1 + 0.1·0.05/(√v + 0.01) = 1.0819935")
    func fedAdam() {
        var strategy = FedAdam(settings: Self.settings, count: 1)
        let next = strategy.nextGlobal(current: [1], average: [1.5])
        #expect(abs(strategy.moments.first[0] - 0.05) < 1e-12)
        #expect(abs(strategy.moments.second[0] - 0.002599) < 1e-12)
        #expect(abs(Double(next[0]) - 1.0819935) < 1e-6)
    }

    @Test("FedAdam, second round from w = 1.0819935 towards 1.5: m = 0.9·0.05 + 0.1·Δ, v = 0.99·v₁ + 0.01·Δ²")
    func fedAdamSecondRound() {
        var strategy = FedAdam(settings: Self.settings, count: 1)
        let w1 = strategy.nextGlobal(current: [1], average: [1.5])
        let w2 = strategy.nextGlobal(current: w1, average: [1.5])
        let delta = 1.5 - Double(w1[0])
        let m = 0.9 * 0.05 + 0.1 * delta
        let v = 0.99 * 0.002599 + 0.01 * delta * delta
        #expect(abs(Double(w2[0]) - (Double(w1[0]) + 0.1 * m / (v.squareRoot() + 0.01))) < 1e-6)
    }

    @Test("FedYogi: v = 1e-4 − 0.01·0.25·sign(1e-4 − 0.25) = 0.0026; w = 1.0819804")
    func fedYogi() {
        var strategy = FedYogi(settings: Self.settings, count: 1)
        let next = strategy.nextGlobal(current: [1], average: [1.5])
        #expect(abs(strategy.moments.second[0] - 0.0026) < 1e-12)
        #expect(abs(Double(next[0]) - 1.0819804) < 1e-6)
        // When v already exceeds Δ², Yogi shrinks it additively: 0.5 − 0.01·0.25 = 0.4975.
        #expect(abs(FedYogi.secondMoment(0.5, squaredDelta: 0.25, beta2: 0.99) - 0.4975) < 1e-15)
    }

    @Test("FedAdagrad: v = 1e-4 + 0.25 = 0.2501; w = 1 + 0.005/(0.5001 + 0.01) = 1.0098020")
    func fedAdagrad() {
        var strategy = FedAdagrad(settings: Self.settings, count: 1)
        let next = strategy.nextGlobal(current: [1], average: [1.5])
        #expect(abs(strategy.moments.second[0] - 0.2501) < 1e-12)
        #expect(abs(Double(next[0]) - 1.0098020) < 1e-6)
    }

    @Test("FedProx's proximal gradient is μ(w − w_global), and its server step is FedAvg's")
    func fedProxPure() {
        var strategy = FedProx(mu: 0.5)
        #expect(strategy.proximalMu == 0.5)
        #expect(FedProx.proximalGradient(parameters: [2, -1], global: [1, 1], mu: 0.5) == [0.5, -1])
        #expect(strategy.nextGlobal(current: [0, 0], average: [0.25, 4]) == [0.25, 4])
    }

    @Test("personalised BitFit shares every trained tensor except the bias terms, and averages them")
    func personalized() {
        let mlp = MLP(MLPConfiguration(inputSize: 3, hiddenSizes: [4]))
        var strategy = PersonalizedBitFit()
        let trained = FineTuningMode.full.selection(for: mlp.layout)
        let shared = strategy.shared(from: trained)
        #expect(shared.tensors.allSatisfy { !$0.role.isBiasTerm })
        #expect(shared.tensorNames == ["layers.0.weight", "layers.1.weight"])
        #expect(shared.count == 3 * 4 + 4 * 1)
        #expect(strategy.nextGlobal(current: [1, 2], average: [3, 5]) == [3, 5])
        // The shared-nothing case: BitFit trains only bias terms, so a personalised BitFit-only arm shares nothing.
        #expect(strategy.shared(from: FineTuningMode.bitfit.selection(for: mlp.layout)).count == 0)
    }

    @Test("FedProx adds μ(w − w₀) to the gradient: after two SGD steps, w₂(μ) = w₂(0) − lr·μ·(w₁ − w₀)")
    func fedProx() {
        let mlp = MLP(MLPConfiguration(inputSize: 3, hiddenSizes: [4]))
        var random = RandomStream(seed: 2, "fedprox")
        let start = mlp.initialParameters(random: &random)
        let data = Dataset(features: (0..<24).map { _ in Float(random.gaussian()) }, labels: [1, 0, 1, 1, 0, 0, 1, 0], columns: 3)
        let selection = FineTuningMode.full.selection(for: mlp.layout)
        let (lr, mu) = (Float(0.1), Float(0.5))
        func run(epochs: Int, batch: Int, mu: Double) -> [Float] {
            var params = start
            var trainer = Trainer(model: mlp, maxBatch: 8)
            var shuffle = RandomStream(seed: 3, "shuffle")
            _ = trainer.train(parameters: &params, data: data, selection: selection,
                              configuration: TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .sgd, learningRate: Double(lr)),
                                                                   epochs: epochs, batchSize: batch, proximalMu: mu),
                              random: &shuffle)
            return params
        }
        // Batch 4 over 8 rows: one epoch is exactly two steps; the same shuffle in every run.
        var firstStep = start
        do {
            var trainer = Trainer(model: mlp, maxBatch: 8)
            var shuffle = RandomStream(seed: 3, "shuffle")
            var order = Array(0..<8)
            shuffle.shuffle(&order)
            let half = data.subset(Array(order.prefix(4)))
            var plain = RandomStream(seed: 0)
            _ = trainer.train(parameters: &firstStep, data: half, selection: selection,
                              configuration: TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .sgd, learningRate: Double(lr)),
                                                                   epochs: 1, batchSize: 4), random: &plain)
        }
        let withoutProx = run(epochs: 1, batch: 4, mu: 0), withProx = run(epochs: 1, batch: 4, mu: Double(mu))
        for i in start.indices {
            let expected = withoutProx[i] - lr * mu * (firstStep[i] - start[i])
            #expect(abs(withProx[i] - expected) < 1e-6, "parameter \(i)")
        }
        #expect(withProx != withoutProx)
    }

    @Test("what a strategy carries between rounds comes back: a fresh strategy given it takes the same next step; a wrong shape is refused")
    func carriedStateRestores() {
        let averages: [[Float]] = [[1.5, -0.5, 2], [1.2, 0.1, 1.7], [0.9, 0.3, 1.1]]
        let strategies: [any FederatedStrategy] = [
            FedAdam(settings: Self.settings, count: 3), FedYogi(settings: Self.settings, count: 3),
            FedAdagrad(settings: Self.settings, count: 3), FedAvgM(learningRate: 0.7, momentum: 0.9, count: 3), FedAvg(),
        ]
        for var strategy in strategies {
            var global: [Float] = [1, 0, 1.5]
            for average in averages.prefix(2) { global = strategy.nextGlobal(current: global, average: average) }
            var fresh = strategies.first { $0.name == strategy.name }!
            let restored = fresh.restore(carried: strategy.carried)
            #expect(restored, "\(strategy.name)")
            let resumedStep = fresh.nextGlobal(current: global, average: averages[2])
            let uninterruptedStep = strategy.nextGlobal(current: global, average: averages[2])
            #expect(resumedStep == uninterruptedStep, "\(strategy.name)")
            var wrong = strategies.first { $0.name == strategy.name }!
            let misshapen = strategy.carried.isEmpty ? [[0.0]] : strategy.carried.map { Array($0.dropLast()) }
            let refused = !wrong.restore(carried: misshapen)
            #expect(refused, "\(strategy.name)")
        }
    }
}
