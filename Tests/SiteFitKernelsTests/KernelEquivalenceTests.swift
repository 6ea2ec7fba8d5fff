import Foundation
import Testing
@testable import SiteFitKernels

/// Fast kernels against their naive twins on odd shapes (tails in every dimension).
/// Tolerance: both sum k Float products in different orders; relative error grows like k·ε,
/// so 1e-5 relative with an absolute floor of 1e-5 covers k ≤ 300 with margin.
@Suite("Kernels match their naive twins")
struct KernelEquivalenceTests {
    static let shapes: [(Int, Int, Int)] = [
        (1, 1, 1), (3, 5, 7), (4, 16, 16), (5, 17, 33), (17, 33, 19), (32, 40, 128), (9, 128, 31), (64, 13, 1),
        // Row counts that end in 4-row tiles (m % 6 = 2 or 4), and shapes where A·Bᵀ takes the
        // Cᵀ = B·Aᵀ path (m·(k+n) < n·k) with and without full 8×8 transpose blocks.
        (14, 24, 40), (10, 20, 50), (32, 128, 128), (12, 70, 90),
        // Column tails on the padded edge panel, with more rows and depth than one edge block holds.
        (100, 150, 21), (49, 129, 8), (128, 32, 40),
    ]

    static func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float(sin(Double($0 * 7 + seed) * 0.37)) }
    }

    static func close(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) }
    }

    @Test("A·B", arguments: shapes)
    func matmul(shape: (Int, Int, Int)) {
        let (m, k, n) = shape
        let a = Self.values(m * k, seed: 1), b = Self.values(k * n, seed: 2)
        var c = [Float](repeating: 0, count: m * n)
        Kernels.matmul(a, b, &c, m: m, k: k, n: n)
        #expect(Self.close(c, NaiveKernels.matmul(a, b, m: m, k: k, n: n)))
        // accumulate adds onto what is there
        Kernels.matmul(a, b, &c, m: m, k: k, n: n, accumulate: true)
        #expect(Self.close(c, NaiveKernels.matmul(a, b, m: m, k: k, n: n).map { 2 * $0 }))
    }

    @Test("A·B with each register tile set (AVX-512 8×32 and AVX2 6×16)", arguments: shapes + [(17, 9, 70), (8, 5, 32)])
    func tiles(shape: (Int, Int, Int)) {
        let (m, k, n) = shape
        let a = Self.values(m * k, seed: 11), b = Self.values(k * n, seed: 12)
        for wide in [false, true] {
            var c = Self.values(m * n, seed: 13)
            let start = c
            Kernels.matmul(a, b, &c, m: m, k: k, n: n, accumulate: true, wide: wide)
            let expected = zip(NaiveKernels.matmul(a, b, m: m, k: k, n: n), start).map { $0 + $1 }
            #expect(Self.close(c, expected), "wide: \(wide)")
        }
    }

    @Test("row gather copies the chosen rows in order, repeats included", arguments: [1, 17, 40])
    func gatherRows(columns: Int) {
        let source = Self.values(9 * columns, seed: 21)
        let rows = [8, 0, 3, 3, 7]
        var target = [Float](repeating: .nan, count: rows.count * columns)
        rows.withUnsafeBufferPointer { rows in
            Kernels.gatherRows(source, columns: columns, rows: rows, into: &target)
        }
        #expect(target == rows.flatMap { source[($0 * columns)..<(($0 + 1) * columns)] })
    }

    @Test("finite check finds ∞, −∞ and NaN at every position, and passes extremes", arguments: [1, 15, 16, 17, 64, 65, 200])
    func allFinite(count: Int) {
        let clean = (0..<count).map { Float($0 % 3 == 0 ? Float.greatestFiniteMagnitude : -Float.leastNonzeroMagnitude) }
        #expect(Kernels.allFinite(clean, count: count))
        for position in 0..<count {
            for bad in [Float.infinity, -Float.infinity, Float.nan, -Float.signalingNaN] {
                var values = clean
                values[position] = bad
                #expect(!Kernels.allFinite(values, count: count), "\(bad) at \(position) of \(count)")
            }
        }
    }

    @Test("weighted accumulation into Double sums is bit-identical to the plain loop", arguments: [1, 7, 8, 9, 100])
    func accumulateWeighted(count: Int) {
        let values = Self.values(count, seed: 31).map { $0 * 1e3 + 1e-4 }
        let start = Self.values(count, seed: 32).map { Double($0) * 12345.678 }
        var fast = start, plain = start
        for weight in [1.0, 3.0, 1234.0] {
            Kernels.accumulateWeighted(values, weight: weight, into: &fast, count: count)
            for i in 0..<count { plain[i] += weight * Double(values[i]) }
        }
        #expect(fast == plain)
    }

    @Test("fused Adam step matches its naive twin", arguments: [1, 15, 16, 17, 100])
    func adam(count: Int) {
        let p = Self.values(count, seed: 14), g = Self.values(count, seed: 15)
        let m = Self.values(count, seed: 16).map { $0 * 0.1 }, v = Self.values(count, seed: 17).map { $0 * $0 }
        var fast = (p, m, v)
        Kernels.adamStep(&fast.0, gradient: g, firstMoment: &fast.1, secondMoment: &fast.2, count: count,
                         alpha: 0.01, beta1: 0.9, beta2: 0.999, epsilonHat: 1e-8, decay: 0.999)
        let naive = NaiveKernels.adamStep(parameters: p, gradient: g, firstMoment: m, secondMoment: v,
                                          alpha: 0.01, beta1: 0.9, beta2: 0.999, epsilonHat: 1e-8, decay: 0.999)
        #expect(Self.close(fast.0, naive.parameters) && Self.close(fast.1, naive.firstMoment) && Self.close(fast.2, naive.secondMoment))
    }

    @Test("the SIMD square root agrees with Float.squareRoot to 1e-6 relative, and √0 = 0")
    func squareRoot() {
        let values: [Float] = [0, 1e-30, 1e-12, 3e-8, 0.25, 1, 2, 9, 1234.5, 1e10, 3e30, 7e-5, 0.5, 42, 1e-3, 100]
        let roots = Kernels.squareRoot(SIMD16<Float>(values))
        for (v, r) in zip(values, (0..<16).map { roots[$0] }) {
            #expect(abs(r - v.squareRoot()) <= 1e-6 * v.squareRoot(), "√\(v): \(r)")
        }
        #expect(roots[0] == 0)
    }

    @Test("the SIMD square root is within 1e-6 relative over the mantissas of [1, 4), which repeat in every other binade")
    func squareRootSweep() {
        // Every 5th float of [1, 4): 3.4 million values covering both exponent parities.
        var bits = Float(1).bitPattern
        let end = Float(4).bitPattern
        var worst = 0.0
        while bits < end {
            var v = SIMD16<Float>()
            for lane in 0..<16 { v[lane] = Float(bitPattern: min(bits &+ UInt32(5 * lane), end - 1)) }
            let r = Kernels.squareRoot(v)
            for lane in 0..<16 {
                let exact = Double(v[lane]).squareRoot()
                worst = max(worst, abs(Double(r[lane]) - exact) / exact)
            }
            bits &+= 80
        }
        #expect(worst < 1e-6, "worst relative error \(worst)")
    }

    @Test("ReLU and bias kernels", arguments: [1, 16, 37])
    func reluAndBias(count: Int) {
        let x = Self.values(count, seed: 18), bias = Self.values(count, seed: 19)
        var y = [Float](repeating: 0, count: count)
        Kernels.relu(x, &y, count: count)
        #expect(y == x.map { max(0, $0) })
        var z = x
        Kernels.addBias(&z, bias: bias, m: 1, n: count)
        #expect(z == zip(x, bias).map { $0 + $1 })
    }

    /// Shapes where the weight gradient takes the Cᵀ route with AVX-512's 32-column panels, with
    /// AVX2's 16, or with both (m divides, n leaves a tail), as well as the shapes above.
    static let transposedAShapes = shapes + [(64, 9, 24), (96, 17, 50), (16, 3, 20), (32, 33, 8), (128, 32, 13)]

    @Test("Aᵀ·B, with and without caller scratch, and accumulating", arguments: transposedAShapes)
    func matmulTransposedA(shape: (Int, Int, Int)) {
        let (m, k, n) = shape
        let a = Self.values(k * m, seed: 3), b = Self.values(k * n, seed: 4)
        let expected = NaiveKernels.matmulTransposedA(a, b, m: m, k: k, n: n)
        var c = [Float](repeating: 0, count: m * n)
        Kernels.matmulTransposedA(a, b, &c, m: m, k: k, n: n)
        #expect(Self.close(c, expected))
        var scratch = [Float](repeating: .nan, count: Kernels.transposedAScratch(m: m, k: k, n: n))
        var d = [Float](repeating: .nan, count: m * n)
        Kernels.matmulTransposedA(a, b, &d, m: m, k: k, n: n, scratch: &scratch)
        #expect(Self.close(d, expected))
        Kernels.matmulTransposedA(a, b, &d, m: m, k: k, n: n, accumulate: true, scratch: &scratch)
        #expect(Self.close(d, expected.map { 2 * $0 }))
    }

    @Test("A·Bᵀ", arguments: shapes)
    func matmulTransposedB(shape: (Int, Int, Int)) {
        let (m, k, n) = shape
        let a = Self.values(m * k, seed: 5), b = Self.values(n * k, seed: 6)
        var c = [Float](repeating: 0, count: m * n)
        Kernels.matmulTransposedB(a, b, &c, m: m, k: k, n: n)
        #expect(Self.close(c, NaiveKernels.matmulTransposedB(a, b, m: m, k: k, n: n)))
        Kernels.matmulTransposedB(a, b, &c, m: m, k: k, n: n, accumulate: true)
        #expect(Self.close(c, NaiveKernels.matmulTransposedB(a, b, m: m, k: k, n: n).map { 2 * $0 }))
    }

    @Test("fused bias + ReLU, ReLU backward and column sums", arguments: [(1, 1), (3, 17), (8, 32), (5, 33)])
    func elementwise(shape: (Int, Int)) {
        let (m, n) = shape
        let y = Self.values(m * n, seed: 7), bias = Self.values(n, seed: 8)
        var biased = y, fused = [Float](repeating: .nan, count: m * n)
        Kernels.addBiasReLU(&biased, bias: bias, activated: &fused, m: m, n: n)
        let reference = NaiveKernels.addBiasReLU(y, bias: bias, m: m, n: n)
        #expect(biased == reference.biased)
        #expect(fused == reference.activated)

        var gradient = Self.values(m * n, seed: 9)
        let expected = NaiveKernels.reluBackward(gradient, activated: fused)
        Kernels.reluBackward(&gradient, activated: fused, count: m * n)
        #expect(gradient == expected)

        var sums = [Float](repeating: 99, count: n)
        Kernels.columnSums(y, m: m, n: n, into: &sums)
        #expect(Self.close(sums, NaiveKernels.columnSums(y, m: m, n: n)))
    }
}
