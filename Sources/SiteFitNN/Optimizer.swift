import Foundation
import SiteFitKernels

/// Which optimiser a local training run uses.
public enum OptimizerKind: String, Sendable, Codable, CaseIterable {
    case sgd
    /// Kingma & Ba, arXiv:1412.6980.
    case adam
    /// Adam with decoupled weight decay (Loshchilov & Hutter, arXiv:1711.05101).
    case adamw
}

/// Optimiser settings shared by pretraining and local fine-tuning.
public struct OptimizerConfiguration: Sendable, Equatable, Codable {
    public var kind: OptimizerKind
    public var learningRate: Double
    /// SGD momentum (ignored by Adam).
    public var momentum: Double
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    /// AdamW's decoupled weight decay λ: θ ← θ − lr·λ·θ each step (ignored by SGD and Adam).
    public var weightDecay: Double
    /// When set, the selected gradient is rescaled to this L2 norm whenever it is longer.
    public var gradientClipNorm: Double?

    public init(kind: OptimizerKind, learningRate: Double, momentum: Double = 0,
                beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8,
                weightDecay: Double = 0.01, gradientClipNorm: Double? = nil) {
        self.kind = kind
        self.learningRate = learningRate
        self.momentum = momentum
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.gradientClipNorm = gradientClipNorm
    }
}

/// SGD (with momentum), Adam or AdamW over the selected ranges only, with optional gradient-norm clipping.
///
/// State is sized to the selection, not the model: a BitFit site keeps Adam moments for its
/// biases alone (the memory saving DOMAIN.md asks reports to show).
public struct Optimizer: Sendable {
    public let configuration: OptimizerConfiguration
    public let selection: ParameterSelection
    private var firstMoment: [Float]
    private var secondMoment: [Float]
    private var step = 0

    public init(_ configuration: OptimizerConfiguration, selection: ParameterSelection) {
        self.configuration = configuration
        self.selection = selection
        let adaptive = configuration.kind != .sgd
        firstMoment = [Float](repeating: 0, count: adaptive || configuration.momentum != 0 ? selection.count : 0)
        secondMoment = [Float](repeating: 0, count: adaptive ? selection.count : 0)
    }

    /// Bytes of optimiser state held.
    public var stateBytes: Int { (firstMoment.count + secondMoment.count) * MemoryLayout<Float>.size }

    /// The L2 norm of the selected part of `gradient`.
    public func gradientNorm(_ gradient: UnsafePointer<Float>) -> Double {
        var total = 0.0
        for range in selection.ranges { for i in range { total += Double(gradient[i]) * Double(gradient[i]) } }
        return total.squareRoot()
    }

    /// One update θ ← θ − step(∂L/∂θ) on the selected ranges. With a clip norm C the gradient is
    /// first scaled by min(1, C/‖g‖) (in place).
    public mutating func update(parameters: UnsafeMutablePointer<Float>, gradient: UnsafeMutablePointer<Float>) {
        if let clip = configuration.gradientClipNorm {
            let norm = gradientNorm(gradient)
            if norm > clip {
                let factor = Float(clip / norm)
                for range in selection.ranges { for i in range { gradient[i] *= factor } }
            }
        }
        step += 1
        let lr = Float(configuration.learningRate)
        switch configuration.kind {
        case .sgd:
            let mu = Float(configuration.momentum)
            if mu == 0 {
                for range in selection.ranges { for i in range { parameters[i] -= lr * gradient[i] } }
            } else {
                var cursor = 0
                for range in selection.ranges { for i in range {
                    firstMoment[cursor] = mu * firstMoment[cursor] + gradient[i]
                    parameters[i] -= lr * firstMoment[cursor]
                    cursor += 1
                } }
            }
        case .adam, .adamw:
            // Bias corrections folded into the step size, as in Kingma & Ba (arXiv:1412.6980) §2.
            let c1 = 1 - pow(configuration.beta1, Double(step))
            let c2 = 1 - pow(configuration.beta2, Double(step))
            let alpha = Float(configuration.learningRate * c2.squareRoot() / c1)
            let epsilonHat = Float(configuration.epsilon * c2.squareRoot())
            let decay = configuration.kind == .adamw ? 1 - lr * Float(configuration.weightDecay) : 1
            let (b1, b2) = (Float(configuration.beta1), Float(configuration.beta2))
            let ranges = selection.ranges
            firstMoment.withUnsafeMutableBufferPointer { m in
                secondMoment.withUnsafeMutableBufferPointer { v in
                    var cursor = 0
                    for range in ranges {
                        Kernels.adamStep(parameters + range.lowerBound, gradient: gradient + range.lowerBound,
                                         firstMoment: m.baseAddress! + cursor, secondMoment: v.baseAddress! + cursor,
                                         count: range.count, alpha: alpha, beta1: b1, beta2: b2, epsilonHat: epsilonHat,
                                         decay: decay)
                        cursor += range.count
                    }
                }
            }
        }
    }
}
