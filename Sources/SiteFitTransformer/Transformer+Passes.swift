import SiteFitCore
import SiteFitKernels
import SiteFitNN

extension Transformer {
    /// The pass of unit `i` over `rows` rows of `input`.
    @inline(__always)
    func pass(_ i: Int, _ p: UnsafePointer<Float>, input: UnsafePointer<Float>, rows: Int, workspace w: TransformerWorkspace,
              gradient: UnsafeMutablePointer<Float>) -> UnitPass {
        UnitPass(parameters: p, offsets: w.offsets + architecture.firstTensor[i], input: input, output: w.outputs[i], batch: rows,
                 capacity: w.rowCapacity(i), scratch: w.scratches[i], productScratch: w.productScratch, gradient: gradient)
    }

    public func forward(parameters p: UnsafePointer<Float>, input: UnsafePointer<Float>, batch: Int, workspace w: TransformerWorkspace,
                        training: Bool, random: inout RandomStream) {
        precondition(batch <= w.capacity)
        let c = configuration, units = architecture.units, tokens = batch * c.maxLength, d = c.width
        for t in 0..<tokens { w.keep[t] = input[3 * t] == Float(TransformerConfiguration.Token.padding) ? 0 : 1 }
        @inline(__always) func run(_ i: Int, _ x: UnsafePointer<Float>, rows: Int = tokens) {
            units[i].forward(pass(i, p, input: x, rows: rows, workspace: w, gradient: w.dLogits), training: training, random: &random)
        }
        run(0, input)
        var x = UnsafePointer(w.outputs[0])
        for (l, block) in architecture.blocks.enumerated() {
            var previous = x
            for i in block.beforeAttention { run(i, previous); previous = UnsafePointer(w.outputs[i]) }
            Kernels.attentionForward(qkv: previous, keep: w.keep, batch: batch, length: c.maxLength, heads: c.heads, headWidth: c.headWidth,
                                     probabilities: w.probabilities[l], context: w.contexts[l], scratch: w.attentionScratch)
            previous = UnsafePointer(w.contexts[l])
            for i in block.afterAttention { run(i, previous); previous = UnsafePointer(w.outputs[i]) }
            Kernels.add(x, previous, into: w.middles[l], count: tokens * d)
            previous = UnsafePointer(w.middles[l])
            for i in block.feedForward { run(i, previous); previous = UnsafePointer(w.outputs[i]) }
            Kernels.add(w.middles[l], previous, into: w.residuals[l], count: tokens * d)
            x = UnsafePointer(w.residuals[l])
        }
        run(architecture.finalNorm, x)
        Kernels.maskedMeanPool(w.outputs[architecture.finalNorm], keep: w.keep, batch: batch, length: c.maxLength, width: d, into: w.pooled)
        run(architecture.head, w.pooled, rows: batch)
    }

    /// Runs the network in reverse from the logits down to the lowest unit with a trainable tensor;
    /// nothing below it runs. Token inputs are discrete: `dInput`, when given, is filled with 0.
    public func backward(parameters p: UnsafePointer<Float>, input: UnsafePointer<Float>, batch: Int, workspace w: TransformerWorkspace,
                         gradient: UnsafeMutablePointer<Float>, trainable: TrainableMask, dInput: UnsafeMutablePointer<Float>? = nil) {
        if let dInput { dInput.update(repeating: 0, count: batch * inputSize) }

        guard let lowest = trainable.lowestTrainableUnit else { return }
        let c = configuration, head = architecture.head
        let wants = UnitWants(mask: trainable.tensors, first: architecture.firstTensor[head], receives: true, propagates: head > lowest)
        architecture.units[head].backward(pass(head, p, input: w.pooled, rows: batch, workspace: w, gradient: gradient),
                                          dOutput: w.dLogits, dInput: w.dPooled, wants: wants)
        guard head > lowest else { return }
        Kernels.maskedMeanPoolBackward(w.dPooled, keep: w.keep, batch: batch, length: c.maxLength, width: c.width, into: w.deltaA)
        backwardBelowPool(parameters: p, input: input, batch: batch, workspace: w, gradient: gradient, trainable: trainable)
    }

