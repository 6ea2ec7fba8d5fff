import SiteFitCore
import SiteFitKernels
import SiteFitNN
import SiteFitTuning

/// An encoder over each patient's code sequence with one logit (BEHRT, Li et al. 2020; Med-BERT,
/// Rasmy et al. 2021), as a conformer of `NeuralModel`: the trainer, the sites and the server
/// take it as they take the MLP.
///
/// Block l (pre-LayerNorm, Xiong et al., arXiv:2002.04745):
///   m = x + Adapter?(Wₒ·Attention(IA3?(W_qkv·LN₁(x))))
///   x′ = m + Adapter?(W₂·IA3?(GELU(W₁·LN₂(m))))
/// then LN_final, the mean over real tokens, and the head. Keys: `embedding.*`,
/// `blocks.l.attention.{norm,qkv,output}.*`, `blocks.l.feedforward.{norm,inner,outer}.*`,
/// `final_norm.*`, `head.*`; extensions add `.lora.*`, `.adapter.*` and `.ia3.scale` beside them.
///
/// The linear pieces are the MLP's units (Linear, LoRALinear, Adapter, IA3Scale, LayerNormUnit)
/// run over token rows; attention, the residual sums and the pool are the transformer's own.
public struct Transformer: NeuralModel, Equatable {
    /// Unit indices of one encoder block (nil: that extension is absent).
    struct Block: Sendable {
        var attentionNorm = 0, qkv = 0, keyValueScale: Int?, output = 0, attentionAdapter: Int?
        var feedForwardNorm = 0, inner = 0, activation = 0, feedForwardScale: Int?, outer = 0, feedForwardAdapter: Int?

        /// The attention branch's units before and after the attention core, and the feed-forward
        /// branch's, in forward order (stored: a training step builds no arrays).
        private(set) var beforeAttention: [Int] = [], afterAttention: [Int] = [], feedForward: [Int] = []

        mutating func seal() {
            beforeAttention = [attentionNorm, qkv] + (keyValueScale.map { [$0] } ?? [])
            afterAttention = [output] + (attentionAdapter.map { [$0] } ?? [])
            feedForward = [feedForwardNorm, inner, activation] + (feedForwardScale.map { [$0] } ?? []) + [outer]
                + (feedForwardAdapter.map { [$0] } ?? [])
        }
    }

    /// Everything about the network, immutable and shared.
    final class Architecture: Sendable {
        let configuration: TransformerConfiguration
        let extensions: TransformerExtensions
        let units: [any NetworkUnit]
        let blocks: [Block]
        let finalNorm: Int
        let head: Int
        let layout: ParameterLayout
        let signature: String
        let offsets: [Int]
        let firstTensor: [Int]
        let initializations: [TensorInitialization]

        init(configuration: TransformerConfiguration, extensions: TransformerExtensions) {
            self.configuration = configuration
            self.extensions = extensions
            let c = configuration, d = c.width
            var units: [any NetworkUnit] = [EmbeddingUnit(c)]
            func add(_ unit: any NetworkUnit) -> Int {
                units.append(unit)
                return units.count - 1
            }
            func linear(_ name: String, _ input: Int, _ output: Int, lora: Bool) -> any NetworkUnit {
                let base = Linear(name: name, inputWidth: input, outputWidth: output)
                guard lora, let (rank, alpha) = extensions.lora else { return base }
                return LoRALinear(base: base, rank: rank, scale: Float(alpha / Double(rank)))
            }
            var blocks: [Block] = []
            for l in 0..<c.layers {
                let p = "blocks.\(l)"
                var block = Block()
                block.attentionNorm = add(LayerNormUnit(name: "\(p).attention.norm", width: d))
                block.qkv = add(linear("\(p).attention.qkv", d, 3 * d, lora: true))
                if extensions.ia3 { block.keyValueScale = add(KeyValueScale(name: "\(p).attention", width: d)) }
                block.output = add(linear("\(p).attention.output", d, d, lora: true))
                if let m = extensions.adapterBottleneck {
                    block.attentionAdapter = add(Adapter(name: "\(p).attention.adapter", width: d, bottleneck: m, activation: .gelu))
                }
                block.feedForwardNorm = add(LayerNormUnit(name: "\(p).feedforward.norm", width: d))
                block.inner = add(linear("\(p).feedforward.inner", d, c.feedForwardWidth, lora: false))
                block.activation = add(ActivationUnit(.gelu, width: c.feedForwardWidth))
                if extensions.ia3 { block.feedForwardScale = add(IA3Scale(name: "\(p).feedforward.ia3", width: c.feedForwardWidth)) }
                block.outer = add(linear("\(p).feedforward.outer", c.feedForwardWidth, d, lora: false))
                if let m = extensions.adapterBottleneck {
                    block.feedForwardAdapter = add(Adapter(name: "\(p).feedforward.adapter", width: d, bottleneck: m, activation: .gelu))
                }
                block.seal()
                blocks.append(block)
            }
            finalNorm = add(LayerNormUnit(name: "final_norm", width: d))
            head = add(Linear(name: "head", inputWidth: d, outputWidth: 1, isHead: true))
            self.units = units
            self.blocks = blocks

            var layout = ParameterLayout()
            var offsets: [Int] = [], firstTensor: [Int] = [], initializations: [TensorInitialization] = []
            for unit in units {
                firstTensor.append(layout.tensors.count)
                for declaration in unit.tensors {
                    offsets.append(layout.count)
                    layout.append(name: declaration.name, shape: declaration.shape, role: declaration.role, isExtension: declaration.isExtension)
                    initializations.append(declaration.initialization)
                }
            }
            self.layout = layout
            self.offsets = offsets
            self.firstTensor = firstTensor
            self.initializations = initializations
            signature = "transformer \(c.layers)×\(c.width)/\(c.heads) ff\(c.feedForwardWidth) len\(c.maxLength) | "
                + units.map(\.signature).joined(separator: " | ") + " [" + layout.tensors.map(\.name).joined(separator: ",") + "]"
        }
    }

