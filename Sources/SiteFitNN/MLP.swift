import SiteFitCore
import SiteFitKernels

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
}

/// Houlsby-style adapters (arXiv:1902.00751) after each hidden layer: a ← a + U·act(D·a + d) + u,
/// a bottleneck d → m → d whose up-projection starts at zero, so the model starts unchanged.
public struct AdapterConfiguration: Sendable, Equatable, Codable {
    public var bottleneck: Int

    public init(bottleneck: Int) {
        self.bottleneck = bottleneck
    }
}

/// Shape of a multilayer perceptron: input → hidden blocks → one logit.
///
/// A hidden block is Linear → [LayerNorm] → activation → [dropout] → [adapter]; the head is a
/// Linear layer to one logit. With no hidden layer this is logistic regression.
public struct MLPConfiguration: Sendable, Equatable, Codable {
    public var inputSize: Int
    public var hiddenSizes: [Int]
    public var activation: Activation
    public var layerNorm: Bool
    /// Dropout probability after each hidden activation (training only).
    public var dropout: Double
    public var lora: LoRAConfiguration?
    public var adapter: AdapterConfiguration?

    public init(inputSize: Int, hiddenSizes: [Int], activation: Activation = .relu, layerNorm: Bool = false,
                dropout: Double = 0, lora: LoRAConfiguration? = nil, adapter: AdapterConfiguration? = nil) {
        self.inputSize = inputSize
        self.hiddenSizes = hiddenSizes
        self.activation = activation
        self.layerNorm = layerNorm
        self.dropout = dropout
        self.lora = lora
        self.adapter = adapter
    }

    /// Widths of every layer's input and output, e.g. [13, 32, 16, 1].
    public var widths: [Int] { [inputSize] + hiddenSizes + [1] }

    /// The same network without LoRA factors or adapters (what a checkpoint of the base model holds).
    public var base: MLPConfiguration {
        var copy = self
        copy.lora = nil
        copy.adapter = nil
        return copy
    }
}

/// A binary-outcome MLP whose parameters live in one flat buffer with dotted keys.
///
/// Layer l computes z_l = a_{l−1}·W_lᵀ + b_l (+ (α/r)·a_{l−1}·A_lᵀ·B_lᵀ with LoRA), W_l (out, in).
/// Keys: `layers.l.weight`, `layers.l.bias`, `layers.l.norm.gain`, `layers.l.norm.bias`,
/// `layers.l.lora.a`, `layers.l.lora.b`, `layers.l.adapter.{down,up}.{weight,bias}`.
public struct MLP: Sendable, Equatable {
    public let configuration: MLPConfiguration
    public let layout: ParameterLayout
    /// `configuration.widths`, stored so the passes do not rebuild the array (a training step allocates nothing).
    let widths: [Int]
    /// Tensor indices of each layer, for the passes.
    let layers: [LayerTensors]

    struct LayerTensors: Sendable, Equatable {
        var weight = 0, bias = 0
        var normGain: Int?, normBias: Int?
        var loraA: Int?, loraB: Int?
        var adapterDownWeight: Int?, adapterDownBias: Int?, adapterUpWeight: Int?, adapterUpBias: Int?

        var all: [Int] {
            [weight, bias] + [normGain, normBias, loraA, loraB, adapterDownWeight, adapterDownBias, adapterUpWeight,
                              adapterUpBias].compactMap { $0 }
        }
    }

