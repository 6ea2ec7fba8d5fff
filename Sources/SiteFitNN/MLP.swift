import SiteFitCore
import SiteFitKernels

/// Shape of a multilayer perceptron: input → hidden ReLU layers → one logit.
public struct MLPConfiguration: Sendable, Equatable, Codable {
    public var inputSize: Int
    public var hiddenSizes: [Int]

    public init(inputSize: Int, hiddenSizes: [Int]) {
        self.inputSize = inputSize
        self.hiddenSizes = hiddenSizes
    }

    /// Widths of every layer's input and output, e.g. [13, 32, 16, 1].
    public var widths: [Int] { [inputSize] + hiddenSizes + [1] }
}

/// A binary-outcome MLP whose parameters live in one flat buffer with dotted keys.
///
/// Layer l computes z_l = a_{l-1} · W_lᵀ + b_l with W_l of shape (out, in) and b_l of shape (out);
/// hidden layers apply ReLU, the last layer emits one logit per patient. Keys: `layers.l.weight`,
/// `layers.l.bias`. With no hidden layer this is logistic regression.
public struct MLP: Sendable, Equatable {
    public let configuration: MLPConfiguration
    public let layout: ParameterLayout

    public init(_ configuration: MLPConfiguration) {
        self.configuration = configuration
        var layout = ParameterLayout()
        let widths = configuration.widths
        for l in 0..<(widths.count - 1) {
            layout.append(name: "layers.\(l).weight", shape: [widths[l + 1], widths[l]], role: .weight)
            layout.append(name: "layers.\(l).bias", shape: [widths[l + 1]], role: .bias)
        }
        self.layout = layout
    }

    public var layerCount: Int { configuration.widths.count - 1 }

    func weight(_ l: Int) -> TensorSpec { layout.tensors[2 * l] }
    func bias(_ l: Int) -> TensorSpec { layout.tensors[2 * l + 1] }

    /// He-initialised weights (suits ReLU) and biases at a small positive value, so BitFit has
    /// non-trivial biases to move from the start.
    public func initialParameters(random: inout RandomStream) -> [Float] {
        var buffer = [Float](repeating: 0, count: layout.count)
        for l in 0..<layerCount {
            let w = weight(l)
            let scale = (2.0 / Double(w.shape[1])).squareRoot()
            for i in w.range { buffer[i] = Float(random.gaussian() * scale) }
            for i in bias(l).range { buffer[i] = 0.01 }
        }
        return buffer
    }

    /// Forward pass for `batch` rows of `input` (batch, inputSize); logits land in
    /// `workspace.logits` (batch). Activations are kept for `backward`.
    public func forward(
        parameters: UnsafePointer<Float>, input: UnsafePointer<Float>, batch: Int, workspace: MLPWorkspace
    ) {
        precondition(batch <= workspace.capacity)
        let widths = configuration.widths
        var previous = input
        for l in 0..<layerCount {
            let out = workspace.activationPointer(l)
            // (batch, out) = (batch, in) · (out, in)ᵀ
            Kernels.matmulTransposedB(previous, parameters + weight(l).offset, out,
                                      m: batch, k: widths[l], n: widths[l + 1])
            if l == layerCount - 1 {
                Kernels.addBias(out, bias: parameters + bias(l).offset, m: batch, n: widths[l + 1])
            } else {
                Kernels.addBiasReLU(out, bias: parameters + bias(l).offset, m: batch, n: widths[l + 1])
            }
            previous = UnsafePointer(out)
        }
    }

