import Testing
@testable import SiteFitCore
@testable import SiteFitFederation

@Suite("FedAvgM against hand-computed values")
struct FedAvgMTests {
    // η = 1, β = 0.5, w₀ = [1, −2]; every value below is exact in binary, so the test can demand equality.
    // Round 1, average [1.5, −1]: Δ = w − average = [−0.5, −1]; v = 0.5·0 + Δ = [−0.5, −1];
    //   w₁ = w₀ − v = [1.5, −1] (from v = 0 with η = 1 the first step is FedAvg's).
    // Round 2, average [2, −1]: Δ = [−0.5, 0]; v = 0.5·[−0.5, −1] + Δ = [−0.75, −0.5];
    //   w₂ = [2.25, −0.5]: momentum moves the second value although the sites agreed with w₁.
    // Round 3, average [2, −1]: Δ = [0.25, 0.5]; v = 0.5·[−0.75, −0.5] + Δ = [−0.125, 0.25];
    //   w₃ = [2.375, −0.75].
    @Test("three rounds with η = 1, β = 0.5: w = [1.5, −1], [2.25, −0.5], [2.375, −0.75]")
    func threeRounds() {
        var strategy = FedAvgM(learningRate: 1, momentum: 0.5, count: 2)
        let w1 = strategy.nextGlobal(current: [1, -2], average: [1.5, -1])
        #expect(w1 == [1.5, -1])
        #expect(strategy.velocity == [-0.5, -1])
        let w2 = strategy.nextGlobal(current: w1, average: [2, -1])
        #expect(w2 == [2.25, -0.5])
        #expect(strategy.velocity == [-0.75, -0.5])
        let w3 = strategy.nextGlobal(current: w2, average: [2, -1])
        #expect(w3 == [2.375, -0.75])
        #expect(strategy.velocity == [-0.125, 0.25])
    }

    // η = 0.5, β = 0.9, w₀ = 1, average 3 both rounds. Round 1: Δ = −2, v = −2, w₁ = 1 + 0.5·2 = 2.
    // Round 2: Δ = −1, v = 0.9·(−2) − 1 = −2.8, w₂ = 2 + 0.5·2.8 = 3.4 (0.9 is not exact in binary).
    @Test("η scales the step: η = 0.5, β = 0.9 gives w = 2, then 3.4")
    func learningRate() {
        var strategy = FedAvgM(learningRate: 0.5, momentum: 0.9, count: 1)
        let w1 = strategy.nextGlobal(current: [1], average: [3])
        #expect(w1 == [2])
        let w2 = strategy.nextGlobal(current: w1, average: [3])
        #expect(abs(strategy.velocity[0] - -2.8) < 1e-12)
        #expect(abs(Double(w2[0]) - 3.4) < 1e-6)
    }

    @Test("with η = 1 and β = 0 every round installs exactly what FedAvg installs")
    func equalsFedAvg() {
        var momentum = FedAvgM(learningRate: 1, momentum: 0, count: 64)
        var plain = FedAvg()
        var random = RandomStream(seed: 7, "fedavgm-equals-fedavg")
        var w = (0..<64).map { _ in Float(random.uniform() * 2 - 1) }
        for _ in 0..<5 {
            // Averages near the current model, as one round of local training leaves them.
            let average = w.map { $0 + Float(random.uniform() * 0.2 - 0.1) }
            let next = momentum.nextGlobal(current: w, average: average)
            #expect(next == plain.nextGlobal(current: w, average: average))
            w = next
        }
    }

    @Test("scenarios build it with η = 1 and β = 0.9 unless the arm says otherwise")
    func descriptor() throws {
        let built = try #require(StrategyRegistry.named("fedavgm")?.make(options: [:], trainedCount: 3) as? FedAvgM)
        #expect(built.learningRate == 1 && built.momentum == 0.9 && built.velocity == [0, 0, 0])
        let tuned = FedAvgM.descriptor.make(options: ["server_momentum": 0, "server_learning_rate": 0.5], trainedCount: 1) as? FedAvgM
        #expect(tuned?.momentum == 0 && tuned?.learningRate == 0.5)
        #expect(FedAvgM.momentumSetting.range.contains(0) && !FedAvgM.momentumSetting.range.contains(1))
    }
}