    public init(_ configuration: MLPConfiguration) {
        self.configuration = configuration
        var layout = ParameterLayout()
        var layers: [LayerTensors] = []
        let widths = configuration.widths
        let count = widths.count - 1
        for l in 0..<count {
            let (inW, outW) = (widths[l], widths[l + 1])
            let head = l == count - 1
            var t = LayerTensors()
            func add(_ name: String, _ shape: [Int], _ role: TensorRole) -> Int {
                layout.append(name: "layers.\(l).\(name)", shape: shape, role: role)
                return layout.tensors.count - 1
            }
            t.weight = add("weight", [outW, inW], head ? .headWeight : .weight)
            t.bias = add("bias", [outW], head ? .headBias : .bias)
            if configuration.layerNorm && !head {
                t.normGain = add("norm.gain", [outW], .normGain)
                t.normBias = add("norm.bias", [outW], .normBias)
            }
            if let lora = configuration.lora, lora.layers?.contains(l) ?? true {
                t.loraA = add("lora.a", [lora.rank, inW], .loraA)
                t.loraB = add("lora.b", [outW, lora.rank], .loraB)
            }
            if let adapter = configuration.adapter, !head {
                t.adapterDownWeight = add("adapter.down.weight", [adapter.bottleneck, outW], .adapterWeight)
                t.adapterDownBias = add("adapter.down.bias", [adapter.bottleneck], .adapterBias)
                t.adapterUpWeight = add("adapter.up.weight", [outW, adapter.bottleneck], .adapterWeight)
                t.adapterUpBias = add("adapter.up.bias", [outW], .adapterBias)
            }
            layers.append(t)
        }
        self.layout = layout
        self.layers = layers
        self.widths = widths
    }

    public var layerCount: Int { widths.count - 1 }

    func spec(_ index: Int) -> TensorSpec { layout.tensors[index] }
    func offset(_ index: Int) -> Int { layout.tensors[index].offset }

    /// Initial values: He-initialised weights (suits ReLU and GELU), biases at a small positive value
    /// so BitFit has biases to move, LayerNorm γ = 1 and β = 0, LoRA A ~ N(0, 1/in) and B = 0,
    /// adapter down ~ N(0, 1/d) and up = 0 (LoRA and adapters start as the identity change).
    /// How a fresh network's weights are drawn.
    public enum Initialization: String, Sendable, Equatable, CaseIterable {
        /// He normal for weights (ReLU networks), biases 0.01: SiteFit's default for pretraining.
        case he
        /// U(−1/√fan_in, 1/√fan_in) for weights and biases, PyTorch's `nn.Linear` default; used to
        /// reproduce benchmarks trained from scratch in PyTorch (FLamby).
        case uniformFanIn = "uniform_fan_in"
    }

    public func initialParameters(random: inout RandomStream, scheme: Initialization = .he) -> [Float] {
        var buffer = [Float](repeating: 0, count: layout.count)
        for spec in layout.tensors {
            switch spec.role {
            case .weight, .headWeight, .adapterWeight:
                if spec.name.hasSuffix("up.weight") { continue }
                switch scheme {
                case .he:
                    let scale = (2.0 / Double(spec.shape[1])).squareRoot()
                    for i in spec.range { buffer[i] = Float(random.gaussian() * scale) }
                case .uniformFanIn:
                    let bound = 1 / Double(spec.shape[1]).squareRoot()
                    for i in spec.range { buffer[i] = Float((2 * random.uniform() - 1) * bound) }
                }
            case .bias, .headBias:
                switch scheme {
                case .he: for i in spec.range { buffer[i] = 0.01 }
                case .uniformFanIn:
                    // The bias shares its layer's fan-in: the weight tensor just before it in the layout.
                    let fanIn = layout.tensors.last { $0.offset < spec.offset && ($0.role == .weight || $0.role == .headWeight) }?.shape[1] ?? 1
                    let bound = 1 / Double(fanIn).squareRoot()
                    for i in spec.range { buffer[i] = Float((2 * random.uniform() - 1) * bound) }
                }
            case .normGain: for i in spec.range { buffer[i] = 1 }
            case .normBias, .adapterBias, .loraB: break
            case .loraA:
                let scale = (1.0 / Double(spec.shape[1])).squareRoot()
                for i in spec.range { buffer[i] = Float(random.gaussian() * scale) }
            }
        }
        return buffer
    }

