import Foundation
import SiteFitCore
import SiteFitNN

/// Reconstruction attacks by an honest-but-curious server on one site's update: it follows the
/// protocol, knows the model, the parameters it broadcast, what the update contains (the arm's
/// selection), the learning rate, the local batch size and step count, and tries to recover the
/// site's patients from the change the site sent. Nothing here sees a patient row: the inputs are
/// what the server holds, and scoring against the real patients is the site's job
/// (`ReconstructionScore`).
///
/// - `analytic`: for a linear layer y = Wx + b whose weight and bias both travel, one SGD step on
///   one patient changes row i of W by −η·δᵢ·xᵀ and bᵢ by −η·δᵢ, so ΔWᵢ/Δbᵢ = x exactly, for any
///   row the patient activated (Phong et al., "Privacy-Preserving Deep Learning via Additively
///   Homomorphic Encryption", 2017; Geiping et al., "Inverting Gradients", arXiv:2003.14053, §3;
///   Fowl et al., "Robbing the Fed", arXiv:2110.13057). With several patients or steps each ratio
///   is a weighted mixture of patients, exact only for rows a single patient activated.
/// - `optimisation`: Deep Leakage from Gradients (Zhu et al., NeurIPS 2019) with Inverting
///   Gradients' cosine objective: dummy patients and soft labels are fitted so that their gradient
///   points where the observed update does. The mixed second derivative the fit needs is a
///   central difference of input gradients along the objective's gradient in parameter space
///   (two extra passes a step, no second-order autodiff).
/// - `outcomeGap`: the head bias's change over S SGD steps is η·S·(ȳ − p̄): the site's outcome
///   rate minus its mean predicted risk, whatever else the update hides.
///
/// What the attacker approximates: S local steps as S times the gradient at the broadcast model,
/// as if the site trained on its batch with a fixed model (a stronger attacker unrolls the steps),
/// and the loss as unweighted cross-entropy. Under Adam the first step is the gradient's sign,
/// so the analytic ratio returns each feature's sign, not its value.
public enum ReconstructionAttack {
    /// The server's knowledge of one update.
    public struct Knowledge<Network: NeuralModel>: Sendable {
        public var network: Network
        /// The full parameter vector the site started from (the broadcast over the pretrained model).
        public var parameters: [Float]
        /// What the update holds.
        public var shared: ParameterSelection
        public var learningRate: Double
        public var batchSize: Int
        public var localSteps: Int
        /// True when the update is η·S·(gradient of the unweighted loss) up to the drift of S steps:
        /// plain SGD without momentum, gradient clipping, DP clipping or class weights. Then the fit
        /// matches the update's size and the head bias gives the outcome gap; otherwise only the
        /// update's direction means anything (under Adam the first step is the gradient's sign).
        public var sizeKnown: Bool

        public init(network: Network, parameters: [Float], shared: ParameterSelection, learningRate: Double, batchSize: Int,
                    localSteps: Int, sizeKnown: Bool = true) {
            self.sizeKnown = sizeKnown
            self.network = network
            self.parameters = parameters
            self.shared = shared
            self.learningRate = learningRate
            self.batchSize = batchSize
            self.localSteps = localSteps
        }
    }

    /// The input layer a ratio attack can read: a weight (out, inputSize) and its bias, both in
    /// the update. Nil when the update lacks either (BitFit, LoRA, adapters, head-only).
    public static func inputLayer(_ layout: ParameterLayout, inputSize: Int, shared: ParameterSelection)
        -> (weight: TensorSpec, bias: TensorSpec)? {
        let names = Set(shared.tensorNames)
        // The network's first weight (the head's, for logistic regression) is the one that reads
        // the patient's features; the layout lists tensors in layer order.
        guard let weight = layout.tensors.first(where: { ($0.role == .weight || $0.role == .headWeight) && !$0.isExtension }),
              weight.shape.count == 2, weight.shape[1] == inputSize, weight.name.hasSuffix(".weight"), names.contains(weight.name)
        else { return nil }
        let biasName = String(weight.name.dropLast(".weight".count)) + ".bias"
        guard let bias = layout.tensors.first(where: { $0.name == biasName && $0.shape == [weight.shape[0]] }),
              names.contains(bias.name) else { return nil }
        return (weight, bias)
    }

