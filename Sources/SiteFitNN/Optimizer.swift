import Foundation

/// Which optimiser a local training run uses.
public enum OptimizerKind: String, Sendable, Codable, CaseIterable {
    case sgd
    case adam
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

    public init(kind: OptimizerKind, learningRate: Double, momentum: Double = 0,
                beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8) {
        self.kind = kind
        self.learningRate = learningRate
        self.momentum = momentum
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
    }
}

/// SGD (with momentum) or Adam over the selected ranges only.
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
        let needsFirst = configuration.kind == .adam || configuration.momentum != 0
        firstMoment = [Float](repeating: 0, count: needsFirst ? selection.count : 0)
        secondMoment = [Float](repeating: 0, count: configuration.kind == .adam ? selection.count : 0)
    }

    /// Bytes of optimiser state held.
    public var stateBytes: Int { (firstMoment.count + secondMoment.count) * MemoryLayout<Float>.size }

    /// One update θ ← θ − step(∂L/∂θ) on the selected ranges.
    public mutating func update(parameters: UnsafeMutablePointer<Float>, gradient: UnsafePointer<Float>) {
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
        case .adam:
            let b1 = Float(configuration.beta1), b2 = Float(configuration.beta2)
            let eps = Float(configuration.epsilon)
            // Bias corrections folded into the step size, as in Kingma & Ba (arXiv:1412.6980) §2.
            let c1 = 1 - pow(configuration.beta1, Double(step))
            let c2 = 1 - pow(configuration.beta2, Double(step))
            let alpha = Float(configuration.learningRate * c2.squareRoot() / c1)
            let epsHat = eps * Float(c2.squareRoot())
            var cursor = 0
            for range in selection.ranges { for i in range {
                let g = gradient[i]
                firstMoment[cursor] = b1 * firstMoment[cursor] + (1 - b1) * g
                secondMoment[cursor] = b2 * secondMoment[cursor] + (1 - b2) * g * g
                parameters[i] -= alpha * firstMoment[cursor] / (secondMoment[cursor].squareRoot() + epsHat)
                cursor += 1
            } }
        }
    }
}