    /// Values for this (extended) model from a base model's parameters: shared tensors are copied
    /// by key, LoRA and adapter tensors get their initial values from `random`.
    public func parameters(extending base: [Float], of baseModel: MLP, random: inout RandomStream) -> [Float] {
        var buffer = initialParameters(random: &random)
        for spec in baseModel.layout.tensors {
            guard let target = layout.tensor(named: spec.name) else { continue }
            buffer.replaceSubrange(target.range, with: base[spec.range])
        }
        return buffer
    }

    /// Inference forward pass for `batch` rows of `input` (batch, inputSize); logits land in
    /// `workspace.logits`. Dropout is off.
    public func forward(parameters: UnsafePointer<Float>, input: UnsafePointer<Float>, batch: Int, workspace: MLPWorkspace) {
        var unused = RandomStream(seed: 0)
        forward(parameters: parameters, input: input, batch: batch, workspace: workspace, training: false, random: &unused)
    }

    /// Forward pass; with `training` dropout masks are drawn from `random`. Activations are kept
    /// for `backward`.
    public func forward(
        parameters p: UnsafePointer<Float>, input: UnsafePointer<Float>, batch: Int, workspace w: MLPWorkspace,
        training: Bool, random: inout RandomStream
    ) {
        precondition(batch <= w.capacity)
        var x = input
        let scratch = w.scratch
        for l in 0..<layerCount {
            let (inW, outW) = (widths[l], widths[l + 1])
            let t = layers[l]
            let z = w.z[l]
            // (batch, out) = (batch, in) · (out, in)ᵀ
            Kernels.matmulTransposedB(x, p + offset(t.weight), z, m: batch, k: inW, n: outW, scratch: scratch)
            if let a = t.loraA, let b = t.loraB, let lora = configuration.lora {
                let r = lora.rank
                let u = w.lora[l]
                Kernels.matmulTransposedB(x, p + offset(a), u, m: batch, k: inW, n: r, scratch: scratch)  // (batch, r)
                let s = lora.scale
                for i in 0..<(batch * r) { u[i] *= s }
                Kernels.matmulTransposedB(u, p + offset(b), z, m: batch, k: r, n: outW, accumulate: true, scratch: scratch)
            }
            let g = w.g[l]
            let fusedReLU = l < layerCount - 1 && t.normGain == nil && configuration.activation == .relu
            if fusedReLU {
                Kernels.addBiasReLU(z, bias: p + offset(t.bias), activated: g, m: batch, n: outW)
            } else {
                Kernels.addBias(z, bias: p + offset(t.bias), m: batch, n: outW)
            }
            if l == layerCount - 1 { break }

            var activationInput = UnsafePointer(z)
            if let gain = t.normGain, let bias = t.normBias {
                LayerNorm.forward(z, gain: p + offset(gain), bias: p + offset(bias), y: w.normed[l],
                                  normalized: w.xhat[l], inverseStd: w.rstd[l], m: batch, n: outW)
                activationInput = UnsafePointer(w.normed[l])
            }
            if !fusedReLU { configuration.activation.forward(activationInput, g, count: batch * outW) }
            if training && configuration.dropout > 0 {
                Dropout.forward(g, mask: w.mask[l], count: batch * outW, probability: configuration.dropout, random: &random)
            }
            x = UnsafePointer(g)
            if let dw = t.adapterDownWeight, let db = t.adapterDownBias, let uw = t.adapterUpWeight, let ub = t.adapterUpBias,
               let m = configuration.adapter?.bottleneck {
                let pre = w.adapterPre[l], act = w.adapterAct[l], out = w.a[l]
                Kernels.matmulTransposedB(g, p + offset(dw), pre, m: batch, k: outW, n: m, scratch: scratch)
                Kernels.addBias(pre, bias: p + offset(db), m: batch, n: m)
                configuration.activation.forward(pre, act, count: batch * m)
                out.update(from: g, count: batch * outW)                                     // residual
                Kernels.matmulTransposedB(act, p + offset(uw), out, m: batch, k: m, n: outW, accumulate: true, scratch: scratch)
                Kernels.addBias(out, bias: p + offset(ub), m: batch, n: outW)
                x = UnsafePointer(out)
            }
        }
    }

