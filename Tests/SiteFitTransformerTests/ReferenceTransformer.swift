import Foundation
import SiteFitNN
@testable import SiteFitTransformer

/// The transformer written again in Double as the formulas read, tensor by tensor from the
/// layout's names, with no kernel, unit or buffer of the model: the independent side of the
/// forward and finite-difference checks.
struct ReferenceTransformer {
    let model: Transformer

    var c: TransformerConfiguration { model.configuration }

    func tensor(_ p: [Double], _ name: String) -> [Double]? {
        model.layout.tensor(named: name).map { Array(p[$0.range]) }
    }

    func require(_ p: [Double], _ name: String) -> [Double] {
        guard let t = tensor(p, name) else { preconditionFailure("no tensor \(name)") }
        return t
    }

    /// x (rows, in) → (rows, out) with W (out, in), b, and LoRA's s·(x·Aᵀ)·Bᵀ when present.
    func linear(_ p: [Double], _ name: String, _ x: [Double], rows: Int, input: Int, output: Int) -> [Double] {
        let w = require(p, "\(name).weight"), b = require(p, "\(name).bias")
        let a = tensor(p, "\(name).lora.a"), bl = tensor(p, "\(name).lora.b")
        let rank = a.map { $0.count / input } ?? 0
        let scale = model.extensions.lora.map { $0.alpha / Double($0.rank) } ?? 0
        var y = [Double](repeating: 0, count: rows * output)
        for r in 0..<rows {
            var u = [Double](repeating: 0, count: rank)
            if let a { for k in 0..<rank { for i in 0..<input { u[k] += x[r * input + i] * a[k * input + i] } } }
            for o in 0..<output {
                var t = b[o]
                for i in 0..<input { t += x[r * input + i] * w[o * input + i] }
                if let bl { for k in 0..<rank { t += scale * u[k] * bl[o * rank + k] } }
                y[r * output + o] = t
            }
        }
        return y
    }

    func layerNorm(_ p: [Double], _ name: String, _ x: [Double], rows: Int, width n: Int) -> [Double] {
        let g = require(p, "\(name).gain"), b = require(p, "\(name).bias")
        var y = x
        for r in 0..<rows {
            let row = x[(r * n)..<((r + 1) * n)]
            let mean = row.reduce(0, +) / Double(n)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
            let rstd = 1 / (variance + 1e-5).squareRoot()
            for j in 0..<n { y[r * n + j] = g[j] * (x[r * n + j] - mean) * rstd + b[j] }
        }
        return y
    }

