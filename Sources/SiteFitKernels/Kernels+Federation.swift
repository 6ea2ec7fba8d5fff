// What the server runs on every incoming update: the finiteness check and the weighted sum.

extension Kernels {
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
}
