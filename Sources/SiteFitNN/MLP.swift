import SiteFitCore
import SiteFitKernels

/// Shape of a multilayer perceptron: input → hidden blocks → one logit.
///
/// A hidden block is Linear → [LayerNorm] → activation → [dropout]; the head is a Linear layer to
/// one logit. With no hidden layer this is logistic regression. Fine-tuning modes that add
/// tensors (LoRA, adapters, ...) extend the built `MLP`, not this configuration, so a checkpoint
/// always holds the pretrained network.
public struct MLPConfiguration: Sendable, Equatable, Codable {
    public var inputSize: Int
    public var hiddenSizes: [Int]
    public var activation: Activation
    public var layerNorm: Bool
    /// Dropout probability after each hidden activation (training only).
    public var dropout: Double

    public init(inputSize: Int, hiddenSizes: [Int], activation: Activation = .relu, layerNorm: Bool = false, dropout: Double = 0) {
        self.inputSize = inputSize
        self.hiddenSizes = hiddenSizes
        self.activation = activation
        self.layerNorm = layerNorm
        self.dropout = dropout
    }

    /// Widths of every layer's input and output, e.g. [13, 32, 16, 1].
    public var widths: [Int] { [inputSize] + hiddenSizes + [1] }
}

/// A binary-outcome MLP: a sequence of `NetworkUnit`s whose parameters live in one flat buffer.
///
/// Layer l computes z_l = a_{l−1}·W_lᵀ + b_l with W_l (out, in). Keys: `layers.l.weight`,
/// `layers.l.bias`, `layers.l.norm.gain`, `layers.l.norm.bias`; extensions add their own under
/// `layers.l.` (e.g. `layers.l.lora.a`). Units of hidden block l carry block number l, which is
/// how an extension finds where it goes.
public struct MLP: NeuralModel, Equatable {
    /// Everything about the network, immutable and shared: a site holds one reference, not a
    /// copy of every field (10,000 sites each keep their arm's network).
    final class Architecture: Sendable {
        let configuration: MLPConfiguration
        let units: [any NetworkUnit]
        let blocks: [Int]
        let layout: ParameterLayout
        let signature: String
        let offsets: [Int]
        let firstTensor: [Int]
        let initializations: [TensorInitialization]

        init(configuration: MLPConfiguration, units: [any NetworkUnit], blocks: [Int], layout: ParameterLayout, signature: String,
             offsets: [Int], firstTensor: [Int], initializations: [TensorInitialization]) {
            self.configuration = configuration
            self.units = units
            self.blocks = blocks
            self.layout = layout
            self.signature = signature
            self.offsets = offsets
            self.firstTensor = firstTensor
            self.initializations = initializations
        }
    }

    let architecture: Architecture

    /// The pretrained network's shape (without extensions).
    public var configuration: MLPConfiguration { architecture.configuration }
    public var units: [any NetworkUnit] { architecture.units }
    /// The block (layer index) of each unit.
    public var blocks: [Int] { architecture.blocks }
    public var layout: ParameterLayout { architecture.layout }
    public var signature: String { architecture.signature }
    /// How a fresh network's weights are drawn (the scheme is the same for every model).
    public typealias Initialization = SiteFitNN.Initialization
    /// Each tensor's offset, in layout order (a unit's run starts at `firstTensor[unit]`).
    var offsets: [Int] { architecture.offsets }
    var firstTensor: [Int] { architecture.firstTensor }
    /// How each tensor of `layout` is initialised, in layout order.
    var initializations: [TensorInitialization] { architecture.initializations }

    /// The pretrained network of `configuration`.
    public init(_ configuration: MLPConfiguration) {
        var units: [any NetworkUnit] = [], blocks: [Int] = []
        let widths = configuration.widths
        for l in 0..<(widths.count - 1) {
            let head = l == widths.count - 2
            units.append(Linear(name: "layers.\(l)", inputWidth: widths[l], outputWidth: widths[l + 1], isHead: head))
            blocks.append(l)
            guard !head else { continue }
            if configuration.layerNorm { units.append(LayerNormUnit(name: "layers.\(l).norm", width: widths[l + 1])); blocks.append(l) }
            units.append(ActivationUnit(configuration.activation, width: widths[l + 1]))
            blocks.append(l)
            if configuration.dropout > 0 {
                units.append(DropoutUnit(probability: configuration.dropout, width: widths[l + 1]))
                blocks.append(l)
            }
        }
        self.init(configuration: configuration, units: units, blocks: blocks)
    }

