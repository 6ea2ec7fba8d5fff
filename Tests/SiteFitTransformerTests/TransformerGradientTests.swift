import Foundation
import Testing
@testable import SiteFitCore
@testable import SiteFitKernels
@testable import SiteFitNN
@testable import SiteFitTransformer
import SiteFitTuning

/// The transformer's forward pass against the Double reference, and its backward pass against
/// central differences of that reference: every tensor, with and without every extension, with
/// padded and wholly empty sequences in the batch. Then each new layer on its own.
///
/// Tolerance (as the MLP's check): |analytic − numeric| ≤ 1e-4 + 1e-3·|numeric|; central differences
/// in Double with h = 1e-5 are exact to ~1e-10, the analytic side is Float.
@Suite("Transformer gradients against finite differences")
struct TransformerGradientTests {
    static let configuration = TransformerConfiguration(vocabularySize: 9, timeBuckets: 4, maxLength: 5, width: 8, heads: 2, layers: 2,
                                                        feedForwardWidth: 12)
    static let cases: [(String, TransformerExtensions)] = [
        ("pretrained", .none),
        ("every extension", TransformerExtensions(lora: (rank: 2, alpha: 4), adapterBottleneck: 3, ia3: true)),
    ]

    static func agrees(_ analytic: Float, _ numeric: Double) -> Bool { abs(Double(analytic) - numeric) <= 1e-4 + 1e-3 * abs(numeric) }

