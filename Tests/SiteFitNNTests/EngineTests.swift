import Foundation
import Testing
@testable import SiteFitCore
@testable import SiteFitNN
@testable import SiteFitTuning

/// A plain-loop Double reference of the whole network (LayerNorm, ReLU/GELU, LoRA, adapters; no
/// dropout), independent of the kernels, used for central differences.
func referenceForward(_ p: [Double], x: [Double], batch: Int, mlp: MLP) -> [Double] {
    let c = mlp.configuration
    let widths = c.widths
    func tensor(_ name: String) -> (offset: Int, shape: [Int])? {
        mlp.layout.tensor(named: name).map { ($0.offset, $0.shape) }
    }
    func act(_ v: Double) -> Double {
        c.activation == .relu ? max(0, v) : 0.5 * v * (1 + erf(v / 2.0.squareRoot()))
    }
    var a = x
    for l in 0..<(widths.count - 1) {
        let (inW, outW) = (widths[l], widths[l + 1])
        let w = tensor("layers.\(l).weight")!.offset, b = tensor("layers.\(l).bias")!.offset
        var z = [Double](repeating: 0, count: batch * outW)
        for r in 0..<batch { for o in 0..<outW {
            var s = p[b + o]
            for i in 0..<inW { s += a[r * inW + i] * p[w + o * inW + i] }
            if let la = tensor("layers.\(l).lora.a"), let lb = tensor("layers.\(l).lora.b"),
               let lora = mlp.units.compactMap({ $0 as? LoRALinear }).first(where: { $0.base.name == "layers.\(l)" }) {
                let rank = lora.rank, scale = Double(lora.scale)
                for k in 0..<rank {
                    var u = 0.0
                    for i in 0..<inW { u += a[r * inW + i] * p[la.offset + k * inW + i] }
                    s += scale * u * p[lb.offset + o * rank + k]
                }
            }
            z[r * outW + o] = s
        } }
        if l == widths.count - 2 { return z }
        if let gain = tensor("layers.\(l).norm.gain"), let beta = tensor("layers.\(l).norm.bias") {
            for r in 0..<batch {
                let row = Array(z[(r * outW)..<((r + 1) * outW)])
                let mean = row.reduce(0, +) / Double(outW)
                let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(outW)
                for j in 0..<outW {
                    z[r * outW + j] = p[gain.offset + j] * (row[j] - mean) / (variance + 1e-5).squareRoot() + p[beta.offset + j]
                }
            }
        }
        var g = z.map(act)
        if let dw = tensor("layers.\(l).adapter.down.weight"), let db = tensor("layers.\(l).adapter.down.bias"),
           let uw = tensor("layers.\(l).adapter.up.weight"), let ub = tensor("layers.\(l).adapter.up.bias") {
            let m = dw.shape[0]
            var out = g
            for r in 0..<batch {
                var hidden = [Double](repeating: 0, count: m)
                for k in 0..<m {
                    var s = p[db.offset + k]
                    for j in 0..<outW { s += g[r * outW + j] * p[dw.offset + k * outW + j] }
                    hidden[k] = act(s)
                }
                for j in 0..<outW {
                    var s = p[ub.offset + j]
                    for k in 0..<m { s += hidden[k] * p[uw.offset + j * m + k] }
                    out[r * outW + j] += s
                }
            }
            g = out
        }
        a = g
    }
    return a
}

func referenceLoss(_ p: [Double], x: [Double], y: [Double], mlp: MLP, positiveWeight: Double = 1) -> Double {
    let z = referenceForward(p, x: x, batch: y.count, mlp: mlp)
    func softplus(_ t: Double) -> Double { max(t, 0) + log1p(exp(-abs(t))) }
    return zip(z, y).reduce(0) { $0 + positiveWeight * $1.1 * softplus(-$1.0) + (1 - $1.1) * softplus($1.0) } / Double(y.count)
}

/// The MLP of `configuration` with the given fine-tuning extensions (LoRA first, then adapters).
func extendedMLP(_ configuration: MLPConfiguration, lora: LoRAConfiguration? = nil, adapter: AdapterConfiguration? = nil) -> MLP {
    var mlp = MLP(configuration)
    if let lora { mlp = lora.extend(mlp) }
    if let adapter { mlp = adapter.extend(mlp) }
    return mlp
}

