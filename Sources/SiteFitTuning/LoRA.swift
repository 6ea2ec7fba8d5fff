import SiteFitCore
import SiteFitKernels
import SiteFitNN

/// LoRA on chosen Linear layers (Hu et al., arXiv:2106.09685): W + (α/r)·B·A with A (r, in) random
/// and B (out, r) zero at start, so the model starts unchanged.
public struct LoRAConfiguration: Sendable, Equatable, Codable {
    public var rank: Int
    public var alpha: Double
    /// Indices of the Linear layers that get LoRA factors; nil means every layer.
    public var layers: [Int]?

    public init(rank: Int, alpha: Double, layers: [Int]? = nil) {
        self.rank = rank
        self.alpha = alpha
        self.layers = layers
    }

    public var scale: Float { Float(alpha / Double(rank)) }

    /// `mlp` with the chosen Linear layers wrapped in `LoRALinear`.
    public func extend(_ mlp: MLP) -> MLP {
        mlp.extended { unit, block, _ in
            guard let linear = unit as? Linear, layers?.contains(block) ?? true else { return [unit] }
            return [LoRALinear(base: linear, rank: rank, scale: scale)]
        }
    }
}

extension FineTuningMode {
    /// The LoRA factors A and B (Hu et al., arXiv:2106.09685), optionally with the bias terms.
    public static let lora = FineTuningMode(
        name: "lora", title: "LoRA", summary: "low-rank factors A and B beside chosen Linear layers (Hu et al., arXiv:2106.09685)",
        settings: [
            ModeSetting(key: "rank", kind: .integer(1...256, expected: "a rank from 1 to 256"), defaultValue: .integer(4),
                        meaning: "r, the rank of B·A"),
            ModeSetting(key: "alpha", kind: .number(1e-3...1e4, expected: "a positive alpha"), defaultValue: .number(8),
                        meaning: "α; the update is scaled by α/r"),
            ModeSetting(key: "layers", kind: .layers, defaultValue: .layers(nil), meaning: "the Linear layers that get factors (default: all)"),
            ModeSetting(key: "train_biases", kind: .flag, defaultValue: .flag(false), meaning: "train the bias terms too"),
        ],
        selects: { spec, v in spec.role == .loraA || spec.role == .loraB || (v.flag("train_biases") && spec.role.isBiasTerm) },
        extend: { mlp, v in LoRAConfiguration(settings: v).extend(mlp) })
}

extension LoRAConfiguration {
    /// The configuration an arm's LoRA settings describe.
    public init(settings v: ModeSettingValues) {
        self.init(rank: v.integer("rank"), alpha: v.number("alpha"), layers: v.layers("layers"))
    }
}

extension TensorRole {
    /// LoRA's low-rank factors A (r, in) and B (out, r).
    public static let loraA = TensorRole("lora_a"), loraB = TensorRole("lora_b")
}

/// A Linear layer with a low-rank update: y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ + b, s = α/r.
///
/// Tensors: the base layer's weight and bias, then `<name>.lora.a` (r, in) and `<name>.lora.b`
/// (out, r). Scratch per row: u = s·x·Aᵀ (r), kept for ∂L/∂B, and its gradient (r).
public struct LoRALinear: NetworkUnit {
    public let base: Linear
    public let rank: Int
    public let scale: Float

    public init(base: Linear, rank: Int, scale: Float) {
        self.base = base
        self.rank = rank
        self.scale = scale
    }

    public var inputWidth: Int { base.inputWidth }
    public var outputWidth: Int { base.outputWidth }
    public var extraWidth: Int { rank }
    public var scratchPerRow: Int { 2 * rank }
    public var signature: String { base.signature + " + lora r\(rank) s\(scale)" }

    public var tensors: [TensorDeclaration] {
        base.tensors + [
            TensorDeclaration(name: "\(base.name).lora.a", shape: [rank, inputWidth], role: .loraA,
                              initialization: .gaussian(scale: (1.0 / Double(inputWidth)).squareRoot()), isExtension: true),
            TensorDeclaration(name: "\(base.name).lora.b", shape: [outputWidth, rank], role: .loraB,
                              initialization: .constant(0), isExtension: true),
        ]
    }

    public func forward(_ pass: UnitPass, training: Bool, random: inout RandomStream) {
        base.product(pass)
        let u = pass.scratch(at: 0)
        // (batch, r) = (batch, in)·(r, in)ᵀ, scaled; then y += u·Bᵀ before the bias, as one layer.
        Kernels.matmulTransposedB(pass.input, pass.tensor(2), u, m: pass.batch, k: inputWidth, n: rank, scratch: pass.productScratch)
        for i in 0..<(pass.batch * rank) { u[i] *= scale }
        Kernels.matmulTransposedB(u, pass.tensor(3), pass.output, m: pass.batch, k: rank, n: outputWidth, accumulate: true,
                                  scratch: pass.productScratch)
        base.addBias(pass)
    }

    public func backward(_ pass: UnitPass, dOutput: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>, wants: UnitWants) {
        base.parameterGradients(pass, dOutput: dOutput, wants: wants)
        if wants.tensor(3) {
            // ∂L/∂B = dZᵀ·u: (out, r) = (batch, out)ᵀ·(batch, r)
            Kernels.matmulTransposedA(dOutput, pass.scratch(at: 0), pass.gradient(3), m: outputWidth, k: pass.batch, n: rank,
                                      scratch: pass.productScratch)
        }
        let dU = pass.scratch(at: rank)
        Kernels.matmul(dOutput, pass.tensor(3), dU, m: pass.batch, k: outputWidth, n: rank, scratch: pass.productScratch)          // (batch, r)
        for i in 0..<(pass.batch * rank) { dU[i] *= scale }
        if wants.tensor(2) {
            // ∂L/∂A = (s·dZ·B)ᵀ·x: (r, in)
            Kernels.matmulTransposedA(dU, pass.input, pass.gradient(2), m: rank, k: pass.batch, n: inputWidth,
                                      scratch: pass.productScratch)
        }
        guard wants.propagates else { return }
        base.inputGradient(pass, dOutput: dOutput, into: dInput)
        Kernels.matmul(dU, pass.tensor(2), dInput, m: pass.batch, k: rank, n: inputWidth, accumulate: true,
                       scratch: pass.productScratch)
    }

    public func flops(wants: UnitWants) -> Double {
        let (r, i, o) = (Double(rank), Double(inputWidth), Double(outputWidth))
        var flops = base.flops(wants: wants) + 2 * r * (i + o)        // forward: x·Aᵀ, then ·Bᵀ
        if wants.receives { flops += 2 * o * r }                      // dZ·B, needed for A or below
        if wants.tensor(3) { flops += 2 * o * r }
        if wants.tensor(2) { flops += 2 * r * i }
        if wants.propagates { flops += 2 * r * i }
        return flops
    }
}
