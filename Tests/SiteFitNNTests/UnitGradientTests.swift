import Foundation
import Testing
@testable import SiteFitCore
@testable import SiteFitKernels
@testable import SiteFitNN
@testable import SiteFitTuning

/// Checks one network unit on its own: its Float forward against an independent Double
/// reference, and its backward pass (every tensor's gradient and ∂L/∂x) against central
/// differences of that reference, for the loss L = Σ R ⊙ y with a fixed random R.
///
/// Tolerance: `GradientCheckTests.agrees` (Float analytic against Double numeric, with a scale floor).
func checkUnitGradients(_ unit: any NetworkUnit, batch: Int = 3, seed: String,
                        reference: (_ parameters: [Double], _ x: [Double], _ batch: Int) -> [Double]) {
    var layout = ParameterLayout()
    var offsets: [Int] = []
    for declaration in unit.tensors {
        offsets.append(layout.count)
        layout.append(name: declaration.name, shape: declaration.shape, role: declaration.role)
    }
    var random = RandomStream(seed: 17, "unit-gradients", seed)
    let parameters = (0..<layout.count).map { _ in Float(random.gaussian() * 0.5) }
    let x = (0..<(batch * unit.inputWidth)).map { _ in Float(random.gaussian()) }
    let weights = (0..<(batch * unit.outputWidth)).map { _ in Float(random.gaussian()) }
    let widest = max(unit.inputWidth, unit.outputWidth) + unit.extraWidth
    var output = [Float](repeating: 0, count: batch * unit.outputWidth)
    var scratch = [Float](repeating: 0, count: max(1, batch * unit.scratchPerRow))
    var productScratch = [Float](repeating: 0, count: Kernels.productScratch(rows: batch, widest: widest))
    var gradient = [Float](repeating: .nan, count: layout.count)
    var dOutput = weights
    var dInput = [Float](repeating: .nan, count: x.count)
    parameters.withUnsafeBufferPointer { p in
        offsets.withUnsafeBufferPointer { o in
            x.withUnsafeBufferPointer { xp in
                output.withUnsafeMutableBufferPointer { y in
                    scratch.withUnsafeMutableBufferPointer { s in
                        productScratch.withUnsafeMutableBufferPointer { ps in
                            gradient.withUnsafeMutableBufferPointer { g in
                                let pass = UnitPass(parameters: p.baseAddress!, offsets: o.baseAddress!, input: xp.baseAddress!,
                                                    output: y.baseAddress!, batch: batch, capacity: batch, scratch: s.baseAddress!,
                                                    productScratch: ps.baseAddress!, gradient: g.baseAddress!)
                                var unused = RandomStream(seed: 0)
                                unit.forward(pass, training: false, random: &unused)
                                dOutput.withUnsafeMutableBufferPointer { dy in
                                    dInput.withUnsafeMutableBufferPointer { dx in
                                        unit.backward(pass, dOutput: dy.baseAddress!, dInput: dx.baseAddress!,
                                                      wants: UnitWants(mask: [Bool](repeating: true, count: layout.tensors.count),
                                                                       first: 0, receives: true, propagates: true))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let p = parameters.map(Double.init), xd = x.map(Double.init), r = weights.map(Double.init)
    let expected = reference(p, xd, batch)
    for (fast, exact) in zip(output, expected) {
        #expect(abs(Double(fast) - exact) <= 1e-5 * max(1, abs(exact)), "\(unit.signature) forward: \(fast) vs \(exact)")
    }
    func loss(_ p: [Double], _ x: [Double]) -> Double { zip(reference(p, x, batch), r).reduce(0) { $0 + $1.0 * $1.1 } }
    let h = 1e-5
    for spec in layout.tensors {
        for i in spec.range {
            var plus = p, minus = p
            plus[i] += h
            minus[i] -= h
            let numeric = (loss(plus, xd) - loss(minus, xd)) / (2 * h)
            #expect(GradientCheckTests.agrees(gradient[i], numeric), "\(spec.name)[\(i - spec.offset)]: \(gradient[i]) vs \(numeric)")
        }
    }
    for i in x.indices {
        var plus = xd, minus = xd
        plus[i] += h
        minus[i] -= h
        let numeric = (loss(p, plus) - loss(p, minus)) / (2 * h)
        #expect(GradientCheckTests.agrees(dInput[i], numeric), "\(unit.signature) dInput[\(i)]: \(dInput[i]) vs \(numeric)")
    }
}

/// y = x·Wᵀ + b in Double, W (out, in) at `weight`, b at `bias`.
func referenceLinear(_ p: [Double], weight: Int, bias: Int, _ x: [Double], batch: Int, in inW: Int, out outW: Int) -> [Double] {
    var y = [Double](repeating: 0, count: batch * outW)
    for r in 0..<batch { for o in 0..<outW {
        var s = p[bias + o]
        for i in 0..<inW { s += x[r * inW + i] * p[weight + o * inW + i] }
        y[r * outW + o] = s
    } }
    return y
}

func referenceActivation(_ activation: Activation, _ v: Double) -> Double {
    activation == .relu ? max(0, v) : 0.5 * v * (1 + erf(v / 2.0.squareRoot()))
}

@Suite("Each network unit's backward pass against finite differences")
struct UnitGradientTests {
    @Test("Linear: weight, bias and input; odd widths", arguments: [(5, 3), (1, 7), (17, 1)])
    func linear(_ widths: (Int, Int)) {
        let (inW, outW) = widths
        checkUnitGradients(Linear(name: "layers.0", inputWidth: inW, outputWidth: outW), seed: "linear \(inW) \(outW)") { p, x, batch in
            referenceLinear(p, weight: 0, bias: inW * outW, x, batch: batch, in: inW, out: outW)
        }
    }

    @Test("LoRA-Linear: W, b, A, B and input")
    func loraLinear() {
        let (inW, outW, rank, scale) = (5, 4, 2, Float(1.5))
        let unit = LoRALinear(base: Linear(name: "layers.1", inputWidth: inW, outputWidth: outW), rank: rank, scale: scale)
        checkUnitGradients(unit, seed: "lora") { p, x, batch in
            var y = referenceLinear(p, weight: 0, bias: inW * outW, x, batch: batch, in: inW, out: outW)
            let a = inW * outW + outW, b = a + rank * inW
            for r in 0..<batch { for o in 0..<outW { for k in 0..<rank {
                var u = 0.0
                for i in 0..<inW { u += x[r * inW + i] * p[a + k * inW + i] }
                y[r * outW + o] += Double(scale) * u * p[b + o * rank + k]
            } } }
            return y
        }
    }

    @Test("Adapter: down and up projections, biases and input (residual included)", arguments: [Activation.relu, .gelu])
    func adapter(_ activation: Activation) {
        let (n, m) = (5, 3)
        checkUnitGradients(Adapter(name: "layers.0.adapter", width: n, bottleneck: m, activation: activation),
                           seed: "adapter \(activation)") { p, x, batch in
            let (dw, db, uw, ub) = (0, m * n, m * n + m, m * n + m + n * m)
            var y = x
            for r in 0..<batch {
                let hidden = (0..<m).map { k in
                    referenceActivation(activation, p[db + k] + (0..<n).reduce(0.0) { $0 + x[r * n + $1] * p[dw + k * n + $1] })
                }
                for j in 0..<n { y[r * n + j] += p[ub + j] + (0..<m).reduce(0.0) { $0 + hidden[$1] * p[uw + j * m + $1] } }
            }
            return y
        }
    }

    @Test("LayerNorm: gain, bias and input")
    func layerNorm() {
        let n = 6
        checkUnitGradients(LayerNormUnit(name: "layers.0.norm", width: n), seed: "layernorm") { p, x, batch in
            var y = x
            for r in 0..<batch {
                let row = Array(x[(r * n)..<((r + 1) * n)])
                let mean = row.reduce(0, +) / Double(n)
                let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
                for j in 0..<n { y[r * n + j] = p[j] * (row[j] - mean) / (variance + 1e-5).squareRoot() + p[n + j] }
            }
            return y
        }
    }

    @Test("activations: input gradient", arguments: [Activation.relu, .gelu])
    func activation(_ activation: Activation) {
        checkUnitGradients(ActivationUnit(activation, width: 7), seed: "activation \(activation)") { _, x, _ in
            x.map { referenceActivation(activation, $0) }
        }
    }
}

@Suite("Partial masks stop the backward pass early without changing a gradient")
struct PartialMaskTests {
    @Test("each mode's gradients equal the all-tensor gradients on the tensors it trains", arguments: ["bitfit", "head", "lora", "adapter", "ia3", "bitfit+head"])
    func partial(_ name: String) throws {
        let mode = try #require(FineTuningMode.named(name))
        let base = MLP(MLPConfiguration(inputSize: 5, hiddenSizes: [6, 4], activation: .gelu, layerNorm: true))
        let mlp = mode.network(extending: base)
        var random = RandomStream(seed: 21, "partial-mask", name)
        let parameters = (0..<mlp.layout.count).map { _ in Float(random.gaussian() * 0.5) }
        let x = (0..<(3 * 5)).map { _ in Float(random.gaussian()) }, y: [Float] = [1, 0, 1]
        func gradient(_ selection: ParameterSelection) -> [Float] {
            let workspace = mlp.makeWorkspace(capacity: 3)
            var gradient = [Float](repeating: 0, count: parameters.count)
            mlp.forward(parameters: parameters, input: x, batch: 3, workspace: workspace)
            BinaryCrossEntropy.lossAndGradient(logits: workspace.logits, labels: y, batch: 3, dLogits: workspace.dLogitsPointer)
            mlp.backward(parameters: parameters, input: x, batch: 3, workspace: workspace, gradient: &gradient,
                         trainable: mlp.trainableMask(selection), dInput: nil)
            return gradient
        }
        let everything = gradient(ParameterSelection(layout: mlp.layout, tensorNames: mlp.layout.tensors.map(\.name)))
        let selection = mode.selection(for: mlp.layout)
        let partial = gradient(selection)
        #expect(!selection.tensors.isEmpty)
        for spec in selection.tensors {
            #expect(Array(partial[spec.range]) == Array(everything[spec.range]), "\(name): \(spec.name)")
        }
        // The mode trains less, so it costs no more than training everything.
        #expect(mlp.trainingFlopsPerExample(mlp.trainableMask(selection))
                <= mlp.trainingFlopsPerExample(mlp.trainableMask(ParameterSelection(layout: mlp.layout, tensorNames: mlp.layout.tensors.map(\.name)))))
    }
}
