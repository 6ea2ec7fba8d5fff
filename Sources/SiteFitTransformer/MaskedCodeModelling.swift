import Foundation
import SiteFitCore
import SiteFitKernels
import SiteFitNN

/// Masked-code modelling, the pretraining objective of BERT (Devlin et al. 2019) as Med-BERT
/// (Rasmy et al. 2021) applies it to diagnosis codes: 15 % of the real tokens are chosen, and of
/// those 80 % become the mask id, 10 % a random code and 10 % stay; the model predicts each chosen
/// token's original code from its final hidden state, through a decoder tied to the code
/// embedding (logits = h·E_codeᵀ + b) with one bias per code.
///
/// The decoder bias `mlm.bias` lives after the model's tensors in `pretrainingLayout`, so the
/// fine-tuned model (and what sites send) never holds it.
public enum MaskedCodeModelling {
    /// The share of real tokens chosen, and how a chosen token is corrupted.
    public static let chosenShare = 0.15, maskedShare = 0.8, randomShare = 0.1

    /// The pretraining parameter layout: the model's, then `mlm.bias` (vocabulary).
    public static func layout(_ model: Transformer) -> ParameterLayout {
        var layout = model.layout
        layout.append(name: "mlm.bias", shape: [model.configuration.vocabularySize], role: .bias)
        return layout
    }

    /// What masked-code pretraining trains: every tensor but the task head (which this objective
    /// never reaches), and the decoder bias.
    public static func selection(_ model: Transformer) -> ParameterSelection {
        let layout = layout(model)
        return ParameterSelection(layout: layout, tensorNames: layout.tensors.filter { !$0.name.hasPrefix("head.") }.map(\.name))
    }

    /// Corrupts `rows` patients' token rows in place and writes each token's target (its original
    /// code where chosen, −1 elsewhere) into `targets` (rows·maxLength). Returns the number chosen.
    public static func corrupt(_ tokens: UnsafeMutablePointer<Float>, targets: UnsafeMutablePointer<Int32>, rows: Int,
                               configuration c: TransformerConfiguration, random: inout RandomStream) -> Int {
        var chosen = 0
        let codes = c.vocabularySize - TransformerConfiguration.Token.firstCode
        for t in 0..<(rows * c.maxLength) {
            let code = tokens[3 * t]
            targets[t] = -1
            // Only real codes are chosen (padding, the mask, unknown and out-of-range ids never are),
            // and the draw is made for every token so the stream does not depend on which are real.
            let draw = random.uniform()
            guard code >= Float(TransformerConfiguration.Token.firstCode), code < Float(c.vocabularySize), draw < chosenShare else { continue }
            targets[t] = Int32(code)
            chosen += 1
            let u = random.uniform()
            if u < maskedShare {
                tokens[3 * t] = Float(TransformerConfiguration.Token.mask)
            } else if u < maskedShare + randomShare {
                tokens[3 * t] = Float(TransformerConfiguration.Token.firstCode + random.int(below: codes))
            }
        }
        return chosen
    }
}

/// The decoder's buffers for one batch size, allocated once (a pretraining step allocates nothing).
public final class MaskedCodeWorkspace {
    let tokenCapacity: Int
    private let storage = AlignedStorage()
    let positions: UnsafeMutablePointer<Int32>
    let hidden: UnsafeMutablePointer<Float>
    let logits: UnsafeMutablePointer<Float>
    let dHidden: UnsafeMutablePointer<Float>
    let productScratch: UnsafeMutablePointer<Float>
    /// Every code kept in the decoder's softmax.
    let ones: UnsafeMutablePointer<Float>

    public init(model: Transformer, capacity: Int) {
        let c = model.configuration
        tokenCapacity = capacity * c.maxLength
        positions = storage.integers([Int32](repeating: 0, count: tokenCapacity))
        hidden = storage.floats(tokenCapacity * c.width)
        logits = storage.floats(tokenCapacity * c.vocabularySize)
        dHidden = storage.floats(tokenCapacity * c.width)
        productScratch = storage.floats(max(Kernels.transposedBScratch(m: tokenCapacity, k: c.width, n: c.vocabularySize),
                                            Kernels.transposedAScratch(m: c.vocabularySize, k: tokenCapacity, n: c.width),
                                            Kernels.matmulScratch(m: tokenCapacity, k: c.vocabularySize, n: c.width)))
        ones = storage.floats(c.vocabularySize)
        ones.update(repeating: 1, count: c.vocabularySize)
    }
}