    /// The backward pass from ∂L/∂(final LayerNorm output), which the caller has put in `w.deltaA`
    /// (the pool's backward pass, or masked-code modelling's decoder), down to the lowest trainable unit.
    func backwardBelowPool(parameters p: UnsafePointer<Float>, input: UnsafePointer<Float>, batch: Int, workspace w: TransformerWorkspace,
                           gradient: UnsafeMutablePointer<Float>, trainable: TrainableMask) {
        guard let lowest = trainable.lowestTrainableUnit else { return }
        let c = configuration, units = architecture.units, first = architecture.firstTensor
        let tokens = batch * c.maxLength, d = c.width
        func run(_ i: Int, input x: UnsafePointer<Float>, rows: Int = tokens,
                 dOutput: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>) -> Bool {
            let wants = UnitWants(mask: trainable.tensors, first: first[i], receives: true, propagates: i > lowest)
            units[i].backward(pass(i, p, input: x, rows: rows, workspace: w, gradient: gradient), dOutput: dOutput, dInput: dInput, wants: wants)
            return i > lowest
        }
        func unitInput(_ i: Int, block l: Int) -> UnsafePointer<Float> {
            let block = architecture.blocks[l]
            let x = l == 0 ? UnsafePointer(w.outputs[0]) : UnsafePointer(w.residuals[l - 1])
            switch i {
            case block.attentionNorm: return x
            case block.output: return UnsafePointer(w.contexts[l])
            case block.feedForwardNorm: return UnsafePointer(w.middles[l])
            default: return UnsafePointer(w.outputs[i - 1])
            }
        }
        let lastResidual = architecture.blocks.isEmpty ? UnsafePointer(w.outputs[0]) : UnsafePointer(w.residuals[architecture.blocks.count - 1])
        // Runs unit i backward from `dOutput` into `dInput`; false when it was the lowest (nothing below needs ∂L/∂x).
        guard run(architecture.finalNorm, input: lastResidual, dOutput: w.deltaA, dInput: w.dResidual) else { return }

        for l in stride(from: architecture.blocks.count - 1, through: 0, by: -1) {
            let block = architecture.blocks[l]
            // Feed-forward branch: ∂L/∂x′ enters it and passes by it; what comes out of LN₂ adds to ∂L/∂m.
            var current = w.deltaA, other = w.deltaB
            current.update(from: w.dResidual, count: tokens * d)
            for i in block.feedForward.reversed() {
                guard run(i, input: unitInput(i, block: l), dOutput: current, dInput: other) else { return }
                swap(&current, &other)
            }
            Kernels.add(w.dResidual, current, into: w.dResidual, count: tokens * d)
            // Attention branch.
            current = w.deltaA
            other = w.deltaB
            current.update(from: w.dResidual, count: tokens * d)
            for i in block.afterAttention.reversed() {
                guard run(i, input: unitInput(i, block: l), dOutput: current, dInput: other) else { return }
                swap(&current, &other)
            }
            let qkv = block.keyValueScale ?? block.qkv
            Kernels.attentionBackward(dContext: current, qkv: w.outputs[qkv], probabilities: w.probabilities[l], batch: batch,
                                      length: c.maxLength, heads: c.heads, headWidth: c.headWidth, dQKV: other, scratch: w.attentionScratch)
            swap(&current, &other)
            for i in block.beforeAttention.reversed() {
                guard run(i, input: unitInput(i, block: l), dOutput: current, dInput: other) else { return }
                swap(&current, &other)
            }
            Kernels.add(w.dResidual, current, into: w.dResidual, count: tokens * d)
        }
        _ = run(0, input: input, dOutput: w.dResidual, dInput: w.deltaA)
    }
}

/// Buffers for one transformer at a fixed maximum batch, allocated once so that a training step
/// allocates nothing: each unit's output and scratch over token rows, each block's attention
/// probabilities, context, and residual sums, the pool, and the backward pass's buffers.
/// Owned by one site actor or trainer; not shared across tasks.
public final class TransformerWorkspace: ModelWorkspace {
    public let capacity: Int
    private let tokenCapacity: Int
    private let headUnit: Int
    private let storage = AlignedStorage()
    let outputs: [UnsafeMutablePointer<Float>]
    let scratches: [UnsafeMutablePointer<Float>]
    let probabilities: [UnsafeMutablePointer<Float>]
    let contexts: [UnsafeMutablePointer<Float>]
    let middles: [UnsafeMutablePointer<Float>]
    let residuals: [UnsafeMutablePointer<Float>]
    let keep: UnsafeMutablePointer<Float>
    let pooled: UnsafeMutablePointer<Float>
    let dPooled: UnsafeMutablePointer<Float>
    let dLogits: UnsafeMutablePointer<Float>
    let dResidual: UnsafeMutablePointer<Float>
    /// Two buffers of the widest token row, passed back and forth through a branch's backward pass.
    let deltaA: UnsafeMutablePointer<Float>
    let deltaB: UnsafeMutablePointer<Float>
    let attentionScratch: UnsafeMutablePointer<Float>
    let productScratch: UnsafeMutablePointer<Float>
    let offsets: UnsafeMutablePointer<Int>

    public init(model: Transformer, capacity: Int) {
        let c = model.configuration, units = model.units
        self.capacity = capacity
        tokenCapacity = capacity * c.maxLength
        headUnit = model.architecture.head
        let buffer = storage.floats
        let tokens = tokenCapacity, d = c.width, blocks = model.architecture.blocks.count
        outputs = units.indices.map { buffer(capacity * model.rowsPerExample($0) * units[$0].outputWidth) }
        scratches = units.indices.map { buffer(capacity * model.rowsPerExample($0) * units[$0].scratchPerRow) }
        probabilities = (0..<blocks).map { _ in buffer(capacity * c.heads * c.maxLength * c.maxLength) }
        contexts = (0..<blocks).map { _ in buffer(tokens * d) }
        middles = (0..<blocks).map { _ in buffer(tokens * d) }
        residuals = (0..<blocks).map { _ in buffer(tokens * d) }
        keep = buffer(tokens)
        pooled = buffer(capacity * d)
        dPooled = buffer(capacity * d)
        dLogits = buffer(capacity)
        dResidual = buffer(tokens * d)
        let widest = units.reduce(3) { max($0, $1.inputWidth, $1.outputWidth) }
        deltaA = buffer(tokens * widest)
        deltaB = buffer(tokens * widest)
        attentionScratch = buffer(Kernels.attentionScratch(length: c.maxLength, headWidth: c.headWidth))
        let extra = units.reduce(0) { max($0, $1.extraWidth) }
        productScratch = buffer(Kernels.productScratch(rows: tokens, widest: widest + extra))
        offsets = storage.integers(model.architecture.offsets)
    }

    /// Rows unit i's buffers hold.
    func rowCapacity(_ i: Int) -> Int { i == headUnit ? capacity : tokenCapacity }

    public var logits: UnsafeMutablePointer<Float> { outputs[headUnit] }
    public var dLogitsPointer: UnsafeMutablePointer<Float> { dLogits }
}
