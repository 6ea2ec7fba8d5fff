import Foundation

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
        blocked(a, rowStride: k, columnStride: 1, b, ldb: n, c, m: m, k: k, n: n, accumulate: accumulate)
    }

    /// `matmul` with the register tile chosen by the caller, so tests cover both tile sets on any CPU.
    static func matmul(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, accumulate: Bool, wide: Bool
    ) {
        blocked(a, rowStride: k, columnStride: 1, b, ldb: n, c, m: m, k: k, n: n, accumulate: accumulate, wide: wide)
    }

    /// C(m,n) (+)= A(k,m)ᵀ · B(k,n).  Weight gradient of a Linear layer: dW = dYᵀ · X.
    ///
    /// Why a transposed route: the register tiles cover C in panels of 32 columns (16 with AVX2), so
    /// a width such as 40 inputs leaves a tail that runs at half speed or worse, while the 128
    /// outputs divide evenly. When only n leaves a tail, Cᵀ = Bᵀ·A is computed into `scratch`
    /// (n rows, which the row tiles cover) and transposed into C in 8×8 register blocks; the
    /// transpose moves m·n floats, a fraction of the 2·m·n·k the product costs.
    /// `scratch` holds `transposedAScratch(m:n:)` floats.
    public static func matmulTransposedA(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, accumulate: Bool = false, scratch: UnsafeMutablePointer<Float>
    ) {
        if transposedARoute(m: m, n: n, accumulate: accumulate) {
            blocked(b, rowStride: 1, columnStride: n, a, ldb: m, scratch, m: n, k: k, n: m, accumulate: false)  // Cᵀ (n, m)
            pack(UnsafePointer(scratch), k: m, width: n, into: c)
            return
        }
        blocked(a, rowStride: 1, columnStride: m, b, ldb: n, c, m: m, k: k, n: n, accumulate: accumulate)
    }

    /// `matmulTransposedA` with scratch from the stack or heap, for tests and one-off calls.
    public static func matmulTransposedA(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, accumulate: Bool = false
    ) {
        guard transposedARoute(m: m, n: n, accumulate: accumulate) else {
            blocked(a, rowStride: 1, columnStride: m, b, ldb: n, c, m: m, k: k, n: n, accumulate: accumulate)
            return
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: transposedAScratch(m: m, n: n)) { scratch in
            matmulTransposedA(a, b, c, m: m, k: k, n: n, accumulate: false, scratch: scratch.baseAddress!)
        }
    }

    /// Floats of scratch `matmulTransposedA` needs for C(m,n).
    public static func transposedAScratch(m: Int, n: Int) -> Int { max(1, m * n) }

    /// Whether `matmulTransposedA` computes Cᵀ: only m divides into whole column panels.
    @inline(__always)
    static func transposedARoute(m: Int, n: Int, accumulate: Bool) -> Bool {
        let columns = hasWideRegisters ? 32 : 16
        return !accumulate && m % columns == 0 && n % columns != 0 && n >= 8
    }

    /// Independent SIMD16 FMA chains on registers only: the single-core FP32 peak the benchmark
    /// compares kernels with. Twelve chains fill AVX-512's 32 registers; six (twelve ymm halves)
    /// fit AVX2's sixteen without spilling. Returns the FLOPs done and a value that keeps the work.
    public static func fmaPeakLoop(iterations: Int) -> (flops: Double, sink: Float) {
        let x = V(repeating: 0.999_999), y = V(repeating: 1e-7)
        var a0 = V(repeating: 1), a1 = V(repeating: 2), a2 = V(repeating: 3), a3 = V(repeating: 4)
        var a4 = V(repeating: 5), a5 = V(repeating: 6)
        if hasWideRegisters {
            var a6 = V(repeating: 7), a7 = V(repeating: 8), a8 = V(repeating: 9), a9 = V(repeating: 10)
            var a10 = V(repeating: 11), a11 = V(repeating: 12)
            for _ in 0..<iterations {
                a0 = a0.addingProduct(x, y); a1 = a1.addingProduct(x, y); a2 = a2.addingProduct(x, y)
                a3 = a3.addingProduct(x, y); a4 = a4.addingProduct(x, y); a5 = a5.addingProduct(x, y)
                a6 = a6.addingProduct(x, y); a7 = a7.addingProduct(x, y); a8 = a8.addingProduct(x, y)
                a9 = a9.addingProduct(x, y); a10 = a10.addingProduct(x, y); a11 = a11.addingProduct(x, y)
            }
            return (Double(2 * 16 * 12 * iterations), (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11).sum())
        }
        for _ in 0..<iterations {
            a0 = a0.addingProduct(x, y); a1 = a1.addingProduct(x, y); a2 = a2.addingProduct(x, y)
            a3 = a3.addingProduct(x, y); a4 = a4.addingProduct(x, y); a5 = a5.addingProduct(x, y)
        }
        return (Double(2 * 16 * 6 * iterations), (a0 + a1 + a2 + a3 + a4 + a5).sum())
    }

    /// Floats of scratch `matmulTransposedB` needs for C(m,n) = A(m,k)·B(n,k)ᵀ.
    public static func transposedBScratch(m: Int, k: Int, n: Int) -> Int { max(k * panel, m * (k + n)) }

    /// C(m,n) (+)= A(m,k) · B(n,k)ᵀ.  Forward of a Linear layer: Y = X · Wᵀ with W stored (out, in).
    ///
    /// Why two strategies: the micro-kernel needs the right-hand operand with contiguous columns,
    /// so one side must be transposed, and at the model's shapes that transpose costs as much as a
    /// quarter of the products. Either Bᵀ is packed 32 columns at a time (n·k floats moved), or
    /// Cᵀ = B·Aᵀ is computed with A packed and Cᵀ transposed into C (m·k + m·n floats moved);
    /// whichever moves fewer floats wins (a batch of 32 against a 128-wide hidden layer: Cᵀ;
    /// against the 40 inputs: Bᵀ). `scratch` holds `transposedBScratch(m:k:n:)` floats.
    public static func matmulTransposedB(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, accumulate: Bool = false, scratch: UnsafeMutablePointer<Float>
    ) {
        if !accumulate && m >= 8 && m * (k + n) < n * k {
            let packedA = scratch, transposedC = scratch + k * m
            pack(a, k: k, width: m, into: packedA)                                   // Aᵀ (k, m)
            blocked(b, rowStride: k, columnStride: 1, UnsafePointer(packedA), ldb: m, transposedC,
                    m: n, k: k, n: m, accumulate: false)                              // Cᵀ (n, m) = B·Aᵀ
            pack(UnsafePointer(transposedC), k: m, width: n, into: c)                 // C (m, n)
            return
        }
        var j0 = 0
        while j0 < n {
            let width = min(panel, n - j0)
            pack(b + j0 * k, k: k, width: width, into: scratch)
            blocked(a, rowStride: k, columnStride: 1, UnsafePointer(scratch), ldb: width, c + j0, ldc: n,
                    m: m, k: k, n: width, accumulate: accumulate)
            j0 += width
        }
    }

    /// Packs Bᵀ[p, 0 ..< width] (B rows `k` floats apart) as rows of `width` floats. Full 8×8 blocks
    /// are transposed in registers (eight SIMD8 loads, eight SIMD8 stores) so the packing streams
    /// instead of scattering one float at a time; edges are copied one by one.
    @inline(__always)
    static func pack(_ b: UnsafePointer<Float>, k: Int, width: Int, into scratch: UnsafeMutablePointer<Float>) {
        typealias W = SIMD8<Float>
        @inline(__always) func load8(_ p: UnsafePointer<Float>) -> W { UnsafeRawPointer(p).loadUnaligned(as: W.self) }
        let fullRows = width - width % 8, fullColumns = k - k % 8
        var jj = 0
        while jj < fullRows {
            var p = 0
            while p < fullColumns {
                var r0 = load8(b + jj * k + p), r1 = load8(b + (jj + 1) * k + p)
                var r2 = load8(b + (jj + 2) * k + p), r3 = load8(b + (jj + 3) * k + p)
                var r4 = load8(b + (jj + 4) * k + p), r5 = load8(b + (jj + 5) * k + p)
                var r6 = load8(b + (jj + 6) * k + p), r7 = load8(b + (jj + 7) * k + p)
                // The AVX2 8×8 transpose in three rounds of two-source shuffles (unpack, shufps,
                // 128-bit lane swap; 24 in all), each written as a lane pattern that LLVM lowers to
                // one instruction. Building each column lane by lane cost 64 inserts per block.
                @inline(__always) func unpackLow(_ x: W, _ y: W) -> W { W(x[0], y[0], x[1], y[1], x[4], y[4], x[5], y[5]) }
                @inline(__always) func unpackHigh(_ x: W, _ y: W) -> W { W(x[2], y[2], x[3], y[3], x[6], y[6], x[7], y[7]) }
                @inline(__always) func pairsLow(_ x: W, _ y: W) -> W { W(x[0], x[1], y[0], y[1], x[4], x[5], y[4], y[5]) }
                @inline(__always) func pairsHigh(_ x: W, _ y: W) -> W { W(x[2], x[3], y[2], y[3], x[6], x[7], y[6], y[7]) }
                @inline(__always) func halvesLow(_ x: W, _ y: W) -> W { W(lowHalf: x.lowHalf, highHalf: y.lowHalf) }
                @inline(__always) func halvesHigh(_ x: W, _ y: W) -> W { W(lowHalf: x.highHalf, highHalf: y.highHalf) }
                let t0 = unpackLow(r0, r1), t1 = unpackHigh(r0, r1), t2 = unpackLow(r2, r3), t3 = unpackHigh(r2, r3)
                let t4 = unpackLow(r4, r5), t5 = unpackHigh(r4, r5), t6 = unpackLow(r6, r7), t7 = unpackHigh(r6, r7)
                let u0 = pairsLow(t0, t2), u1 = pairsHigh(t0, t2), u2 = pairsLow(t1, t3), u3 = pairsHigh(t1, t3)
                let u4 = pairsLow(t4, t6), u5 = pairsHigh(t4, t6), u6 = pairsLow(t5, t7), u7 = pairsHigh(t5, t7)
                r0 = halvesLow(u0, u4); r1 = halvesLow(u1, u5); r2 = halvesLow(u2, u6); r3 = halvesLow(u3, u7)
                r4 = halvesHigh(u0, u4); r5 = halvesHigh(u1, u5); r6 = halvesHigh(u2, u6); r7 = halvesHigh(u3, u7)
                let row = scratch + p * width + jj
                @inline(__always) func store8(_ v: W, _ q: Int) {
                    UnsafeMutableRawPointer(row + q * width).storeBytes(of: v, as: W.self)
                }
                store8(r0, 0); store8(r1, 1); store8(r2, 2); store8(r3, 3)
                store8(r4, 4); store8(r5, 5); store8(r6, 6); store8(r7, 7)
                p += 8
            }
            for p in fullColumns..<k { for r in 0..<8 { scratch[p * width + jj + r] = b[(jj + r) * k + p] } }
            jj += 8
        }
        for r in fullRows..<width {
            let row = b + r * k
            for p in 0..<k { scratch[p * width + r] = row[p] }
        }
    }

    /// `matmulTransposedB` with scratch from the stack or heap (for tests and one-off calls;
    /// training passes a workspace buffer instead so that a step allocates nothing).
    public static func matmulTransposedB(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, accumulate: Bool = false
    ) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: max(1, transposedBScratch(m: m, k: k, n: n))) { scratch in
            matmulTransposedB(a, b, c, m: m, k: k, n: n, accumulate: accumulate, scratch: scratch.baseAddress!)
        }
    }

    /// Columns per packed panel and per micro-kernel tile (two SIMD16 vectors).
    @usableFromInline static let panel = 32

    /// Whether the CPU has 32 vector registers of 512 bits (AVX-512). The kernels are built for the
    /// build machine (`-target-cpu native`); this picks the register tile that fits its register file.
    public static let hasWideRegisters: Bool = {
        #if os(Linux)
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let flags = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) {
            return flags.split(separator: " ").contains("avx512f")
        }
        #endif
        return false
    }()

    /// C[i, 0..<n] (+)= Σ_p a(i,p) · B[p, 0..<n] with a(i,p) = a[i·rowStride + p·columnStride] and
    /// B rows `ldb` apart, in register tiles: 8×32 (16 SIMD16 accumulators) with AVX-512's 32 zmm
    /// registers, 6×16 (12 ymm halves) with AVX2's 16 registers; then the column tail
    /// (`edgeColumns`), or dot products when B is one contiguous column.
    @inline(__always)
    static func blocked(
        _ a: UnsafePointer<Float>, rowStride: Int, columnStride: Int,
        _ b: UnsafePointer<Float>, ldb: Int, _ c: UnsafeMutablePointer<Float>, ldc: Int? = nil,
        m: Int, k: Int, n: Int, accumulate: Bool, wide: Bool = hasWideRegisters
    ) {
        let ldc = ldc ?? n
        var j = 0
        if wide {
            while j + 32 <= n {
                var i = 0
                while i + 8 <= m {
                    tile8x32(a + i * rowStride, rowStride, columnStride, b + j, ldb, c + i * ldc + j, ldc, k, accumulate)
                    i += 8
                }
                while i < m {
                    tile1xV(a + i * rowStride, columnStride, b + j, ldb, c + i * ldc + j, k, accumulate, vectors: 2)
                    i += 1
                }
                j += 32
            }
        }
        while j + 16 <= n {
            panel16(a, rowStride, columnStride, b + j, ldb, c + j, ldc, m: m, k: k, accumulate: accumulate)
            j += 16
        }
        if j < n {
            if n == 1 && columnStride == 1 && ldb == 1 {
                dotRows(a, rowStride, b, c, ldc, m: m, k: k, accumulate: accumulate)
            } else {
                edgeColumns(a, rowStride, columnStride, b + j, ldb, c + j, ldc, m: m, k: k, width: n - j, accumulate: accumulate)
            }
        }
    }

    /// C[i] (+)= A[i, :] · b for one contiguous column b: the logit of a head layer (or of
    /// logistic regression), vectorised along k rather than run on a 16-lane tile of which one lane counts.
    @inline(never)
    static func dotRows(
        _ a: UnsafePointer<Float>, _ rowStride: Int, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
        m: Int, k: Int, accumulate: Bool
    ) {
        let vectorEnd = k - k % width
        @inline(__always) func finish(_ row: UnsafePointer<Float>, _ acc: V, _ p: Int, _ i: Int) {
            var t = acc.sum()
            for q in p..<k { t = t.addingProduct(row[q], b[q]) }
            c[i * ldc] = accumulate ? c[i * ldc] + t : t
        }
        var i = 0
        // Four rows at a time: one row's sums form a single FMA chain, which waits on its own latency.
        while i + 4 <= m {
            let r0 = a + i * rowStride, r1 = r0 + rowStride, r2 = r1 + rowStride, r3 = r2 + rowStride
            var a0 = V(), a1 = V(), a2 = V(), a3 = V()
            var p = 0
            while p < vectorEnd {
                let x = load(b + p)
                a0 = a0.addingProduct(load(r0 + p), x); a1 = a1.addingProduct(load(r1 + p), x)
                a2 = a2.addingProduct(load(r2 + p), x); a3 = a3.addingProduct(load(r3 + p), x)
                p += width
            }
            finish(r0, a0, p, i); finish(r1, a1, p, i + 1); finish(r2, a2, p, i + 2); finish(r3, a3, p, i + 3)
            i += 4
        }
        while i < m {
            let row = a + i * rowStride
            var acc = V()
            var p = 0
            while p < vectorEnd {
                acc = acc.addingProduct(load(row + p), load(b + p))
                p += width
            }
            finish(row, acc, p, i)
            i += 1
        }
    }

    /// C[:, 0..<16] (+)= A·B[:, 0..<16] in row tiles of 6, 4, 2 and 1.
    @inline(__always)
    static func panel16(
        _ a: UnsafePointer<Float>, _ rowStride: Int, _ columnStride: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, m: Int, k: Int, accumulate: Bool
    ) {
        var i = 0
        // Why not 6-row tiles to the end: a 2-row tile keeps only four FMA chains in flight,
        // half of what the two FMA units need, so 6+2 rows run as 4+4 (eight chains each).
        let sixRowEnd = m % 6 == 2 && m >= 8 ? m - 8 : m - m % 6
        while i < sixRowEnd {
            tile6x16(a + i * rowStride, rowStride, columnStride, b, ldb, c + i * ldc, ldc, k, accumulate)
            i += 6
        }
        while i + 4 <= m {
            tile4x16(a + i * rowStride, rowStride, columnStride, b, ldb, c + i * ldc, ldc, k, accumulate)
            i += 4
        }
        // Leftover rows in pairs: each B vector loaded feeds two FMAs instead of one.
        while i + 2 <= m {
            tile2x16(a + i * rowStride, rowStride, columnStride, b, ldb, c + i * ldc, ldc, k, accumulate)
            i += 2
        }
        while i < m {
            tile1xV(a + i * rowStride, columnStride, b, ldb, c + i * ldc, k, accumulate, vectors: 1)
            i += 1
        }
    }

    /// The last `width` < 16 columns of C on SIMD lanes, in row tiles of 6, 4, 2 and 1, with no
    /// scratch. Why: computed one float at a time these columns cost more than the rest of the
    /// product whenever a width is not a multiple of 16 (the 40 inputs of the synthetic model left
    /// 8 columns of every first-layer weight gradient to scalar code, a fifth of that product's
    /// work at a thirtieth of the speed). A padded copy of the columns would need scratch memory,
    /// which a training step must not allocate; instead each B row is read as a whole vector,
    /// whose lanes past `width` hold the next row's values and are never stored, and only the
    /// last rows, where a whole vector would run past the end of B, are read lane by lane.
    @inline(never)
    static func edgeColumns(
        _ a: UnsafePointer<Float>, _ rowStride: Int, _ columnStride: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, m: Int, k: Int, width: Int, accumulate: Bool
    ) {
        // Rows p whose 16-float read stays within B: (k − 1 − p)·ldb ≥ 16 − width.
        let spill = 16 - width
        let wholeRows = ldb > 0 ? max(0, k - (spill + ldb - 1) / ldb) : 0
        var i = 0
        while i + 6 <= m {
            edgeTile(a + i * rowStride, rowStride, columnStride, b, ldb, c + i * ldc, ldc, k, wholeRows, width, accumulate, rows: 6)
            i += 6
        }
        if i + 4 <= m {
            edgeTile(a + i * rowStride, rowStride, columnStride, b, ldb, c + i * ldc, ldc, k, wholeRows, width, accumulate, rows: 4)
            i += 4
        }
        if i + 2 <= m {
            edgeTile(a + i * rowStride, rowStride, columnStride, b, ldb, c + i * ldc, ldc, k, wholeRows, width, accumulate, rows: 2)
            i += 2
        }
        if i < m {
            edgeTile(a + i * rowStride, rowStride, columnStride, b, ldb, c + i * ldc, ldc, k, wholeRows, width, accumulate, rows: 1)
        }
    }

    /// Up to six rows of the column tail; `rows` is a literal at every call, so the unused
    /// accumulators fold away.
    @inline(__always)
    static func edgeTile(
        _ a: UnsafePointer<Float>, _ rs: Int, _ cs: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ k: Int, _ wholeRows: Int, _ width: Int, _ accumulate: Bool,
        rows: Int
    ) {
        var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V()
        @inline(__always) func partial(_ p: UnsafePointer<Float>) -> V {
            var v = V()
            for q in 0..<width { v[q] = p[q] }
            return v
        }
        if accumulate {
            c0 = partial(c)
            if rows > 1 { c1 = partial(c + ldc) }
            if rows > 2 { c2 = partial(c + 2 * ldc); c3 = partial(c + 3 * ldc) }
            if rows > 4 { c4 = partial(c + 4 * ldc); c5 = partial(c + 5 * ldc) }
        }
        var ap = a, bp = b
        @inline(__always) func step(_ b0: V) {
            c0 = c0.addingProduct(V(repeating: ap[0]), b0)
            if rows > 1 { c1 = c1.addingProduct(V(repeating: ap[rs]), b0) }
            if rows > 2 {
                c2 = c2.addingProduct(V(repeating: ap[2 * rs]), b0); c3 = c3.addingProduct(V(repeating: ap[3 * rs]), b0)
            }
            if rows > 4 {
                c4 = c4.addingProduct(V(repeating: ap[4 * rs]), b0); c5 = c5.addingProduct(V(repeating: ap[5 * rs]), b0)
            }
            ap += cs
            bp += ldb
        }
        for _ in 0..<wholeRows { step(load(bp)) }
        for _ in wholeRows..<k { step(partial(bp)) }
        @inline(__always) func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
            for q in 0..<width { p[q] = v[q] }
        }
        store(c0, c)
        if rows > 1 { store(c1, c + ldc) }
        if rows > 2 { store(c2, c + 2 * ldc); store(c3, c + 3 * ldc) }
        if rows > 4 { store(c4, c + 4 * ldc); store(c5, c + 5 * ldc) }
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }

    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    @inline(__always)
    static func tile8x32(
        _ a: UnsafePointer<Float>, _ rs: Int, _ cs: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ k: Int, _ accumulate: Bool
    ) {
        var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V(), c30 = V(), c31 = V()
        var c40 = V(), c41 = V(), c50 = V(), c51 = V(), c60 = V(), c61 = V(), c70 = V(), c71 = V()
        if accumulate {
            c00 = load(c); c01 = load(c + 16); c10 = load(c + ldc); c11 = load(c + ldc + 16)
            c20 = load(c + 2 * ldc); c21 = load(c + 2 * ldc + 16); c30 = load(c + 3 * ldc); c31 = load(c + 3 * ldc + 16)
            c40 = load(c + 4 * ldc); c41 = load(c + 4 * ldc + 16); c50 = load(c + 5 * ldc); c51 = load(c + 5 * ldc + 16)
            c60 = load(c + 6 * ldc); c61 = load(c + 6 * ldc + 16); c70 = load(c + 7 * ldc); c71 = load(c + 7 * ldc + 16)
        }
        var ap = a, bp = b
        for _ in 0..<k {
            let b0 = load(bp), b1 = load(bp + 16)
            var x = V(repeating: ap[0])
            c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
            x = V(repeating: ap[rs]); c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
            x = V(repeating: ap[2 * rs]); c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
            x = V(repeating: ap[3 * rs]); c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
            x = V(repeating: ap[4 * rs]); c40 = c40.addingProduct(x, b0); c41 = c41.addingProduct(x, b1)
            x = V(repeating: ap[5 * rs]); c50 = c50.addingProduct(x, b0); c51 = c51.addingProduct(x, b1)
            x = V(repeating: ap[6 * rs]); c60 = c60.addingProduct(x, b0); c61 = c61.addingProduct(x, b1)
            x = V(repeating: ap[7 * rs]); c70 = c70.addingProduct(x, b0); c71 = c71.addingProduct(x, b1)
            ap += cs
            bp += ldb
        }
        store(c00, c); store(c01, c + 16); store(c10, c + ldc); store(c11, c + ldc + 16)
        store(c20, c + 2 * ldc); store(c21, c + 2 * ldc + 16); store(c30, c + 3 * ldc); store(c31, c + 3 * ldc + 16)
        store(c40, c + 4 * ldc); store(c41, c + 4 * ldc + 16); store(c50, c + 5 * ldc); store(c51, c + 5 * ldc + 16)
        store(c60, c + 6 * ldc); store(c61, c + 6 * ldc + 16); store(c70, c + 7 * ldc); store(c71, c + 7 * ldc + 16)
    }

    @inline(__always)
    static func tile6x16(
        _ a: UnsafePointer<Float>, _ rs: Int, _ cs: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ k: Int, _ accumulate: Bool
    ) {
        var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V()
        if accumulate {
            c0 = load(c); c1 = load(c + ldc); c2 = load(c + 2 * ldc)
            c3 = load(c + 3 * ldc); c4 = load(c + 4 * ldc); c5 = load(c + 5 * ldc)
        }
        var ap = a, bp = b
        for _ in 0..<k {
            let b0 = load(bp)
            c0 = c0.addingProduct(V(repeating: ap[0]), b0); c1 = c1.addingProduct(V(repeating: ap[rs]), b0)
            c2 = c2.addingProduct(V(repeating: ap[2 * rs]), b0); c3 = c3.addingProduct(V(repeating: ap[3 * rs]), b0)
            c4 = c4.addingProduct(V(repeating: ap[4 * rs]), b0); c5 = c5.addingProduct(V(repeating: ap[5 * rs]), b0)
            ap += cs
            bp += ldb
        }
        store(c0, c); store(c1, c + ldc); store(c2, c + 2 * ldc)
        store(c3, c + 3 * ldc); store(c4, c + 4 * ldc); store(c5, c + 5 * ldc)
    }

    @inline(__always)
    static func tile4x16(
        _ a: UnsafePointer<Float>, _ rs: Int, _ cs: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ k: Int, _ accumulate: Bool
    ) {
        var c0 = V(), c1 = V(), c2 = V(), c3 = V()
        if accumulate { c0 = load(c); c1 = load(c + ldc); c2 = load(c + 2 * ldc); c3 = load(c + 3 * ldc) }
        var ap = a, bp = b
        for _ in 0..<k {
            let b0 = load(bp)
            c0 = c0.addingProduct(V(repeating: ap[0]), b0); c1 = c1.addingProduct(V(repeating: ap[rs]), b0)
            c2 = c2.addingProduct(V(repeating: ap[2 * rs]), b0); c3 = c3.addingProduct(V(repeating: ap[3 * rs]), b0)
            ap += cs
            bp += ldb
        }
        store(c0, c); store(c1, c + ldc); store(c2, c + 2 * ldc); store(c3, c + 3 * ldc)
    }

    @inline(__always)
    static func tile2x16(
        _ a: UnsafePointer<Float>, _ rs: Int, _ cs: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ k: Int, _ accumulate: Bool
    ) {
        var c0 = accumulate ? load(c) : V(), c1 = accumulate ? load(c + ldc) : V()
        var ap = a, bp = b
        for _ in 0..<k {
            let b0 = load(bp)
            c0 = c0.addingProduct(V(repeating: ap[0]), b0); c1 = c1.addingProduct(V(repeating: ap[rs]), b0)
            ap += cs
            bp += ldb
        }
        store(c0, c); store(c1, c + ldc)
    }

    /// One row of C against one or two SIMD16 column vectors.
    @inline(__always)
    static func tile1xV(
        _ a: UnsafePointer<Float>, _ cs: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ c: UnsafeMutablePointer<Float>, _ k: Int, _ accumulate: Bool, vectors: Int
    ) {
        var c0 = accumulate ? load(c) : V()
        var c1 = accumulate && vectors == 2 ? load(c + 16) : V()
        var ap = a, bp = b
        if vectors == 2 {
            for _ in 0..<k {
                let x = V(repeating: ap[0])
                c0 = c0.addingProduct(x, load(bp)); c1 = c1.addingProduct(x, load(bp + 16))
                ap += cs
                bp += ldb
            }
            store(c0, c); store(c1, c + 16)
        } else {
            for _ in 0..<k {
                c0 = c0.addingProduct(V(repeating: ap[0]), load(bp))
                ap += cs
                bp += ldb
            }
            store(c0, c)
        }
    }

    /// One fused Adam step over `count` contiguous parameters (Kingma & Ba, arXiv:1412.6980 §2,
    /// bias corrections folded into `alpha` and `epsilonHat` by the caller):
    /// m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; θ ← θ·decay − α·m / (√v + ε̂). `decay` is AdamW's 1 − lr·λ (1 for Adam).
    public static func adamStep(
        _ parameters: UnsafeMutablePointer<Float>, gradient: UnsafePointer<Float>,
        firstMoment m: UnsafeMutablePointer<Float>, secondMoment v: UnsafeMutablePointer<Float>, count: Int,
        alpha: Float, beta1: Float, beta2: Float, epsilonHat: Float, decay: Float
    ) {
        let vectorEnd = count - count % width
        let b1 = V(repeating: beta1), b2 = V(repeating: beta2), c1 = V(repeating: 1 - beta1), c2 = V(repeating: 1 - beta2)
        let a = V(repeating: alpha), e = V(repeating: epsilonHat), d = V(repeating: decay)
        var i = 0
        while i < vectorEnd {
            let g = load(gradient + i)
            let mi = b1 * load(m + i) + c1 * g
            let vi = b2 * load(v + i) + c2 * g * g
            store(mi, m + i)
            store(vi, v + i)
            store(load(parameters + i) * d - a * mi / (squareRoot(vi) + e), parameters + i)
            i += width
        }
        while i < count {
            let g = gradient[i]
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            parameters[i] = parameters[i] * decay - alpha * m[i] / (v[i].squareRoot() + epsilonHat)
            i += 1
        }
    }

    /// √v for v ≥ 0 as v·(1/√v). Why not `SIMD.squareRoot()`: it is lowered one lane at a time
    /// here (sixteen scalar square roots, each with an errno fallback), which made Adam the slowest
    /// part of a training step. 1/√v starts from the bit-level estimate with Moroz et al.'s constant
    /// and one tuned Newton step (arXiv:1802.06302, relative error 6.5e-4), then one ordinary Newton
    /// step: relative error below 1e-6 for every normal v (a test sweeps the mantissas), in two
    /// steps where the classic 0x5F3759DF estimate needs three; Adam runs 21 % faster for it. √0 = 0
    /// exactly; a subnormal v gets a poor root, but Adam adds ε̂ ≫ √v to it.
    @inline(__always)
    static func squareRoot(_ v: V) -> V {
        let bits = unsafeBitCast(v, to: SIMD16<UInt32>.self)
        var y = unsafeBitCast(SIMD16<UInt32>(repeating: 0x5F1F_FFF9) &- (bits &>> 1), to: V.self)
        y = (V(repeating: 0.703_952_253) * y) * (V(repeating: 2.389_244_56) - v * y * y)
        y = y * (V(repeating: 1.5) - 0.5 * v * y * y)
        return v * y
    }

    /// target[r, :] = source[rows[r], :] for each r: a mini-batch gathered from a site's feature
    /// matrix. Why a kernel: one `memmove` call per row cost 3 % of a federated loop at 40 columns.
    public static func gatherRows(
        _ source: UnsafePointer<Float>, columns: Int, rows: UnsafeBufferPointer<Int>, into target: UnsafeMutablePointer<Float>
    ) {
        let vectorEnd = columns - columns % width
        for (r, row) in rows.enumerated() {
            let from = source + row * columns, to = target + r * columns
            var j = 0
            while j < vectorEnd {
                store(load(from + j), to + j)
                j += width
            }
            while j < columns {
                to[j] = from[j]
                j += 1
            }
        }
    }

    /// Whether no value is ±∞ or NaN: the server's check on every incoming update. Why a kernel:
    /// testing one float at a time made validation the server actor's largest cost, and the server
    /// is the one serial stage of a round.
    public static func allFinite(_ values: UnsafePointer<Float>, count: Int) -> Bool {
        let exponent = SIMD16<UInt32>(repeating: 0x7F80_0000)
        let vectorEnd = count - count % width
        var i = 0
        while i < vectorEnd {
            // All exponent bits set means ∞ or NaN. A block is tested per 64 values to keep the
            // loop branch-light.
            var bad = SIMDMask<SIMD16<Int32>>()
            let blockEnd = min(vectorEnd, i + 4 * width)
            while i < blockEnd {
                let bits = unsafeBitCast(load(values + i), to: SIMD16<UInt32>.self)
                bad .|= (bits & exponent) .== exponent
                i += width
            }
            if any(bad) { return false }
        }
        while i < count {
            if !values[i].isFinite { return false }
            i += 1
        }
        return true
    }

    /// sums[i] ← sums[i] + weight·Double(values[i]): the server folding one site's update into
    /// FedAvg's running sum. A multiply then an add, never fused, so the sum is the same as the
    /// plain loop's to the last bit; 8 lanes of Double at a time.
    public static func accumulateWeighted(
        _ values: UnsafePointer<Float>, weight: Double, into sums: UnsafeMutablePointer<Double>, count: Int
    ) {
        typealias D = SIMD8<Double>
        let w = D(repeating: weight)
        let vectorEnd = count - count % 8
        var i = 0
        while i < vectorEnd {
            let v = D(UnsafeRawPointer(values + i).loadUnaligned(as: SIMD8<Float>.self))
            let s = UnsafeRawPointer(sums + i).loadUnaligned(as: D.self)
            UnsafeMutableRawPointer(sums + i).storeBytes(of: s + w * v, as: D.self)
            i += 8
        }
        while i < count {
            sums[i] += weight * Double(values[i])
            i += 1
        }
    }

    /// Z(m,n) ← Z + bias and G ← max(0, Z) in one pass: the Linear → ReLU step of a hidden layer.
    /// Why fused: two separate passes read the (batch, width) block twice; Z is still written
    /// because LayerNorm-free ReLU backward reads G and LoRA/GELU variants read Z.
    public static func addBiasReLU(
        _ z: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, activated g: UnsafeMutablePointer<Float>, m: Int, n: Int
    ) {
        let vectorEnd = n - n % width
        let zero = V()
        for i in 0..<m {
            let zRow = z + i * n, gRow = g + i * n
            var j = 0
            while j < vectorEnd {
                let v = load(zRow + j) + load(bias + j)
                store(v, zRow + j)
                store(v.replacing(with: zero, where: v .< zero), gRow + j)
                j += width
            }
            while j < n {
                zRow[j] += bias[j]
                gRow[j] = max(0, zRow[j])
                j += 1
            }
        }
    }

    /// Y(m,n) ← Y + bias.
    public static func addBias(_ y: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, m: Int, n: Int) {
        let vectorEnd = n - n % width
        for i in 0..<m {
            let row = y + i * n
            var j = 0
            while j < vectorEnd {
                store(load(row + j) + load(bias + j), row + j)
                j += width
            }
            while j < n {
                row[j] += bias[j]
                j += 1
            }
        }
    }

    /// y = max(0, x).
    public static func relu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        let vectorEnd = count - count % width
        let zero = V()
        var i = 0
        while i < vectorEnd {
            let v = load(x + i)
            store(v.replacing(with: zero, where: v .< zero), y + i)
            i += width
        }
        while i < count {
            y[i] = max(0, x[i])
            i += 1
        }
    }

    /// y = x·Φ(x) (exact GELU; erf has no SIMD form here, so this loop is scalar).
    public static func gelu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] = 0.5 * x[i] * (1 + erff(x[i] * 0.70710678)) }
    }

    /// dX = dY ⊙ (Φ(x) + x·φ(x)); `dX` may alias `dY`.
    public static func geluBackward(_ dY: UnsafePointer<Float>, input x: UnsafePointer<Float>, _ dX: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let v = x[i]
            let cdf = 0.5 * (1 + erff(v * 0.70710678))
            let pdf = 0.39894228 * expf(-0.5 * v * v)
            dX[i] = dY[i] * (cdf + v * pdf)
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
        let vectorEnd = n - n % width
        var j = 0
        while j < vectorEnd {
            var acc = load(sums + j)
            for i in 0..<m { acc += load(x + i * n + j) }
            store(acc, sums + j)
            j += width
        }
        while j < n {
            var t = sums[j]
            for i in 0..<m { t += x[i * n + j] }
            sums[j] = t
            j += 1
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
}