extension Transformer {
    /// Masked-code modelling's mean cross-entropy over the chosen tokens of `batch` corrupted
    /// patients, and its gradient: `parameters` and `gradient` are in `MaskedCodeModelling.layout`
    /// (the decoder bias after the model's tensors); only `trainable`'s tensors are written.
    /// `targets` holds each token's original code where chosen, −1 elsewhere. Returns the loss
    /// (0, with nothing written, when no token is chosen).
    public func maskedCodeLoss(parameters p: UnsafePointer<Float>, input: UnsafePointer<Float>, targets: UnsafePointer<Int32>, batch: Int,
                               workspace w: TransformerWorkspace, decoder m: MaskedCodeWorkspace,
                               gradient: UnsafeMutablePointer<Float>, trainable: TrainableMask) -> Double {
        let c = configuration, d = c.width, v = c.vocabularySize, tokens = batch * c.maxLength
        var chosen = 0
        // A target outside the vocabulary is never predicted (`corrupt` writes none).
        for t in 0..<tokens where targets[t] >= 0 && Int(targets[t]) < v {
            m.positions[chosen] = Int32(t)
            chosen += 1
        }
        guard chosen > 0 else { return 0 }
        forward(parameters: p, input: input, batch: batch, workspace: w)
        let embedding = p + layout.tensors[0].offset, bias = p + layout.count
        // h (chosen, d): the final hidden states of the chosen tokens; logits (chosen, v) = h·Eᵀ + b.
        Kernels.embeddingGather(w.outputs[architecture.finalNorm], indices: m.positions, rows: chosen, width: d, into: m.hidden, accumulate: false)
        Kernels.matmulTransposedB(m.hidden, embedding, m.logits, m: chosen, k: d, n: v, bias: bias, scratch: m.productScratch)
        // Softmax in place (every code kept; the reserved ids are simply never targets), then
        // ∂(mean loss)/∂logit = (p − onehot)/chosen.
        Kernels.maskedSoftmax(m.logits, keep: m.ones, rows: chosen, columns: v, scale: 1)
        var loss = 0.0
        let inverse = 1 / Float(chosen)
        Kernels.scale(m.logits, by: inverse, count: chosen * v)
        for r in 0..<chosen {
            let row = m.logits + r * v, target = Int(targets[Int(m.positions[r])])
            loss -= Double(logf(max(row[target] * Float(chosen), .leastNormalMagnitude)))
            row[target] -= inverse
        }
        let embeddingTrains = trainable.tensors[0]
        let biasIndex = trainable.tensors.count - 1
        // The encoder's backward pass first: it writes (not adds) the embedding's gradient, to which the decoder's adds.
        Kernels.matmul(m.logits, embedding, m.dHidden, m: chosen, k: v, n: d, scratch: m.productScratch)                       // ∂L/∂h = dlogits·E
        w.deltaA.update(repeating: 0, count: tokens * d)
        Kernels.embeddingScatter(m.dHidden, indices: m.positions, rows: chosen, width: d, into: w.deltaA)
        // The mask's last entry (the decoder bias) is beyond every unit's tensors: the encoder never reads it.
        backwardBelowPool(parameters: p, input: input, batch: batch, workspace: w, gradient: gradient, trainable: trainable)
        if embeddingTrains {
            Kernels.matmulTransposedA(m.logits, m.hidden, gradient + layout.tensors[0].offset, m: v, k: chosen, n: d, accumulate: true,
                                      scratch: m.productScratch)                                     // ∂L/∂E += dlogitsᵀ·h
        }
        if trainable.tensors[biasIndex] { Kernels.columnSums(m.logits, m: chosen, n: v, into: gradient + layout.count) }
        return loss / Double(chosen)
    }