    init(configuration: MLPConfiguration, units: [any NetworkUnit], blocks: [Int]) {
        precondition(units.first.map { !$0.inPlace } ?? false, "the first unit cannot work in place over the input")
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
        architecture = Architecture(configuration: configuration, units: units, blocks: blocks, layout: layout,
                                    // Tensor names too: two networks share a workspace only if their
                                    // masks name the same tensors.
                                    signature: units.map(\.signature).joined(separator: " | ") + " [" + layout.tensors.map(\.name).joined(separator: ",") + "]",
                                    offsets: offsets,
                                    firstTensor: firstTensor, initializations: initializations)
    }

    /// This network with each unit replaced by what `transform` returns for it (itself, a unit
    /// wrapping it, or it followed by new units): how fine-tuning modes add their tensors.
    /// `transform` gets the unit, its block, and whether it is the last unit of a hidden block.
    public func extended(_ transform: (_ unit: any NetworkUnit, _ block: Int, _ endsHiddenBlock: Bool) -> [any NetworkUnit]) -> MLP {
        var newUnits: [any NetworkUnit] = [], newBlocks: [Int] = []
        let lastBlock = configuration.hiddenSizes.count
        for (i, unit) in units.enumerated() {
            let block = blocks[i]
            let endsHidden = block < lastBlock && (i + 1 == units.count || blocks[i + 1] != block)
            for replacement in transform(unit, block, endsHidden) {
                newUnits.append(replacement)
                newBlocks.append(block)
            }
        }
        return MLP(configuration: configuration, units: newUnits, blocks: newBlocks)
    }

    public static func == (a: MLP, b: MLP) -> Bool { a.configuration == b.configuration && a.signature == b.signature }

    public var inputSize: Int { configuration.inputSize }
    /// Number of Linear layers (hidden layers + head).
    public var layerCount: Int { configuration.hiddenSizes.count + 1 }

    public func makeWorkspace(capacity: Int) -> MLPWorkspace { MLPWorkspace(mlp: self, capacity: capacity) }

    /// Initial values, tensor by tensor in layout order from `random`: He-initialised (or
    /// uniform fan-in) weights, biases at a small positive value under He so BitFit has biases to
    /// move, LayerNorm γ = 1 and β = 0, and whatever each extension declares (LoRA's A random
    /// and B zero, adapters' up-projection zero: extensions start as the identity change).
    public func initialParameters(random: inout RandomStream, scheme: Initialization = .he) -> [Float] {
        var buffer = [Float](repeating: 0, count: layout.count)
        for (spec, initialization) in zip(layout.tensors, initializations) {
            switch (initialization, scheme) {
            case (.weight, .he):
                let scale = (2.0 / Double(spec.shape[1])).squareRoot()
                for i in spec.range { buffer[i] = Float(random.gaussian() * scale) }
            case (.weight, .uniformFanIn):
                let bound = 1 / Double(spec.shape[1]).squareRoot()
                for i in spec.range { buffer[i] = Float((2 * random.uniform() - 1) * bound) }
            case (.bias, .he):
                for i in spec.range { buffer[i] = 0.01 }
            case (.bias(let fanIn), .uniformFanIn):
                let bound = 1 / Double(fanIn).squareRoot()
                for i in spec.range { buffer[i] = Float((2 * random.uniform() - 1) * bound) }
            case (.gaussian(let scale), _):
                for i in spec.range { buffer[i] = Float(random.gaussian() * scale) }
            case (.constant(let value), _):
                for i in spec.range { buffer[i] = value }
            }
        }
        return buffer
    }

    /// Values for this (extended) model from a base model's parameters: shared tensors are copied
    /// by key, the extension's tensors get their initial values from `random`.
    public func parameters(extending base: [Float], of baseModel: MLP, random: inout RandomStream) -> [Float] {
        var buffer = initialParameters(random: &random)
        layout.copySharedTensors(from: base, layout: baseModel.layout, into: &buffer)
        return buffer
    }

    public func trainableMask(_ selection: ParameterSelection) -> TrainableMask {
        let tensors = layout.tensors.map { selection.contains(tensorNamed: $0.name) }
        let lowest = units.indices.first { i in (0..<units[i].tensors.count).contains { tensors[firstTensor[i] + $0] } }
        return TrainableMask(tensors: tensors, lowestTrainableUnit: lowest)
    }

    /// The pass of unit `i` over the workspace's buffers.
    @inline(__always)
    func pass(_ i: Int, _ p: UnsafePointer<Float>, input: UnsafePointer<Float>, batch: Int, workspace w: MLPWorkspace,
              gradient: UnsafeMutablePointer<Float>) -> UnitPass {
        UnitPass(parameters: p, offsets: w.offsets + firstTensor[i], input: input, output: w.outputs[i], batch: batch,
                 capacity: w.capacity, scratch: w.scratches[i], productScratch: w.productScratch, gradient: gradient)
    }