    /// The output of hidden block l (input of layer l + 1) after the last forward pass.
    func blockOutput(_ l: Int, _ w: MLPWorkspace) -> UnsafePointer<Float> {
        UnsafePointer(layers[l].adapterDownWeight != nil ? w.a[l] : w.g[l])
    }

    /// Backward pass after a training `forward` on the same batch. `workspace.dLogitsPointer`
    /// (batch) must hold ∂L/∂z. Writes ∂L/∂θ into `gradient` for trainable tensors only; a frozen
    /// weight skips its weight-gradient product (the compute BitFit saves), and nothing is
    /// propagated below the lowest trainable layer. `dInput` (batch, inputSize) is filled when given.
    public func backward(
        parameters p: UnsafePointer<Float>, input: UnsafePointer<Float>, batch: Int,
        workspace w: MLPWorkspace, gradient: UnsafeMutablePointer<Float>, trainable: TrainableMask,
        dInput: UnsafeMutablePointer<Float>? = nil
    ) {
        guard let lowest = dInput != nil ? 0 : trainable.lowestTrainableLayer else { return }
        func wants(_ index: Int?) -> Bool { index.map { trainable.tensors[$0] } ?? false }
        var dOut = w.dLogits
        for l in stride(from: layerCount - 1, through: lowest, by: -1) {
            let (inW, outW) = (widths[l], widths[l + 1])
            let t = layers[l]
            let layerInput = l == 0 ? input : blockOutput(l - 1, w)
            if l < layerCount - 1 {
                // dOut is ∂L/∂(block output); work in place on it down to ∂L/∂z.
                if let dw = t.adapterDownWeight, let db = t.adapterDownBias, let uw = t.adapterUpWeight,
                   let ub = t.adapterUpBias, let m = configuration.adapter?.bottleneck {
                    if wants(ub) { Kernels.columnSums(dOut, m: batch, n: outW, into: gradient + offset(ub)) }
                    if wants(uw) {
                        Kernels.matmulTransposedA(dOut, w.adapterAct[l], gradient + offset(uw), m: outW, k: batch, n: m,
                                                  scratch: w.scratch)
                    }
                    let dAct = w.adapterDelta[l]
                    Kernels.matmul(dOut, p + offset(uw), dAct, m: batch, k: outW, n: m)     // (batch, m)
                    configuration.activation.backward(dAct, input: w.adapterPre[l], dAct, count: batch * m)
                    if wants(db) { Kernels.columnSums(dAct, m: batch, n: m, into: gradient + offset(db)) }
                    if wants(dw) {
                        Kernels.matmulTransposedA(dAct, w.g[l], gradient + offset(dw), m: m, k: batch, n: outW,
                                                  scratch: w.scratch)
                    }
                    // residual: ∂L/∂g = dOut + dAct·D
                    Kernels.matmul(dAct, p + offset(dw), dOut, m: batch, k: m, n: outW, accumulate: true)
                }
                if configuration.dropout > 0 { Dropout.backward(dOut, mask: w.mask[l], count: batch * outW) }
                let activationInput = t.normGain != nil ? UnsafePointer(w.normed[l]) : UnsafePointer(w.z[l])
                configuration.activation.backward(dOut, input: activationInput, dOut, count: batch * outW)
                if let gain = t.normGain, let bias = t.normBias {
                    LayerNorm.backward(dOut, gain: p + offset(gain), normalized: w.xhat[l], inverseStd: w.rstd[l], dX: dOut,
                                       dGain: wants(gain) ? gradient + offset(gain) : nil,
                                       dBias: wants(bias) ? gradient + offset(bias) : nil, m: batch, n: outW)
                }
            }
            let dZ = UnsafePointer(dOut)
            if wants(t.bias) { Kernels.columnSums(dZ, m: batch, n: outW, into: gradient + offset(t.bias)) }
            if wants(t.weight) {
                // (out, in) = (batch, out)ᵀ · (batch, in)
                Kernels.matmulTransposedA(dZ, layerInput, gradient + offset(t.weight), m: outW, k: batch, n: inW,
                                          scratch: w.scratch)
            }
            var dU: UnsafeMutablePointer<Float>? = nil
            if let a = t.loraA, let b = t.loraB, let lora = configuration.lora {
                let r = lora.rank
                if wants(b) {
                    // ∂L/∂B = dZᵀ · (s·x·Aᵀ), the scaled projection kept by the forward pass
                    Kernels.matmulTransposedA(dZ, w.lora[l], gradient + offset(b), m: outW, k: batch, n: r, scratch: w.scratch)
                }
                let u = w.loraDelta[l]
                Kernels.matmul(dZ, p + offset(b), u, m: batch, k: outW, n: r)               // (batch, r)
                let s = lora.scale
                for i in 0..<(batch * r) { u[i] *= s }
                if wants(a) {
                    Kernels.matmulTransposedA(u, layerInput, gradient + offset(a), m: r, k: batch, n: inW, scratch: w.scratch)
                }
                dU = u
            }
            guard l > lowest || (l == 0 && dInput != nil) else { break }
            let dPrevious = l == 0 ? dInput! : w.delta[l - 1]
            // (batch, in) = (batch, out) · (out, in)
            Kernels.matmul(dZ, p + offset(t.weight), dPrevious, m: batch, k: outW, n: inW)
            if let dU, let a = t.loraA, let r = configuration.lora?.rank {
                Kernels.matmul(dU, p + offset(a), dPrevious, m: batch, k: r, n: inW, accumulate: true)
            }
            dOut = dPrevious
        }
    }
}

