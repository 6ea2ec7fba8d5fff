import Testing
@testable import SiteFitCore
@testable import SiteFitFederation
@testable import SiteFitNN
@testable import SiteFitTuning

@Suite("Server optimisers and FedProx against hand-computed values")
struct StrategyTests {
    // One coordinate: global 1.0, weighted average 1.5, so Δ = 0.5; η = 0.1, β₁ = 0.9, β₂ = 0.99, τ = 0.01.
    // m = 0.1·0.5 = 0.05 in every case; v starts at τ² = 1e-4.
    static let settings = ServerOptimizerSettings(learningRate: 0.1, beta1: 0.9, beta2: 0.99, tau: 0.01)

    @Test("FedAvg installs the average", arguments: [[Float(1.5)], [0.25, -3]])
    func fedAvg(_ average: [Float]) {
        var state = ServerOptimizerState(count: average.count, optimizer: .fedAvg)
        #expect(state.step(global: [Float](repeating: 1, count: average.count), average: average, optimizer: .fedAvg) == average)
    }

    @Test("FedAdam: v = 0.99·1e-4 + 0.01·0.25 = 0.002599; w = 1 + 0.1·0.05/(√v + 0.01) = 1.0819935")
    func fedAdam() {
        var state = ServerOptimizerState(count: 1, optimizer: .fedAdam(Self.settings))
        let next = state.step(global: [1], average: [1.5], optimizer: .fedAdam(Self.settings))
        #expect(abs(state.secondMoment[0] - 0.002599) < 1e-12)
        #expect(abs(Double(next[0]) - 1.0819935) < 1e-6)
    }

    @Test("FedYogi: v = 1e-4 − 0.01·0.25·sign(1e-4 − 0.25) = 0.0026; w = 1.0819804")
    func fedYogi() {
        var state = ServerOptimizerState(count: 1, optimizer: .fedYogi(Self.settings))
        let next = state.step(global: [1], average: [1.5], optimizer: .fedYogi(Self.settings))
        #expect(abs(state.secondMoment[0] - 0.0026) < 1e-12)
        #expect(abs(Double(next[0]) - 1.0819804) < 1e-6)
    }

    @Test("FedAdagrad: v = 1e-4 + 0.25 = 0.2501; w = 1 + 0.005/(0.5001 + 0.01) = 1.0098020")
    func fedAdagrad() {
        var state = ServerOptimizerState(count: 1, optimizer: .fedAdagrad(Self.settings))
        let next = state.step(global: [1], average: [1.5], optimizer: .fedAdagrad(Self.settings))
        #expect(abs(state.secondMoment[0] - 0.2501) < 1e-12)
        #expect(abs(Double(next[0]) - 1.0098020) < 1e-6)
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
            var trainer = Trainer(mlp: mlp, maxBatch: 8)
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
            var trainer = Trainer(mlp: mlp, maxBatch: 8)
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
}
