// The register tiles of the matrix products: full tiles of 8×32, 6×16, 4×16, 2×16 and one row,
// and the column tail narrower than 16. Legend as in Kernels.swift; rs and cs are A's row and
// column strides.

extension Kernels {
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

    /// With `bias`, each row of the tile gets bias[0 ..< 32] added as it is stored: the same
    /// single rounding as a separate pass over C, without that pass's read and write of C.
    @inline(__always)
    static func tile8x32(
        _ a: UnsafePointer<Float>, _ rs: Int, _ cs: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ k: Int, _ accumulate: Bool, bias: UnsafePointer<Float>? = nil
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
        if let bias {
            let b0 = load(bias), b1 = load(bias + 16)
            c00 += b0; c01 += b1; c10 += b0; c11 += b1; c20 += b0; c21 += b1; c30 += b0; c31 += b1
            c40 += b0; c41 += b1; c50 += b0; c51 += b1; c60 += b0; c61 += b1; c70 += b0; c71 += b1
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
}