@Suite("Engine: every configuration's gradients against a Double reference")
struct EngineGradientTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var configuration: MLPConfiguration
        var lora: LoRAConfiguration? = nil
        var adapter: AdapterConfiguration? = nil
        var positiveWeight: Float = 1
        var testDescription: String { name }
    }

    static let cases = [
        Case(name: "ReLU, LayerNorm", configuration: MLPConfiguration(inputSize: 5, hiddenSizes: [6, 4], layerNorm: true)),
        Case(name: "GELU", configuration: MLPConfiguration(inputSize: 4, hiddenSizes: [7], activation: .gelu)),
        Case(name: "GELU, LayerNorm, LoRA r=2 everywhere, positive weight 3",
             configuration: MLPConfiguration(inputSize: 5, hiddenSizes: [6, 3], activation: .gelu, layerNorm: true),
             lora: LoRAConfiguration(rank: 2, alpha: 4), positiveWeight: 3),
        Case(name: "ReLU, adapters m=3", configuration: MLPConfiguration(inputSize: 4, hiddenSizes: [5, 6]),
             adapter: AdapterConfiguration(bottleneck: 3)),
        Case(name: "everything: LN, GELU, LoRA on layer 1, adapters",
             configuration: MLPConfiguration(inputSize: 3, hiddenSizes: [5, 4], activation: .gelu, layerNorm: true),
             lora: LoRAConfiguration(rank: 2, alpha: 2, layers: [1]), adapter: AdapterConfiguration(bottleneck: 2)),
        Case(name: "logistic regression", configuration: MLPConfiguration(inputSize: 13, hiddenSizes: [])),
    ]

    /// Random values everywhere (including LoRA B and adapter up, which start at zero) so every
    /// path carries gradient.
    static func setup(_ c: Case) -> (MLP, [Float], [Float], [Float]) {
        let mlp = extendedMLP(c.configuration, lora: c.lora, adapter: c.adapter)
        var random = RandomStream(seed: 11, "engine-gradients", c.name)
        let params = (0..<mlp.layout.count).map { _ in Float(random.gaussian() * 0.5) }
        let batch = 3
        let x = (0..<(batch * c.configuration.inputSize)).map { _ in Float(random.gaussian()) }
        return (mlp, params, x, [1, 0, 1])
    }

    @Test("all parameters and the input", arguments: cases)
    func gradients(_ c: Case) {
        let (mlp, params, x, y) = Self.setup(c)
        let batch = y.count
        let workspace = MLPWorkspace(mlp: mlp, capacity: batch)
        var gradient = [Float](repeating: .nan, count: params.count)
        var dInput = [Float](repeating: 0, count: x.count)
        let mask = TrainableMask(mlp: mlp, selection: ParameterSelection(layout: mlp.layout, tensorNames: mlp.layout.tensors.map(\.name)))
        var random = RandomStream(seed: 0)
        mlp.forward(parameters: params, input: x, batch: batch, workspace: workspace, training: true, random: &random)
        BinaryCrossEntropy.lossAndGradient(logits: workspace.logits, labels: y, batch: batch, dLogits: workspace.dLogitsPointer,
                                           positiveWeight: c.positiveWeight)
        mlp.backward(parameters: params, input: x, batch: batch, workspace: workspace, gradient: &gradient, trainable: mask,
                     dInput: &dInput)
        let p = params.map(Double.init), xd = x.map(Double.init), yd = y.map(Double.init)
        let h = 1e-5
        let w = Double(c.positiveWeight)
        for spec in mlp.layout.tensors {
            for i in spec.range {
                var plus = p, minus = p
                plus[i] += h
                minus[i] -= h
                let numeric = (referenceLoss(plus, x: xd, y: yd, mlp: mlp, positiveWeight: w)
                               - referenceLoss(minus, x: xd, y: yd, mlp: mlp, positiveWeight: w)) / (2 * h)
                #expect(GradientCheckTests.agrees(gradient[i], numeric), "\(spec.name)[\(i - spec.offset)]: \(gradient[i]) vs \(numeric)")
            }
        }
        for i in x.indices {
            var plus = xd, minus = xd
            plus[i] += h
            minus[i] -= h
            let numeric = (referenceLoss(p, x: plus, y: yd, mlp: mlp, positiveWeight: w)
                           - referenceLoss(p, x: minus, y: yd, mlp: mlp, positiveWeight: w)) / (2 * h)
            #expect(GradientCheckTests.agrees(dInput[i], numeric), "input[\(i)]: \(dInput[i]) vs \(numeric)")
        }
    }

    @Test("the Float forward matches the Double reference", arguments: cases)
    func forwardMatches(_ c: Case) {
        let (mlp, params, x, y) = Self.setup(c)
        let workspace = MLPWorkspace(mlp: mlp, capacity: y.count)
        mlp.forward(parameters: params, input: x, batch: y.count, workspace: workspace)
        let reference = referenceForward(params.map(Double.init), x: x.map(Double.init), batch: y.count, mlp: mlp)
        for i in 0..<y.count { #expect(abs(Double(workspace.logits[i]) - reference[i]) < 1e-4 * max(1, abs(reference[i]))) }
    }
}

