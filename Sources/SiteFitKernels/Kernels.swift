// The only SIMD / unsafe-pointer code in SiteFit. Every kernel here has a plain-loop twin in
// `NaiveKernels` and an equivalence test on odd shapes (SiteFitKernelsTests).
//
// Legend (kernels only): row-major matrices; m, n, k are the dimensions of C(m,n) = A(m,k)·B(k,n);
// `accumulate` adds into C instead of overwriting it (used to sum gradients over a batch chunk).

/// Fast FP32 kernels for the learning engine: matrix products and fused element-wise passes.
public enum Kernels {
    @usableFromInline typealias V = SIMD16<Float>
    @usableFromInline static let width = 16

    /// C(m,n) (+)= A(m,k) · B(k,n).  Backward of a Linear layer for the input: dX = dY · W.
    public static func matmul(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, accumulate: Bool = false
    ) {
        rowCombination(a, rowStride: k, columnStride: 1, b, c, m: m, k: k, n: n, accumulate: accumulate)
    }

    /// C(m,n) (+)= A(k,m)ᵀ · B(k,n).  Weight gradient of a Linear layer: dW = dYᵀ · X.
    public static func matmulTransposedA(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, accumulate: Bool = false
    ) {
        rowCombination(a, rowStride: 1, columnStride: m, b, c, m: m, k: k, n: n, accumulate: accumulate)
    }

    /// C(m,n) (+)= A(m,k) · B(n,k)ᵀ.  Forward of a Linear layer: Y = X · Wᵀ with W stored (out, in).
    public static func matmulTransposedB(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, accumulate: Bool = false
    ) {
        let vectorEnd = k - k % width
        for i in 0..<m {
            let aRow = a + i * k
            let aRaw = UnsafeRawPointer(aRow)
            var j = 0
            // Four dot products at once so each A chunk is loaded once per four rows of B.
            while j + 4 <= n {
                let b0 = b + j * k, b1 = b0 + k, b2 = b1 + k, b3 = b2 + k
                var s0 = V(), s1 = V(), s2 = V(), s3 = V()
                var p = 0
                while p < vectorEnd {
                    let av = aRaw.loadUnaligned(fromByteOffset: p * 4, as: V.self)
                    s0 = s0.addingProduct(av, UnsafeRawPointer(b0).loadUnaligned(fromByteOffset: p * 4, as: V.self))
                    s1 = s1.addingProduct(av, UnsafeRawPointer(b1).loadUnaligned(fromByteOffset: p * 4, as: V.self))
                    s2 = s2.addingProduct(av, UnsafeRawPointer(b2).loadUnaligned(fromByteOffset: p * 4, as: V.self))
                    s3 = s3.addingProduct(av, UnsafeRawPointer(b3).loadUnaligned(fromByteOffset: p * 4, as: V.self))
                    p += width
                }
                var t0 = s0.sum(), t1 = s1.sum(), t2 = s2.sum(), t3 = s3.sum()
                while p < k {
                    let av = aRow[p]
                    t0 += av * b0[p]; t1 += av * b1[p]; t2 += av * b2[p]; t3 += av * b3[p]
                    p += 1
                }
                let cRow = c + i * n + j
                if accumulate {
                    cRow[0] += t0; cRow[1] += t1; cRow[2] += t2; cRow[3] += t3
                } else {
                    cRow[0] = t0; cRow[1] = t1; cRow[2] = t2; cRow[3] = t3
                }
                j += 4
            }
            while j < n {
                let bRow = b + j * k
                var s = V()
                var p = 0
                while p < vectorEnd {
                    s = s.addingProduct(
                        aRaw.loadUnaligned(fromByteOffset: p * 4, as: V.self),
                        UnsafeRawPointer(bRow).loadUnaligned(fromByteOffset: p * 4, as: V.self))
                    p += width
                }
                var t = s.sum()
                while p < k {
                    t += aRow[p] * bRow[p]
                    p += 1
                }
                if accumulate { c[i * n + j] += t } else { c[i * n + j] = t }
                j += 1
            }
        }
    }

