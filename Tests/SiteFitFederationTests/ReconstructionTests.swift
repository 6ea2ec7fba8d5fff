import Testing
@testable import SiteFitCore
@testable import SiteFitFederation
@testable import SiteFitNN
import SiteFitTuning
import Foundation

@Suite("Reconstruction attacks")
struct ReconstructionTests {
    let mlp = MLP(MLPConfiguration(inputSize: 6, hiddenSizes: [32, 8]))

    /// `rows` standard-normal patients with alternating labels, and the update one site sends after
    /// `steps` full-batch SGD steps at learning rate 0.05 on them, under `mode`.
    func update(rows: Int, steps: Int, mode: FineTuningMode, seed: UInt64 = 1)
        -> (delta: [Float], knowledge: ReconstructionAttack.Knowledge<MLP>, data: Dataset) {
        var random = RandomStream(seed: seed, "reconstruction-test")
        let start = mlp.initialParameters(random: &random)
        let data = Dataset(features: (0..<(rows * 6)).map { _ in Float(random.gaussian()) },
                           labels: (0..<rows).map { Float($0 % 2) }, columns: 6)
        let selection = mode.selection(for: mlp.layout)
        var trainer = Trainer(model: mlp, maxBatch: rows)
        var parameters = start
        _ = trainer.train(parameters: &parameters, data: data, selection: selection,
                          configuration: TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .sgd, learningRate: 0.05),
                                                               epochs: 1, batchSize: rows, steps: steps),
                          random: &random)
        let delta = zip(selection.gather(from: parameters), selection.gather(from: start)).map { $0 - $1 }
        return (delta, .init(network: mlp, parameters: start, shared: selection, learningRate: 0.05, batchSize: rows, localSteps: steps), data)
    }

    @Test("the analytic attack returns one patient's features from a full update to 1e-4")
    func analyticExact() throws {
        for seed in UInt64(1)...5 {
            let (delta, knowledge, data) = update(rows: 1, steps: 1, mode: .full, seed: seed)
            let candidates = try #require(ReconstructionAttack.analytic(delta, knowledge: knowledge))
            #expect(!candidates.isEmpty, "seed \(seed): the patient activates some input-layer row")
            let worst = zip(candidates[0], data.features).map { abs($0 - $1) }.max() ?? .infinity
            #expect(worst < 1e-4, "seed \(seed): the pooled estimate is the patient, off by \(worst)")
            for candidate in candidates.dropFirst() {
                let each = zip(candidate, data.features).map { abs($0 - $1) }.max() ?? .infinity
                #expect(each < 1e-3, "seed \(seed): every row the patient moved gives them back, off by \(each)")
            }
        }
    }

    @Test("one patient stays exact over ten steps; a batch of 8 makes every ratio a mixture and the error grows")
    func analyticDegrades() throws {
        func error(rows: Int, steps: Int) -> Double {
            let (delta, knowledge, data) = update(rows: rows, steps: steps, mode: .full)
            let candidates = ReconstructionAttack.analytic(delta, knowledge: knowledge)!.flatMap { $0 }
            return ReconstructionScore.score(candidates, batch: data.features, heldOut: [], columns: 6, binary: []).error
        }
        let single = error(rows: 1, steps: 1)
        #expect(single < 1e-4)
        #expect(error(rows: 1, steps: 10) < 1e-4, "every step moves the row along the same x")
        #expect(error(rows: 8, steps: 1) > 0.05)
        #expect(error(rows: 8, steps: 10) > 0.05)
    }

    @Test("logistic regression's full update is its own input layer: one patient comes back exactly")
    func logisticRegression() throws {
        let logistic = MLP(MLPConfiguration(inputSize: 6, hiddenSizes: []))
        var random = RandomStream(seed: 8, "logistic")
        let start = logistic.initialParameters(random: &random)
        let data = Dataset(features: (0..<6).map { _ in Float(random.gaussian()) }, labels: [1], columns: 6)
        let selection = FineTuningMode.full.selection(for: logistic.layout)
        var trainer = Trainer(model: logistic, maxBatch: 1)
        var parameters = start
        _ = trainer.train(parameters: &parameters, data: data, selection: selection,
                          configuration: TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .sgd, learningRate: 0.05),
                                                               epochs: 1, batchSize: 1, steps: 1), random: &random)
        let delta = zip(selection.gather(from: parameters), selection.gather(from: start)).map { $0 - $1 }
        let knowledge = ReconstructionAttack.Knowledge(network: logistic, parameters: start, shared: selection, learningRate: 0.05,
                                                       batchSize: 1, localSteps: 1)
        let candidates = try #require(ReconstructionAttack.analytic(delta, knowledge: knowledge))
        #expect((zip(candidates[0], data.features).map { abs($0 - $1) }.max() ?? 1) < 1e-4)
        // The head alone of a network with hidden layers reads hidden units, not features.
        let (headDelta, headKnowledge, _) = update(rows: 1, steps: 1, mode: .head)
        #expect(ReconstructionAttack.analytic(headDelta, knowledge: headKnowledge) == nil)
    }

    @Test("BitFit, LoRA, adapters and the head carry no input layer: the analytic attack does not apply")
    func analyticNotApplicable() {
        for mode in [FineTuningMode.bitfit, .head] {
            let (delta, knowledge, _) = update(rows: 1, steps: 1, mode: mode)
            #expect(ReconstructionAttack.analytic(delta, knowledge: knowledge) == nil, "\(mode.name)")
        }
        // LoRA (with its bias terms too) and adapters extend the network; the input layer's weight stays frozen.
        let lora = FineTuningMode.lora, adapter = FineTuningMode.adapter
        for (mode, settings) in [(lora, lora.resolved(["train_biases": .flag(true)])), (adapter, adapter.resolved())] {
            let network = mode.network(extending: mlp, settings: settings)
            let selection = mode.selection(for: network.layout, settings: settings)
            #expect(!selection.tensorNames.isEmpty)
            #expect(ReconstructionAttack.inputLayer(network.layout, inputSize: 6, shared: selection) == nil, "\(mode.name)")
        }
        #expect(ReconstructionAttack.inputLayer(mlp.layout, inputSize: 6, shared: FineTuningMode.full.selection(for: mlp.layout)) != nil)
    }

    @Test("the head bias's change gives the batch's outcome rate minus its mean predicted risk, exactly at one step")
    func outcomeGap() throws {
        let (delta, knowledge, data) = update(rows: 4, steps: 1, mode: .bitfit)
        let gap = try #require(ReconstructionAttack.outcomeGap(delta, knowledge: knowledge))
        let workspace = mlp.makeWorkspace(capacity: 4)
        let risks: [Double] = knowledge.parameters.withUnsafeBufferPointer { p in
            data.features.withUnsafeBufferPointer { x in
                mlp.forward(parameters: p.baseAddress!, input: x.baseAddress!, batch: 4, workspace: workspace)
                return (0..<4).map { 1 / (1 + Foundation.exp(-Double(workspace.logits[$0]))) }
            }
        }
        let truth = Double(data.labels.reduce(0, +)) / 4 - risks.reduce(0, +) / 4
        #expect(abs(gap - truth) < 1e-4)
    }

    @Test("the optimisation attack fits a full update's patient far better than a guess from the prior, and BitFit's worse")
    func optimisationAttack() {
        func fitted(_ mode: FineTuningMode) -> (error: Double, distance: Double) {
            let (delta, knowledge, data) = update(rows: 1, steps: 1, mode: mode)
            var random = RandomStream(seed: 3, "attack")
            let fit = ReconstructionAttack.optimisation(delta, knowledge: knowledge, settings: .init(budget: 400), random: &random)
            return (ReconstructionScore.score(fit.features, batch: data.features, heldOut: [], columns: 6, binary: []).error, fit.distance)
        }
        let full = fitted(.full), bitfit = fitted(.bitfit)
        #expect(full.distance < 0.01, "the fit matches the update's direction")
        #expect(full.error < 0.2, "the patient is recovered closely (a prior guess is off by about 1.1 per feature)")
        #expect(bitfit.error > full.error)
    }

    @Test("scores: error, binary F1 and identification against hand-computed values")
    func scoreByHand() {
        // Two columns, the second binary with threshold 0. Patient (1, 1); reconstructions (0, 1) and (5, −1).
        let score = ReconstructionScore.score([0, 1, 5, -1], batch: [1, 1], heldOut: [0.2, 1, 3, 3], columns: 2, binary: [(1, 0)])
        #expect(score.error == 0.5)   // closest is (0, 1): |0 − 1| and |1 − 1| over 2 columns
        #expect(score.truePositives == 1 && score.falsePositives == 0 && score.falseNegatives == 0 && score.f1 == 1)
        #expect(score.identified == 0, "(0, 1) lies nearer the held-out (0.2, 1) than the patient")
        let far = ReconstructionScore.score([1.1, 1], batch: [1, 1], heldOut: [0.2, 1], columns: 2, binary: [(1, 0)])
        #expect(far.identified == 1)
        let miss = ReconstructionScore.score([1, -1], batch: [1, 1, 2, -1], heldOut: [], columns: 2, binary: [(1, 0)])
        #expect(miss.truePositives == 0 && miss.falseNegatives == 1 && miss.f1 == 0)
        #expect(miss.identified.isNaN, "no held-out patient: identification is undefined, not certain")
        // One-to-one: two patients near (0, 0) cannot both claim the guess at (0, 0); the second gets (10, 10).
        let matched = ReconstructionScore.score([0, 0, 10, 10], batch: [0, 0, 0.1, 0], heldOut: [], columns: 2, binary: [])
        #expect(abs(matched.error - (0 + (9.9 + 10) / 2) / 2) < 1e-6)
    }
}
