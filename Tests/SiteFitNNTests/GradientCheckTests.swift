import Foundation
import Testing
@testable import SiteFitCore
@testable import SiteFitNN
@testable import SiteFitTuning

/// An independent Double-precision reference of the MLP's mean BCE loss, written with plain loops
/// (no kernels), so the analytic Float gradient is checked against central differences of a
/// different implementation.
func referenceLoss(_ p: [Double], x: [Double], y: [Double], widths: [Int]) -> Double {
    let batch = y.count
    var activations = x
    var offset = 0
    for l in 0..<(widths.count - 1) {
        let inW = widths[l], outW = widths[l + 1]
        let weight = offset, bias = offset + inW * outW
        offset = bias + outW
        var next = [Double](repeating: 0, count: batch * outW)
        for b in 0..<batch { for o in 0..<outW {
            var z = p[bias + o]
            for i in 0..<inW { z += activations[b * inW + i] * p[weight + o * inW + i] }
            next[b * outW + o] = l == widths.count - 2 ? z : max(0, z)
        } }
        activations = next
    }
    var loss = 0.0
    for b in 0..<batch {
        let z = activations[b]
        loss += max(z, 0) - z * y[b] + log1p(exp(-abs(z)))
    }
    return loss / Double(batch)
}

@Suite("MLP gradients against finite differences")
struct GradientCheckTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var input: Int
        var hidden: [Int]
        var batch: Int
        var testDescription: String { "\(([input] + hidden + [1]).map(String.init).joined(separator: "→")) batch \(batch)" }
    }

    static let cases = [Case(input: 5, hidden: [7, 4], batch: 3), Case(input: 13, hidden: [], batch: 4),
                        Case(input: 3, hidden: [17], batch: 6)]

    /// Analytic gradients (Float, fast kernels) for every parameter and the input.
    static func analytic(_ mlp: MLP, _ params: [Float], _ x: [Float], _ y: [Float], mode: FineTuningMode)
        -> (gradient: [Float], dInput: [Float]) {
        let batch = y.count
        let workspace = MLPWorkspace(mlp: mlp, capacity: batch)
        var gradient = [Float](repeating: .nan, count: params.count)
        var dInput = [Float](repeating: 0, count: x.count)
        let mask = TrainableMask(mlp: mlp, selection: mode.selection(for: mlp.layout))
        params.withUnsafeBufferPointer { p in
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeBufferPointer { yp in
                    mlp.forward(parameters: p.baseAddress!, input: xp.baseAddress!, batch: batch, workspace: workspace)
                    BinaryCrossEntropy.lossAndGradient(logits: workspace.logits, labels: yp.baseAddress!, batch: batch,
                                                       dLogits: workspace.dLogitsPointer)
                    gradient.withUnsafeMutableBufferPointer { g in
                        dInput.withUnsafeMutableBufferPointer { d in
                            mlp.backward(parameters: p.baseAddress!, input: xp.baseAddress!, batch: batch,
                                         workspace: workspace, gradient: g.baseAddress!, trainable: mask,
                                         dInput: d.baseAddress!)
                        }
                    }
                }
            }
        }
        return (gradient, dInput)
    }

    static func setup(_ c: Case) -> (MLP, [Float], [Float], [Float]) {
        let mlp = MLP(MLPConfiguration(inputSize: c.input, hiddenSizes: c.hidden))
        var random = RandomStream(seed: 5, "gradient-check", c.testDescription)
        var params = mlp.initialParameters(random: &random)
        // Non-trivial biases so ReLUs are not all on the same side.
        for spec in mlp.layout.tensors where spec.role == .bias { for i in spec.range { params[i] = Float(random.gaussian() * 0.3) } }
        let x = (0..<(c.batch * c.input)).map { _ in Float(random.gaussian()) }
        let y = (0..<c.batch).map { i in Float(i % 2) }
        return (mlp, params, x, y)
    }

    /// Central differences in Double with h = 1e-5 have truncation error O(h²) ≈ 1e-10; the analytic
    /// side is Float (relative error ~1e-6 per product, accumulated over ≤ 20 terms). A ReLU kink
    /// inside ±h would break the check; with Gaussian inputs that has probability ~1e-5 per unit.
    /// Hence: |analytic − numeric| ≤ 1e-4 + 1e-3·|numeric|.
    static func agrees(_ analytic: Float, _ numeric: Double) -> Bool {
        abs(Double(analytic) - numeric) <= 1e-4 + 1e-3 * abs(numeric)
    }

    @Test("every parameter tensor", arguments: cases)
    func parameters(_ c: Case) {
        let (mlp, params, x, y) = Self.setup(c)
        let (gradient, _) = Self.analytic(mlp, params, x, y, mode: .full)
        let p = params.map(Double.init), xd = x.map(Double.init), yd = y.map(Double.init)
        let widths = mlp.configuration.widths
        let h = 1e-5
        for spec in mlp.layout.tensors {
            for i in spec.range {
                var plus = p, minus = p
                plus[i] += h
                minus[i] -= h
                let numeric = (referenceLoss(plus, x: xd, y: yd, widths: widths)
                               - referenceLoss(minus, x: xd, y: yd, widths: widths)) / (2 * h)
                #expect(Self.agrees(gradient[i], numeric), "\(spec.name)[\(i - spec.offset)]: analytic \(gradient[i]) vs numeric \(numeric)")
            }
        }
    }

    @Test("the input", arguments: cases)
    func input(_ c: Case) {
        let (mlp, params, x, y) = Self.setup(c)
        let (_, dInput) = Self.analytic(mlp, params, x, y, mode: .full)
        let p = params.map(Double.init), yd = y.map(Double.init)
        let h = 1e-5
        for i in x.indices {
            var plus = x.map(Double.init), minus = x.map(Double.init)
            plus[i] += h
            minus[i] -= h
            let numeric = (referenceLoss(p, x: plus, y: yd, widths: mlp.configuration.widths)
                           - referenceLoss(p, x: minus, y: yd, widths: mlp.configuration.widths)) / (2 * h)
            #expect(Self.agrees(dInput[i], numeric), "input[\(i)]: analytic \(dInput[i]) vs numeric \(numeric)")
        }
    }

    @Test("BitFit computes the same bias gradients and never touches weight gradients")
    func bitfitGradients() {
        let c = Self.cases[0]
        let (mlp, params, x, y) = Self.setup(c)
        let full = Self.analytic(mlp, params, x, y, mode: .full).gradient
        let bitfit = Self.analytic(mlp, params, x, y, mode: .bitfit).gradient
        for spec in mlp.layout.tensors {
            for i in spec.range {
                if spec.role.isBiasTerm { #expect(bitfit[i] == full[i]) } else { #expect(bitfit[i].isNaN) }
            }
        }
    }

    @Test("BCE on logits stays finite for large |z| and matches the naive formula elsewhere")
    func stableLoss() {
        let logits: [Float] = [-100, -3, 0, 2.5, 100]
        let labels: [Float] = [1, 0, 1, 1, 0]
        var d = [Float](repeating: 0, count: 5)
        let loss = BinaryCrossEntropy.lossAndGradient(logits: logits, labels: labels, batch: 5, dLogits: &d)
        // Naive: −[y log σ + (1−y) log(1−σ)]; for ±100 use the asymptote |z|.
        let middle = [(-3.0, 0.0), (0.0, 1.0), (2.5, 1.0)].map { z, y -> Double in
            let s = 1 / (1 + exp(-z))
            return -(y * log(s) + (1 - y) * log(1 - s))
        }.reduce(0, +)
        #expect(abs(loss - (middle + 200) / 5) < 1e-4)
        #expect(d.allSatisfy { $0.isFinite })
        #expect(abs(d[0] - (-1.0 / 5)) < 1e-6)
    }
}
