import Foundation

// The transformer's kernels: a vector exp, GELU, LayerNorm, masked softmax, embedding gather and
// scatter, and multi-head attention over a fused (tokens, 3·width) query/key/value buffer. Each has
// a plain-loop twin in NaiveKernels and an equivalence test on odd shapes.
//
// Legend (attention): `batch` sequences of `length` tokens; `heads` heads of `headWidth` columns,
// width = heads·headWidth; token t = b·length + s. `qkv` holds, per token, the query, key and value
// rows side by side (3·width floats: q of every head, then k, then v), as one product with the
// three projection matrices stacked writes it. `keep` (batch, length) is 1 for a real token and 0
// for padding: padding is never attended to.

extension Kernels {
    // Why bit tricks below: on SIMD16<Float> the standard library's `pointwiseMin`/`pointwiseMax`,
    // `clamped`, `replacing(with:where:)` and Float→Int32 conversion run lane by lane (measured: most
    // of a softmax's time), while +, −, ×, & and shifts on concrete vectors are single instructions.
    typealias I = SIMD16<Int32>

    @inline(__always)
    static func bits(_ v: V) -> I { unsafeBitCast(v, to: I.self) }
    @inline(__always)
    static func float(_ v: I) -> V { unsafeBitCast(v, to: V.self) }

    /// min(a, b) lane by lane for integers whose difference fits in Int32.
    @inline(__always)
    static func integerMin(_ a: I, _ b: I) -> I {
        let d = b &- a
        return b &- (d & ~(d &>> 31))
    }

    /// |x| (the sign bit cleared).
    @inline(__always)
    static func magnitude(_ x: V) -> V { float(bits(x) & I(repeating: 0x7FFF_FFFF)) }

    /// max(a, b) lane by lane for integers whose difference fits in Int32.
    @inline(__always)
    static func integerMax(_ a: I, _ b: I) -> I {
        let d = b &- a
        return b &- (d & (d &>> 31))
    }

    /// A key that orders like the float (negative values' magnitude bits flipped), halved so that
    /// two keys' difference fits in Int32; `value(ofKey:)` undoes it up to the last mantissa bit.
    @inline(__always)
    static func orderKey(_ v: V) -> I {
        let raw = bits(v)
        return (raw ^ ((raw &>> 31) & I(repeating: 0x7FFF_FFFF))) &>> 1
    }

    static func value(ofKey key: Int32) -> Float {
        let raw = key << 1
        return Float(bitPattern: UInt32(bitPattern: raw ^ ((raw >> 31) & 0x7FFF_FFFF)))
    }

    /// e^x lane by lane: x = n·ln2 + r with |r| ≤ ln2/2, e^r by its degree-7 Taylor polynomial
    /// (truncation < 1e-8 relative), 2^n by the exponent bits. x is first clamped to [−87, 88]
    /// exactly (on the magnitude's bits, which order like the values), so e^x of anything below is
    /// ≈ 1e-38 and above is ≈ 1.7e38; a NaN comes out finite. Why not `Foundation.exp`: a scalar
    /// call per element cost most of a softmax.
    @inline(__always)
    static func exp(_ x: V) -> V {
        let raw = bits(x)
        let sign = raw & I(repeating: Int32(bitPattern: 0x8000_0000))
        let negative = sign &>> 31                                       // −1 where x < 0
        let limit = I(repeating: Int32(bitPattern: Float(88).bitPattern))
            &+ (negative & I(repeating: Int32(bitPattern: Float(87).bitPattern) &- Int32(bitPattern: Float(88).bitPattern)))
        let clamped = float(sign | integerMin(raw & I(repeating: 0x7FFF_FFFF), limit))
        // Adding 1.5·2²³ rounds to the nearest integer in the mantissa (ties to even): n and its bits at once.
        let magic = V(repeating: 12582912)
        let biased = clamped * 1.442695041 + magic
        let n = biased - magic
        // Cody–Waite: ln2 split in a high part exact in Float and a low correction.
        let r = clamped.addingProduct(n, V(repeating: -0.693145752)).addingProduct(n, V(repeating: -1.42860677e-6))
        var p = V(repeating: 1.0 / 5040)
        p = V(repeating: 1.0 / 720).addingProduct(p, r)
        p = V(repeating: 1.0 / 120).addingProduct(p, r)
        p = V(repeating: 1.0 / 24).addingProduct(p, r)
        p = V(repeating: 1.0 / 6).addingProduct(p, r)
        p = V(repeating: 0.5).addingProduct(p, r)
        p = V(repeating: 1).addingProduct(p, r)
        p = V(repeating: 1).addingProduct(p, r)
        // n sits in the low mantissa bits of `biased` (offset by the magic number's 0x4B400000); n ∈ [−126, 127].
        let integer = bits(biased) &- I(repeating: 0x4B40_0000)
        return p * float((integer &+ I(repeating: 127)) &* I(repeating: 1 << 23))
    }