/// Which tensors of an MLP get gradients.
public struct TrainableMask: Sendable, Equatable {
    /// Per tensor, in layout order.
    public var tensors: [Bool]
    /// The earliest layer holding a trainable tensor: nothing is propagated below it.
    public let lowestTrainableLayer: Int?

    public init(mlp: MLP, selection: ParameterSelection) {
        tensors = mlp.layout.tensors.map { selection.contains(tensorNamed: $0.name) }
        let mask = tensors
        lowestTrainableLayer = mlp.layers.indices.first { l in mlp.layers[l].all.contains { mask[$0] } }
    }
}

/// Scratch buffers for one MLP at a fixed maximum batch, allocated once so that a training
/// step allocates nothing. Owned by one site actor; not shared across tasks.
public final class MLPWorkspace {
    public let capacity: Int
    private let storage: [UnsafeMutablePointer<Float>]
    // Per layer (capacity × layer width unless noted): linear output z, LayerNorm output and x̂,
    // 1/σ (capacity), activation output g, dropout mask, adapter output a, backward delta,
    // adapter bottleneck pre/post activation and delta (capacity × m), LoRA projection and delta (capacity × r).
    let z: [UnsafeMutablePointer<Float>], normed: [UnsafeMutablePointer<Float>]
    let xhat: [UnsafeMutablePointer<Float>], rstd: [UnsafeMutablePointer<Float>]
    let g: [UnsafeMutablePointer<Float>], mask: [UnsafeMutablePointer<Float>]
    let a: [UnsafeMutablePointer<Float>], delta: [UnsafeMutablePointer<Float>]
    let adapterPre: [UnsafeMutablePointer<Float>], adapterAct: [UnsafeMutablePointer<Float>]
    let adapterDelta: [UnsafeMutablePointer<Float>]
    let lora: [UnsafeMutablePointer<Float>], loraDelta: [UnsafeMutablePointer<Float>]
    let dLogits: UnsafeMutablePointer<Float>
    /// Packing space for A·Bᵀ products and the transposed route of weight gradients.
    let scratch: UnsafeMutablePointer<Float>

