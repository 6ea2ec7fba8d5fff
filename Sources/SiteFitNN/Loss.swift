import Foundation

/// Binary cross-entropy on logits, numerically stable: ℓ(z, y) = max(z, 0) − z·y + log(1 + e^{−|z|}).
public enum BinaryCrossEntropy {
    /// Mean loss over `batch` and ∂(mean loss)/∂z = (σ(z) − y) / batch into `dLogits`.
    @discardableResult
    public static func lossAndGradient(
        logits: UnsafePointer<Float>, labels: UnsafePointer<Float>, batch: Int,
        dLogits: UnsafeMutablePointer<Float>
    ) -> Double {
        var total = 0.0
        let scale = 1 / Float(batch)
        for i in 0..<batch {
            let z = logits[i], y = labels[i]
            total += Double(max(z, 0) - z * y + log1p(exp(-abs(z))))
            dLogits[i] = (sigmoid(z) - y) * scale
        }
        return total / Double(batch)
    }

    /// Mean loss only.
    public static func loss(logits: [Float], labels: [Float]) -> Double {
        var total = 0.0
        for (z, y) in zip(logits, labels) {
            total += Double(max(z, 0) - z * y + log1p(exp(-abs(z))))
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