@Suite("Layers in isolation")
struct LayerTests {
    /// L = Σ cᵢ·yᵢ with fixed random c, so ∂L/∂y = c.
    static func check(count: Int, forward: ([Double]) -> [Double], analytic: ([Float], [Float]) -> [Float], input: [Float]) {
        var random = RandomStream(seed: 3, "layer")
        let c = (0..<count).map { _ in Float(random.gaussian()) }
        let dX = analytic(input, c)
        let h = 1e-5
        for i in input.indices {
            var plus = input.map(Double.init), minus = input.map(Double.init)
            plus[i] += h
            minus[i] -= h
            let lp = zip(forward(plus), c).reduce(0) { $0 + $1.0 * Double($1.1) }
            let lm = zip(forward(minus), c).reduce(0) { $0 + $1.0 * Double($1.1) }
            #expect(GradientCheckTests.agrees(dX[i], (lp - lm) / (2 * h)), "x[\(i)]")
        }
    }

    @Test("GELU and ReLU backward", arguments: Activation.allCases)
    func activations(_ activation: Activation) {
        let x: [Float] = [-2.1, -0.7, -0.05, 0.3, 1.2, 3.3]
        Self.check(count: x.count, forward: { v in
            v.map { activation == .relu ? max(0, $0) : 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }
        }, analytic: { x, c in
            var d = [Float](repeating: 0, count: x.count)
            activation.backward(c, input: x, &d, count: x.count)
            return d
        }, input: x)
    }

    @Test("LayerNorm backward for the input, γ and β")
    func layerNorm() {
        let (m, n) = (2, 5)
        var random = RandomStream(seed: 4, "ln")
        let x = (0..<(m * n)).map { _ in Float(random.gaussian()) }
        let gain = (0..<n).map { _ in Float(1 + random.gaussian() * 0.3) }, beta = (0..<n).map { _ in Float(random.gaussian()) }
        func reference(_ x: [Double], _ gain: [Double], _ beta: [Double]) -> [Double] {
            var y = [Double](repeating: 0, count: m * n)
            for r in 0..<m {
                let row = Array(x[(r * n)..<((r + 1) * n)])
                let mean = row.reduce(0, +) / Double(n)
                let v = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
                for j in 0..<n { y[r * n + j] = gain[j] * (row[j] - mean) / (v + 1e-5).squareRoot() + beta[j] }
            }
            return y
        }
        func analytic(_ c: [Float]) -> (dX: [Float], dGain: [Float], dBeta: [Float]) {
            var y = [Float](repeating: 0, count: m * n), xhat = y, rstd = [Float](repeating: 0, count: m)
            LayerNorm.forward(x, gain: gain, bias: beta, y: &y, normalized: &xhat, inverseStd: &rstd, m: m, n: n)
            var dX = [Float](repeating: 0, count: m * n), dGain = [Float](repeating: 0, count: n), dBeta = dGain
            LayerNorm.backward(c, gain: gain, normalized: xhat, inverseStd: rstd, dX: &dX, dGain: &dGain, dBias: &dBeta, m: m, n: n)
            return (dX, dGain, dBeta)
        }
        Self.check(count: m * n, forward: { reference($0, gain.map(Double.init), beta.map(Double.init)) },
                   analytic: { _, c in analytic(c).dX }, input: x)
        Self.check(count: m * n, forward: { reference(x.map(Double.init), $0, beta.map(Double.init)) },
                   analytic: { _, c in analytic(c).dGain }, input: gain)
        Self.check(count: m * n, forward: { reference(x.map(Double.init), gain.map(Double.init), $0) },
                   analytic: { _, c in analytic(c).dBeta }, input: beta)
    }

