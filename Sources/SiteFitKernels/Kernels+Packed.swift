// The packed route of the large matrix products (a transformer's thousands of token rows): each
// slice of depth of B is copied into contiguous 32-column panels (every slice at once when they
// fit in `wholeBLimit`) and of A into contiguous 8-row panels, and the 8×32 register tile reads
// both in order. Legend as in Kernels.swift.
//
// Why: unpacked, the tile reads B's rows `ldb` floats apart. At a width of 128 floats (512 bytes)
// every row of a panel falls into the same 16 of the L1 cache's 64 sets, so a 384-deep panel
// (768 lines) cannot stay in the 192 lines those sets hold and is fetched again from L2 for every
// 8 rows of C: the transformer's input gradients ran at half of peak. Packed, a slice's panel is
// 32 KiB of consecutive lines, and an A panel is 8 KiB read front to back.
//
// The copies do not change what is summed or in which order: every element of C is still one
// chain of fused multiply-adds over p = 0, 1, …, k − 1, carried across slices through C. So the
// packed route gives the same bits as the unpacked one, and every report stays as it was.

extension Kernels {
    /// Depth of one slice of the packed route: a 256 × 32 panel of B (32 KiB) stays in L1 while
    /// the 8-row panels of A stream past it.
    @usableFromInline static let packedDepth = 256

    /// Whether a product takes the packed route: AVX-512 tiles, at least one whole 8×32 tile, and
    /// rows or depth enough that the copies pay (the MLP's batch-32 products and the rank-4
    /// products of LoRA keep their routes; so does every product where the CPU has only AVX2).
    @inline(__always)
    static func packedRoute(m: Int, k: Int, n: Int) -> Bool {
        hasWideRegisters && m >= 8 && n >= panel && k >= 32 && (m > rowBlock || k > packedDepth)
    }

    /// Floats of packed B up to which a product deeper than one slice packs all of B first and
    /// walks each block of rows through every slice before the next block (256 KiB, a quarter of
    /// a core's L2). Why: slice by slice, C makes a round trip per slice, and C at the transformer's
    /// size (4,096 × 128 floats, 2 MiB) does not stay in L2 between slices, so every tile of every
    /// later slice waited for its 16 vectors of C from L3 or memory: the products of depth 384 and
    /// 512 ran 10 points of peak below those of depth 128. Row block first, the block's C (at most
    /// 192 × n floats) is still in L2 when the next slice adds to it.
    @usableFromInline static let wholeBLimit = 65_536

    /// Floats of scratch the packed route needs for C(m,n) over depth k; 0 when it is not taken.
    /// Never smaller for a larger k or n, so a workspace sized for its widest product fits every
    /// product it makes.
    public static func packedScratch(m: Int, k: Int, n: Int) -> Int {
        packedRoute(m: m, k: k, n: n) ? packedProductScratch(k: k, n: n) : 0
    }

    /// Floats of scratch `packedProduct` needs over depth k and n columns, whichever order it walks.
    static func packedProductScratch(k: Int, n: Int) -> Int {
        let slice = min(k, packedDepth)
        return max(slice * (n + rowBlock), min(k * n, wholeBLimit) + rowBlock * slice, k * min(n, panel - 1))
    }