    public init(mlp: MLP, capacity: Int) {
        self.capacity = capacity
        var storage: [UnsafeMutablePointer<Float>] = []
        func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            // Cache-line aligned: an unaligned SIMD16 load spans two lines, which cost the
            // matrix products up to a fifth of their speed depending on where malloc put a buffer.
            let p = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
                .bindMemory(to: Float.self, capacity: max(count, 1))
            p.initialize(repeating: 0, count: max(count, 1))
            storage.append(p)
            return p
        }
        let configuration = mlp.configuration
        let bottleneck = configuration.adapter?.bottleneck ?? 0
        let rank = configuration.lora?.rank ?? 0
        let widths = Array(configuration.widths.dropFirst())
        let norm = configuration.layerNorm, dropout = configuration.dropout > 0
        z = widths.map { buffer(capacity * $0) }
        normed = widths.map { buffer(norm ? capacity * $0 : 0) }
        xhat = widths.map { buffer(norm ? capacity * $0 : 0) }
        rstd = widths.map { _ in buffer(norm ? capacity : 0) }
        g = widths.map { buffer(capacity * $0) }
        mask = widths.map { buffer(dropout ? capacity * $0 : 0) }
        a = widths.map { buffer(bottleneck > 0 ? capacity * $0 : 0) }
        delta = widths.map { buffer(capacity * $0) }
        adapterPre = widths.map { _ in buffer(capacity * bottleneck) }
        adapterAct = widths.map { _ in buffer(capacity * bottleneck) }
        adapterDelta = widths.map { _ in buffer(capacity * bottleneck) }
        lora = widths.map { _ in buffer(capacity * rank) }
        loraDelta = widths.map { _ in buffer(capacity * rank) }
        dLogits = buffer(capacity)
        let widest = configuration.widths.max()! + rank + bottleneck
        scratch = buffer(max(Kernels.transposedBScratch(m: capacity, k: widest, n: widest),
                             Kernels.transposedAScratch(m: widest, n: widest)))
        self.storage = storage
    }

    deinit {
        storage.forEach { $0.deallocate() }
    }

    /// Logits of the last forward pass (capacity entries; the first `batch` are valid).
    public var logits: UnsafeMutablePointer<Float> { z[z.count - 1] }
    /// ∂L/∂logit, written by the loss before `backward`.
    public var dLogitsPointer: UnsafeMutablePointer<Float> { dLogits }
}

extension MLP {
    /// FLOPs (a multiply-add counts 2) of one training example's forward and backward pass under
    /// `mask`: every forward product; weight-gradient products only for trainable weights; products
    /// that carry the gradient down only above the lowest trainable layer. This is where BitFit saves.
    public func trainingFlopsPerExample(_ mask: TrainableMask) -> Double {
        let widths = configuration.widths
        guard let lowest = mask.lowestTrainableLayer else {
            return (0..<layerCount).reduce(0) { $0 + 2 * Double(widths[$1] * widths[$1 + 1]) }
        }
        var flops = 0.0
        for l in 0..<layerCount {
            let (inW, outW) = (Double(widths[l]), Double(widths[l + 1]))
            let t = layers[l]
            flops += 2 * inW * outW
            if l >= lowest, mask.tensors[t.weight] { flops += 2 * inW * outW }
            if l > lowest { flops += 2 * inW * outW }
            if let a = t.loraA, let b = t.loraB, let r = configuration.lora.map({ Double($0.rank) }) {
                flops += 2 * r * (inW + outW)                               // forward: x·Aᵀ, then ·Bᵀ
                if l >= lowest { flops += 2 * outW * r }                    // dZ·B, needed for A or below
                if mask.tensors[b] { flops += 2 * outW * r }
                if mask.tensors[a] { flops += 2 * r * inW }
                if l > lowest { flops += 2 * r * inW }
            }
            if let dw = t.adapterDownWeight, let uw = t.adapterUpWeight, let m = configuration.adapter.map({ Double($0.bottleneck) }) {
                flops += 4 * outW * m                                       // down and up projections
                if l >= lowest {
                    flops += 4 * outW * m                                   // back through up, then down
                    if mask.tensors[uw] { flops += 2 * outW * m }
                    if mask.tensors[dw] { flops += 2 * outW * m }
                }
            }
        }
        return flops
    }
}