    let architecture: Architecture

    /// The pretrained network of `configuration`, with the tensors of `extensions` added.
    public init(_ configuration: TransformerConfiguration, extensions: TransformerExtensions = .none) {
        architecture = Architecture(configuration: configuration, extensions: extensions)
    }

    public static func == (a: Transformer, b: Transformer) -> Bool { a.signature == b.signature }

    public var configuration: TransformerConfiguration { architecture.configuration }
    public var extensions: TransformerExtensions { architecture.extensions }
    public var layout: ParameterLayout { architecture.layout }
    public var signature: String { architecture.signature }
    public var inputSize: Int { configuration.inputSize }
    var units: [any NetworkUnit] { architecture.units }

    /// This transformer with other extensions (the pretrained tensors keep their names).
    public func extended(_ extensions: TransformerExtensions) -> Transformer { Transformer(configuration, extensions: extensions) }

    public func makeWorkspace(capacity: Int) -> TransformerWorkspace { TransformerWorkspace(model: self, capacity: capacity) }

    /// Initial values in layout order from `random` (BERT's scheme, Devlin et al. 2019): weights and
    /// embeddings N(0, 0.02²), biases 0, LayerNorm γ = 1; extensions as they declare (LoRA's A
    /// random and B zero, adapters' up-projection zero, (IA)³ at 1: the identity change).
    public func initialParameters(random: inout RandomStream) -> [Float] {
        var buffer = [Float](repeating: 0, count: layout.count)
        for (spec, initialization) in zip(layout.tensors, architecture.initializations) {
            switch initialization {
            case .weight:
                for i in spec.range { buffer[i] = Float(random.gaussian() * 0.02) }
            case .bias:
                break
            case .gaussian(let scale):
                for i in spec.range { buffer[i] = Float(random.gaussian() * scale) }
            case .constant(let value):
                for i in spec.range { buffer[i] = value }
            }
        }
        return buffer
    }

    /// Values for this (extended) model from a base model's parameters: shared tensors are copied
    /// by key, the extension's tensors get their initial values from `random`.
    public func parameters(extending base: [Float], of baseModel: Transformer, random: inout RandomStream) -> [Float] {
        var buffer = initialParameters(random: &random)
        layout.copySharedTensors(from: base, layout: baseModel.layout, into: &buffer)
        return buffer
    }

    public func trainableMask(_ selection: ParameterSelection) -> TrainableMask {
        let tensors = layout.tensors.map { selection.contains(tensorNamed: $0.name) }
        let first = architecture.firstTensor
        let lowest = units.indices.first { i in (0..<units[i].tensors.count).contains { tensors[first[i] + $0] } }
        return TrainableMask(tensors: tensors, lowestTrainableUnit: lowest)
    }

    /// Token rows per example that unit i sees: every unit works on tokens but the head, which sees the pooled patient.
    func rowsPerExample(_ i: Int) -> Int { i == architecture.head ? 1 : configuration.maxLength }

    /// Products of every unit over its rows, the attention core's (4·S²·d forward, 8·S²·d backward
    /// when some unit below it trains), and the backward products down to the lowest trainable unit.
    public func trainingFlopsPerExample(_ mask: TrainableMask) -> Double {
        let lowest = mask.lowestTrainableUnit ?? units.count
        let first = architecture.firstTensor
        var flops = 0.0
        for i in units.indices {
            let wants = UnitWants(mask: mask.tensors, first: first[i], receives: i >= lowest, propagates: i > lowest)
            flops += Double(rowsPerExample(i)) * units[i].flops(wants: wants)
        }
        let s = Double(configuration.maxLength), d = Double(configuration.width)
        for block in architecture.blocks {
            flops += 4 * s * s * d
            if lowest <= (block.keyValueScale ?? block.qkv) { flops += 8 * s * s * d }
        }
        return flops
    }
}