    /// e^x for `count` values (the vector exp, exposed for its test).
    public static func exp(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + width <= count {
            store(exp(load(x + i)), y + i)
            i += width
        }
        if i < count { tail(x + i, y + i, count - i) { exp($0) } }
    }

    /// Runs a vector function on the last `count` < 16 values through a padded copy.
    @inline(__always)
    static func tail(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int, _ f: (V) -> V) {
        var v = V()
        for j in 0..<count { v[j] = x[j] }
        let r = f(v)
        for j in 0..<count { y[j] = r[j] }
    }

    /// For GELU: (Φ(x), e^{−x²/2}), with erf(|x|/√2) by Abramowitz & Stegun 7.1.26 (absolute
    /// error < 1.5e-7); the second is the Gaussian density without its 1/√(2π).
    @inline(__always)
    static func normalCDF(_ x: V) -> (cdf: V, density: V) {
        let z = magnitude(x) * 0.70710678
        let t = 1 / V(repeating: 1).addingProduct(z, V(repeating: 0.3275911))
        var poly = V(repeating: 1.061405429)
        poly = V(repeating: -1.453152027).addingProduct(poly, t)
        poly = V(repeating: 1.421413741).addingProduct(poly, t)
        poly = V(repeating: -0.284496736).addingProduct(poly, t)
        poly = V(repeating: 0.254829592).addingProduct(poly, t)
        poly = poly * t
        let gauss: V = exp(V() - z * z)
        let erfAbs = 1 - poly * gauss
        // erf is odd: |erf| with x's sign bit.
        let erf = float(bits(erfAbs) | (bits(x) & I(repeating: Int32(bitPattern: 0x8000_0000))))
        return (0.5 * (1 + erf), gauss)
    }