    /// Backward pass after `forward` on the same batch. `workspace.dLogits` (batch) must hold ∂L/∂z.
    ///
    /// Writes ∂L/∂θ into `gradient` for trainable tensors only; a frozen weight skips its
    /// weight-gradient product entirely (the compute BitFit saves). `dInput` (batch, inputSize)
    /// is filled when given, for gradient checks.
    public func backward(
        parameters: UnsafePointer<Float>, input: UnsafePointer<Float>, batch: Int,
        workspace: MLPWorkspace, gradient: UnsafeMutablePointer<Float>, trainable: TrainableMask,
        dInput: UnsafeMutablePointer<Float>? = nil
    ) {
        let widths = configuration.widths
        // The earliest layer whose parameters need a gradient: below it nothing is propagated.
        let lowest = dInput != nil ? 0 : (trainable.lowestTrainableLayer ?? layerCount)
        var dOut = UnsafePointer(workspace.dLogitsPointer)
        for l in stride(from: layerCount - 1, through: 0, by: -1) where l >= lowest {
            let inWidth = widths[l], outWidth = widths[l + 1]
            let layerInput = l == 0 ? input : UnsafePointer(workspace.activationPointer(l - 1))
            if trainable.bias[l] {
                Kernels.columnSums(dOut, m: batch, n: outWidth, into: gradient + bias(l).offset)
            }
            if trainable.weight[l] {
                // (out, in) = (batch, out)ᵀ · (batch, in)
                Kernels.matmulTransposedA(dOut, layerInput, gradient + weight(l).offset,
                                          m: outWidth, k: batch, n: inWidth)
            }
            guard l > lowest || (l == 0 && dInput != nil) else { break }
            let dPrevious = l == 0 ? dInput! : workspace.deltaPointer(l - 1)
            // (batch, in) = (batch, out) · (out, in)
            Kernels.matmul(dOut, parameters + weight(l).offset, dPrevious, m: batch, k: outWidth, n: inWidth)
            if l > 0 {
                Kernels.reluBackward(dPrevious, activated: workspace.activationPointer(l - 1), count: batch * inWidth)
            }
            dOut = UnsafePointer(dPrevious)
        }
    }
}

/// Which tensors of an MLP get gradients, by layer.
public struct TrainableMask: Sendable, Equatable {
    public var weight: [Bool]
    public var bias: [Bool]

    public init(mlp: MLP, selection: ParameterSelection) {
        weight = (0..<mlp.layerCount).map { selection.contains(tensorNamed: "layers.\($0).weight") }
        bias = (0..<mlp.layerCount).map { selection.contains(tensorNamed: "layers.\($0).bias") }
    }

    var lowestTrainableLayer: Int? {
        (0..<weight.count).first { weight[$0] || bias[$0] }
    }
}

/// Scratch buffers for one MLP at a fixed maximum batch, allocated once so that a training
/// step allocates nothing. Owned by one site actor; not shared across tasks.
public final class MLPWorkspace {
    public let capacity: Int
    private let widths: [Int]
    private var activations: [UnsafeMutablePointer<Float>]
    private var deltas: [UnsafeMutablePointer<Float>]
    private let dLogitsBuffer: UnsafeMutablePointer<Float>

    public init(mlp: MLP, capacity: Int) {
        self.capacity = capacity
        widths = mlp.configuration.widths
        activations = widths.dropFirst().map { width in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: capacity * width)
            p.initialize(repeating: 0, count: capacity * width)
            return p
        }
        deltas = widths.dropFirst().map { width in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: capacity * width)
            p.initialize(repeating: 0, count: capacity * width)
            return p
        }
        dLogitsBuffer = .allocate(capacity: capacity)
        dLogitsBuffer.initialize(repeating: 0, count: capacity)
    }

    deinit {
        activations.forEach { $0.deallocate() }
        deltas.forEach { $0.deallocate() }
        dLogitsBuffer.deallocate()
    }

    func activationPointer(_ layer: Int) -> UnsafeMutablePointer<Float> { activations[layer] }
    func deltaPointer(_ layer: Int) -> UnsafeMutablePointer<Float> { deltas[layer] }

    /// Logits of the last forward pass (capacity entries; the first `batch` are valid).
    public var logits: UnsafeMutablePointer<Float> { activations[activations.count - 1] }
    /// ∂L/∂logit, written by the loss before `backward`.
    public var dLogitsPointer: UnsafeMutablePointer<Float> { dLogitsBuffer }
}

extension MLP {
    /// FLOPs (a multiply-add counts 2) of one training example's forward and backward pass under
    /// `mask`: forward products always; input-gradient products only above the lowest trainable
    /// layer; weight-gradient products only for trainable weights. This is where BitFit saves.
    public func trainingFlopsPerExample(_ mask: TrainableMask) -> Double {
        let widths = configuration.widths
        let lowest = mask.lowestTrainableLayer ?? layerCount
        var flops = 0.0
        for l in 0..<layerCount {
            let product = 2.0 * Double(widths[l]) * Double(widths[l + 1])
            flops += product
            if mask.weight[l] { flops += product }
            if l > lowest { flops += product }
        }
        return flops
    }
}
