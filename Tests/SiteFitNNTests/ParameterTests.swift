import Testing
@testable import SiteFitCore
@testable import SiteFitNN
@testable import SiteFitTuning

@Suite("Flat parameter buffer, selections and fine-tuning modes")
struct ParameterTests {
    let mlp = MLP(MLPConfiguration(inputSize: 4, hiddenSizes: [3, 2]))

    @Test("tensors are laid out contiguously with dotted keys")
    func layout() {
        let names = mlp.layout.tensors.map(\.name)
        #expect(names == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
                          "layers.2.weight", "layers.2.bias"])
        #expect(mlp.layout.tensors.map(\.offset) == [0, 12, 15, 21, 23, 25])
        #expect(mlp.layout.count == 26)
        #expect(mlp.layout.tensor(named: "layers.1.weight")?.shape == [2, 3])
    }

    @Test("the bitfit selection contains exactly the bias tensors")
    func bitfitSelection() {
        let selection = FineTuningMode.bitfit.selection(for: mlp.layout)
        #expect(selection.tensorNames == ["layers.0.bias", "layers.1.bias", "layers.2.bias"])
        #expect(selection.ranges == [12..<15, 21..<23, 25..<26])
        #expect(selection.count == 6)
    }

    @Test("the full selection is one merged range")
    func fullSelection() {
        let selection = FineTuningMode.full.selection(for: mlp.layout)
        #expect(selection.ranges == [0..<26])
        #expect(selection.count == mlp.layout.count)
    }

    @Test("gather then scatter round-trips and leaves other ranges alone")
    func gatherScatter() {
        let selection = FineTuningMode.bitfit.selection(for: mlp.layout)
        let buffer = (0..<26).map(Float.init)
        #expect(selection.gather(from: buffer) == [12, 13, 14, 21, 22, 25])
        var target = [Float](repeating: -1, count: 26)
        selection.scatter([1, 2, 3, 4, 5, 6], into: &target)
        #expect(target[12..<15] == [1, 2, 3])
        #expect(target[25] == 6)
        #expect(target[0] == -1 && target[15] == -1)
    }

    @Test("one Adam step moves each parameter by the learning rate against the gradient's sign")
    func adamStep() {
        // m = 0.1·g, v = 0.001·g²; α = lr·√(1−β2)/(1−β1); step = α·m/√v = lr·sign(g) (ε aside).
        let selection = ParameterSelection(layout: mlp.layout, tensorNames: ["layers.2.bias"])
        var optimizer = Optimizer(OptimizerConfiguration(kind: .adam, learningRate: 0.1), selection: selection)
        var params = [Float](repeating: 1, count: 26)
        var gradient = [Float](repeating: 0.5, count: 26)
        gradient[25] = -2
        optimizer.update(parameters: &params, gradient: &gradient)
        #expect(abs(params[25] - 1.1) < 1e-6)
        #expect(params[0] == 1, "an unselected parameter must not move")
        #expect(optimizer.stateBytes == 2 * 4, "state only for the one selected scalar")
        // second step with the same gradient: m̂ = g, v̂ = g² again → another lr·sign(g)
        optimizer.update(parameters: &params, gradient: &gradient)
        #expect(abs(params[25] - 1.2) < 1e-5)
    }

    @Test("SGD with momentum follows v ← μv + g, θ ← θ − lr·v")
    func sgdMomentum() {
        let selection = FineTuningMode.full.selection(for: mlp.layout)
        var optimizer = Optimizer(OptimizerConfiguration(kind: .sgd, learningRate: 0.1, momentum: 0.9), selection: selection)
        var params = [Float](repeating: 1, count: 26)
        var gradient = [Float](repeating: 0.5, count: 26)
        optimizer.update(parameters: &params, gradient: &gradient)
        #expect(abs(params[3] - 0.95) < 1e-6)
        optimizer.update(parameters: &params, gradient: &gradient)
        #expect(abs(params[3] - 0.855) < 1e-6)
    }

    @Test("training with BitFit changes biases only")
    func bitfitTrainingFreezesWeights() {
        var random = RandomStream(seed: 1, "bitfit-training")
        let before = mlp.initialParameters(random: &random)
        var params = before
        let data = Dataset(features: (0..<40).map { _ in Float(random.gaussian()) }, labels: (0..<10).map { Float($0 % 2) }, columns: 4)
        var trainer = Trainer(model: mlp, maxBatch: 4)
        let selection = FineTuningMode.bitfit.selection(for: mlp.layout)
        var shuffle = RandomStream(seed: 1, "shuffle")
        _ = trainer.train(parameters: &params, data: data, selection: selection,
                          configuration: TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .adam, learningRate: 0.05),
                                                               epochs: 3, batchSize: 4), random: &shuffle)
        for spec in mlp.layout.tensors {
            let changed = spec.range.contains { params[$0] != before[$0] }
            #expect(changed == spec.role.isBiasTerm, "\(spec.name)")
        }
    }

    @Test("training FLOPs: BitFit skips every weight-gradient product")
    func flops() {
        let full = mlp.trainingFlopsPerExample(TrainableMask(mlp: mlp, selection: FineTuningMode.full.selection(for: mlp.layout)))
        let bitfit = mlp.trainingFlopsPerExample(TrainableMask(mlp: mlp, selection: FineTuningMode.bitfit.selection(for: mlp.layout)))
        // products: 4·3, 3·2, 2·1 = 12, 6, 2 multiply-adds (×2 FLOPs)
        // full: forward 40 + weight grads 40 + input grads of layers 1, 2: 16 = 96
        #expect(full == 96)
        // bitfit: forward 40 + input grads 16 = 56
        #expect(bitfit == 56)
    }
}
