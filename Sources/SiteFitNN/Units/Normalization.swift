import SiteFitCore

/// LayerNorm over each row as a unit (the maths is `LayerNorm`): y = γ ⊙ x̂ + β.
///
/// Tensors: `<name>.gain` (n), `<name>.bias` (n). Scratch per row: x̂ (n) and 1/σ (1).
public struct LayerNormUnit: NetworkUnit {
    public let name: String
    public let width: Int

    public init(name: String, width: Int) {
        self.name = name
        self.width = width
    }

    public var inputWidth: Int { width }
    public var outputWidth: Int { width }
    public var scratchPerRow: Int { width + 1 }
    public var signature: String { "layernorm \(width)" }

    public var tensors: [TensorDeclaration] {
        [TensorDeclaration(name: "\(name).gain", shape: [width], role: .normGain, initialization: .constant(1)),
         TensorDeclaration(name: "\(name).bias", shape: [width], role: .normBias, initialization: .constant(0))]
    }

    public func forward(_ pass: UnitPass, training: Bool, random: inout RandomStream) {
        LayerNorm.forward(pass.input, gain: pass.tensor(0), bias: pass.tensor(1), y: pass.output,
                          normalized: pass.scratch(at: 0), inverseStd: pass.scratch(at: width), m: pass.batch, n: width)
    }

    public func backward(_ pass: UnitPass, dOutput: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>, wants: UnitWants) {
        LayerNorm.backward(dOutput, gain: pass.tensor(0), normalized: pass.scratch(at: 0), inverseStd: pass.scratch(at: width),
                           dX: dInput, dGain: wants.tensor(0) ? pass.gradient(0) : nil, dBias: wants.tensor(1) ? pass.gradient(1) : nil,
                           m: pass.batch, n: width)
    }

    public func flops(wants: UnitWants) -> Double { 0 }
}

/// A non-linearity as a unit: y = act(x), element-wise; x is the previous unit's output, kept
/// there for the backward pass.
public struct ActivationUnit: NetworkUnit {
    public let activation: Activation
    public let width: Int

    public init(_ activation: Activation, width: Int) {
        self.activation = activation
        self.width = width
    }

    public var inputWidth: Int { width }
    public var outputWidth: Int { width }
    public var tensors: [TensorDeclaration] { [] }
    public var signature: String { "\(activation.rawValue) \(width)" }

    public func forward(_ pass: UnitPass, training: Bool, random: inout RandomStream) {
        activation.forward(pass.input, pass.output, count: pass.batch * width)
    }

    public func backward(_ pass: UnitPass, dOutput: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>, wants: UnitWants) {
        activation.backward(dOutput, input: pass.input, dInput, count: pass.batch * width)
    }

    public func flops(wants: UnitWants) -> Double { 0 }
}

/// Inverted dropout as a unit, in place (the maths is `Dropout`): training only; the mask is
/// drawn from the caller's seeded stream and kept in scratch for the backward pass.
public struct DropoutUnit: NetworkUnit {
    public let probability: Double
    public let width: Int

    public init(probability: Double, width: Int) {
        self.probability = probability
        self.width = width
    }

    public var inputWidth: Int { width }
    public var outputWidth: Int { width }
    public var inPlace: Bool { true }
    public var scratchPerRow: Int { width }
    public var tensors: [TensorDeclaration] { [] }
    public var signature: String { "dropout \(probability)" }

    public func forward(_ pass: UnitPass, training: Bool, random: inout RandomStream) {
        guard training else { return }
        Dropout.forward(pass.output, mask: pass.scratch(at: 0), count: pass.batch * width, probability: probability, random: &random)
    }

    public func backward(_ pass: UnitPass, dOutput: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>, wants: UnitWants) {
        Dropout.backward(dInput, mask: pass.scratch(at: 0), count: pass.batch * width)
    }

    public func flops(wants: UnitWants) -> Double { 0 }
}