    /// C[i,:] (+)= Σ_p a(i,p) · B[p,:], where a(i,p) = a[i·rowStride + p·columnStride].
    /// Four rows of C are updated per pass over B so each B chunk loaded feeds four FMAs.
    @inline(__always)
    static func rowCombination(
        _ a: UnsafePointer<Float>, rowStride: Int, columnStride: Int,
        _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, accumulate: Bool
    ) {
        let vectorEnd = n - n % width
        var i = 0
        while i + 4 <= m {
            let a0 = a + i * rowStride, a1 = a0 + rowStride, a2 = a1 + rowStride, a3 = a2 + rowStride
            var j = 0
            while j < vectorEnd {
                let cRaw = UnsafeMutableRawPointer(c + i * n + j)
                let rowBytes = n * 4
                var c0 = V(), c1 = V(), c2 = V(), c3 = V()
                if accumulate {
                    c0 = UnsafeRawPointer(cRaw).loadUnaligned(as: V.self)
                    c1 = UnsafeRawPointer(cRaw).loadUnaligned(fromByteOffset: rowBytes, as: V.self)
                    c2 = UnsafeRawPointer(cRaw).loadUnaligned(fromByteOffset: 2 * rowBytes, as: V.self)
                    c3 = UnsafeRawPointer(cRaw).loadUnaligned(fromByteOffset: 3 * rowBytes, as: V.self)
                }
                for p in 0..<k {
                    let bv = UnsafeRawPointer(b + p * n + j).loadUnaligned(as: V.self)
                    let offset = p * columnStride
                    c0 = c0.addingProduct(V(repeating: a0[offset]), bv)
                    c1 = c1.addingProduct(V(repeating: a1[offset]), bv)
                    c2 = c2.addingProduct(V(repeating: a2[offset]), bv)
                    c3 = c3.addingProduct(V(repeating: a3[offset]), bv)
                }
                cRaw.storeBytes(of: c0, as: V.self)
                cRaw.storeBytes(of: c1, toByteOffset: rowBytes, as: V.self)
                cRaw.storeBytes(of: c2, toByteOffset: 2 * rowBytes, as: V.self)
                cRaw.storeBytes(of: c3, toByteOffset: 3 * rowBytes, as: V.self)
                j += width
            }
            for row in 0..<4 {
                let aRow = a + (i + row) * rowStride
                for jj in vectorEnd..<n {
                    var t: Float = accumulate ? c[(i + row) * n + jj] : 0
                    for p in 0..<k { t += aRow[p * columnStride] * b[p * n + jj] }
                    c[(i + row) * n + jj] = t
                }
            }
            i += 4
        }
        while i < m {
            let aRow = a + i * rowStride
            var j = 0
            while j < vectorEnd {
                let cRaw = UnsafeMutableRawPointer(c + i * n + j)
                var acc = accumulate ? UnsafeRawPointer(cRaw).loadUnaligned(as: V.self) : V()
                for p in 0..<k {
                    acc = acc.addingProduct(
                        V(repeating: aRow[p * columnStride]),
                        UnsafeRawPointer(b + p * n + j).loadUnaligned(as: V.self))
                }
                cRaw.storeBytes(of: acc, as: V.self)
                j += width
            }
            for jj in vectorEnd..<n {
                var t: Float = accumulate ? c[i * n + jj] : 0
                for p in 0..<k { t += aRow[p * columnStride] * b[p * n + jj] }
                c[i * n + jj] = t
            }
            i += 1
        }
    }

    /// Y(m,n) ← max(0, Y + bias) in one pass (fused bias + ReLU after a Linear forward).
    public static func addBiasReLU(_ y: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, m: Int, n: Int) {
        let vectorEnd = n - n % width
        let zero = V()
        for i in 0..<m {
            let row = UnsafeMutableRawPointer(y + i * n)
            var j = 0
            while j < vectorEnd {
                let v = UnsafeRawPointer(row).loadUnaligned(fromByteOffset: j * 4, as: V.self)
                    + UnsafeRawPointer(bias + j).loadUnaligned(as: V.self)
                row.storeBytes(of: v.replacing(with: zero, where: v .< zero), toByteOffset: j * 4, as: V.self)
                j += width
            }
            while j < n {
                y[i * n + j] = max(0, y[i * n + j] + bias[j])
                j += 1
            }
        }
    }

    /// Y(m,n) ← Y + bias (the output layer, which has no activation).
    public static func addBias(_ y: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, m: Int, n: Int) {
        for i in 0..<m {
            let row = y + i * n
            for j in 0..<n { row[j] += bias[j] }
        }
    }

    /// dZ ← dY where Y > 0, else 0 (ReLU backward using the activated output, in place).
    public static func reluBackward(_ gradient: UnsafeMutablePointer<Float>, activated: UnsafePointer<Float>, count: Int) {
        let vectorEnd = count - count % width
        let zero = V()
        var i = 0
        while i < vectorEnd {
            let g = UnsafeRawPointer(gradient + i).loadUnaligned(as: V.self)
            let y = UnsafeRawPointer(activated + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(gradient + i).storeBytes(of: g.replacing(with: zero, where: y .<= zero), as: V.self)
            i += width
        }
        while i < count {
            if activated[i] <= 0 { gradient[i] = 0 }
            i += 1
        }
    }

    /// dBias(n) (+)= Σ_i dY(i, :) — the bias gradient, the only gradient BitFit needs per layer.
    public static func columnSums(
        _ x: UnsafePointer<Float>, m: Int, n: Int, into sums: UnsafeMutablePointer<Float>, accumulate: Bool = false
    ) {
        if !accumulate { sums.update(repeating: 0, count: n) }
        for i in 0..<m {
            let row = x + i * n
            for j in 0..<n { sums[j] += row[j] }
        }
    }
}

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

    /// max(0, y + bias) row by row.
    public static func addBiasReLU(_ y: [Float], bias: [Float], m: Int, n: Int) -> [Float] {
        var out = y
        for i in 0..<m { for j in 0..<n { out[i * n + j] = max(0, y[i * n + j] + bias[j]) } }
        return out
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
}
