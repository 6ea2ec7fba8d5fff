import SiteFitCore
import SiteFitKernels
import SiteFitNN

/// Houlsby-style adapters (arXiv:1902.00751) after each hidden block: a ← a + U·act(D·a + d) + u,
/// a bottleneck d → m → d whose up-projection starts at zero, so the model starts unchanged.
public struct AdapterConfiguration: Sendable, Equatable, Codable {
    public var bottleneck: Int

    public init(bottleneck: Int) {
        self.bottleneck = bottleneck
    }

    /// `mlp` with an adapter after every hidden block (the head gets none).
    public func extend(_ mlp: MLP) -> MLP {
        let activation = mlp.configuration.activation
        return mlp.extended { unit, block, endsHiddenBlock in
            guard endsHiddenBlock else { return [unit] }
            return [unit, Adapter(name: "layers.\(block).adapter", width: unit.outputWidth, bottleneck: bottleneck, activation: activation)]
        }
    }
}

extension FineTuningMode {
    /// The adapters only (Houlsby et al., arXiv:1902.00751).
    public static let adapter = FineTuningMode(
        name: "adapter", summary: "bottleneck adapters after each hidden block (Houlsby et al., arXiv:1902.00751)",
        settings: [ModeSetting(key: "bottleneck", kind: .integer(1...1024, expected: "a width from 1 to 1024"), defaultValue: .integer(8),
                               meaning: "m, the adapter's inner width")],
        selects: { spec, _ in spec.role == .adapterWeight || spec.role == .adapterBias },
        extend: { mlp, v in AdapterConfiguration(bottleneck: v.integer("bottleneck")).extend(mlp) },
        modelProblem: { $0.hiddenSizes.isEmpty ? "adapters sit after hidden layers; the model has none" : nil })
}

extension TensorRole {
    /// An adapter's down/up projection weights and biases.
    public static let adapterWeight = TensorRole("adapter_weight"), adapterBias = TensorRole("adapter_bias")
}

/// A bottleneck adapter with a residual: y = x + act(x·Dᵀ + d)·Uᵀ + u, D (m, n), U (n, m).
///
/// Tensors: `<name>.down.weight` (m, n), `<name>.down.bias` (m), `<name>.up.weight` (n, m),
/// `<name>.up.bias` (n). Scratch per row: the bottleneck before and after the activation, and
/// its gradient (3m).
public struct Adapter: NetworkUnit {
    public let name: String
    public let width: Int
    public let bottleneck: Int
    public let activation: Activation

    public init(name: String, width: Int, bottleneck: Int, activation: Activation) {
        self.name = name
        self.width = width
        self.bottleneck = bottleneck
        self.activation = activation
    }

    public var inputWidth: Int { width }
    public var outputWidth: Int { width }
    public var extraWidth: Int { bottleneck }
    public var scratchPerRow: Int { 3 * bottleneck }
    public var signature: String { "adapter \(width)→\(bottleneck) \(activation.rawValue)" }

    public var tensors: [TensorDeclaration] {
        [TensorDeclaration(name: "\(name).down.weight", shape: [bottleneck, width], role: .adapterWeight, initialization: .weight, isExtension: true),
         TensorDeclaration(name: "\(name).down.bias", shape: [bottleneck], role: .adapterBias, initialization: .constant(0), isExtension: true),
         TensorDeclaration(name: "\(name).up.weight", shape: [width, bottleneck], role: .adapterWeight, initialization: .constant(0), isExtension: true),
         TensorDeclaration(name: "\(name).up.bias", shape: [width], role: .adapterBias, initialization: .constant(0), isExtension: true)]
    }

    public func forward(_ pass: UnitPass, training: Bool, random: inout RandomStream) {
        let (m, batch) = (bottleneck, pass.batch)
        let pre = pass.scratch(at: 0), act = pass.scratch(at: m)
        Kernels.matmulTransposedB(pass.input, pass.tensor(0), pre, m: batch, k: width, n: m, scratch: pass.productScratch)
        Kernels.addBias(pre, bias: pass.tensor(1), m: batch, n: m)
        activation.forward(pre, act, count: batch * m)
        pass.output.update(from: pass.input, count: batch * width)                            // residual
        Kernels.matmulTransposedB(act, pass.tensor(2), pass.output, m: batch, k: m, n: width, accumulate: true,
                                  scratch: pass.productScratch)
        Kernels.addBias(pass.output, bias: pass.tensor(3), m: batch, n: width)
    }

    /// ∂L/∂x = dY + (act′ ⊙ dY·U)·D. Always computed when the gradient reaches the adapter (its
    /// FLOP count includes it), even when nothing below trains.
    public func backward(_ pass: UnitPass, dOutput: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>, wants: UnitWants) {
        let (m, batch) = (bottleneck, pass.batch)
        if wants.tensor(3) { Kernels.columnSums(dOutput, m: batch, n: width, into: pass.gradient(3)) }
        if wants.tensor(2) {
            Kernels.matmulTransposedA(dOutput, pass.scratch(at: m), pass.gradient(2), m: width, k: batch, n: m,
                                      scratch: pass.productScratch)
        }
        let dAct = pass.scratch(at: 2 * m)
        Kernels.matmul(dOutput, pass.tensor(2), dAct, m: batch, k: width, n: m, scratch: pass.productScratch)                 // (batch, m)
        activation.backward(dAct, input: pass.scratch(at: 0), dAct, count: batch * m)
        if wants.tensor(1) { Kernels.columnSums(dAct, m: batch, n: m, into: pass.gradient(1)) }
        if wants.tensor(0) {
            Kernels.matmulTransposedA(dAct, pass.input, pass.gradient(0), m: m, k: batch, n: width, scratch: pass.productScratch)
        }
        if dInput != dOutput { dInput.update(from: dOutput, count: batch * width) }
        Kernels.matmul(dAct, pass.tensor(0), dInput, m: batch, k: m, n: width, accumulate: true, scratch: pass.productScratch)
    }

    public func flops(wants: UnitWants) -> Double {
        let (n, m) = (Double(width), Double(bottleneck))
        var flops = 4 * n * m                                         // down and up projections
        if wants.receives {
            flops += 4 * n * m                                        // back through up, then down
            if wants.tensor(2) { flops += 2 * n * m }
            if wants.tensor(0) { flops += 2 * n * m }
        }
        return flops
    }
}