    /// C (+)= A·B by packed panels. a(i,p) = a[i·rowStride + p·columnStride]; B(p,j) = b[p·ldb + j],
    /// or b[j·ldb + p] when `transposedB`; C's rows are `ldc` apart. With `bias`, C gets bias[j]
    /// added to each row after its product, as `addBias` would. `scratch` holds
    /// `packedScratch(m:k:n:)` floats.
    @inline(never)
    static func packedProduct(
        _ a: UnsafePointer<Float>, rowStride: Int, columnStride: Int,
        _ b: UnsafePointer<Float>, ldb: Int, transposedB: Bool,
        _ c: UnsafeMutablePointer<Float>, ldc: Int,
        m: Int, k: Int, n: Int, accumulate: Bool, bias: UnsafePointer<Float>? = nil, scratch: UnsafeMutablePointer<Float>
    ) {
        let fullRows = m - m % 8, fullColumns = n - n % panel
        // Either order gives each element of C the same chain over p = 0, 1, …, k − 1.
        let wholeB = k > packedDepth && k * fullColumns <= wholeBLimit
        let packedB = scratch, packedA = scratch + (wholeB ? k : min(k, packedDepth)) * fullColumns
        /// Packs the slice of B at depth p0 as panels of 32 columns, each `depth` rows deep.
        @inline(__always) func packSlice(_ p0: Int, _ depth: Int, into target: UnsafeMutablePointer<Float>) {
            var j0 = 0
            while j0 < fullColumns {
                if transposedB {
                    pack(b + j0 * ldb + p0, stride: ldb, depth: depth, width: panel, into: target + j0 * depth)
                } else {
                    var source = b + p0 * ldb + j0, row = target + j0 * depth
                    for _ in 0..<depth {
                        store(load(source), row); store(load(source + 16), row + 16)
                        source += ldb
                        row += panel
                    }
                }
                j0 += panel
            }
        }
        /// Rows i0 ..< i0 + rows (a multiple of 8) of C over one slice, against its packed B.
        @inline(__always) func rowBlockSlice(_ i0: Int, _ rows: Int, _ p0: Int, _ depth: Int, _ slice: UnsafePointer<Float>) {
            // The first slice starts each chain (or continues C's); later slices continue it.
            let adding = accumulate || p0 > 0
            // The bias goes on as the last slice's tiles are stored: one pass over C fewer.
            let tileBias = p0 + depth == k ? bias : nil
            var g = 0
            while g < rows {
                packRows(a + (i0 + g) * rowStride + p0 * columnStride, rowStride: rowStride, columnStride: columnStride,
                         depth: depth, into: packedA + g * depth)
                g += 8
            }
            var j0 = 0
            while j0 < fullColumns {
                g = 0
                while g < rows {
                    tile8x32(packedA + g * depth, 1, 8, slice + j0 * depth, panel, c + (i0 + g) * ldc + j0, ldc, depth, adding,
                             bias: tileBias.map { $0 + j0 })
                    g += 8
                }
                j0 += panel
            }
        }
        /// The last m % 8 rows over one slice, a row at a time.
        @inline(__always) func tailRowsSlice(_ p0: Int, _ depth: Int, _ slice: UnsafePointer<Float>) {
            for i in fullRows..<m {
                var j0 = 0
                while j0 < fullColumns {
                    tile1xV(a + i * rowStride + p0 * columnStride, columnStride, slice + j0 * depth, panel,
                            c + i * ldc + j0, depth, accumulate || p0 > 0, vectors: 2)
                    j0 += panel
                }
            }
        }
        if wholeB {
            var p0 = 0
            while p0 < k {
                packSlice(p0, min(packedDepth, k - p0), into: packedB + p0 * fullColumns)
                p0 += packedDepth
            }
            var i0 = 0
            while i0 < fullRows {
                let rows = min(rowBlock, fullRows - i0)
                p0 = 0
                while p0 < k {
                    rowBlockSlice(i0, rows, p0, min(packedDepth, k - p0), packedB + p0 * fullColumns)
                    p0 += packedDepth
                }
                i0 += rows
            }
            p0 = 0
            while p0 < k {
                tailRowsSlice(p0, min(packedDepth, k - p0), packedB + p0 * fullColumns)
                p0 += packedDepth
            }
        } else {
            var p0 = 0
            while p0 < k {
                let depth = min(packedDepth, k - p0)
                packSlice(p0, depth, into: packedB)
                var i0 = 0
                while i0 < fullRows {
                    let rows = min(rowBlock, fullRows - i0)
                    rowBlockSlice(i0, rows, p0, depth, packedB)
                    i0 += rows
                }
                tailRowsSlice(p0, depth, packedB)
                p0 += depth
            }
        }
        if let bias, fullRows < m { addBias(c + fullRows * ldc, ldc: ldc, bias: bias, m: m - fullRows, n: fullColumns) }
        guard fullColumns < n else { return }
        // The last columns, fewer than a panel, over the whole depth by the unpacked tiles.
        let width = n - fullColumns
        if transposedB {
            pack(b + fullColumns * ldb, stride: ldb, depth: k, width: width, into: scratch)
            blocked(a, rowStride: rowStride, columnStride: columnStride, UnsafePointer(scratch), ldb: width,
                    c + fullColumns, ldc: ldc, m: m, k: k, n: width, accumulate: accumulate)
        } else {
            blocked(a, rowStride: rowStride, columnStride: columnStride, b + fullColumns, ldb: ldb,
                    c + fullColumns, ldc: ldc, m: m, k: k, n: width, accumulate: accumulate)
        }
        if let bias { addBias(c + fullColumns, ldc: ldc, bias: bias + fullColumns, m: m, n: width) }
    }

    /// C[i, 0 ..< n] += bias for rows `ldc` apart: the parts of C outside the tiles that add it.
    static func addBias(_ c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>, m: Int, n: Int) {
        for i in 0..<m {
            let row = c + i * ldc
            for j in 0..<n { row[j] += bias[j] }
        }
    }

    /// Packs 8 rows of A over `depth` as depth × 8 floats: a transpose of 8×8 blocks when A's rows
    /// are contiguous, a copy of 8 floats per p when its columns are (a weight gradient's dYᵀ).
    @inline(__always)
    static func packRows(
        _ a: UnsafePointer<Float>, rowStride: Int, columnStride: Int, depth: Int, into target: UnsafeMutablePointer<Float>
    ) {
        if columnStride == 1 {
            pack(a, stride: rowStride, depth: depth, width: 8, into: target)
        } else if rowStride == 1 {
            typealias W = SIMD8<Float>
            var source = a, row = target
            for _ in 0..<depth {
                UnsafeMutableRawPointer(row).storeBytes(of: UnsafeRawPointer(source).loadUnaligned(as: W.self), as: W.self)
                source += columnStride
                row += 8
            }
        } else {
            for p in 0..<depth { for r in 0..<8 { target[p * 8 + r] = a[r * rowStride + p * columnStride] } }
        }
    }
}
