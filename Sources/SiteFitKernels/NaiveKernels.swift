import Foundation

/// Plain-loop twins of `Kernels`, the readable reference every fast kernel is tested against.
public enum NaiveKernels {
    /// C(m,n) (+)= A(m,k) · B(k,n).
    public static func matmul(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var t: Float = 0
            for p in 0..<k { t += a[i * k + p] * b[p * n + j] }
            c[i * n + j] = t
        } }
        return c
    }

    /// C(m,n) = A(k,m)ᵀ · B(k,n).
    public static func matmulTransposedA(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var t: Float = 0
            for p in 0..<k { t += a[p * m + i] * b[p * n + j] }
            c[i * n + j] = t
        } }
        return c
    }

    /// C(m,n) = A(m,k) · B(n,k)ᵀ.
    public static func matmulTransposedB(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var t: Float = 0
            for p in 0..<k { t += a[i * k + p] * b[j * k + p] }
            c[i * n + j] = t
        } }
        return c
    }

    /// (y + bias, max(0, y + bias)) row by row.
    public static func addBiasReLU(_ y: [Float], bias: [Float], m: Int, n: Int) -> (biased: [Float], activated: [Float]) {
        var biased = y
        for i in 0..<m { for j in 0..<n { biased[i * n + j] = y[i * n + j] + bias[j] } }
        return (biased, biased.map { max(0, $0) })
    }

    /// Plain Adam step, the reference for `Kernels.adamStep`.
    public static func adamStep(
        parameters: [Float], gradient: [Float], firstMoment: [Float], secondMoment: [Float],
        alpha: Float, beta1: Float, beta2: Float, epsilonHat: Float, decay: Float
    ) -> (parameters: [Float], firstMoment: [Float], secondMoment: [Float]) {
        var p = parameters, m = firstMoment, v = secondMoment
        for i in p.indices {
            m[i] = beta1 * m[i] + (1 - beta1) * gradient[i]
            v[i] = beta2 * v[i] + (1 - beta2) * gradient[i] * gradient[i]
            p[i] = p[i] * decay - alpha * m[i] / (v[i].squareRoot() + epsilonHat)
        }
        return (p, m, v)
    }

    /// Gradient masked where the activation was not positive.
    public static func reluBackward(_ gradient: [Float], activated: [Float]) -> [Float] {
        zip(gradient, activated).map { $1 > 0 ? $0 : 0 }
    }

    /// Column sums of an (m, n) matrix.
    public static func columnSums(_ x: [Float], m: Int, n: Int) -> [Float] {
        var sums = [Float](repeating: 0, count: n)
        for i in 0..<m { for j in 0..<n { sums[j] += x[i * n + j] } }
        return sums
    }

    // The transformer's kernels (Kernels+Transformer.swift), written as the formulas read.

    /// GELU x·Φ(x) with the C library's erf.
    public static func gelu(_ x: [Float]) -> [Float] { x.map { 0.5 * $0 * (1 + erff($0 * 0.70710678)) } }

    /// dY ⊙ (Φ(x) + x·φ(x)).
    public static func geluBackward(_ dY: [Float], input x: [Float]) -> [Float] {
        zip(dY, x).map { g, v in g * (0.5 * (1 + erff(v * 0.70710678)) + v * 0.39894228 * expf(-0.5 * v * v)) }
    }

    /// (y, x̂, rstd) of LayerNorm over m rows of n.
    public static func layerNorm(_ x: [Float], gain: [Float], bias: [Float], m: Int, n: Int, epsilon: Float = 1e-5)
        -> (y: [Float], normalized: [Float], inverseStd: [Float]) {
        var y = x, h = x, rstd = [Float](repeating: 0, count: m)
        for i in 0..<m {
            let row = Array(x[(i * n)..<((i + 1) * n)])
            let mean = row.reduce(0, +) / Float(n)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(n)
            rstd[i] = 1 / (variance + epsilon).squareRoot()
            for j in 0..<n {
                h[i * n + j] = (row[j] - mean) * rstd[i]
                y[i * n + j] = gain[j] * h[i * n + j] + bias[j]
            }
        }
        return (y, h, rstd)
    }

    /// (dX, dγ, dβ) of LayerNorm.
    public static func layerNormBackward(_ dY: [Float], gain: [Float], normalized h: [Float], inverseStd: [Float], m: Int, n: Int)
        -> (dX: [Float], dGain: [Float], dBias: [Float]) {
        var dX = dY, dGain = [Float](repeating: 0, count: n), dBias = [Float](repeating: 0, count: n)
        for i in 0..<m {
            var sum: Float = 0, dot: Float = 0
            for j in 0..<n {
                let g = dY[i * n + j]
                dGain[j] += g * h[i * n + j]
                dBias[j] += g
                sum += g * gain[j]
                dot += g * gain[j] * h[i * n + j]
            }
            for j in 0..<n {
                dX[i * n + j] = inverseStd[i] / Float(n) * (Float(n) * dY[i * n + j] * gain[j] - sum - h[i * n + j] * dot)
            }
        }
        return (dX, dGain, dBias)
    }

    /// Softmax of scale·x over kept columns, row by row; masked columns and rows with nothing kept are 0.
    public static func maskedSoftmax(_ x: [Float], keep: [Float], rows: Int, columns n: Int, scale: Float) -> [Float] {
        var p = [Float](repeating: 0, count: x.count)
        for i in 0..<rows {
            let kept = (0..<n).filter { keep[$0] != 0 }
            guard let maximum = kept.map({ x[i * n + $0] * scale }).max() else { continue }
            let sum = kept.reduce(Float(0)) { $0 + expf(x[i * n + $1] * scale - maximum) }
            for j in kept { p[i * n + j] = expf(x[i * n + j] * scale - maximum) / sum }
        }
        return p
    }

    /// scale · P ⊙ (dP − Σ P⊙dP), row by row.
    public static func softmaxBackward(_ dP: [Float], probabilities p: [Float], rows: Int, columns n: Int, scale: Float) -> [Float] {
        var d = dP
        for i in 0..<rows {
            var dot: Float = 0
            for j in 0..<n { dot += dP[i * n + j] * p[i * n + j] }
            for j in 0..<n { d[i * n + j] = scale * p[i * n + j] * (dP[i * n + j] - dot) }
        }
        return d
    }

    /// Multi-head attention over a fused (tokens, 3·width) buffer: (P, context).
    public static func attentionForward(qkv: [Float], keep: [Float], batch: Int, length: Int, heads: Int, headWidth: Int)
        -> (probabilities: [Float], context: [Float]) {
        let width = heads * headWidth, stride = 3 * width
        var probabilities = [Float](repeating: 0, count: batch * heads * length * length)
        var context = [Float](repeating: 0, count: batch * length * width)
        for b in 0..<batch { for h in 0..<heads {
            var scores = [Float](repeating: 0, count: length * length)
            for i in 0..<length { for j in 0..<length {
                var t: Float = 0
                for c in 0..<headWidth {
                    t += qkv[(b * length + i) * stride + h * headWidth + c] * qkv[(b * length + j) * stride + width + h * headWidth + c]
                }
                scores[i * length + j] = t
            } }
            let p = maskedSoftmax(scores, keep: Array(keep[(b * length)..<((b + 1) * length)]), rows: length, columns: length,
                                  scale: 1 / Float(headWidth).squareRoot())
            for (i, value) in p.enumerated() { probabilities[(b * heads + h) * length * length + i] = value }
            for i in 0..<length { for c in 0..<headWidth {
                var t: Float = 0
                for j in 0..<length { t += p[i * length + j] * qkv[(b * length + j) * stride + 2 * width + h * headWidth + c] }
                context[(b * length + i) * width + h * headWidth + c] = t
            } }
        } }
        return (probabilities, context)
    }

    /// ∂L/∂qkv of `attentionForward` given ∂L/∂context.
    public static func attentionBackward(dContext: [Float], qkv: [Float], probabilities: [Float], batch: Int, length: Int,
                                         heads: Int, headWidth: Int) -> [Float] {
        let width = heads * headWidth, stride = 3 * width
        var dQKV = [Float](repeating: 0, count: qkv.count)
        @inline(__always) func q(_ b: Int, _ i: Int, _ h: Int, _ c: Int, _ part: Int) -> Int { (b * length + i) * stride + part * width + h * headWidth + c }
        for b in 0..<batch { for h in 0..<heads {
            let p = Array(probabilities[((b * heads + h) * length * length)..<((b * heads + h + 1) * length * length)])
            var dP = [Float](repeating: 0, count: length * length)
            for i in 0..<length { for j in 0..<length {
                var t: Float = 0
                for c in 0..<headWidth { t += dContext[(b * length + i) * width + h * headWidth + c] * qkv[q(b, j, h, c, 2)] }
                dP[i * length + j] = t
            } }
            for j in 0..<length { for c in 0..<headWidth {
                var t: Float = 0
                for i in 0..<length { t += p[i * length + j] * dContext[(b * length + i) * width + h * headWidth + c] }
                dQKV[q(b, j, h, c, 2)] = t
            } }
            let dS = softmaxBackward(dP, probabilities: p, rows: length, columns: length, scale: 1 / Float(headWidth).squareRoot())
            for i in 0..<length { for c in 0..<headWidth {
                var dq: Float = 0, dk: Float = 0
                for j in 0..<length {
                    dq += dS[i * length + j] * qkv[q(b, j, h, c, 1)]
                    dk += dS[j * length + i] * qkv[q(b, j, h, c, 0)]
                }
                dQKV[q(b, i, h, c, 0)] = dq
                dQKV[q(b, i, h, c, 1)] = dk
            } }
        } }
        return dQKV
    }

    /// Mean over kept tokens of each sequence; 0 for a sequence of padding.
    public static func maskedMeanPool(_ x: [Float], keep: [Float], batch: Int, length: Int, width n: Int) -> [Float] {
        var pooled = [Float](repeating: 0, count: batch * n)
        for b in 0..<batch {
            let kept = (0..<length).filter { keep[b * length + $0] != 0 }
            for j in 0..<n {
                let total = kept.reduce(Float(0)) { $0 + x[(b * length + $1) * n + j] }
                pooled[b * n + j] = kept.isEmpty ? 0 : total / Float(kept.count)
            }
        }
        return pooled
    }
}
