import SiteFitCore
import SiteFitNN
import SiteFitTransformer
import SiteFitTuning

/// Training steps of the MLP 40→128→128→1 at batch 32, or of a small transformer, run so that an
/// allocation counter can show the count does not grow with the number of steps (CI preloads one).
public enum AllocationRun {
    /// Which backward path the steps exercise.
    public enum Mode: String, CaseIterable, Sendable {
        case full, lora, adapter, ia3
        case transformerFull = "transformer-full", transformerBitFit = "transformer-bitfit", transformerExtended = "transformer-extended"
    }

    /// Runs `steps` steps; returns the final loss.
    public static func run(steps: Int, mode: Mode) -> (steps: Int, finalLoss: Double) {
        switch mode {
        case .transformerFull: return transformer(steps: steps, mode: .full, extensions: .none)
        case .transformerBitFit: return transformer(steps: steps, mode: .bitfit, extensions: .none)
        case .transformerExtended:
            return transformer(steps: steps, mode: nil,
                               extensions: TransformerExtensions(lora: (rank: 4, alpha: 8), adapterBottleneck: 8, ia3: true))
        default: break
        }
        let base = MLP(MLPConfiguration(inputSize: 40, hiddenSizes: [128, 128]))
        let mlp: MLP = switch mode {
        case .full: base
        case .lora: LoRAConfiguration(rank: 8, alpha: 16).extend(base)
        case .adapter: AdapterConfiguration(bottleneck: 8).extend(base)
        case .ia3: FineTuningMode.ia3.network(extending: base)
        default: preconditionFailure("transformer modes return above")
        }
        var random = RandomStream(seed: 1, "bench", "allocations")
        var parameters = mlp.initialParameters(random: &random)
        let selection: ParameterSelection = switch mode {
        case .full: FineTuningMode.full.selection(for: mlp.layout)
        case .lora: FineTuningMode.lora.selection(for: mlp.layout)
        case .adapter: FineTuningMode.adapter.selection(for: mlp.layout)
        case .ia3: FineTuningMode.ia3.selection(for: mlp.layout)
        default: preconditionFailure("transformer modes return above")
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

    /// Steps of a small transformer (2 layers, width 32, 2 heads, 24 tokens, batch 10, varying
    /// lengths): `mode`'s tensors, or with `nil` every extension tensor and every bias at once, so
    /// that each backward path runs. 240 token rows take the products' packed route (over 192
    /// rows), so the check covers it too.
    static func transformer(steps: Int, mode: FineTuningMode?, extensions: TransformerExtensions) -> (steps: Int, finalLoss: Double) {
        let configuration = TransformerConfiguration(vocabularySize: 40, timeBuckets: 8, maxLength: 24, width: 32, heads: 2, layers: 2)
        let model = Transformer(configuration, extensions: extensions)
        var random = RandomStream(seed: 1, "bench", "allocations", "transformer")
        var parameters = model.initialParameters(random: &random)
        let selection = mode?.selection(for: model.layout)
            ?? ParameterSelection(layout: model.layout, tensorNames: model.layout.tensors
                .filter { $0.isExtension || $0.role.isBiasTerm }.map(\.name))
        let batch = 10
        let data = SyntheticSequences.dataset(configuration, patients: batch, fullLength: false, random: &random)
        var trainer = Trainer(model: model, maxBatch: batch)
        let summary = trainer.train(
            parameters: &parameters, data: data, selection: selection,
            configuration: TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .adam, learningRate: 1e-3),
                                                 epochs: steps, batchSize: batch),
            random: &random)
        return (summary.steps, summary.finalLoss)
    }
}