    func gelu(_ x: [Double]) -> [Double] { x.map { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) } }

    func adapter(_ p: [Double], _ name: String, _ x: [Double], rows: Int) -> [Double] {
        guard let m = model.extensions.adapterBottleneck else { return x }
        let hidden = gelu(linear(p, "\(name).down", x, rows: rows, input: c.width, output: m))
        let up = linear(p, "\(name).up", hidden, rows: rows, input: m, output: c.width)
        return zip(x, up).map(+)
    }

    /// Logits of `batch` patients whose token rows are `input`.
    func logits(_ p: [Double], input: [Float], batch: Int) -> [Double] {
        let (s, d) = (c.maxLength, c.width)
        let z = hidden(p, input: input, batch: batch)
        let keep = (0..<(batch * s)).map { input[3 * $0] != 0 }
        var pooled = [Double](repeating: 0, count: batch * d)
        for b in 0..<batch {
            let kept = (0..<s).filter { keep[b * s + $0] }
            for t in kept { for j in 0..<d { pooled[b * d + j] += z[(b * s + t) * d + j] / Double(kept.count) } }
        }
        return linear(p, "head", pooled, rows: batch, input: d, output: 1)
    }

    /// The final LayerNorm's output for every token (tokens, width).
    func hidden(_ p: [Double], input: [Float], batch: Int) -> [Double] {
        let (s, d, h) = (c.maxLength, c.width, c.heads)
        let dh = d / h, tokens = batch * s
        let keep = (0..<tokens).map { input[3 * $0] != 0 }
        let code = require(p, "embedding.code"), time = require(p, "embedding.time")
        let position = require(p, "embedding.position"), segment = require(p, "embedding.segment")
        var x = [Double](repeating: 0, count: tokens * d)
        for t in 0..<tokens {
            let id = Int(input[3 * t]), bucket = Int(input[3 * t + 1]), seg = Int(input[3 * t + 2])
            for j in 0..<d {
                x[t * d + j] = code[id * d + j] + time[bucket * d + j] + position[(t % s) * d + j] + segment[seg * d + j]
            }
        }
        for l in 0..<c.layers {
            let prefix = "blocks.\(l)"
            var qkv = linear(p, "\(prefix).attention.qkv", layerNorm(p, "\(prefix).attention.norm", x, rows: tokens, width: d),
                             rows: tokens, input: d, output: 3 * d)
            if let lk = tensor(p, "\(prefix).attention.key.ia3.scale"), let lv = tensor(p, "\(prefix).attention.value.ia3.scale") {
                for t in 0..<tokens { for j in 0..<d { qkv[t * 3 * d + d + j] *= lk[j]; qkv[t * 3 * d + 2 * d + j] *= lv[j] } }
            }
            var context = [Double](repeating: 0, count: tokens * d)
            for b in 0..<batch { for head in 0..<h {
                for i in 0..<s {
                    let kept = (0..<s).filter { keep[b * s + $0] }
                    guard !kept.isEmpty else { continue }
                    let scores = kept.map { j in
                        (0..<dh).reduce(0.0) { $0 + qkv[(b * s + i) * 3 * d + head * dh + $1] * qkv[(b * s + j) * 3 * d + d + head * dh + $1] }
                            / Double(dh).squareRoot()
                    }
                    let top = scores.max()!
                    let e = scores.map { Foundation.exp($0 - top) }
                    let total = e.reduce(0, +)
                    for (n, j) in kept.enumerated() { for k in 0..<dh {
                        context[(b * s + i) * d + head * dh + k] += e[n] / total * qkv[(b * s + j) * 3 * d + 2 * d + head * dh + k]
                    } }
                }
            } }
            let attended = adapter(p, "\(prefix).attention.adapter",
                                   linear(p, "\(prefix).attention.output", context, rows: tokens, input: d, output: d), rows: tokens)
            let middle = zip(x, attended).map(+)
            var inner = gelu(linear(p, "\(prefix).feedforward.inner", layerNorm(p, "\(prefix).feedforward.norm", middle, rows: tokens, width: d),
                                    rows: tokens, input: d, output: c.feedForwardWidth))
            if let lf = tensor(p, "\(prefix).feedforward.ia3.scale") {
                for t in 0..<tokens { for j in 0..<c.feedForwardWidth { inner[t * c.feedForwardWidth + j] *= lf[j] } }
            }
            let outer = adapter(p, "\(prefix).feedforward.adapter",
                                linear(p, "\(prefix).feedforward.outer", inner, rows: tokens, input: c.feedForwardWidth, output: d), rows: tokens)
            x = zip(middle, outer).map(+)
        }
        return layerNorm(p, "final_norm", x, rows: tokens, width: d)
    }

    /// Masked-code modelling's mean cross-entropy, the decoder tied to `embedding.code` with the bias `mlm.bias`.
    func maskedCodeLoss(_ p: [Double], input: [Float], targets: [Int32], batch: Int) -> Double {
        let d = c.width, v = c.vocabularySize
        let z = hidden(p, input: input, batch: batch)
        let code = require(p, "embedding.code"), bias = Array(p[model.layout.count..<(model.layout.count + v)])
        var total = 0.0, chosen = 0
        for (t, target) in targets.enumerated() where target >= 0 {
            let logits = (0..<v).map { j in (0..<d).reduce(bias[j]) { $0 + z[t * d + $1] * code[j * d + $1] } }
            let top = logits.max()!
            let logSum = top + Foundation.log(logits.reduce(0) { $0 + Foundation.exp($1 - top) })
            total += logSum - logits[Int(target)]
            chosen += 1
        }
        return total / Double(chosen)
    }
}
