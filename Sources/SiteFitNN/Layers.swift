import Foundation
import SiteFitCore
import SiteFitKernels

// Element-wise and row-wise layers as forward/backward pairs on contiguous row-major buffers.
// Legend: m rows (batch), n columns (width). Matrix products live in SiteFitKernels.

/// Layer normalisation over each row (Ba, Kiros & Hinton, arXiv:1607.06450):
/// y = γ ⊙ (x − μ) / √(σ² + ε) + β, with μ, σ² the row's mean and (biased) variance.
public enum LayerNorm {
    public static let epsilon: Float = 1e-5

    /// Forward for (m, n); keeps x̂ (m, n) and 1/√(σ²+ε) (m) for the backward pass (the kernel is
    /// `Kernels.layerNorm`, shared with the transformer).
    public static func forward(
        _ x: UnsafePointer<Float>, gain: UnsafePointer<Float>, bias: UnsafePointer<Float>,
        y: UnsafeMutablePointer<Float>, normalized: UnsafeMutablePointer<Float>, inverseStd: UnsafeMutablePointer<Float>,
        m: Int, n: Int
    ) {
        Kernels.layerNorm(x, gain: gain, bias: bias, y: y, normalized: normalized, inverseStd: inverseStd, m: m, n: n, epsilon: epsilon)
    }

    /// dX = (rstd / n)·(n·ĝ − Σĝ − x̂·Σ(ĝ⊙x̂)) with ĝ = dY ⊙ γ; dγ = Σ_rows dY ⊙ x̂; dβ = Σ_rows dY.
    /// `dX` may alias `dY`. Gradients of γ and β are written (not accumulated) when given.
    public static func backward(
        _ dY: UnsafePointer<Float>, gain: UnsafePointer<Float>, normalized: UnsafePointer<Float>,
        inverseStd: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>,
        dGain: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?, m: Int, n: Int
    ) {
        Kernels.layerNormBackward(dY, gain: gain, normalized: normalized, inverseStd: inverseStd, dX: dX, dGain: dGain, dBias: dBias,
                                  m: m, n: n)
    }
}

/// Non-linearities between hidden layers.
public enum Activation: String, Sendable, Codable, CaseIterable {
    case relu
    /// Exact GELU, x·Φ(x) (Hendrycks & Gimpel, arXiv:1606.08415).
    case gelu

    /// y = act(x) for `count` values; `x` is kept by the caller for the backward pass.
    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .relu: Kernels.relu(x, y, count: count)
        case .gelu: Kernels.gelu(x, y, count: count)
        }
    }

    /// dX = dY ⊙ act′(x); `dX` may alias `dY`.
    public func backward(_ dY: UnsafePointer<Float>, input x: UnsafePointer<Float>, _ dX: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .relu:
            // ReLU′(x) = 1[x > 0], the same mask as 1[relu(x) > 0], so the kernel takes x as "activated".
            if UnsafePointer(dX) != dY { dX.update(from: dY, count: count) }
            Kernels.reluBackward(dX, activated: x, count: count)
        case .gelu:
            Kernels.geluBackward(dY, input: x, dX, count: count)
        }
    }
}

/// Inverted dropout (Srivastava et al., JMLR 2014): at training time each unit is kept with
/// probability 1 − p and scaled by 1/(1 − p); the mask comes from the caller's seeded stream.
public enum Dropout {
    /// Draws the mask (0 or 1/(1−p)) and applies it in place.
    public static func forward(_ x: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<Float>, count: Int,
                               probability p: Double, random: inout RandomStream) {
        let keep = Float(1 / (1 - p))
        for i in 0..<count {
            mask[i] = random.uniform() < p ? 0 : keep
            x[i] *= mask[i]
        }
    }

    /// dX = dY ⊙ mask, in place.
    public static func backward(_ gradient: UnsafeMutablePointer<Float>, mask: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { gradient[i] *= mask[i] }
    }
}

/// Binary cross-entropy on logits, numerically stable, with an optional positive-class weight w:
/// ℓ(z, y) = w·y·softplus(−z) + (1 − y)·softplus(z), softplus(t) = max(t, 0) + log(1 + e^{−|t|}).
public enum BinaryCrossEntropy {
    @inline(__always)
    static func softplus(_ t: Float) -> Float { max(t, 0) + log1p(exp(-abs(t))) }

    /// Mean loss over `batch` and ∂(mean loss)/∂z = (σ(z)·(w·y + 1 − y) − w·y) / batch into `dLogits`.
    @discardableResult
    public static func lossAndGradient(
        logits: UnsafePointer<Float>, labels: UnsafePointer<Float>, batch: Int,
        dLogits: UnsafeMutablePointer<Float>, positiveWeight: Float = 1
    ) -> Double {
        var total = 0.0
        let scale = 1 / Float(batch)
        for i in 0..<batch {
            let z = logits[i], y = labels[i]
            total += Double(positiveWeight * y * softplus(-z) + (1 - y) * softplus(z))
            dLogits[i] = (sigmoid(z) * (positiveWeight * y + 1 - y) - positiveWeight * y) * scale
        }
        return total / Double(batch)
    }

    /// Mean loss only.
    public static func loss(logits: [Float], labels: [Float], positiveWeight: Float = 1) -> Double {
        var total = 0.0
        for (z, y) in zip(logits, labels) {
            total += Double(positiveWeight * y * softplus(-z) + (1 - y) * softplus(z))
        }
        return total / Double(max(logits.count, 1))
    }
}

/// σ(z) computed without overflow for large |z|.
@inline(__always)
public func sigmoid(_ z: Float) -> Float {
    if z >= 0 {
        return 1 / (1 + exp(-z))
    }
    let e = exp(z)
    return e / (1 + e)
}
