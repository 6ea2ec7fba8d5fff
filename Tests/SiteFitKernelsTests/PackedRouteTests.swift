import Foundation
import Testing
@testable import SiteFitKernels

/// The packed route of the large products (Kernels+Packed.swift) against the unpacked tiles and
/// the naive twins. It must give the unpacked route's bits exactly: the committed reports were
/// computed before it existed, and a route chosen by size must not change a result.
@Suite("The packed product route")
struct PackedRouteTests {
    /// Row tails (m % 8), depth over one, two and three slices and an exact two, column tails
    /// (n % 32) of one column, of 11 and of 20, and none. Deeper than a slice, B packs into
    /// `wholeBLimit` and the rows go block by block, exactly at the limit in (16, 512, 128) (the
    /// transformer's feed-forward output); the last shape packs more, so it walks slice by slice.
    static let shapes: [(Int, Int, Int)] = [(203, 300, 75), (9, 520, 33), (200, 40, 64), (197, 257, 32), (16, 600, 96),
                                            (200, 64, 33), (201, 512, 52), (16, 512, 128), (203, 1100, 70)]

    static func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float(sin(Double($0 * 7 + seed) * 0.37)) }
    }

    /// Both sides sum up to 1,100 Float products in different orders: relative error ~k·ε.
    static func close(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 4e-5 * max(1, abs($1)) }
    }

    /// C (+)= A·B by the unpacked tiles, for a(i,p) = a[i·rs + p·cs] and B row-major.
    static func unpacked(_ a: [Float], rs: Int, cs: Int, _ b: [Float], _ c: inout [Float], m: Int, k: Int, n: Int, accumulate: Bool) {
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    Kernels.blocked(a.baseAddress!, rowStride: rs, columnStride: cs, b.baseAddress!, ldb: n, c.baseAddress!,
                                    m: m, k: k, n: n, accumulate: accumulate)
                }
            }
        }
    }

    @Test("the route is taken at these shapes where the CPU has AVX-512")
    func routeIsTaken() {
        for (m, k, n) in Self.shapes {
            #expect(Kernels.packedRoute(m: m, k: k, n: n) == Kernels.hasWideRegisters)
        }
        // The MLP's batch-32 products and LoRA's rank-4 products keep their routes.
        #expect(!Kernels.packedRoute(m: 32, k: 128, n: 128))
        #expect(!Kernels.packedRoute(m: 4096, k: 4, n: 128))
        #expect(Kernels.packedScratch(m: 32, k: 128, n: 128) == 0)
        // Both orders of the deep products are covered.
        #expect(300 * 64 <= Kernels.wholeBLimit && 512 * 128 == Kernels.wholeBLimit && 1100 * 64 > Kernels.wholeBLimit)
    }

    /// The packed route itself, called directly so that it runs on any CPU (its 8×32 tile is
    /// SIMD16 code, which AVX2 runs as pairs of halves), against the unpacked tiles.
    @Test("packedProduct gives the unpacked tiles' bits for A·B, Aᵀ·B and A·Bᵀ, with and without accumulating", arguments: shapes)
    func direct(shape: (Int, Int, Int)) {
        let (m, k, n) = shape
        let a = Self.values(m * k, seed: 11), b = Self.values(k * n, seed: 12), start = Self.values(m * n, seed: 13)
        var bt = [Float](repeating: 0, count: k * n)                 // B stored (n, k) for A·Bᵀ
        for p in 0..<k { for j in 0..<n { bt[j * k + p] = b[p * n + j] } }
        // Sized as the route asks, then a guard zone that must come back untouched.
        let needed = max(1, Kernels.packedProductScratch(k: k, n: n)), guardZone: Float = 12345
        var scratch = [Float](repeating: .nan, count: needed) + [Float](repeating: guardZone, count: 64)
        for (rs, cs) in [(k, 1), (1, m)] {                           // A (m, k) row-major, and stored (k, m) as dYᵀ
            for accumulate in [false, true] {
                var reference = accumulate ? start : [Float](repeating: 0, count: m * n)
                Self.unpacked(a, rs: rs, cs: cs, b, &reference, m: m, k: k, n: n, accumulate: accumulate)
                var c = accumulate ? start : [Float](repeating: .nan, count: m * n)
                Kernels.packedProduct(a, rowStride: rs, columnStride: cs, b, ldb: n, transposedB: false, &c, ldc: n,
                                      m: m, k: k, n: n, accumulate: accumulate, scratch: &scratch)
                #expect(c == reference, "A·B, rs \(rs), accumulate \(accumulate)")
                // The bias goes on with the last slice's tiles and rounds as a separate pass would.
                let bias = Self.values(n, seed: 14)
                var biased = reference
                Kernels.addBias(&biased, bias: bias, m: m, n: n)
                c = accumulate ? start : [Float](repeating: .nan, count: m * n)
                bias.withUnsafeBufferPointer { bias in
                    Kernels.packedProduct(a, rowStride: rs, columnStride: cs, b, ldb: n, transposedB: false, &c, ldc: n,
                                          m: m, k: k, n: n, accumulate: accumulate, bias: bias.baseAddress!, scratch: &scratch)
                }
                #expect(c == biased, "A·B + bias, rs \(rs), accumulate \(accumulate)")
                // A one-column tail of A·Bᵀ is summed by dotRows on every route; elsewhere the tiles.
                guard n % 32 != 1 else { continue }
                c = accumulate ? start : [Float](repeating: .nan, count: m * n)
                Kernels.packedProduct(a, rowStride: rs, columnStride: cs, bt, ldb: k, transposedB: true, &c, ldc: n,
                                      m: m, k: k, n: n, accumulate: accumulate, scratch: &scratch)
                #expect(c == reference, "A·Bᵀ, rs \(rs), accumulate \(accumulate)")
            }
        }
        #expect(scratch[needed...].allSatisfy { $0 == guardZone }, "the product wrote past its scratch")
    }

    @Test("A·B: the unpacked route's bits, and the naive product", arguments: shapes)
    func matmul(shape: (Int, Int, Int)) {
        let (m, k, n) = shape
        let a = Self.values(m * k, seed: 1), b = Self.values(k * n, seed: 2)
        var reference = [Float](repeating: 0, count: m * n)
        Self.unpacked(a, rs: k, cs: 1, b, &reference, m: m, k: k, n: n, accumulate: false)
        var scratch = [Float](repeating: .nan, count: max(1, Kernels.matmulScratch(m: m, k: k, n: n)))
        var c = [Float](repeating: .nan, count: m * n)
        Kernels.matmul(a, b, &c, m: m, k: k, n: n, scratch: &scratch)
        #expect(c == reference)
        #expect(Self.close(c, NaiveKernels.matmul(a, b, m: m, k: k, n: n)))
        Kernels.matmul(a, b, &c, m: m, k: k, n: n, accumulate: true, scratch: &scratch)
        Self.unpacked(a, rs: k, cs: 1, b, &reference, m: m, k: k, n: n, accumulate: true)
        #expect(c == reference)
    }

    @Test("Aᵀ·B: the unpacked route's bits, and the naive product", arguments: shapes)
    func matmulTransposedA(shape: (Int, Int, Int)) {
        let (m, k, n) = shape
        let a = Self.values(k * m, seed: 3), b = Self.values(k * n, seed: 4)
        var reference = [Float](repeating: 0, count: m * n)
        Self.unpacked(a, rs: 1, cs: m, b, &reference, m: m, k: k, n: n, accumulate: false)
        var scratch = [Float](repeating: .nan, count: Kernels.transposedAScratch(m: m, k: k, n: n))
        var c = [Float](repeating: .nan, count: m * n)
        Kernels.matmulTransposedA(a, b, &c, m: m, k: k, n: n, accumulate: false, scratch: &scratch)
        if !Kernels.transposedARoute(m: m, n: n, accumulate: false) { #expect(c == reference) }
        #expect(Self.close(c, NaiveKernels.matmulTransposedA(a, b, m: m, k: k, n: n)))
        Kernels.matmulTransposedA(a, b, &c, m: m, k: k, n: n, accumulate: true, scratch: &scratch)
        var twice = [Float](repeating: 0, count: m * n)
        Self.unpacked(a, rs: 1, cs: m, b, &twice, m: m, k: k, n: n, accumulate: false)
        Self.unpacked(a, rs: 1, cs: m, b, &twice, m: m, k: k, n: n, accumulate: true)
        if !Kernels.transposedARoute(m: m, n: n, accumulate: false) { #expect(c == twice) }
        #expect(Self.close(c, NaiveKernels.matmulTransposedA(a, b, m: m, k: k, n: n).map { 2 * $0 }))
    }

    @Test("A·Bᵀ: the unpacked route's bits, and the naive product", arguments: shapes)
    func matmulTransposedB(shape: (Int, Int, Int)) {
        let (m, k, n) = shape
        let a = Self.values(m * k, seed: 5), b = Self.values(n * k, seed: 6)   // B stored (n, k)
        var scratch = [Float](repeating: .nan, count: Kernels.transposedBScratch(m: m, k: k, n: n))
        // The unpacked route itself: a one-column tail goes through dotRows, which sums in another
        // order than the tiles, on both routes alike.
        var reference = [Float](repeating: 0, count: m * n)
        Kernels.unpackedTransposedB(a, b, &reference, m: m, k: k, n: n, accumulate: false, scratch: &scratch)
        var c = [Float](repeating: .nan, count: m * n)
        Kernels.matmulTransposedB(a, b, &c, m: m, k: k, n: n, scratch: &scratch)
        #expect(c == reference)
        #expect(Self.close(c, NaiveKernels.matmulTransposedB(a, b, m: m, k: k, n: n)))
        // The bias folded into the tiles rounds as a separate pass would.
        let bias = Self.values(n, seed: 7)
        var biased = reference
        Kernels.addBias(&biased, bias: bias, m: m, n: n)
        Kernels.matmulTransposedB(a, b, &c, m: m, k: k, n: n, bias: bias, scratch: &scratch)
        #expect(c == biased)
        // Accumulating (LoRA's and the adapters' forward passes add into C).
        Kernels.matmulTransposedB(a, b, &c, m: m, k: k, n: n, accumulate: true, scratch: &scratch)
        Kernels.unpackedTransposedB(a, b, &biased, m: m, k: k, n: n, accumulate: true, scratch: &scratch)
        #expect(c == biased)
    }

    @Test("a workspace sized by productScratch holds every product up to its widest")
    func workspaceBound() {
        let rows = 4096, widest = 640
        let bound = Kernels.productScratch(rows: rows, widest: widest)
        for k in [32, 100, 257, 640] {
            for n in [32, 75, 128, 640] {
                #expect(Kernels.matmulScratch(m: rows, k: k, n: n) <= bound)
                #expect(Kernels.transposedBScratch(m: rows, k: k, n: n) <= bound)
                #expect(Kernels.transposedAScratch(m: n, k: rows, n: k) <= bound)
            }
        }
    }
}
