import Foundation
import Testing
import SiteFitCore
import SiteFitNN
@testable import SiteFitTransformer

@Suite("Masked-code pretraining")
struct MaskedCodeModellingTests {
    @Test("the objective's gradient (encoder, tied decoder, decoder bias) matches central differences; the head is never written")
    func gradient() {
        let model = Transformer(TransformerGradientTests.configuration)
        let layout = MaskedCodeModelling.layout(model)
        var random = RandomStream(seed: 29, "mlm-gradient")
        let parameters = (0..<layout.count).map { _ in Float(random.gaussian() * 0.4) }
        var input = TransformerGradientTests.input()
        // Patient 0: tokens 1 and 3 chosen (one masked, one kept); patient 1: token 0 replaced by another code.
        var targets = [Int32](repeating: -1, count: 15)
        targets[1] = 7; input[3] = 1
        targets[3] = 8
        targets[5] = 5; input[15] = 4
        let selection = MaskedCodeModelling.selection(model)
        var gradient = [Float](repeating: .nan, count: layout.count)
        let workspace = model.makeWorkspace(capacity: 3), decoder = MaskedCodeWorkspace(model: model, capacity: 3)
        let loss = parameters.withUnsafeBufferPointer { p in
            input.withUnsafeBufferPointer { x in targets.withUnsafeBufferPointer { t in gradient.withUnsafeMutableBufferPointer { g in
                model.maskedCodeLoss(parameters: p.baseAddress!, input: x.baseAddress!, targets: t.baseAddress!, batch: 3, workspace: workspace,
                                     decoder: decoder, gradient: g.baseAddress!, trainable: model.maskedCodeMask(selection))
            } } }
        }
        let reference = ReferenceTransformer(model: model)
        let p = parameters.map(Double.init)
        #expect(abs(loss - reference.maskedCodeLoss(p, input: input, targets: targets, batch: 3)) < 1e-4)
        let h = 1e-5
        for spec in layout.tensors {
            guard selection.contains(tensorNamed: spec.name) else {
                #expect(gradient[spec.range].allSatisfy { $0.isNaN }, "\(spec.name) written")
                continue
            }
            for i in spec.range {
                var plus = p, minus = p
                plus[i] += h
                minus[i] -= h
                let numeric = (reference.maskedCodeLoss(plus, input: input, targets: targets, batch: 3)
                               - reference.maskedCodeLoss(minus, input: input, targets: targets, batch: 3)) / (2 * h)
                #expect(TransformerGradientTests.agrees(gradient[i], numeric), "\(spec.name)[\(i - spec.offset)]: \(gradient[i]) vs \(numeric)")
            }
        }
    }

    @Test("corruption: about 15 % chosen, 80/10/10 masked/random/kept, padding never chosen")
    func corruption() {
        let c = TransformerConfiguration(vocabularySize: 50, timeBuckets: 4, maxLength: 100, width: 4, heads: 1, layers: 0)
        var random = RandomStream(seed: 3, "corrupt")
        var tokens = [Float](repeating: 0, count: 40 * 300)
        for r in 0..<40 { for t in 0..<80 { tokens[(r * 100 + t) * 3] = Float(3 + (r + t) % 47) } }
        let original = tokens
        var targets = [Int32](repeating: 0, count: 4000)
        let chosen = MaskedCodeModelling.corrupt(&tokens, targets: &targets, rows: 40, configuration: c, random: &random)
        #expect(abs(Double(chosen) / 3200 - 0.15) < 0.02)
        let masked = (0..<4000).filter { targets[$0] >= 0 && tokens[3 * $0] == 1 }.count
        let kept = (0..<4000).filter { targets[$0] >= 0 && tokens[3 * $0] == original[3 * $0] }.count
        #expect(abs(Double(masked) / Double(chosen) - 0.8) < 0.05 && abs(Double(kept) / Double(chosen) - 0.1) < 0.05)
        #expect((0..<4000).allSatisfy { targets[$0] < 0 || Float(targets[$0]) == original[3 * $0] })
        #expect((0..<4000).filter { $0 % 100 >= 80 }.allSatisfy { targets[$0] == -1 && tokens[3 * $0] == 0 })
    }

    @Test("pretraining learns codes from their context: the loss falls far below guessing")
    func learns() {
        // Each patient repeats one code: any unmasked token gives the masked one away.
        let c = TransformerConfiguration(vocabularySize: 23, timeBuckets: 4, maxLength: 10, width: 16, heads: 2, layers: 1, feedForwardWidth: 32)
        let model = Transformer(c)
        var random = RandomStream(seed: 8, "mlm-learns")
        var features = [Float](repeating: 0, count: 200 * 30)
        for p in 0..<200 {
            let code = Float(3 + random.int(below: 20))
            for t in 0..<(4 + p % 6) { features[(p * 10 + t) * 3] = code; features[(p * 10 + t) * 3 + 1] = Float(t % 4) }
        }
        let data = Dataset(features: features, labels: [Float](repeating: 0, count: 200), columns: 30)
        var parameters = model.initialParameters(random: &random) + [Float](repeating: 0, count: c.vocabularySize)
        let losses = MaskedCodePretrainer(model: model, maxBatch: 20).pretrain(
            parameters: &parameters, data: data, epochs: 30, batchSize: 20,
            optimizer: OptimizerConfiguration(kind: .adam, learningRate: 3e-3), random: &random)
        let guessing = log(20.0)
        #expect(losses[0] > 0.8 * guessing, "first epoch \(losses[0])")
        #expect(losses.last! < 0.25 * guessing, "last epoch \(losses.last!) (guessing \(guessing))")
    }
}
