import SiteFitCore
import SiteFitKernels

/// A fully connected layer: y = x·Wᵀ + b with W (out, in) and b (out).
///
/// Tensors: `<name>.weight` (out, in), `<name>.bias` (out). The forward pass is split into the
/// product and the bias so that a unit wrapping it (LoRA) can add its own term in between, in
/// the same order as before the wrap.
public struct Linear: NetworkUnit {
    public let name: String
    public let inputWidth: Int
    public let outputWidth: Int
    /// The task head (the last layer): its tensors have the head roles.
    public let isHead: Bool

    public init(name: String, inputWidth: Int, outputWidth: Int, isHead: Bool = false) {
        self.name = name
        self.inputWidth = inputWidth
        self.outputWidth = outputWidth
        self.isHead = isHead
    }

    public var tensors: [TensorDeclaration] {
        [TensorDeclaration(name: "\(name).weight", shape: [outputWidth, inputWidth], role: isHead ? .headWeight : .weight,
                           initialization: .weight),
         TensorDeclaration(name: "\(name).bias", shape: [outputWidth], role: isHead ? .headBias : .bias,
                           initialization: .bias(fanIn: inputWidth))]
    }

    public var signature: String { "linear \(inputWidth)→\(outputWidth)" }

    public func forward(_ pass: UnitPass, training: Bool, random: inout RandomStream) {
        // One call: on the transformer's token rows the bias is added as the product stores C.
        Kernels.matmulTransposedB(pass.input, pass.tensor(0), pass.output, m: pass.batch, k: inputWidth, n: outputWidth,
                                  bias: pass.tensor(1), scratch: pass.productScratch)
    }

    /// y ← x·Wᵀ: (batch, out) = (batch, in)·(out, in)ᵀ.
    public func product(_ pass: UnitPass) {
        Kernels.matmulTransposedB(pass.input, pass.tensor(0), pass.output, m: pass.batch, k: inputWidth, n: outputWidth,
                                  scratch: pass.productScratch)
    }

    /// y ← y + b.
    public func addBias(_ pass: UnitPass) {
        Kernels.addBias(pass.output, bias: pass.tensor(1), m: pass.batch, n: outputWidth)
    }

    public func backward(_ pass: UnitPass, dOutput: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>, wants: UnitWants) {
        parameterGradients(pass, dOutput: dOutput, wants: wants)
        if wants.propagates { inputGradient(pass, dOutput: dOutput, into: dInput) }
    }

    /// db = Σ_rows dY; dW = dYᵀ·x: (out, in) = (batch, out)ᵀ·(batch, in). A frozen weight skips
    /// its product: that is where BitFit saves compute.
    public func parameterGradients(_ pass: UnitPass, dOutput: UnsafePointer<Float>, wants: UnitWants) {
        if wants.tensor(1) { Kernels.columnSums(dOutput, m: pass.batch, n: outputWidth, into: pass.gradient(1)) }
        if wants.tensor(0) {
            Kernels.matmulTransposedA(dOutput, pass.input, pass.gradient(0), m: outputWidth, k: pass.batch, n: inputWidth,
                                      scratch: pass.productScratch)
        }
    }

    /// dX = dY·W: (batch, in) = (batch, out)·(out, in).
    public func inputGradient(_ pass: UnitPass, dOutput: UnsafePointer<Float>, into dInput: UnsafeMutablePointer<Float>) {
        Kernels.matmul(dOutput, pass.tensor(0), dInput, m: pass.batch, k: outputWidth, n: inputWidth, scratch: pass.productScratch)
    }

    public func flops(wants: UnitWants) -> Double {
        let product = 2 * Double(inputWidth) * Double(outputWidth)
        var flops = product
        if wants.tensor(0) { flops += product }
        if wants.propagates { flops += product }
        return flops
    }
}
