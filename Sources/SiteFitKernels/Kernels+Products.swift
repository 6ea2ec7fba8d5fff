// Matrix products C(m,n) (+)= A·B, AᵀB and A·Bᵀ: the public entry points, the route each takes,
// the packing of a transposed operand, and the loop that walks C in register tiles (the tiles
// themselves are in Kernels+Tiles.swift). Legend as in Kernels.swift.

extension Kernels {
    /// C(m,n) (+)= A(m,k) · B(k,n).  Backward of a Linear layer for the input: dX = dY · W.
    /// `scratch` holds `matmulScratch(m:k:n:)` floats (none for the small products of an MLP).
    public static func matmul(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, accumulate: Bool = false, scratch: UnsafeMutablePointer<Float>
    ) {
        if packedRoute(m: m, k: k, n: n) {
            packedProduct(a, rowStride: k, columnStride: 1, b, ldb: n, transposedB: false, c, ldc: n,
                          m: m, k: k, n: n, accumulate: accumulate, scratch: scratch)
            return
        }
        unpackedMatmul(a, b, c, m: m, k: k, n: n, accumulate: accumulate)
    }

    /// Floats of scratch `matmul` needs for C(m,n) = A(m,k)·B(k,n).
    public static func matmulScratch(m: Int, k: Int, n: Int) -> Int { packedScratch(m: m, k: k, n: n) }

    /// `matmul` with scratch from the stack or heap, for tests and one-off calls (a training step
    /// passes its workspace, so that it allocates nothing).
    public static func matmul(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, accumulate: Bool = false
    ) {
        guard packedRoute(m: m, k: k, n: n) else {
            unpackedMatmul(a, b, c, m: m, k: k, n: n, accumulate: accumulate)
            return
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: matmulScratch(m: m, k: k, n: n)) { scratch in
            matmul(a, b, c, m: m, k: k, n: n, accumulate: accumulate, scratch: scratch.baseAddress!)
        }
    }