    /// The analytic attack: the rows' pooled estimate, then one candidate patient per input-layer
    /// row whose bias moved, ΔWᵢ/Δbᵢ, most-moved rows first, batch size candidates in all. Nil when
    /// the update has no such layer.
    /// `delta` is the update's change, packed in the selection's order.
    public static func analytic<Network: NeuralModel>(_ delta: [Float], knowledge k: Knowledge<Network>) -> [[Float]]? {
        // As many reconstructions as the batch has patients: the server knows the batch size, and
        // scoring compares equal numbers of guesses (see `ReconstructionScore`).
        let limit = max(k.batchSize - 1, 0)
        guard let (weight, bias) = inputLayer(k.network.layout, inputSize: k.network.inputSize, shared: k.shared) else { return nil }
        var full = [Float](repeating: 0, count: k.network.layout.count)
        k.shared.scatter(delta, into: &full)
        let (out, inputs) = (weight.shape[0], weight.shape[1])
        let biasDelta = (0..<out).map { full[bias.offset + $0] }
        let largest = biasDelta.map { abs($0) }.max() ?? 0
        guard largest > 0 else { return [] }
        // A row the batch barely moved divides rounding by a tiny number: below 1 % of the largest it is skipped.
        let rows = (0..<out).filter { abs(biasDelta[$0]) > 1e-2 * largest }.sorted { abs(biasDelta[$0]) > abs(biasDelta[$1]) }
        // First the least-squares estimate over all rows, x = Σᵢ Δbᵢ·ΔWᵢ / Σᵢ Δbᵢ²: for one patient
        // every row says the same x, and weighting by Δbᵢ² keeps the rounding of small rows out.
        let squares = rows.reduce(0.0) { $0 + Double(biasDelta[$1]) * Double(biasDelta[$1]) }
        let pooled = (0..<inputs).map { j in
            Float(rows.reduce(0.0) { $0 + Double(biasDelta[$1]) * Double(full[weight.offset + $1 * inputs + j]) } / squares)
        }
        return [pooled] + rows.prefix(limit).map { i in
            (0..<inputs).map { j in full[weight.offset + i * inputs + j] / biasDelta[i] }
        }
    }

    /// ȳ − p̄ of the site's batch from the head bias's change, or nil when the head bias does not
    /// travel or the update's size is not the gradient's (`sizeKnown`).
    public static func outcomeGap<Network: NeuralModel>(_ delta: [Float], knowledge k: Knowledge<Network>) -> Double? {
        guard k.sizeKnown, let head = k.network.layout.tensors.first(where: { $0.role == .headBias }),
              k.shared.tensorNames.contains(head.name) else { return nil }
        var full = [Float](repeating: 0, count: k.network.layout.count)
        k.shared.scatter(delta, into: &full)
        return Double(full[head.offset]) / (k.learningRate * Double(k.localSteps))
    }

    /// Settings of the optimisation attack.
    public struct OptimisationSettings: Sendable, Equatable {
        /// Iterations of the fit.
        public var budget: Int
        /// Adam's step on the dummy features (standardised units) and label logits.
        public var stepSize: Double = 0.1
        /// Dummy features stay within ±this many standard deviations.
        public var bound: Float = 6
        /// Fresh starts the budget is split between (each gets at least 50 iterations).
        public var restarts = 2

        public init(budget: Int) {
            self.budget = budget
        }
    }

