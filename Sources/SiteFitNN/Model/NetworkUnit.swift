import SiteFitCore

/// One forward/backward unit of a sequential network (a Linear layer, LayerNorm, an activation,
/// an adapter, ...). A unit declares the tensors it owns; the network places them in its flat
/// buffer, gives the unit its input and output buffers and a scratch region, and runs the units
/// in order forward and in reverse backward. Fine-tuning modes in SiteFitTuning add units of
/// their own (LoRA, adapters, (IA)³) without the network knowing them.
///
/// Legend for shapes: `batch` rows; `in` and `out` the unit's input and output widths.
public protocol NetworkUnit: Sendable {
    var inputWidth: Int { get }
    var outputWidth: Int { get }
    /// The tensors it owns, in layout order.
    var tensors: [TensorDeclaration] { get }
    /// Floats of scratch per batch row that the unit keeps from forward to backward.
    var scratchPerRow: Int { get }
    /// True when the output is written over the input (element-wise units): the network then
    /// gives no output buffer of its own, and `dOutput` and `dInput` are the same buffer.
    var inPlace: Bool { get }
    /// The largest width, beyond input and output, that its matrix products use (LoRA's rank,
    /// an adapter's bottleneck): sizes the shared packing space.
    var extraWidth: Int { get }
    /// A short description ("linear 40→128"), part of the network's signature.
    var signature: String { get }

    /// y = f(x) for `pass.batch` rows. With `training`, stochastic units draw from `random`.
    func forward(_ pass: UnitPass, training: Bool, random: inout RandomStream)
    /// Given ∂L/∂y in `dOutput`, writes ∂L/∂θ of wanted tensors into `pass.gradient` (not
    /// accumulated) and, when `wants.propagates`, ∂L/∂x into `dInput`. `dOutput` may be used
    /// as scratch.
    func backward(_ pass: UnitPass, dOutput: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>, wants: UnitWants)
    /// FLOPs of one example (multiply-adds count 2): the forward products, and the backward
    /// products the unit runs under `wants`.
    func flops(wants: UnitWants) -> Double
}

extension NetworkUnit {
    public var inPlace: Bool { false }
    public var extraWidth: Int { 0 }
    public var scratchPerRow: Int { 0 }
}

/// A tensor a unit owns: its full dotted key, shape, role and how a fresh network initialises it.
public struct TensorDeclaration: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var role: TensorRole
    public var initialization: TensorInitialization
    /// Added by a fine-tuning mode, not part of the pretrained network.
    public var isExtension: Bool

    public init(name: String, shape: [Int], role: TensorRole, initialization: TensorInitialization, isExtension: Bool = false) {
        self.name = name
        self.shape = shape
        self.role = role
        self.initialization = initialization
        self.isExtension = isExtension
    }
}

/// How a fresh tensor is filled. Tensors are initialised in layout order from one stream, so the
/// order of declarations is part of a model's reproducibility.
public enum TensorInitialization: Sendable, Equatable {
    /// A weight with fan-in shape[1]: He normal, or U(±1/√fan_in), by the network's scheme.
    case weight
    /// A bias of a layer with this fan-in: 0.01 under He, U(±1/√fan_in) under the uniform scheme.
    case bias(fanIn: Int)
    /// N(0, scale²) whatever the scheme (LoRA's A).
    case gaussian(scale: Double)
    /// Every value the same (LayerNorm γ = 1, zero-started up-projections and factors).
    case constant(Float)
}

/// How a fresh network's weights are drawn.
public enum Initialization: String, Sendable, Equatable, CaseIterable {
    /// He normal for weights (ReLU networks), biases 0.01: SiteFit's default for pretraining.
    case he
    /// U(−1/√fan_in, 1/√fan_in) for weights and biases, PyTorch's `nn.Linear` default; used to
    /// reproduce benchmarks trained from scratch in PyTorch (FLamby).
    case uniformFanIn = "uniform_fan_in"
}

/// Where a unit works during one pass: its parameters, input and output, its scratch region
/// (capacity × scratchPerRow) and the shared packing space for matrix products.
public struct UnitPass {
    /// The network's flat parameter buffer; `offsets[k]` is where the unit's tensor k starts.
    public let parameters: UnsafePointer<Float>
    public let offsets: UnsafePointer<Int>
    public let input: UnsafePointer<Float>
    public let output: UnsafeMutablePointer<Float>
    public let batch: Int
    public let capacity: Int
    public let scratch: UnsafeMutablePointer<Float>
    public let productScratch: UnsafeMutablePointer<Float>
    /// The network's gradient buffer (backward only; unused forward).
    public let gradient: UnsafeMutablePointer<Float>

    /// A pass for a model that runs units itself (the transformer runs them over token rows).
    public init(parameters: UnsafePointer<Float>, offsets: UnsafePointer<Int>, input: UnsafePointer<Float>,
                output: UnsafeMutablePointer<Float>, batch: Int, capacity: Int, scratch: UnsafeMutablePointer<Float>,
                productScratch: UnsafeMutablePointer<Float>, gradient: UnsafeMutablePointer<Float>) {
        self.parameters = parameters
        self.offsets = offsets
        self.input = input
        self.output = output
        self.batch = batch
        self.capacity = capacity
        self.scratch = scratch
        self.productScratch = productScratch
        self.gradient = gradient
    }

    /// The unit's tensor k.
    @inline(__always)
    public func tensor(_ k: Int) -> UnsafePointer<Float> { parameters + offsets[k] }
    /// Where the gradient of the unit's tensor k goes.
    @inline(__always)
    public func gradient(_ k: Int) -> UnsafeMutablePointer<Float> { gradient + offsets[k] }
    /// The part of the unit's scratch that starts `floatsPerRow` floats per row in: a unit keeping
    /// buffers of widths a and b finds them at `scratch(at: 0)` and `scratch(at: a)`.
    @inline(__always)
    public func scratch(at floatsPerRow: Int) -> UnsafeMutablePointer<Float> { scratch + capacity * floatsPerRow }
}

/// What the backward pass wants of a unit: gradients of which of its tensors, and whether
/// ∂L/∂x must be passed down (false for the lowest unit with a trainable tensor).
public struct UnitWants {
    let mask: [Bool]
    let first: Int
    /// Some unit at or below this one trains: the gradient reaches it.
    public let receives: Bool
    /// Some unit below this one trains (or the caller asked for ∂L/∂input): pass ∂L/∂x down.
    public let propagates: Bool

    public init(mask: [Bool], first: Int, receives: Bool, propagates: Bool) {
        self.mask = mask
        self.first = first
        self.receives = receives
        self.propagates = propagates
    }

    /// Whether the unit's tensor k is trainable.
    @inline(__always)
    public func tensor(_ k: Int) -> Bool { receives && mask[first + k] }
}