    /// y = x·Φ(x) (exact GELU, erf to 1.5e-7).
    public static func gelu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        @inline(__always) func f(_ v: V) -> V { v * normalCDF(v).cdf }
        var i = 0
        while i + width <= count {
            store(f(load(x + i)), y + i)
            i += width
        }
        if i < count { tail(x + i, y + i, count - i, f) }
    }

    /// dX = dY ⊙ (Φ(x) + x·φ(x)); `dX` may alias `dY`.
    public static func geluBackward(_ dY: UnsafePointer<Float>, input x: UnsafePointer<Float>, _ dX: UnsafeMutablePointer<Float>, count: Int) {
        @inline(__always) func derivative(_ v: V) -> V {
            let (cdf, gauss) = normalCDF(v)
            return cdf + v * gauss * 0.39894228
        }
        var i = 0
        while i + width <= count {
            store(load(dY + i) * derivative(load(x + i)), dX + i)
            i += width
        }
        if i < count {
            var v = V(), g = V()
            for j in 0..<(count - i) { v[j] = x[i + j]; g[j] = dY[i + j] }
            let r = g * derivative(v)
            for j in 0..<(count - i) { dX[i + j] = r[j] }
        }
    }

    /// LayerNorm over each of m rows of n: y = γ ⊙ x̂ + β with x̂ = (x − μ)·rstd, rstd = 1/√(σ² + ε)
    /// (biased variance). Keeps x̂ (m, n) and rstd (m) for the backward pass.
    public static func layerNorm(
        _ x: UnsafePointer<Float>, gain: UnsafePointer<Float>, bias: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
        normalized: UnsafeMutablePointer<Float>, inverseStd: UnsafeMutablePointer<Float>, m: Int, n: Int, epsilon: Float = 1e-5
    ) {
        let vectorEnd = n - n % width
        for i in 0..<m {
            let row = x + i * n, h = normalized + i * n, out = y + i * n
            var acc = V()
            var j = 0
            while j < vectorEnd { acc += load(row + j); j += width }
            var sum = acc.sum()
            while j < n { sum += row[j]; j += 1 }
            let mean = sum / Float(n)
            let meanV = V(repeating: mean)
            acc = V()
            j = 0
            while j < vectorEnd { let d = load(row + j) - meanV; acc = acc.addingProduct(d, d); j += width }
            var squares = acc.sum()
            while j < n { let d = row[j] - mean; squares += d * d; j += 1 }
            let rstd = 1 / (squares / Float(n) + epsilon).squareRoot()
            inverseStd[i] = rstd
            let rstdV = V(repeating: rstd)
            j = 0
            while j < vectorEnd {
                let hv = (load(row + j) - meanV) * rstdV
                store(hv, h + j)
                store(load(bias + j).addingProduct(load(gain + j), hv), out + j)
                j += width
            }
            while j < n {
                let hv = (row[j] - mean) * rstd
                h[j] = hv
                out[j] = gain[j] * hv + bias[j]
                j += 1
            }
        }
    }

    /// LayerNorm backward: dX = (rstd/n)·(n·ĝ − Σĝ − x̂·Σ(ĝ⊙x̂)) with ĝ = dY ⊙ γ; dγ = Σ_rows dY ⊙ x̂ and
    /// dβ = Σ_rows dY when asked for (written, not accumulated). `dX` may alias `dY`; nil skips it.
    public static func layerNormBackward(
        _ dY: UnsafePointer<Float>, gain: UnsafePointer<Float>, normalized: UnsafePointer<Float>, inverseStd: UnsafePointer<Float>,
        dX: UnsafeMutablePointer<Float>?, dGain: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?, m: Int, n: Int
    ) {
        if let dGain { dGain.update(repeating: 0, count: n) }
        if let dBias { dBias.update(repeating: 0, count: n) }
        let vectorEnd = n - n % width
        for i in 0..<m {
            let g = dY + i * n, h = normalized + i * n
            var sumV = V(), dotV = V()
            var j = 0
            while j < vectorEnd {
                let gv = load(g + j), hv = load(h + j)
                if let dGain { store(load(dGain + j).addingProduct(gv, hv), dGain + j) }
                if let dBias { store(load(dBias + j) + gv, dBias + j) }
                let gh = gv * load(gain + j)
                sumV += gh
                dotV = dotV.addingProduct(gh, hv)
                j += width
            }
            var sum = sumV.sum(), dot = dotV.sum()
            while j < n {
                dGain?[j] += g[j] * h[j]
                dBias?[j] += g[j]
                let gh = g[j] * gain[j]
                sum += gh
                dot += gh * h[j]
                j += 1
            }
            guard let dX else { continue }
            let out = dX + i * n
            let scale = inverseStd[i] / Float(n)
            let nV = V(repeating: Float(n)), sumVector = V(repeating: sum), dotVector = V(repeating: dot), scaleV = V(repeating: scale)
            j = 0
            while j < vectorEnd {
                let gh = load(g + j) * load(gain + j)
                store(scaleV * (nV * gh - sumVector - load(h + j) * dotVector), out + j)
                j += width
            }
            while j < n {
                out[j] = scale * (Float(n) * g[j] * gain[j] - sum - h[j] * dot)
                j += 1
            }
        }
    }

    /// Row-wise softmax of `scale`·x over the columns where `keep` is 1, in place; masked columns get
    /// 0, and a row with no kept column becomes all 0 (a sequence of padding attends to nothing).
    public static func maskedSoftmax(_ x: UnsafeMutablePointer<Float>, keep: UnsafePointer<Float>, rows: Int, columns n: Int, scale: Float) {
        let vectorEnd = n - n % width
        let scaleV = V(repeating: scale), one = V(repeating: 1)
        let lowest = I(repeating: -(1 << 30))
        // Kept columns count the same in every row.
        var keptV = V()
        var j = 0
        while j < vectorEnd { keptV += load(keep + j); j += width }
        var kept = keptV.sum()
        while j < n { kept += keep[j]; j += 1 }
        for i in 0..<rows {
            let row = x + i * n
            guard kept > 0 else {
                row.update(repeating: 0, count: n)
                continue
            }
            // The row's largest kept score (to the last mantissa bit: the shift only keeps e^x in range),
            // on ordered integer keys with masked columns at the lowest key.
            var maxKey = lowest
            j = 0
            while j < vectorEnd {
                let keepBits = bits(load(keep + j)) &>> 29                 // 1.0 → 1, 0.0 → 0
                let selected = I() &- keepBits                              // all ones where kept
                let key = (orderKey(load(row + j) * scaleV) & selected) | (lowest & ~selected)
                maxKey = integerMax(maxKey, key)
                j += width
            }
            var top = lowest[0]
            for lane in 0..<16 where maxKey[lane] > top { top = maxKey[lane] }
            var maximum = top == lowest[0] ? -Float.infinity : value(ofKey: top)
            while j < n { if keep[j] != 0 { maximum = Swift.max(maximum, row[j] * scale) }; j += 1 }
            let maxVector = V(repeating: maximum)
            var sumV = V()
            j = 0
            while j < vectorEnd {
                // A masked column's exponent may be anything finite or clamped; × 0 removes it.
                let k = load(keep + j)
                let e = exp((load(row + j) * scaleV - maxVector) * k - (one - k)) * k
                store(e, row + j)
                sumV += e
                j += width
            }
            var sum = sumV.sum()
            while j < n {
                let e = keep[j] != 0 ? Foundation.exp(row[j] * scale - maximum) : 0
                row[j] = e
                sum += e
                j += 1
            }
            let inverse = V(repeating: 1 / sum)
            j = 0
            while j < vectorEnd { store(load(row + j) * inverse, row + j); j += width }
            while j < n { row[j] /= sum; j += 1 }
        }
    }

    /// Softmax backward, in place: dX = scale · P ⊙ (dP − Σ_j P⊙dP) row by row (masked columns have P = 0).
    public static func softmaxBackward(_ gradient: UnsafeMutablePointer<Float>, probabilities p: UnsafePointer<Float>,
                                       rows: Int, columns n: Int, scale: Float) {
        let vectorEnd = n - n % width
        for i in 0..<rows {
            let g = gradient + i * n, row = p + i * n
            var dotV = V()
            var j = 0
            while j < vectorEnd { dotV = dotV.addingProduct(load(g + j), load(row + j)); j += width }
            var dot = dotV.sum()
            while j < n { dot += g[j] * row[j]; j += 1 }
            let dotVector = V(repeating: dot), scaleV = V(repeating: scale)
            j = 0
            while j < vectorEnd { store(scaleV * load(row + j) * (load(g + j) - dotVector), g + j); j += width }
            while j < n { g[j] = scale * row[j] * (g[j] - dot); j += 1 }
        }
    }

    /// y[r, :] (+)= table[indices[r], :] for each of the rows: an embedding lookup, or (accumulating)
    /// the sum of several embeddings of the same tokens.
    public static func embeddingGather(_ table: UnsafePointer<Float>, indices: UnsafePointer<Int32>, rows: Int, width n: Int,
                                       into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let vectorEnd = n - n % width
        for r in 0..<rows {
            let from = table + Int(indices[r]) * n, to = y + r * n
            var j = 0
            while j < vectorEnd {
                store(accumulate ? load(to + j) + load(from + j) : load(from + j), to + j)
                j += width
            }
            while j < n { to[j] = accumulate ? to[j] + from[j] : from[j]; j += 1 }
        }
    }

    /// dTable[indices[r], :] += dY[r, :] for each of the rows (the embedding's backward pass; rows
    /// that share an index add up). The caller zeroes dTable first.
    public static func embeddingScatter(_ dY: UnsafePointer<Float>, indices: UnsafePointer<Int32>, rows: Int, width n: Int,
                                        into table: UnsafeMutablePointer<Float>) {
        let vectorEnd = n - n % width
        for r in 0..<rows {
            let from = dY + r * n, to = table + Int(indices[r]) * n
            var j = 0
            while j < vectorEnd { store(load(to + j) + load(from + j), to + j); j += width }
            while j < n { to[j] += from[j]; j += 1 }
        }
    }

    /// Floats of scratch `attentionForward` and `attentionBackward` need.
    public static func attentionScratch(length: Int, headWidth: Int) -> Int { length * length + 4 * headWidth * length }

    /// Multi-head scaled dot-product attention: for each sequence b and head h,
    /// P = softmax(Q_h·K_hᵀ/√headWidth) over kept keys and context_h = P·V_h.
    /// Writes P into `probabilities` (batch, heads, length, length) for the backward pass and the
    /// heads' contexts side by side into `context` (tokens, width).
    ///
    /// Why the copies of a head's columns: a product that reads B down rows 3·width floats apart
    /// (1,536 bytes at width 128) touches only a few of the L1 cache's sets, and 128 such rows
    /// evict each other before the next row tile comes back to them. Copied together they are
    /// 16 KiB of consecutive lines. The copies change no sum, so the results keep their bits
    /// (but at a head width of 1, where the copied operand's rows are 1 float apart and `blocked`
    /// takes its dot-product route: no model here has such heads).
    public static func attentionForward(
        qkv: UnsafePointer<Float>, keep: UnsafePointer<Float>, batch: Int, length: Int, heads: Int, headWidth: Int,
        probabilities: UnsafeMutablePointer<Float>, context: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>
    ) {
        let width = heads * headWidth, stride = 3 * width, scale = 1 / Float(headWidth).squareRoot()
        let keyT = scratch  // K_hᵀ (headWidth, length)
        let values = scratch + headWidth * length  // V_h (length, headWidth)
        for b in 0..<batch {
            let tokens = qkv + b * length * stride
            for h in 0..<heads {
                let q = tokens + h * headWidth, k = tokens + width + h * headWidth, v = tokens + 2 * width + h * headWidth
                let p = probabilities + (b * heads + h) * length * length
                transposeStrided(k, rows: length, columns: headWidth, rowStride: stride, into: keyT)
                blocked(q, rowStride: stride, columnStride: 1, UnsafePointer(keyT), ldb: length, p,
                        m: length, k: headWidth, n: length, accumulate: false)
                maskedSoftmax(p, keep: keep + b * length, rows: length, columns: length, scale: scale)
                gatherRows(v, rows: length, columns: headWidth, rowStride: stride, into: values)
                blocked(UnsafePointer(p), rowStride: length, columnStride: 1, UnsafePointer(values), ldb: headWidth,
                        context + b * length * width + h * headWidth, ldc: width,
                        m: length, k: length, n: headWidth, accumulate: false)
            }
        }
    }

    /// Attention backward: given ∂L/∂context (tokens, width) writes ∂L/∂qkv (tokens, 3·width):
    /// dV = Pᵀ·dC, dP = dC·Vᵀ, dS = P ⊙ (dP − rowsum(P⊙dP))/√headWidth, dQ = dS·K, dK = dSᵀ·Q.
    /// The B operands are copied per head as in `attentionForward`, for the same reason.
    public static func attentionBackward(
        dContext: UnsafePointer<Float>, qkv: UnsafePointer<Float>, probabilities: UnsafePointer<Float>,
        batch: Int, length: Int, heads: Int, headWidth: Int, dQKV: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>
    ) {
        let width = heads * headWidth, stride = 3 * width, scale = 1 / Float(headWidth).squareRoot()
        let block = headWidth * length
        let dScores = scratch, valueT = scratch + length * length
        let dContextHead = valueT + block, keys = dContextHead + block, queries = keys + block
        for b in 0..<batch {
            let tokens = qkv + b * length * stride, dTokens = dQKV + b * length * stride
            let dC = dContext + b * length * width
            for h in 0..<heads {
                let q = tokens + h * headWidth, k = tokens + width + h * headWidth, v = tokens + 2 * width + h * headWidth
                let dq = dTokens + h * headWidth, dk = dTokens + width + h * headWidth, dv = dTokens + 2 * width + h * headWidth
                let p = probabilities + (b * heads + h) * length * length
                gatherRows(dC + h * headWidth, rows: length, columns: headWidth, rowStride: width, into: dContextHead)
                let dCh = UnsafePointer(dContextHead)
                // dV = Pᵀ·dC: P read down its columns.
                blocked(p, rowStride: 1, columnStride: length, dCh, ldb: headWidth, dv, ldc: stride,
                        m: length, k: length, n: headWidth, accumulate: false)
                // dP = dC·Vᵀ, then the softmax's backward pass in place.
                transposeStrided(v, rows: length, columns: headWidth, rowStride: stride, into: valueT)
                blocked(dCh, rowStride: headWidth, columnStride: 1, UnsafePointer(valueT), ldb: length, dScores,
                        m: length, k: headWidth, n: length, accumulate: false)
                softmaxBackward(dScores, probabilities: p, rows: length, columns: length, scale: scale)
                gatherRows(k, rows: length, columns: headWidth, rowStride: stride, into: keys)
                blocked(UnsafePointer(dScores), rowStride: length, columnStride: 1, UnsafePointer(keys), ldb: headWidth, dq, ldc: stride,
                        m: length, k: length, n: headWidth, accumulate: false)
                gatherRows(q, rows: length, columns: headWidth, rowStride: stride, into: queries)
                blocked(UnsafePointer(dScores), rowStride: 1, columnStride: length, UnsafePointer(queries), ldb: headWidth, dk, ldc: stride,
                        m: length, k: length, n: headWidth, accumulate: false)
            }
        }
    }

    /// out (rows, columns) = the rows of x, `rowStride` floats apart, copied next to each other.
    /// Vector by vector rather than by `memmove`: a head's row is 32 floats, and a library call
    /// per 128 bytes cost as much as the copy.
    @inline(__always)
    static func gatherRows(_ x: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int, into out: UnsafeMutablePointer<Float>) {
        let vectorEnd = columns - columns % width
        for r in 0..<rows {
            let from = x + r * rowStride, to = out + r * columns
            var j = 0
            while j < vectorEnd { store(load(from + j), to + j); j += width }
            while j < columns { to[j] = from[j]; j += 1 }
        }
    }

    /// out (columns, rows) = xᵀ for x with `rows` rows of `columns` floats, `rowStride` apart.
    /// Why through `pack`: one float at a time, each of a head's 4,096 writes lands `rows` floats
    /// from the last and the loads wait on L2; in 8×8 register blocks the copy streams.
    @inline(__always)
    static func transposeStrided(_ x: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int, into out: UnsafeMutablePointer<Float>) {
        pack(x, stride: rowStride, depth: columns, width: rows, into: out)
    }
}

