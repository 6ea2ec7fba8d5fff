import SiteFitCore
import SiteFitNN
import SiteFitTuning

/// Training steps of the MLP 40→128→128→1 at batch 32, run so that an allocation counter can
/// show the count does not grow with the number of steps (CI preloads one).
public enum AllocationRun {
    /// Which backward path the steps exercise.
    public enum Mode: String, CaseIterable, Sendable {
        case full, lora, adapter, ia3
    }

    /// Runs `steps` steps; returns the final loss.
    public static func run(steps: Int, mode: Mode) -> (steps: Int, finalLoss: Double) {
        let base = MLP(MLPConfiguration(inputSize: 40, hiddenSizes: [128, 128]))
        let mlp: MLP = switch mode {
        case .full: base
        case .lora: LoRAConfiguration(rank: 8, alpha: 16).extend(base)
        case .adapter: AdapterConfiguration(bottleneck: 8).extend(base)
        case .ia3: FineTuningMode.ia3.network(extending: base)
        }
        var random = RandomStream(seed: 1, "bench", "allocations")
        var parameters = mlp.initialParameters(random: &random)
        let selection: ParameterSelection = switch mode {
        case .full: FineTuningMode.full.selection(for: mlp.layout)
        case .lora: FineTuningMode.lora.selection(for: mlp.layout)
        case .adapter: FineTuningMode.adapter.selection(for: mlp.layout)
        case .ia3: FineTuningMode.ia3.selection(for: mlp.layout)
        }
        let batch = 32
        let data = Dataset(features: (0..<(batch * 40)).map { _ in Float(random.gaussian()) },
                           labels: (0..<batch).map { _ in random.bernoulli(0.3) ? 1 : 0 }, columns: 40)
        var trainer = Trainer(model: mlp, maxBatch: batch)
        // One epoch of one batch is one step; `steps` epochs in one call keep per-call set-up out of the count.
        let summary = trainer.train(
            parameters: &parameters, data: data, selection: selection,
            configuration: TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .adam, learningRate: 1e-3),
                                                 epochs: steps, batchSize: batch),
            random: &random)
        return (summary.steps, summary.finalLoss)
    }
}
