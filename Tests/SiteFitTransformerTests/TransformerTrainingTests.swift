import Foundation
import Testing
import SiteFitCore
import SiteFitNN
import SiteFitTuning
@testable import SiteFitTransformer

@Suite("The transformer trains, and each mode trains what it says")
struct TransformerTrainingTests {
    static let small = TransformerConfiguration(vocabularySize: 20, timeBuckets: 6, maxLength: 12, width: 16, heads: 2, layers: 1,
                                                feedForwardWidth: 32)

    static func accuracy(_ model: Transformer, _ parameters: [Float], _ data: Dataset) -> Double {
        let workspace = model.makeWorkspace(capacity: data.rows)
        parameters.withUnsafeBufferPointer { p in
            data.features.withUnsafeBufferPointer { x in
                model.forward(parameters: p.baseAddress!, input: x.baseAddress!, batch: data.rows, workspace: workspace)
            }
        }
        let correct = (0..<data.rows).filter { (workspace.logits[$0] >= 0) == (data.labels[$0] >= 0.5) }.count
        return Double(correct) / Double(data.rows)
    }

    @Test("full training learns the synthetic outcome, and the same seed gives bit-identical parameters")
    func learns() {
        let model = Transformer(Self.small)
        var random = RandomStream(seed: 31, "transformer-learns")
        let train = SyntheticSequences.dataset(Self.small, patients: 384, fullLength: false, random: &random)
        let test = SyntheticSequences.dataset(Self.small, patients: 256, fullLength: false, random: &random)
        let majority = max(test.labels.filter { $0 >= 0.5 }.count, test.labels.filter { $0 < 0.5 }.count)
        func trained() -> [Float] {
            var init_ = RandomStream(seed: 31, "transformer-init")
            var parameters = model.initialParameters(random: &init_)
            var trainer = Trainer(model: model, maxBatch: 32)
            var shuffle = RandomStream(seed: 31, "transformer-shuffle")
            _ = trainer.train(parameters: &parameters, data: train, selection: FineTuningMode.full.selection(for: model.layout),
                              configuration: TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .adam, learningRate: 3e-3),
                                                                   epochs: 25, batchSize: 32),
                              random: &shuffle)
            return parameters
        }
        let parameters = trained()
        let before = Self.accuracy(model, { var r = RandomStream(seed: 31, "transformer-init"); return model.initialParameters(random: &r) }(), test)
        let after = Self.accuracy(model, parameters, test)
        #expect(after > Double(majority) / Double(test.rows) + 0.1, "accuracy \(after) (before \(before), majority \(majority)/\(test.rows))")
        #expect(trained() == parameters)
    }

    @Test("BitFit's share at the benchmark's size: every bias and LayerNorm β, under 1 % of the parameters")
    func bitFitShare() {
        let c = TransformerConfiguration(vocabularySize: 1003, timeBuckets: 16, maxLength: 128, width: 128, heads: 4, layers: 4,
                                         feedForwardWidth: 512)
        let model = Transformer(c)
        let selection = FineTuningMode.bitfit.selection(for: model.layout)
        // Per block: query/key/value 3·128, output 128, feed-forward 512 + 128, two LayerNorm β 2·128; then final β and the head's bias.
        #expect(selection.count == 4 * (3 * 128 + 128 + 512 + 128 + 2 * 128) + 128 + 1)
        let embeddings = (1003 + 16 + 128 + 2) * 128
        let block = 4 * 128 * 128 + 4 * 128 + 2 * 128 * 512 + 512 + 128 + 4 * 128
        #expect(model.layout.count == embeddings + 4 * block + 2 * 128 + 128 + 1)
        #expect(Double(selection.count) / Double(model.layout.count) < 0.01)
        #expect(FineTuningMode.head.selection(for: model.layout).count == 129)
        #expect(FineTuningMode.full.selection(for: model.layout).count == model.layout.count)
    }

    @Test("each mode's extension: LoRA on both attention projections, adapters after both sub-layers, (IA)³ on k, v and the feed-forward")
    func extensions() {
        let base = Transformer(Self.small)
        let lora = FineTuningMode.lora.transformer(extending: base)
        let loraNames = FineTuningMode.lora.selection(for: lora.layout).tensorNames
        #expect(loraNames == ["blocks.0.attention.qkv.lora.a", "blocks.0.attention.qkv.lora.b",
                              "blocks.0.attention.output.lora.a", "blocks.0.attention.output.lora.b"])
        let adapter = FineTuningMode.adapter.transformer(extending: base)
        #expect(FineTuningMode.adapter.selection(for: adapter.layout).tensorNames.count == 8)
        let ia3 = FineTuningMode.ia3.transformer(extending: base)
        #expect(FineTuningMode.ia3.selection(for: ia3.layout).tensorNames
                == ["blocks.0.attention.key.ia3.scale", "blocks.0.attention.value.ia3.scale", "blocks.0.feedforward.ia3.scale"])
        #expect(FineTuningMode.bitfit.transformer(extending: base) == base)
        var settings = FineTuningMode.lora.resolved()
        #expect(FineTuningMode.lora.transformerProblem(settings: settings) == nil)
        settings = FineTuningMode.lora.resolved(["layers": .layers([0])])
        #expect(FineTuningMode.lora.transformerProblem(settings: settings) != nil)

        // Extensions start as the identity change: the same logits as the pretrained model.
        var random = RandomStream(seed: 4, "identity")
        let pretrained = base.initialParameters(random: &random)
        let data = SyntheticSequences.dataset(Self.small, patients: 6, fullLength: false, random: &random)
        func logits(_ model: Transformer, _ parameters: [Float]) -> [Float] {
            let w = model.makeWorkspace(capacity: 6)
            parameters.withUnsafeBufferPointer { p in data.features.withUnsafeBufferPointer { x in
                model.forward(parameters: p.baseAddress!, input: x.baseAddress!, batch: 6, workspace: w)
            } }
            return Array(UnsafeBufferPointer(start: w.logits, count: 6))
        }
        let expected = logits(base, pretrained)
        for model in [lora, adapter, ia3] {
            var r = RandomStream(seed: 5, "extension")
            let got = logits(model, model.parameters(extending: pretrained, of: base, random: &r))
            #expect(zip(got, expected).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) }, "\(model.signature.prefix(60))")
        }
    }
}
