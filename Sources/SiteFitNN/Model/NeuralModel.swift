import SiteFitCore

/// A binary-outcome network whose parameters live in one flat `Float` buffer with dotted keys:
/// what the trainer, the trainer pool, a site and a checkpoint need of a model. The MLP is one
/// conformer; a new kind of model is another, and nothing above SiteFitNN changes for it.
public protocol NeuralModel: Sendable {
    /// Scratch for one batch of passes, allocated once so that a training step allocates nothing.
    associatedtype Workspace: ModelWorkspace

    /// The named ranges of the flat parameter buffer.
    var layout: ParameterLayout { get }
    /// Features per input row.
    var inputSize: Int { get }
    /// Identifies the architecture (extensions included): two models with the same signature can
    /// share a workspace.
    var signature: String { get }

    func makeWorkspace(capacity: Int) -> Workspace
    /// Which tensors get gradients, and how far down the backward pass must go.
    func trainableMask(_ selection: ParameterSelection) -> TrainableMask
    /// Forward pass for `batch` rows of `input` (batch, inputSize); logits land in `workspace.logits`.
    /// With `training`, stochastic layers (dropout) draw from `random`. Activations are kept for `backward`.
    func forward(parameters: UnsafePointer<Float>, input: UnsafePointer<Float>, batch: Int, workspace: Workspace,
                 training: Bool, random: inout RandomStream)
    /// Backward pass after `forward` on the same batch, with ∂L/∂logit in `workspace.dLogits`.
    /// Writes ∂L/∂θ into `gradient` for trainable tensors only; fills `dInput` (batch, inputSize) when given.
    func backward(parameters: UnsafePointer<Float>, input: UnsafePointer<Float>, batch: Int, workspace: Workspace,
                  gradient: UnsafeMutablePointer<Float>, trainable: TrainableMask, dInput: UnsafeMutablePointer<Float>?)
    /// FLOPs (a multiply-add counts 2) of one example's forward and backward pass under `mask`.
    func trainingFlopsPerExample(_ mask: TrainableMask) -> Double
}

extension NeuralModel {
    /// Inference forward pass (no dropout).
    public func forward(parameters: UnsafePointer<Float>, input: UnsafePointer<Float>, batch: Int, workspace: Workspace) {
        var unused = RandomStream(seed: 0)
        forward(parameters: parameters, input: input, batch: batch, workspace: workspace, training: false, random: &unused)
    }
}

/// The part of a model's workspace the trainer uses: capacity, logits and their gradient.
public protocol ModelWorkspace: AnyObject {
    /// Rows a pass may hold.
    var capacity: Int { get }
    /// Logits of the last forward pass (the first `batch` are valid).
    var logits: UnsafeMutablePointer<Float> { get }
    /// ∂L/∂logit, written by the loss before `backward`.
    var dLogitsPointer: UnsafeMutablePointer<Float> { get }
}

/// Which tensors of a model get gradients, and the lowest part of the network that holds one:
/// nothing is propagated below it (the compute BitFit and the other partial modes save).
public struct TrainableMask: Sendable, Equatable {
    /// Per tensor, in layout order.
    public var tensors: [Bool]
    /// The lowest trainable unit of the model (its meaning is the model's), or nil when nothing trains.
    public let lowestTrainableUnit: Int?

    public init(tensors: [Bool], lowestTrainableUnit: Int?) {
        self.tensors = tensors
        self.lowestTrainableUnit = lowestTrainableUnit
    }
}
