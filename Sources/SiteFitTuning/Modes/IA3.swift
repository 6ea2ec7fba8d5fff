import SiteFitCore
import SiteFitNN

extension FineTuningMode {
    /// (IA)³ (Liu et al., "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than
    /// In-Context Learning", arXiv:2205.05638): a learned vector rescales each hidden block's
    /// activations, h ← l ⊙ act(z), with l = 1 at start; only the vectors train. In a transformer
    /// the paper also rescales keys and values; an MLP has only the feed-forward activations.
    public static let ia3 = FineTuningMode(
        name: "ia3", summary: "learned per-activation scaling vectors after each hidden activation (Liu et al., arXiv:2205.05638)",
        selects: { spec, _ in spec.role == .ia3Scale },
        extend: { mlp, _ in
            mlp.extended { unit, block, _ in
                guard unit is ActivationUnit else { return [unit] }
                return [unit, IA3Scale(name: "layers.\(block).ia3", width: unit.outputWidth)]
            }
        },
        modelProblem: { $0.hiddenSizes.isEmpty ? "(IA)³ rescales hidden activations; the model has none" : nil })
}

extension TensorRole {
    /// (IA)³'s scaling vector.
    public static let ia3Scale = TensorRole("ia3_scale")
}

/// y = x ⊙ l, one learned factor per column, l (n) starting at 1.
///
/// Tensor: `<name>.scale` (n). Backward: dl = Σ_rows dY ⊙ x, dX = dY ⊙ l. Element-wise, so its
/// FLOPs are not counted (as for activations and LayerNorm).
public struct IA3Scale: NetworkUnit {
    public let name: String
    public let width: Int

    public init(name: String, width: Int) {
        self.name = name
        self.width = width
    }

    public var inputWidth: Int { width }
    public var outputWidth: Int { width }
    public var signature: String { "ia3 \(width)" }

    public var tensors: [TensorDeclaration] {
        [TensorDeclaration(name: "\(name).scale", shape: [width], role: .ia3Scale, initialization: .constant(1), isExtension: true)]
    }

    public func forward(_ pass: UnitPass, training: Bool, random: inout RandomStream) {
        let l = pass.tensor(0), x = pass.input, y = pass.output
        for r in 0..<pass.batch {
            let row = r * width
            for j in 0..<width { y[row + j] = x[row + j] * l[j] }
        }
    }

    public func backward(_ pass: UnitPass, dOutput: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>, wants: UnitWants) {
        let l = pass.tensor(0), x = pass.input
        if wants.tensor(0) {
            let dl = pass.gradient(0)
            dl.update(repeating: 0, count: width)
            for r in 0..<pass.batch {
                let row = r * width
                for j in 0..<width { dl[j] += dOutput[row + j] * x[row + j] }
            }
        }
        guard wants.propagates else { return }
        for r in 0..<pass.batch {
            let row = r * width
            for j in 0..<width { dInput[row + j] = dOutput[row + j] * l[j] }
        }
    }

    public func flops(wants: UnitWants) -> Double { 0 }
}