    /// The optimisation attack: `knowledge.batchSize` dummy patients (standardised features, row
    /// by row) and soft labels whose gradient at the broadcast model best matches the update's
    /// direction. Starts from the source population's prior N(0, 1) drawn from `random`.
    public static func optimisation<Network: NeuralModel>(
        _ delta: [Float], knowledge k: Knowledge<Network>, settings: OptimisationSettings, random: inout RandomStream
    ) -> (features: [Float], labels: [Float], distance: Double) {
        let b = k.batchSize, d = k.network.inputSize, layout = k.network.layout
        let workspace = k.network.makeWorkspace(capacity: b)
        let mask = k.network.trainableMask(k.shared)
        // The gradient the site followed: −Δ/(η·S) under SGD; under Adam only −Δ's direction counts.
        let matchSize = k.sizeKnown
        let target = delta.map { -Double($0) / (matchSize ? k.learningRate * Double(max(k.localSteps, 1)) : 1) }
        let targetNorm = target.reduce(0) { $0 + $1 * $1 }.squareRoot()
        var x = (0..<(b * d)).map { _ in Float(random.gaussian()) }
        var u = [Float](repeating: 0, count: b)  // label logits: y = σ(u)
        // iDLG (Zhao et al., arXiv:2001.02610): one patient's label is the sign of the head bias's
        // change (it moves up for a case, down for a control), so it is fixed, not fitted. For a
        // batch the fit starts from "half cases" and learns the labels with the features.
        var fitLabels = true
        if b == 1, let gap = outcomeGap(delta, knowledge: k), gap != 0 {
            u[0] = gap > 0 ? 12 : -12
            fitLabels = false
        }
        guard targetNorm > 0 else { return (x, u.map { _ in 0.5 }, 1) }
        var gradient = [Float](repeating: 0, count: layout.count)
        var dInputPlus = [Float](repeating: 0, count: b * d), dInputMinus = dInputPlus
        var labels = [Float](repeating: 0.5, count: b)
        var probe = k.parameters
        var adam = (m: [Double](repeating: 0, count: b * d + b), v: [Double](repeating: 0, count: b * d + b))
        var best = (distance: Double.infinity, features: x, labels: labels)

        /// Logits at `parameters` for the dummy batch; with `dInput`, also ∂L/∂x (and ∂L/∂θ into `gradient`).
        func pass(_ parameters: [Float], dInput: UnsafeMutablePointer<Float>?, wantGradient: Bool) -> [Float] {
            parameters.withUnsafeBufferPointer { p in
                x.withUnsafeBufferPointer { input in
                    labels.withUnsafeBufferPointer { y in
                        gradient.withUnsafeMutableBufferPointer { g in
                            k.network.forward(parameters: p.baseAddress!, input: input.baseAddress!, batch: b, workspace: workspace)
                            let logits = Array(UnsafeBufferPointer(start: workspace.logits, count: b))
                            _ = BinaryCrossEntropy.lossAndGradient(logits: workspace.logits, labels: y.baseAddress!, batch: b,
                                                                   dLogits: workspace.dLogitsPointer)
                            if wantGradient || dInput != nil {
                                k.network.backward(parameters: p.baseAddress!, input: input.baseAddress!, batch: b, workspace: workspace,
                                                   gradient: g.baseAddress!, trainable: mask, dInput: dInput)
                            }
                            return logits
                        }
                    }
                }
            }
        }

        // Restarts from fresh prior guesses share the budget; the best fit over all of them wins
        // (the objective has many shallow basins, one per ReLU pattern).
        let restarts = max(1, min(settings.restarts, settings.budget / 50))
        let perRestart = max(settings.budget / restarts, 1)
        for iteration in 1...(restarts * perRestart) {
            if iteration > 1, (iteration - 1) % perRestart == 0 {
                x = (0..<(b * d)).map { _ in Float(random.gaussian()) }
                if fitLabels { u = [Float](repeating: 0, count: b) }
                adam = (m: [Double](repeating: 0, count: b * d + b), v: [Double](repeating: 0, count: b * d + b))
            }
            let local = (iteration - 1) % perRestart + 1
            for i in 0..<b { labels[i] = Float(1 / (1 + Foundation.exp(-Double(u[i])))) }
            _ = pass(k.parameters, dInput: nil, wantGradient: true)
            let g = k.shared.gather(from: gradient).map(Double.init)
            let gNorm = g.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard gNorm > 0 else { break }
            let cosine = zip(g, target).reduce(0) { $0 + $1.0 * $1.1 } / (gNorm * targetNorm)
            // DLG's squared distance (relative to the target's size) when the size is known;
            // Inverting Gradients' 1 − cosine when only the direction is.
            let distance = matchSize ? zip(g, target).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / (targetNorm * targetNorm)
                                     : 1 - cosine
            if distance < best.distance { best = (distance, x, labels) }
            // ∂distance/∂g: the direction in parameter space along which to differentiate.
            let v = matchSize ? zip(g, target).map { 2 * ($0.0 - $0.1) / (targetNorm * targetNorm) }
                              : zip(g, target).map { -($0.1 / (gNorm * targetNorm) - cosine * $0.0 / (gNorm * gNorm)) }
            let largest = v.map { abs($0) }.max() ?? 0
            guard largest > 0 else { break }
            // A step of 1e-3 on the most-moved parameter: small against the weights, large against Float rounding.
            let h = 1e-3 / largest
            var logits: [[Float]] = []
            for sign in [1.0, -1.0] {
                probe = k.parameters
                var moved = k.shared.gather(from: probe)
                for i in moved.indices { moved[i] += Float(sign * h * v[i]) }
                k.shared.scatter(moved, into: &probe)
                if sign > 0 {
                    logits.append(dInputPlus.withUnsafeMutableBufferPointer { pass(probe, dInput: $0.baseAddress!, wantGradient: false) })
                } else {
                    logits.append(dInputMinus.withUnsafeMutableBufferPointer { pass(probe, dInput: $0.baseAddress!, wantGradient: false) })
                }
            }
            // ∂D/∂x = (∂L/∂x(θ + hv) − ∂L/∂x(θ − hv)) / 2h; ∂D/∂y_k = −(dz_k/dh)/B for the unweighted
            // loss, times σ'(u_k) for the label logit.
            var direction = [Double](repeating: 0, count: b * d + b)
            for i in 0..<(b * d) { direction[i] = Double(dInputPlus[i] - dInputMinus[i]) / (2 * h) }
            for i in 0..<b {
                let dz = Double(logits[0][i] - logits[1][i]) / (2 * h)
                let y = Double(labels[i])
                direction[b * d + i] = -dz / Double(b) * y * (1 - y)
            }
            // Adam (Kingma & Ba) on (x, u): each coordinate moves about stepSize, whatever its gradient's scale.
            let (beta1, beta2) = (0.9, 0.999)
            // The step shrinks from stepSize to 1 % of it over the budget (cosine schedule): large
            // steps to find the basin, small ones to settle in it.
            let progress = Double(local - 1) / Double(max(perRestart - 1, 1))
            let stepSize = settings.stepSize * (0.01 + 0.99 * 0.5 * (1 + Foundation.cos(Double.pi * progress)))
            let correction1 = 1 - Foundation.pow(beta1, Double(local)), correction2 = 1 - Foundation.pow(beta2, Double(local))
            for i in direction.indices {
                adam.m[i] = beta1 * adam.m[i] + (1 - beta1) * direction[i]
                adam.v[i] = beta2 * adam.v[i] + (1 - beta2) * direction[i] * direction[i]
                let move = Float(stepSize * (adam.m[i] / correction1) / ((adam.v[i] / correction2).squareRoot() + 1e-12))
                if i < b * d {
                    x[i] = min(max(x[i] - move, -settings.bound), settings.bound)
                } else if fitLabels {
                    u[i - b * d] = min(max(u[i - b * d] - move, -12), 12)
                }
            }
        }
        return (best.features, best.labels, best.distance)
    }
}