    public func forward(parameters p: UnsafePointer<Float>, input: UnsafePointer<Float>, batch: Int, workspace w: MLPWorkspace,
                        training: Bool, random: inout RandomStream) {
        precondition(batch <= w.capacity)
        let units = architecture.units
        var x = input
        for i in units.indices {
            // No gradient goes anywhere forward: the pass's gradient pointer is never written.
            units[i].forward(pass(i, p, input: x, batch: batch, workspace: w, gradient: w.dLogits), training: training, random: &random)
            x = UnsafePointer(w.outputs[i])
        }
    }

    /// Runs the units in reverse from the logits down to the lowest unit with a trainable tensor
    /// (to the input when `dInput` is given); units below it do nothing.
    public func backward(parameters p: UnsafePointer<Float>, input: UnsafePointer<Float>, batch: Int, workspace w: MLPWorkspace,
                         gradient: UnsafeMutablePointer<Float>, trainable: TrainableMask, dInput: UnsafeMutablePointer<Float>? = nil) {
        guard let lowest = dInput != nil ? 0 : trainable.lowestTrainableUnit else { return }
        let units = architecture.units, firstTensor = architecture.firstTensor
        var dOutput = w.dLogits
        for i in stride(from: units.count - 1, through: lowest, by: -1) {
            let unit = units[i]
            let dX = unit.inPlace ? dOutput : (i == 0 ? dInput ?? w.deltas[0] : w.deltas[i])
            let wants = UnitWants(mask: trainable.tensors, first: firstTensor[i], receives: true,
                                  propagates: i > lowest || dInput != nil)
            let x = i == 0 ? input : UnsafePointer(w.outputs[i - 1])
            unit.backward(pass(i, p, input: x, batch: batch, workspace: w, gradient: gradient), dOutput: dOutput, dInput: dX, wants: wants)
            dOutput = dX
        }
    }

    /// Every unit's forward products, and the backward products of those at or above the lowest
    /// trainable unit: weight gradients for trainable weights only, input gradients only above
    /// the lowest trainable unit. This is where BitFit saves.
    public func trainingFlopsPerExample(_ mask: TrainableMask) -> Double {
        units.indices.reduce(0.0) { total, i in
            let lowest = mask.lowestTrainableUnit ?? units.count
            return total + units[i].flops(wants: UnitWants(mask: mask.tensors, first: firstTensor[i], receives: i >= lowest,
                                                          propagates: i > lowest))
        }
    }
}

extension TrainableMask {
    /// The mask of `selection` in `mlp`.
    public init(mlp: MLP, selection: ParameterSelection) {
        self = mlp.trainableMask(selection)
    }
}

/// Buffers for one MLP at a fixed maximum batch, allocated once so that a training step
/// allocates nothing: each unit's output (its input is the previous unit's output), each unit's
/// ∂L/∂input, each unit's scratch, the packing space of the matrix products, and ∂L/∂logit.
/// Owned by one site actor or trainer; not shared across tasks.
public final class MLPWorkspace: ModelWorkspace {
    public let capacity: Int
    private let storage = AlignedStorage()
    let outputs: [UnsafeMutablePointer<Float>]
    let deltas: [UnsafeMutablePointer<Float>]
    let scratches: [UnsafeMutablePointer<Float>]
    let productScratch: UnsafeMutablePointer<Float>
    let dLogits: UnsafeMutablePointer<Float>
    /// The model's tensor offsets (flattened per unit), where `UnitPass` reads them.
    let offsets: UnsafeMutablePointer<Int>

    public init(mlp: MLP, capacity: Int) {
        self.capacity = capacity
        let buffer = storage.floats
        var outputs: [UnsafeMutablePointer<Float>] = []
        for unit in mlp.units {
            // An in-place unit writes over its input, the previous unit's output.
            outputs.append(unit.inPlace ? outputs[outputs.count - 1] : buffer(capacity * unit.outputWidth))
        }
        self.outputs = outputs
        dLogits = buffer(capacity)
        var deltas: [UnsafeMutablePointer<Float>] = []
        // An in-place unit passes ∂L/∂output down as ∂L/∂input in the same buffer: it needs none of its own.
        for unit in mlp.units { deltas.append(unit.inPlace ? dLogits : buffer(capacity * unit.inputWidth)) }
        self.deltas = deltas
        scratches = mlp.units.map { buffer(capacity * $0.scratchPerRow) }
        let widest = mlp.units.reduce(0) { max($0, $1.inputWidth, $1.outputWidth) }
            + mlp.units.reduce(0) { max($0, $1.extraWidth) }
        productScratch = buffer(Kernels.productScratch(rows: capacity, widest: widest))
        offsets = storage.integers(mlp.offsets)
    }

    /// Logits of the last forward pass (capacity entries; the first `batch` are valid).
    public var logits: UnsafeMutablePointer<Float> { outputs[outputs.count - 1] }
    /// ∂L/∂logit, written by the loss before `backward`.
    public var dLogitsPointer: UnsafeMutablePointer<Float> { dLogits }
}