    /// Three patients: five tokens; two tokens then padding; nothing at all.
    static func input() -> [Float] {
        let tokens: [[Float]] = [[3, 0, 0], [7, 1, 0], [4, 1, 1], [8, 2, 1], [3, 3, 0],
                                 [5, 2, 0], [6, 3, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0],
                                 [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]
        return tokens.flatMap { $0 }
    }

    static func setup(_ extensions: TransformerExtensions) -> (Transformer, [Float]) {
        let model = Transformer(configuration, extensions: extensions)
        var random = RandomStream(seed: 23, "transformer-gradients", extensions.ia3 ? "extended" : "base")
        // Larger than the model's own initialisation, so that every path carries a visible gradient.
        return (model, (0..<model.layout.count).map { _ in Float(random.gaussian() * 0.4) })
    }

    /// ∂(Σ r·logit)/∂θ for the tensors of `selection` (NaN elsewhere).
    static func analytic(_ model: Transformer, _ parameters: [Float], _ input: [Float], _ r: [Float], selection: ParameterSelection) -> [Float] {
        let batch = r.count
        let workspace = model.makeWorkspace(capacity: batch)
        var gradient = [Float](repeating: .nan, count: model.layout.count)
        let mask = model.trainableMask(selection)
        parameters.withUnsafeBufferPointer { p in
            input.withUnsafeBufferPointer { x in
                model.forward(parameters: p.baseAddress!, input: x.baseAddress!, batch: batch, workspace: workspace)
                workspace.dLogitsPointer.update(from: r, count: batch)
                gradient.withUnsafeMutableBufferPointer { g in
                    model.backward(parameters: p.baseAddress!, input: x.baseAddress!, batch: batch, workspace: workspace,
                                   gradient: g.baseAddress!, trainable: mask, dInput: nil)
                }
            }
        }
        return gradient
    }

    static func logits(_ model: Transformer, _ parameters: [Float], _ input: [Float], batch: Int) -> [Float] {
        let workspace = model.makeWorkspace(capacity: batch)
        parameters.withUnsafeBufferPointer { p in
            input.withUnsafeBufferPointer { x in
                model.forward(parameters: p.baseAddress!, input: x.baseAddress!, batch: batch, workspace: workspace)
            }
        }
        return Array(UnsafeBufferPointer(start: workspace.logits, count: batch))
    }

    @Test("forward pass matches the Double reference", arguments: cases.map(\.0))
    func forward(_ name: String) {
        let (model, parameters) = Self.setup(Self.cases.first { $0.0 == name }!.1)
        let fast = Self.logits(model, parameters, Self.input(), batch: 3)
        let exact = ReferenceTransformer(model: model).logits(parameters.map(Double.init), input: Self.input(), batch: 3)
        for (f, e) in zip(fast, exact) { #expect(abs(Double(f) - e) <= 1e-4 * max(1, abs(e)), "\(f) vs \(e)") }
        // The empty patient pools to 0: its logit is the head's bias.
        #expect(fast[2] == parameters[model.layout.tensor(named: "head.bias")!.offset])
    }

    @Test("every tensor's gradient matches central differences", arguments: cases.map(\.0))
    func gradients(_ name: String) {
        let (model, parameters) = Self.setup(Self.cases.first { $0.0 == name }!.1)
        let r: [Float] = [0.7, -1.3, 0.4]
        let everything = ParameterSelection(layout: model.layout, tensorNames: model.layout.tensors.map(\.name))
        let gradient = Self.analytic(model, parameters, Self.input(), r, selection: everything)
        let reference = ReferenceTransformer(model: model)
        let p = parameters.map(Double.init)
        func loss(_ q: [Double]) -> Double { zip(reference.logits(q, input: Self.input(), batch: 3), r).reduce(0) { $0 + $1.0 * Double($1.1) } }
        let h = 1e-5
        var checked = 0
        for spec in model.layout.tensors {
            for i in spec.range {
                var plus = p, minus = p
                plus[i] += h
                minus[i] -= h
                let numeric = (loss(plus) - loss(minus)) / (2 * h)
                #expect(Self.agrees(gradient[i], numeric), "\(spec.name)[\(i - spec.offset)]: \(gradient[i]) vs \(numeric)")
                checked += 1
            }
        }
        #expect(checked == model.layout.count)
        // The padding, mask and unknown rows get exactly nothing: no real token reads them, and
        // padding tokens (which read row 0) receive no gradient.
        let code = model.layout.tensor(named: "embedding.code")!
        #expect(gradient[code.offset..<(code.offset + 3 * 8)].allSatisfy { $0 == 0 })  // padding, mask and unknown codes
    }

    @Test("each mode's backward pass gives its tensors the full pass's gradients and leaves the rest untouched",
          arguments: ["full", "bitfit", "head", "lora", "adapter", "ia3"])
    func partialMasks(_ modeName: String) {
        let (model, parameters) = Self.setup(Self.cases[1].1)
        let r: [Float] = [0.7, -1.3, 0.4]
        let everything = ParameterSelection(layout: model.layout, tensorNames: model.layout.tensors.map(\.name))
        let full = Self.analytic(model, parameters, Self.input(), r, selection: everything)
        let selection = FineTuningMode.named(modeName)!.selection(for: model.layout)
        #expect(!selection.tensorNames.isEmpty)
        let partial = Self.analytic(model, parameters, Self.input(), r, selection: selection)
        for spec in model.layout.tensors {
            if selection.contains(tensorNamed: spec.name) {
                #expect(Array(partial[spec.range]) == Array(full[spec.range]), "\(modeName): \(spec.name)")
            } else {
                #expect(partial[spec.range].allSatisfy { $0.isNaN }, "\(modeName) wrote \(spec.name)")
            }
        }
    }

    // MARK: The transformer's own layers, one at a time

    /// Central differences of `loss` at `x` against `analytic`.
    static func check(_ analytic: [Float], at x: [Double], _ what: String, loss: ([Double]) -> Double) {
        let h = 1e-5
        for i in x.indices {
            var plus = x, minus = x
            plus[i] += h
            minus[i] -= h
            let numeric = (loss(plus) - loss(minus)) / (2 * h)
            #expect(agrees(analytic[i], numeric), "\(what)[\(i)]: \(analytic[i]) vs \(numeric)")
        }
    }

    @Test("attention core: ∂L/∂qkv with padding and an empty sequence", arguments: [(2, 5, 2, 3), (3, 4, 1, 5)])
    func attention(shape: (Int, Int, Int, Int)) {
        let (batch, length, heads, headWidth) = shape
        let width = heads * headWidth
        var random = RandomStream(seed: 5, "attention-check")
        let qkv = (0..<(batch * length * 3 * width)).map { _ in Float(random.gaussian()) }
        let r = (0..<(batch * length * width)).map { _ in Float(random.gaussian()) }
        var keep = [Float](repeating: 1, count: batch * length)
        for s in 2..<length { keep[length + s] = 0 }                       // the second sequence: two tokens
        if batch > 2 { for s in 0..<length { keep[2 * length + s] = 0 } } // the third: none
        var probabilities = [Float](repeating: 0, count: batch * heads * length * length)
        var context = [Float](repeating: 0, count: batch * length * width), dQKV = qkv
        var scratch = [Float](repeating: 0, count: Kernels.attentionScratch(length: length, headWidth: headWidth))
        Kernels.attentionForward(qkv: qkv, keep: keep, batch: batch, length: length, heads: heads, headWidth: headWidth,
                                 probabilities: &probabilities, context: &context, scratch: &scratch)
        Kernels.attentionBackward(dContext: r, qkv: qkv, probabilities: probabilities, batch: batch, length: length, heads: heads,
                                  headWidth: headWidth, dQKV: &dQKV, scratch: &scratch)
        func loss(_ x: [Double]) -> Double {
            var total = 0.0
            for b in 0..<batch { for h in 0..<heads { for i in 0..<length {
                let kept = (0..<length).filter { keep[b * length + $0] != 0 }
                guard !kept.isEmpty else { continue }
                let scores = kept.map { j in
                    (0..<headWidth).reduce(0.0) { $0 + x[(b * length + i) * 3 * width + h * headWidth + $1]
                        * x[(b * length + j) * 3 * width + width + h * headWidth + $1] } / Double(headWidth).squareRoot()
                }
                let top = scores.max()!, e = scores.map { Foundation.exp($0 - top) }, sum = e.reduce(0, +)
                for k in 0..<headWidth {
                    let c = zip(kept, e).reduce(0.0) { $0 + $1.1 / sum * x[(b * length + $1.0) * 3 * width + 2 * width + h * headWidth + k] }
                    total += c * Double(r[(b * length + i) * width + h * headWidth + k])
                }
            } } }
            return total
        }
        Self.check(dQKV, at: qkv.map(Double.init), "dqkv", loss: loss)
    }

    @Test("masked mean pool")
    func pool() {
        let (batch, length, n) = (3, 4, 5)
        var random = RandomStream(seed: 6, "pool-check")
        let x = (0..<(batch * length * n)).map { _ in Float(random.gaussian()) }
        let r = (0..<(batch * n)).map { _ in Float(random.gaussian()) }
        let keep: [Float] = [1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
        var pooled = [Float](repeating: .nan, count: batch * n), dX = x
        Kernels.maskedMeanPool(x, keep: keep, batch: batch, length: length, width: n, into: &pooled)
        #expect(TransformerKernelAgreement.close(pooled, NaiveKernels.maskedMeanPool(x, keep: keep, batch: batch, length: length, width: n)))
        Kernels.maskedMeanPoolBackward(r, keep: keep, batch: batch, length: length, width: n, into: &dX)
        Self.check(dX, at: x.map(Double.init), "dx") { xs in
            NaiveKernels.maskedMeanPool(xs.map(Float.init), keep: keep, batch: batch, length: length, width: n).indices.reduce(0.0) { total, i in
                let b = i / n, j = i % n
                let kept = (0..<length).filter { keep[b * length + $0] != 0 }
                let mean = kept.isEmpty ? 0 : kept.reduce(0.0) { $0 + xs[(b * length + $1) * n + j] } / Double(kept.count)
                return total + mean * Double(r[i])
            }
        }
    }

    /// Runs a unit forward and backward over `rows` rows; returns its output and every tensor's gradient and ∂L/∂x.
    static func runUnit(_ unit: any NetworkUnit, parameters: [Float], input: [Float], rows: Int, dOutput: [Float])
        -> (output: [Float], gradient: [Float], dInput: [Float]) {
        var offsets: [Int] = [], count = 0
        for t in unit.tensors { offsets.append(count); count += t.shape.reduce(1, *) }
        var output = [Float](repeating: .nan, count: rows * unit.outputWidth)
        var scratch = [Float](repeating: 0, count: max(1, rows * unit.scratchPerRow)), product = [Float](repeating: 0, count: 1)
        var gradient = [Float](repeating: .nan, count: count), dInput = [Float](repeating: .nan, count: input.count), dY = dOutput
        parameters.withUnsafeBufferPointer { p in offsets.withUnsafeBufferPointer { o in input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in scratch.withUnsafeMutableBufferPointer { s in
                product.withUnsafeMutableBufferPointer { ps in gradient.withUnsafeMutableBufferPointer { g in
                    let pass = UnitPass(parameters: p.baseAddress!, offsets: o.baseAddress!, input: x.baseAddress!, output: y.baseAddress!,
                                        batch: rows, capacity: rows, scratch: s.baseAddress!, productScratch: ps.baseAddress!,
                                        gradient: g.baseAddress!)
                    var unused = RandomStream(seed: 0)
                    unit.forward(pass, training: true, random: &unused)
                    dY.withUnsafeMutableBufferPointer { dy in dInput.withUnsafeMutableBufferPointer { dx in
                        unit.backward(pass, dOutput: dy.baseAddress!, dInput: dx.baseAddress!,
                                      wants: UnitWants(mask: [Bool](repeating: true, count: unit.tensors.count), first: 0,
                                                       receives: true, propagates: true))
                    } }
                } }
            } }
        } } }
        return (output, gradient, dInput)
    }

    @Test("embedding: every table's gradient, out-of-range ids clamped")
    func embedding() {
        let c = TransformerConfiguration(vocabularySize: 6, timeBuckets: 3, maxLength: 4, width: 5, heads: 1, layers: 0)
        let unit = EmbeddingUnit(c)
        var random = RandomStream(seed: 7, "embedding-check")
        let count = unit.tensors.reduce(0) { $0 + $1.shape.reduce(1, *) }
        let parameters = (0..<count).map { _ in Float(random.gaussian()) }
        // Two patients of four tokens; ids 11 (beyond the vocabulary) and −1 read as unknown, bucket 9 as the last.
        let input: [Float] = [3, 0, 0, 5, 1, 1, 5, 2, 0, 11, 9, 1,
                              4, 2, 1, -1, 0, 0, 0, 0, 0, 3, 1, 1]
        let r = (0..<(8 * 5)).map { _ in Float(random.gaussian()) }
        let (output, gradient, dInput) = Self.runUnit(unit, parameters: parameters, input: input, rows: 8, dOutput: r)
        func forward(_ p: [Double]) -> [Double] {
            var y = [Double](repeating: 0, count: 8 * 5)
            let offsets = [0, 30, 45, 65]
            for t in 0..<8 {
                let rawCode = Int(input[3 * t]), code = rawCode >= 0 && rawCode < 6 ? rawCode : 2
                let time = min(Int(input[3 * t + 1]), 2), segment = Int(input[3 * t + 2])
                for j in 0..<5 {
                    y[t * 5 + j] = p[offsets[0] + code * 5 + j] + p[offsets[1] + time * 5 + j] + p[offsets[2] + (t % 4) * 5 + j]
                        + p[offsets[3] + segment * 5 + j]
                }
            }
            return y
        }
        let p = parameters.map(Double.init)
        for (f, e) in zip(output, forward(p)) { #expect(abs(Double(f) - e) < 1e-5) }
        Self.check(gradient, at: p, "embedding") { q in zip(forward(q), r).reduce(0) { $0 + $1.0 * Double($1.1) } }
        #expect(dInput.allSatisfy { $0 == 0 })
    }

    @Test("(IA)³ on keys and values: both scales and ∂L/∂x")
    func keyValueScale() {
        let unit = KeyValueScale(name: "kv", width: 4)
        var random = RandomStream(seed: 8, "kv-check")
        let parameters = (0..<8).map { _ in Float(random.gaussian()) }
        let x = (0..<(3 * 12)).map { _ in Float(random.gaussian()) }, r = (0..<(3 * 12)).map { _ in Float(random.gaussian()) }
        let (_, gradient, dInput) = Self.runUnit(unit, parameters: parameters, input: x, rows: 3, dOutput: r)
        func loss(_ p: [Double], _ x: [Double]) -> Double {
            var total = 0.0
            for row in 0..<3 { for j in 0..<12 {
                let factor = j < 4 ? 1 : (j < 8 ? p[j - 4] : p[4 + j - 8])
                total += x[row * 12 + j] * factor * Double(r[row * 12 + j])
            } }
            return total
        }
        let p = parameters.map(Double.init), xd = x.map(Double.init)
        Self.check(gradient, at: p, "scale") { loss($0, xd) }
        Self.check(dInput, at: xd, "dx") { loss(p, $0) }
    }
}

/// The kernels' test tolerance, for the pool check here.
enum TransformerKernelAgreement {
    static func close(_ a: [Float], _ b: [Float]) -> Bool { a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) } }
}