    @Test("dropout keeps about 1 − p of the units, scales them by 1/(1 − p), and backward applies the same mask")
    func dropout() {
        let count = 10_000
        var x = [Float](repeating: 1, count: count), mask = x
        var random = RandomStream(seed: 5, "dropout")
        Dropout.forward(&x, mask: &mask, count: count, probability: 0.25, random: &random)
        let kept = x.filter { $0 != 0 }
        #expect(abs(Double(kept.count) / Double(count) - 0.75) < 0.02)
        #expect(kept.allSatisfy { abs($0 - 4.0 / 3.0) < 1e-6 })
        var gradient = [Float](repeating: 2, count: count)
        Dropout.backward(&gradient, mask: mask, count: count)
        #expect(zip(gradient, x).allSatisfy { $0 == 2 * $1 })
        // The same stream gives the same mask.
        var again = [Float](repeating: 1, count: count), mask2 = again
        var random2 = RandomStream(seed: 5, "dropout")
        Dropout.forward(&again, mask: &mask2, count: count, probability: 0.25, random: &random2)
        #expect(again == x)
    }

    @Test("weighted BCE: gradient by central differences, and w = 1 is the plain loss")
    func weightedLoss() {
        let z: [Float] = [-2, 0.5, 3, -0.1], y: [Float] = [1, 0, 1, 1]
        var d = [Float](repeating: 0, count: 4)
        BinaryCrossEntropy.lossAndGradient(logits: z, labels: y, batch: 4, dLogits: &d, positiveWeight: 2.5)
        for i in 0..<4 {
            var plus = z, minus = z
            plus[i] += 1e-3
            minus[i] -= 1e-3
            let numeric = (BinaryCrossEntropy.loss(logits: plus, labels: y, positiveWeight: 2.5)
                           - BinaryCrossEntropy.loss(logits: minus, labels: y, positiveWeight: 2.5)) / 2e-3
            #expect(abs(Double(d[i]) - numeric) < 1e-3)
        }
        // w·y·softplus(−z) at z = 0, y = 1, w = 2.5: 2.5·log 2
        #expect(abs(BinaryCrossEntropy.loss(logits: [0], labels: [1], positiveWeight: 2.5) - 2.5 * log(2)) < 1e-6)
    }
}

@Suite("Fine-tuning modes, LoRA, adapters, optimisers, checkpoints")
struct EngineBehaviourTests {
    let base = MLPConfiguration(inputSize: 6, hiddenSizes: [8, 5], layerNorm: true)

    @Test("each mode selects exactly its tensors")
    func selections() {
        let mlp = extendedMLP(MLPConfiguration(inputSize: 6, hiddenSizes: [8, 5], layerNorm: true),
                              lora: LoRAConfiguration(rank: 2, alpha: 4), adapter: AdapterConfiguration(bottleneck: 3))
        func names(_ mode: FineTuningMode, biases: Bool = false) -> Set<String> {
            Set(mode.selection(for: mlp.layout, settings: mode.resolved(biases ? ["train_biases": .flag(true)] : [:])).tensorNames)
        }
        let biasTerms: Set = ["layers.0.bias", "layers.0.norm.bias", "layers.1.bias", "layers.1.norm.bias", "layers.2.bias"]
        #expect(names(.bitfit) == biasTerms)
        #expect(names(.bitfitHead) == biasTerms.union(["layers.2.weight"]))
        #expect(names(.head) == ["layers.2.weight", "layers.2.bias"])
        #expect(names(.lora) == ["layers.0.lora.a", "layers.0.lora.b", "layers.1.lora.a", "layers.1.lora.b", "layers.2.lora.a", "layers.2.lora.b"])
        #expect(names(.lora, biases: true) == names(.lora).union(biasTerms))
        #expect(names(.adapter) == Set((0...1).flatMap { l in ["down", "up"].flatMap { ["layers.\(l).adapter.\($0).weight", "layers.\(l).adapter.\($0).bias"] } }))
        #expect(names(.full).allSatisfy { !$0.contains("lora") && !$0.contains("adapter") })
        #expect(names(.full).count == 3 * 2 + 2 * 2)
    }

