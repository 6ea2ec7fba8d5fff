import Foundation
import Testing
@testable import SiteFitKernels

/// The transformer's kernels against their naive twins, on widths with and without a 16-lane tail.
/// Tolerances: exp and erf are polynomial approximations (exp to ~2 ulp, erf to 1.5e-7 absolute);
/// the reductions sum in a different order than the twins, so 1e-5 relative covers them.
@Suite("Transformer kernels match their naive twins")
struct TransformerKernelTests {
    static func values(_ count: Int, seed: Int, spread: Double = 1) -> [Float] {
        (0..<count).map { Float(sin(Double($0 * 7 + seed) * 0.37) * spread) }
    }

    static func close(_ a: [Float], _ b: [Float], tolerance: Float = 1e-5) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tolerance * max(1, abs($1)) }
    }

    @Test("the vector exp is within 3e-7 relative of expf over the softmax's range", arguments: [1, 16, 37])
    func exponential(count: Int) {
        // From e^−87 (≈ 1.6e-38, near the smallest normal Float) to e^88; the softmax only ever feeds x ≤ 0.
        let x = (0..<count).map { Float(-87 + 175 * Double($0) / Double(max(1, count - 1))) } + [0, -1e-8, 0.5, -0.5, 10.25]
        var y = [Float](repeating: .nan, count: x.count)
        Kernels.exp(x, &y, count: x.count)
        for (fast, v) in zip(y, x) {
            let exact = Float(Foundation.exp(Double(v)))
            #expect(abs(fast - exact) <= 3e-7 * exact, "e^\(v): \(fast) vs \(exact)")
        }
    }

    @Test("GELU and its derivative", arguments: [1, 15, 16, 53])
    func gelu(count: Int) {
        let x = Self.values(count, seed: 3, spread: 6), dY = Self.values(count, seed: 4)
        var y = [Float](repeating: .nan, count: count), dX = y
        Kernels.gelu(x, &y, count: count)
        Kernels.geluBackward(dY, input: x, &dX, count: count)
        #expect(Self.close(y, NaiveKernels.gelu(x), tolerance: 1e-6))
        #expect(Self.close(dX, NaiveKernels.geluBackward(dY, input: x), tolerance: 1e-6))
        // in place, as the model calls it
        var inPlace = dY
        Kernels.geluBackward(inPlace, input: x, &inPlace, count: count)
        #expect(inPlace == dX)
    }

    @Test("LayerNorm forward and backward", arguments: [(1, 1), (3, 7), (5, 16), (4, 37), (9, 128)])
    func layerNorm(shape: (Int, Int)) {
        let (m, n) = shape
        let x = Self.values(m * n, seed: 5, spread: 3), gain = Self.values(n, seed: 6), bias = Self.values(n, seed: 7)
        var y = [Float](repeating: .nan, count: m * n), h = y, rstd = [Float](repeating: .nan, count: m)
        Kernels.layerNorm(x, gain: gain, bias: bias, y: &y, normalized: &h, inverseStd: &rstd, m: m, n: n)
        let naive = NaiveKernels.layerNorm(x, gain: gain, bias: bias, m: m, n: n)
        #expect(Self.close(y, naive.y) && Self.close(h, naive.normalized) && Self.close(rstd, naive.inverseStd))
        let dY = Self.values(m * n, seed: 8)
        var dX = [Float](repeating: .nan, count: m * n), dGain = [Float](repeating: .nan, count: n), dBias = dGain
        Kernels.layerNormBackward(dY, gain: gain, normalized: h, inverseStd: rstd, dX: &dX, dGain: &dGain, dBias: &dBias, m: m, n: n)
        let expected = NaiveKernels.layerNormBackward(dY, gain: gain, normalized: h, inverseStd: rstd, m: m, n: n)
        #expect(Self.close(dX, expected.dX, tolerance: 1e-4) && Self.close(dGain, expected.dGain) && Self.close(dBias, expected.dBias))
    }

    @Test("masked softmax and its backward pass, a fully masked row included", arguments: [1, 5, 16, 33])
    func softmax(columns n: Int) {
        let rows = 4
        var x = Self.values(rows * n, seed: 9, spread: 8)
        let keep = (0..<n).map { $0 % 3 == 1 ? Float(0) : 1 }
        let expected = NaiveKernels.maskedSoftmax(x, keep: keep, rows: rows, columns: n, scale: 0.7)
        Kernels.maskedSoftmax(&x, keep: keep, rows: rows, columns: n, scale: 0.7)
        #expect(Self.close(x, expected, tolerance: 1e-6))
        for i in 0..<rows where keep.contains(1) {
            #expect(abs(x[(i * n)..<((i + 1) * n)].reduce(0, +) - 1) < 1e-5)
        }
        var none = Self.values(n, seed: 10)
        Kernels.maskedSoftmax(&none, keep: [Float](repeating: 0, count: n), rows: 1, columns: n, scale: 1)
        #expect(none.allSatisfy { $0 == 0 })

        let dP = Self.values(rows * n, seed: 11)
        var d = dP
        Kernels.softmaxBackward(&d, probabilities: x, rows: rows, columns: n, scale: 0.7)
        #expect(Self.close(d, NaiveKernels.softmaxBackward(dP, probabilities: x, rows: rows, columns: n, scale: 0.7), tolerance: 1e-6))
    }

    @Test("embedding gather sums tables; scatter adds repeated rows", arguments: [3, 16, 40])
    func embedding(width n: Int) {
        let table = Self.values(6 * n, seed: 12), other = Self.values(4 * n, seed: 13)
        let indices: [Int32] = [5, 0, 2, 2, 5, 1, 3]
        let otherIndices: [Int32] = [0, 1, 2, 3, 3, 2, 1]
        var y = [Float](repeating: .nan, count: indices.count * n)
        Kernels.embeddingGather(table, indices: indices, rows: indices.count, width: n, into: &y, accumulate: false)
        Kernels.embeddingGather(other, indices: otherIndices, rows: indices.count, width: n, into: &y, accumulate: true)
        for r in indices.indices { for j in 0..<n {
            #expect(y[r * n + j] == table[Int(indices[r]) * n + j] + other[Int(otherIndices[r]) * n + j])
        } }
        let dY = Self.values(indices.count * n, seed: 14)
        var dTable = [Float](repeating: 0, count: 6 * n)
        Kernels.embeddingScatter(dY, indices: indices, rows: indices.count, width: n, into: &dTable)
        var expected = [Float](repeating: 0, count: 6 * n)
        for r in indices.indices { for j in 0..<n { expected[Int(indices[r]) * n + j] += dY[r * n + j] } }
        #expect(Self.close(dTable, expected))
    }

    /// (batch, length, heads, headWidth): tails in every dimension, one head of 32 (the wide tile), padding.
    static let attentionShapes: [(Int, Int, Int, Int)] = [(1, 1, 1, 1), (2, 5, 3, 4), (2, 17, 2, 8), (1, 33, 4, 32), (3, 9, 1, 19)]

    @Test("multi-head attention forward and backward with padding", arguments: attentionShapes)
    func attention(shape: (Int, Int, Int, Int)) {
        let (batch, length, heads, headWidth) = shape
        let width = heads * headWidth
        let qkv = Self.values(batch * length * 3 * width, seed: 15, spread: 2)
        // The last sequence is padded after its third token; the first is whole.
        var keep = [Float](repeating: 1, count: batch * length)
        if batch > 1 { for s in min(3, length)..<length { keep[(batch - 1) * length + s] = 0 } }
        var probabilities = [Float](repeating: .nan, count: batch * heads * length * length)
        var context = [Float](repeating: .nan, count: batch * length * width)
        var scratch = [Float](repeating: .nan, count: Kernels.attentionScratch(length: length, headWidth: headWidth))
        Kernels.attentionForward(qkv: qkv, keep: keep, batch: batch, length: length, heads: heads, headWidth: headWidth,
                                 probabilities: &probabilities, context: &context, scratch: &scratch)
        let naive = NaiveKernels.attentionForward(qkv: qkv, keep: keep, batch: batch, length: length, heads: heads, headWidth: headWidth)
        #expect(Self.close(probabilities, naive.probabilities, tolerance: 1e-5))
        #expect(Self.close(context, naive.context, tolerance: 1e-5))

        let dContext = Self.values(batch * length * width, seed: 16)
        var dQKV = [Float](repeating: .nan, count: qkv.count)
        Kernels.attentionBackward(dContext: dContext, qkv: qkv, probabilities: probabilities, batch: batch, length: length,
                                  heads: heads, headWidth: headWidth, dQKV: &dQKV, scratch: &scratch)
        let expected = NaiveKernels.attentionBackward(dContext: dContext, qkv: qkv, probabilities: naive.probabilities,
                                                      batch: batch, length: length, heads: heads, headWidth: headWidth)
        #expect(Self.close(dQKV, expected, tolerance: 1e-4))
        // Padded keys get no gradient: nothing attended to them.
        if batch > 1, length > 3 {
            let stride = 3 * width, t = (batch - 1) * length + length - 1
            #expect(dQKV[(t * stride + width)..<(t * stride + 3 * width)].allSatisfy { $0 == 0 })
        }
    }
}