    @inline(__always)
    static func unpackedMatmul(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, accumulate: Bool
    ) {
        // Over many rows, blocks of rows sweep every column panel while their slice of A is in cache.
        var i0 = 0
        repeat {
            let rows = min(rowBlock, m - i0)
            blocked(a + i0 * k, rowStride: k, columnStride: 1, b, ldb: n, c + i0 * n, m: rows, k: k, n: n, accumulate: accumulate)
            i0 += rows
        } while i0 < m
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
    /// `scratch` holds `transposedAScratch(m:k:n:)` floats.
    public static func matmulTransposedA(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, accumulate: Bool = false, scratch: UnsafeMutablePointer<Float>
    ) {
        if transposedARoute(m: m, n: n, accumulate: accumulate) {
            blocked(b, rowStride: 1, columnStride: n, a, ldb: m, scratch, m: n, k: k, n: m, accumulate: false)  // Cᵀ (n, m)
            pack(UnsafePointer(scratch), k: m, width: n, into: c)
            return
        }
        if packedRoute(m: m, k: k, n: n) {
            packedProduct(a, rowStride: 1, columnStride: m, b, ldb: n, transposedB: false, c, ldc: n,
                          m: m, k: k, n: n, accumulate: accumulate, scratch: scratch)
            return
        }
        // A long sum (a weight gradient over a transformer's thousands of token rows) goes in
        // slices of depth: each slice of A and B stays in cache while every tile of C takes its
        // part, and each element is still summed in order, so the result is the same to the bit.
        var p0 = 0
        repeat {
            let depth = min(depthBlock, k - p0)
            blocked(a + p0 * m, rowStride: 1, columnStride: m, b + p0 * n, ldb: n, c, m: m, k: depth, n: n,
                    accumulate: accumulate || p0 > 0)
            p0 += depth
        } while p0 < k
    }

    /// Rows of A and B per slice of a long transposed product (see `matmulTransposedA`).
    @usableFromInline static let depthBlock = 256

    /// `matmulTransposedA` with scratch from the stack or heap, for tests and one-off calls.
    public static func matmulTransposedA(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, accumulate: Bool = false
    ) {
        guard transposedARoute(m: m, n: n, accumulate: accumulate) || packedRoute(m: m, k: k, n: n) else {
            blocked(a, rowStride: 1, columnStride: m, b, ldb: n, c, m: m, k: k, n: n, accumulate: accumulate)
            return
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: transposedAScratch(m: m, k: k, n: n)) { scratch in
            matmulTransposedA(a, b, c, m: m, k: k, n: n, accumulate: accumulate, scratch: scratch.baseAddress!)
        }
    }

    /// Floats of scratch `matmulTransposedA` needs for C(m,n) over depth k.
    public static func transposedAScratch(m: Int, k: Int, n: Int) -> Int { max(1, m * n, packedScratch(m: m, k: k, n: n)) }

    /// Whether `matmulTransposedA` computes Cᵀ: only m divides into whole column panels.
    @inline(__always)
    static func transposedARoute(m: Int, n: Int, accumulate: Bool) -> Bool {
        let columns = hasWideRegisters ? 32 : 16
        return !accumulate && m % columns == 0 && n % columns != 0 && n >= 8
    }

    /// Floats of scratch `matmulTransposedB` needs for C(m,n) = A(m,k)·B(n,k)ᵀ.
    public static func transposedBScratch(m: Int, k: Int, n: Int) -> Int {
        max(k * panel, m * (k + n), packedScratch(m: m, k: k, n: n))
    }

    /// Floats of scratch that any of the three products needs when no dimension exceeds `widest`
    /// and the rows (or the depth of a weight gradient) do not exceed `rows`: what a workspace holds.
    public static func productScratch(rows: Int, widest: Int) -> Int {
        max(transposedBScratch(m: rows, k: widest, n: widest), transposedAScratch(m: widest, k: rows, n: widest),
            matmulScratch(m: rows, k: widest, n: widest))
    }

    /// C(m,n) (+)= A(m,k) · B(n,k)ᵀ.  Forward of a Linear layer: Y = X · Wᵀ with W stored (out, in).
    ///
    /// Why two strategies: the micro-kernel needs the right-hand operand with contiguous columns,
    /// so one side must be transposed, and at the model's shapes that transpose costs as much as a
    /// quarter of the products. Either Bᵀ is packed 32 columns at a time (n·k floats moved), or
    /// Cᵀ = B·Aᵀ is computed with A packed and Cᵀ transposed into C (m·k + m·n floats moved);
    /// whichever moves fewer floats wins (a batch of 32 against a 128-wide hidden layer: Cᵀ;
    /// against the 40 inputs: Bᵀ). With `bias`, C gets bias[j] added to each row afterwards, as
    /// `addBias` would, folded into the product where the packed route takes it. `scratch` holds
    /// `transposedBScratch(m:k:n:)` floats.
    public static func matmulTransposedB(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, accumulate: Bool = false, bias: UnsafePointer<Float>? = nil, scratch: UnsafeMutablePointer<Float>
    ) {
        // The Cᵀ route keeps its precedence: a one-column tail sums in another order on the packed route.
        if !transposedCRoute(m: m, k: k, n: n, accumulate: accumulate) && packedRoute(m: m, k: k, n: n) {
            packedProduct(a, rowStride: k, columnStride: 1, b, ldb: k, transposedB: true, c, ldc: n,
                          m: m, k: k, n: n, accumulate: accumulate, bias: bias, scratch: scratch)
            return
        }
        unpackedTransposedB(a, b, c, m: m, k: k, n: n, accumulate: accumulate, scratch: scratch)
        if let bias { addBias(c, bias: bias, m: m, n: n) }
    }

    /// Whether `matmulTransposedB` computes Cᵀ = B·Aᵀ: it moves fewer floats than packing Bᵀ.
    @inline(__always)
    static func transposedCRoute(m: Int, k: Int, n: Int, accumulate: Bool) -> Bool {
        !accumulate && m >= 8 && m * (k + n) < n * k
    }

    @inline(__always)
    static func unpackedTransposedB(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, k: Int, n: Int, accumulate: Bool, scratch: UnsafeMutablePointer<Float>
    ) {
        if transposedCRoute(m: m, k: k, n: n, accumulate: accumulate) {
            let packedA = scratch, transposedC = scratch + k * m
            pack(a, k: k, width: m, into: packedA)                                   // Aᵀ (k, m)
            blocked(b, rowStride: k, columnStride: 1, UnsafePointer(packedA), ldb: m, transposedC,
                    m: n, k: k, n: m, accumulate: false)                              // Cᵀ (n, m) = B·Aᵀ
            pack(UnsafePointer(transposedC), k: m, width: n, into: c)                 // C (m, n)
            return
        }
        // Over many rows where the packed route is not taken (a CPU with AVX2 only, or fewer than
        // 32 columns or depth), every panel of Bᵀ is packed first (n·k floats: this path runs only
        // when m·(k+n) ≥ n·k, which the scratch holds) and the rows are walked in blocks that stay
        // in cache across the panels. Each element of C is still summed in the same order.
        if m > rowBlock && !accumulate {
            var j0 = 0
            while j0 < n {
                pack(b + j0 * k, k: k, width: min(panel, n - j0), into: scratch + j0 * k)
                j0 += panel
            }
            var i0 = 0
            while i0 < m {
                let rows = min(rowBlock, m - i0)
                j0 = 0
                while j0 < n {
                    let width = min(panel, n - j0)
                    blocked(a + i0 * k, rowStride: k, columnStride: 1, UnsafePointer(scratch + j0 * k), ldb: width, c + i0 * n + j0, ldc: n,
                            m: rows, k: k, n: width, accumulate: false)
                    j0 += panel
                }
                i0 += rows
            }
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

    /// Rows per block when a product walks many rows: a multiple of the 8- and 6-row tiles whose
    /// slice of A (up to 192 × 512 floats) fits in a core's L2 beside the packed panels.
    @usableFromInline static let rowBlock = 192

    /// Packs Bᵀ[p, 0 ..< width] (B rows `k` floats apart) as rows of `width` floats.
    @inline(__always)
    static func pack(_ b: UnsafePointer<Float>, k: Int, width: Int, into scratch: UnsafeMutablePointer<Float>) {
        pack(b, stride: k, depth: k, width: width, into: scratch)
    }

    /// Packs Bᵀ[p, 0 ..< width] for p < `depth` (B rows `stride` floats apart) as rows of `width`
    /// floats. Full 8×8 blocks are transposed in registers (eight SIMD8 loads, eight SIMD8 stores)
    /// so the packing streams instead of scattering one float at a time; edges are copied one by one.
    @inline(__always)
    static func pack(_ b: UnsafePointer<Float>, stride k: Int, depth: Int, width: Int, into scratch: UnsafeMutablePointer<Float>) {
        typealias W = SIMD8<Float>
        @inline(__always) func load8(_ p: UnsafePointer<Float>) -> W { UnsafeRawPointer(p).loadUnaligned(as: W.self) }
        let fullRows = width - width % 8, fullColumns = depth - depth % 8
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
            for p in fullColumns..<depth { for r in 0..<8 { scratch[p * width + jj + r] = b[(jj + r) * k + p] } }
            jj += 8
        }
        for r in fullRows..<width {
            let row = b + r * k
            for p in 0..<depth { scratch[p * width + r] = row[p] }
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
}