    func outputs(_ mlp: MLP, _ parameters: [Float], _ x: [Float], batch: Int) -> [Float] {
        let workspace = MLPWorkspace(mlp: mlp, capacity: batch)
        mlp.forward(parameters: parameters, input: x, batch: batch, workspace: workspace)
        return Array(UnsafeBufferPointer(start: workspace.logits, count: batch))
    }

    @Test("LoRA with B = 0 and fresh adapters give exactly the base model's outputs")
    func identityAtStart() {
        let baseModel = MLP(base)
        var random = RandomStream(seed: 1, "identity")
        let baseParameters = baseModel.initialParameters(random: &random)
        let x = (0..<(4 * 6)).map { _ in Float(random.gaussian()) }
        let reference = outputs(baseModel, baseParameters, x, batch: 4)
        for mlp in [extendedMLP(base, lora: LoRAConfiguration(rank: 3, alpha: 6)),
                    extendedMLP(base, adapter: AdapterConfiguration(bottleneck: 4))] {
            let parameters = mlp.parameters(extending: baseParameters, of: baseModel, random: &random)
            #expect(outputs(mlp, parameters, x, batch: 4) == reference)
        }
    }

    @Test("merged LoRA (W + (α/r)·B·A) equals unmerged within 1e-6")
    func mergedLoRA() {
        let lora = LoRAConfiguration(rank: 2, alpha: 3)
        let mlp = extendedMLP(MLPConfiguration(inputSize: 6, hiddenSizes: [8, 5]), lora: lora)
        var random = RandomStream(seed: 2, "merge")
        let parameters = (0..<mlp.layout.count).map { _ in Float(random.gaussian() * 0.3) }
        let x = (0..<(5 * 6)).map { _ in Float(random.gaussian()) }
        let baseModel = MLP(MLPConfiguration(inputSize: 6, hiddenSizes: [8, 5]))
        var merged = [Float](repeating: 0, count: baseModel.layout.count)
        for spec in baseModel.layout.tensors {
            let source = mlp.layout.tensor(named: spec.name)!
            merged.replaceSubrange(spec.range, with: parameters[source.range])
            guard spec.role == .weight || spec.role == .headWeight else { continue }
            let layer = spec.name.split(separator: ".")[1]
            let a = mlp.layout.tensor(named: "layers.\(layer).lora.a")!, b = mlp.layout.tensor(named: "layers.\(layer).lora.b")!
            let (outW, inW) = (spec.shape[0], spec.shape[1])
            for o in 0..<outW { for i in 0..<inW {
                var delta: Float = 0
                for k in 0..<lora.rank { delta += parameters[b.offset + o * lora.rank + k] * parameters[a.offset + k * inW + i] }
                merged[spec.offset + o * inW + i] += lora.scale * delta
            } }
        }
        let unmergedOut = outputs(mlp, parameters, x, batch: 5), mergedOut = outputs(baseModel, merged, x, batch: 5)
        // Both paths round differently in Float; outputs here are O(1), so 1e-6 absolute (relative for larger values).
        for (u, m) in zip(unmergedOut, mergedOut) { #expect(abs(u - m) <= 1e-6 * max(1, abs(u)), "\(u) vs \(m)") }
    }

    @Test("AdamW decays weights before the Adam step: θ ← θ(1 − lr·λ) − lr·sign(g) on step one")
    func adamW() {
        let mlp = MLP(base)
        let selection = ParameterSelection(layout: mlp.layout, tensorNames: ["layers.2.bias"])
        var optimizer = Optimizer(OptimizerConfiguration(kind: .adamw, learningRate: 0.1, weightDecay: 0.5), selection: selection)
        var params = [Float](repeating: 2, count: mlp.layout.count)
        var gradient = [Float](repeating: 0, count: mlp.layout.count)
        let index = mlp.layout.tensor(named: "layers.2.bias")!.offset
        gradient[index] = 0.3
        optimizer.update(parameters: &params, gradient: &gradient)
        // 2·(1 − 0.1·0.5) − 0.1 = 1.9 − 0.1 = 1.8
        #expect(abs(params[index] - 1.8) < 1e-5)
    }

    @Test("gradient clipping rescales the selected gradient to the clip norm")
    func clipping() {
        let mlp = MLP(base)
        let selection = FineTuningMode.bitfit.selection(for: mlp.layout)
        var optimizer = Optimizer(OptimizerConfiguration(kind: .sgd, learningRate: 1, gradientClipNorm: 1), selection: selection)
        var params = [Float](repeating: 0, count: mlp.layout.count)
        var gradient = [Float](repeating: 3, count: mlp.layout.count)
        #expect(abs(optimizer.gradientNorm(gradient) - 3 * Double(selection.count).squareRoot()) < 1e-4)
        optimizer.update(parameters: &params, gradient: &gradient)
        #expect(abs(optimizer.gradientNorm(gradient) - 1) < 1e-5)
        // Every selected parameter moved by −1/√n; nothing else moved.
        let step = 1 / Float(selection.count).squareRoot()
        for range in selection.ranges { for i in range { #expect(abs(params[i] + step) < 1e-6) } }
        #expect(params[0] == 0)
    }

    @Test("early stopping keeps the parameters with the best validation loss")
    func earlyStopping() {
        let mlp = MLP(MLPConfiguration(inputSize: 3, hiddenSizes: [4]))
        var random = RandomStream(seed: 8, "early")
        var params = mlp.initialParameters(random: &random)
        // Pure noise labels: validation loss stops improving quickly.
        let train = Dataset(features: (0..<60).map { _ in Float(random.gaussian()) }, labels: (0..<20).map { _ in random.bernoulli(0.5) ? 1 : 0 }, columns: 3)
        let validation = Dataset(features: (0..<60).map { _ in Float(random.gaussian()) }, labels: (0..<20).map { _ in random.bernoulli(0.5) ? 1 : 0 }, columns: 3)
        var trainer = Trainer(model: mlp, maxBatch: 4)
        var shuffle = RandomStream(seed: 1, "s")
        let summary = trainer.train(parameters: &params, data: train, selection: FineTuningMode.full.selection(for: mlp.layout),
                                    configuration: TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .adam, learningRate: 0.05),
                                                                         epochs: 200, batchSize: 4),
                                    random: &shuffle, earlyStopping: EarlyStopping(validation: validation, patience: 3))
        #expect(summary.epochs < 200)
        #expect(abs(trainer.loss(parameters: params, data: validation) - summary.bestValidationLoss!) < 1e-9)
    }

    @Test("a checkpoint round-trips byte-identically and refuses a wrong shape")
    func checkpoint() throws {
        let mlp = MLP(MLPConfiguration(inputSize: 3, hiddenSizes: [4], activation: .gelu, layerNorm: true, dropout: 0.1))
        var random = RandomStream(seed: 9, "checkpoint")
        let model = PretrainedModel(network: mlp, parameters: mlp.initialParameters(random: &random),
                                    standardizer: Standardizer(means: [1, 2, 3], standardDeviations: [1, 1, 2]), columns: ["a", "b", "c"])
        let bytes = Checkpoint.encode(model, notes: ["epochs_run": "4"])
        let (decoded, notes) = try Checkpoint.decode(bytes, file: "x.safetensors")
        #expect(decoded == model)
        #expect(notes == ["epochs_run": "4"])
        #expect(Checkpoint.encode(decoded, notes: notes) == bytes)
        var tensors = try Safetensors.decode(bytes)
        tensors.tensors[0].shape = [2, 6]
        let tampered = Safetensors.encode(tensors.tensors, metadata: tensors.metadata)
        #expect(throws: Checkpoint.Failure.self) { try Checkpoint.decode(tampered, file: "x.safetensors") }
    }
}