    /// The trainable mask of a pretraining selection (over `MaskedCodeModelling.layout`).
    public func maskedCodeMask(_ selection: ParameterSelection) -> TrainableMask {
        let modelMask = trainableMask(selection)
        return TrainableMask(tensors: modelMask.tensors + [selection.contains(tensorNamed: "mlm.bias")],
                             lowestTrainableUnit: modelMask.lowestTrainableUnit)
    }
}

/// Pretrains a transformer by masked-code modelling on unlabelled sequences (the source population,
/// or an OMOP shard's histories): Adam over every tensor but the head, a fresh corruption of each
/// batch from `random`.
public struct MaskedCodePretrainer {
    public let model: Transformer
    let workspace: TransformerWorkspace
    let decoder: MaskedCodeWorkspace
    public let maxBatch: Int

    public init(model: Transformer, maxBatch: Int) {
        self.model = model
        self.maxBatch = maxBatch
        workspace = model.makeWorkspace(capacity: maxBatch)
        decoder = MaskedCodeWorkspace(model: model, capacity: maxBatch)
    }

    /// Runs `epochs` epochs over `data` (labels unused); `parameters` are in
    /// `MaskedCodeModelling.layout` (start the decoder bias at 0). Returns each epoch's mean loss over its chosen tokens.
    public func pretrain(parameters: inout [Float], data: Dataset, epochs: Int, batchSize: Int, optimizer configuration: OptimizerConfiguration,
                         random: inout RandomStream) -> [Double] {
        precondition(data.columns == model.inputSize && batchSize <= maxBatch)
        precondition(parameters.count == MaskedCodeModelling.layout(model).count)
        let selection = MaskedCodeModelling.selection(model)
        let mask = model.maskedCodeMask(selection)
        var optimizer = Optimizer(configuration, selection: selection)
        var gradient = [Float](repeating: 0, count: parameters.count)
        var batchTokens = [Float](repeating: 0, count: maxBatch * model.inputSize)
        var targets = [Int32](repeating: -1, count: maxBatch * model.configuration.maxLength)
        var order = Array(0..<data.rows)
        var losses: [Double] = []
        let columns = data.columns
        for _ in 0..<epochs {
            random.shuffle(&order)
            var total = 0.0, weight = 0.0, start = 0
            while start < order.count {
                let batch = min(batchSize, order.count - start)
                data.features.withUnsafeBufferPointer { source in
                    batchTokens.withUnsafeMutableBufferPointer { target in
                        order.withUnsafeBufferPointer { order in
                            Kernels.gatherRows(source.baseAddress!, columns: columns, rows: UnsafeBufferPointer(rebasing: order[start..<(start + batch)]),
                                               into: target.baseAddress!)
                        }
                    }
                }
                let chosen = batchTokens.withUnsafeMutableBufferPointer { x in
                    targets.withUnsafeMutableBufferPointer { t in
                        MaskedCodeModelling.corrupt(x.baseAddress!, targets: t.baseAddress!, rows: batch, configuration: model.configuration,
                                                    random: &random)
                    }
                }
                if chosen > 0 {
                    let loss = parameters.withUnsafeMutableBufferPointer { p in
                        gradient.withUnsafeMutableBufferPointer { g in
                            batchTokens.withUnsafeBufferPointer { x in
                                targets.withUnsafeBufferPointer { t in
                                    let loss = model.maskedCodeLoss(parameters: p.baseAddress!, input: x.baseAddress!, targets: t.baseAddress!,
                                                                    batch: batch, workspace: workspace, decoder: decoder,
                                                                    gradient: g.baseAddress!, trainable: mask)
                                    optimizer.update(parameters: p.baseAddress!, gradient: g.baseAddress!)
                                    return loss
                                }
                            }
                        }
                    }
                    total += loss * Double(chosen)
                    weight += Double(chosen)
                }
                start += batch
            }
            losses.append(weight > 0 ? total / weight : .nan)
        }
        return losses
    }
}
