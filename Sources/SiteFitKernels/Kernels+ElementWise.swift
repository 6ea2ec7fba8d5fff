import Foundation

// Fused element-wise passes of the layers (bias, activations and their backward passes, bias
// gradients) and the mini-batch gather.

extension Kernels {
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

    /// Z(m,n) ← Z + bias and G ← max(0, Z) in one pass. Why fused: two separate passes read the
    /// (batch, width) block twice. Since the MLP became a sequence of units, Linear (`addBias`)
    /// and ReLU (`relu`) are separate units and nothing calls this; it stays, with its naive twin
    /// and test, for a unit that fuses them again (measured: the unfused step is within the
    /// synthetic bench's run-to-run noise).
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