extension Kernels {
    /// c = a + b for `count` floats (the residual connections); `c` may alias `a` or `b`.
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into c: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + width <= count { store(load(a + i) + load(b + i), c + i); i += width }
        while i < count { c[i] = a[i] + b[i]; i += 1 }
    }

    /// pooled[b, :] = mean of x[b, s, :] over the kept tokens s of sequence b (0 when none is kept).
    public static func maskedMeanPool(_ x: UnsafePointer<Float>, keep: UnsafePointer<Float>, batch: Int, length: Int, width n: Int,
                                      into pooled: UnsafeMutablePointer<Float>) {
        for b in 0..<batch {
            let out = pooled + b * n
            out.update(repeating: 0, count: n)
            var kept: Float = 0
            for s in 0..<length where keep[b * length + s] != 0 {
                add(out, x + (b * length + s) * n, into: out, count: n)
                kept += 1
            }
            guard kept > 0 else { continue }
            scale(out, by: 1 / kept, count: n)
        }
    }

    /// The pool's backward pass: dX[b, s, :] = dPooled[b, :] / kept for kept tokens, 0 for padding.
    public static func maskedMeanPoolBackward(_ dPooled: UnsafePointer<Float>, keep: UnsafePointer<Float>, batch: Int, length: Int,
                                              width n: Int, into dX: UnsafeMutablePointer<Float>) {
        for b in 0..<batch {
            var kept: Float = 0
            for s in 0..<length where keep[b * length + s] != 0 { kept += 1 }
            for s in 0..<length {
                let row = dX + (b * length + s) * n
                if keep[b * length + s] != 0 {
                    row.update(from: dPooled + b * n, count: n)
                    scale(row, by: 1 / kept, count: n)
                } else {
                    row.update(repeating: 0, count: n)
                }
            }
        }
    }

    /// x ← s·x for `count` floats.
    public static func scale(_ x: UnsafeMutablePointer<Float>, by s: Float, count: Int) {
        let sV = V(repeating: s)
        var i = 0
        while i + width <= count { store(load(x + i) * sV, x + i); i += width }
        while i < count { x[i] *= s; i += 1 }
    }
}
