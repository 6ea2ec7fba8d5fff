import Foundation
import Testing
@testable import SiteFitCore
@testable import SiteFitNN
@testable import SiteFitTuning

@Suite("(IA)³: learned activation scaling")
struct IA3Tests {
    @Test("the scaling unit's backward pass against finite differences (scale and input)", arguments: [1, 6, 17])
    func gradients(_ width: Int) {
        checkUnitGradients(IA3Scale(name: "layers.0.ia3", width: width), seed: "ia3 \(width)") { p, x, batch in
            (0..<(batch * width)).map { x[$0] * p[$0 % width] }
        }
    }

    @Test("the mode adds one vector of ones per hidden block, trains only those, and starts as the pretrained model")
    func identityAtStart() {
        let base = MLP(MLPConfiguration(inputSize: 4, hiddenSizes: [6, 3], layerNorm: true))
        let mlp = FineTuningMode.ia3.network(extending: base)
        #expect(FineTuningMode.ia3.selection(for: mlp.layout).tensorNames == ["layers.0.ia3.scale", "layers.1.ia3.scale"])
        #expect(FineTuningMode.full.selection(for: mlp.layout).tensorNames == FineTuningMode.full.selection(for: base.layout).tensorNames)
        var random = RandomStream(seed: 3, "ia3")
        let baseParameters = base.initialParameters(random: &random)
        let parameters = mlp.parameters(extending: baseParameters, of: base, random: &random)
        #expect(mlp.layout.tensors.filter { $0.role == .ia3Scale }.allSatisfy { spec in parameters[spec.range].allSatisfy { $0 == 1 } })
        let x = (0..<(5 * 4)).map { _ in Float(random.gaussian()) }
        func logits(_ network: MLP, _ p: [Float]) -> [Float] {
            let workspace = network.makeWorkspace(capacity: 5)
            network.forward(parameters: p, input: x, batch: 5, workspace: workspace)
            return Array(UnsafeBufferPointer(start: workspace.logits, count: 5))
        }
        #expect(logits(mlp, parameters) == logits(base, baseParameters))
        #expect(FineTuningMode.ia3.problem(with: MLPConfiguration(inputSize: 4, hiddenSizes: [])) != nil)
    }

    @Test("the whole network's gradients with (IA)³ agree with a Double reference")
    func network() {
        let mlp = FineTuningMode.ia3.network(extending: MLP(MLPConfiguration(inputSize: 3, hiddenSizes: [4, 2], activation: .gelu)))
        var random = RandomStream(seed: 9, "ia3-network")
        let parameters = (0..<mlp.layout.count).map { _ in Float(random.gaussian() * 0.5) }
        let x = (0..<(3 * 3)).map { _ in Float(random.gaussian()) }, y: [Float] = [1, 0, 1]
        let workspace = mlp.makeWorkspace(capacity: 3)
        var gradient = [Float](repeating: .nan, count: parameters.count)
        let mask = mlp.trainableMask(FineTuningMode.ia3.selection(for: mlp.layout))
        mlp.forward(parameters: parameters, input: x, batch: 3, workspace: workspace)
        BinaryCrossEntropy.lossAndGradient(logits: workspace.logits, labels: y, batch: 3, dLogits: workspace.dLogitsPointer)
        mlp.backward(parameters: parameters, input: x, batch: 3, workspace: workspace, gradient: &gradient, trainable: mask, dInput: nil)
        // Double reference: Linear → GELU → ·l per hidden block, then the head.
        func loss(_ p: [Double]) -> Double {
            var a = x.map(Double.init), width = 3
            for (l, out) in [4, 2, 1].enumerated() {
                let w = mlp.layout.tensor(named: "layers.\(l).weight")!.offset, b = mlp.layout.tensor(named: "layers.\(l).bias")!.offset
                var z = [Double](repeating: 0, count: 3 * out)
                for r in 0..<3 { for o in 0..<out {
                    z[r * out + o] = p[b + o] + (0..<width).reduce(0.0) { $0 + a[r * width + $1] * p[w + o * width + $1] }
                } }
                if let scale = mlp.layout.tensor(named: "layers.\(l).ia3.scale") {
                    z = z.indices.map { referenceActivation(.gelu, z[$0]) * p[scale.offset + $0 % out] }
                }
                a = z
                width = out
            }
            return zip(a, y).reduce(0.0) { $0 + max($1.0, 0) - $1.0 * Double($1.1) + log1p(exp(-abs($1.0))) } / 3
        }
        let p = parameters.map(Double.init), h = 1e-5
        for spec in mlp.layout.tensors where spec.role == .ia3Scale {
            for i in spec.range {
                var plus = p, minus = p
                plus[i] += h
                minus[i] -= h
                #expect(GradientCheckTests.agrees(gradient[i], (loss(plus) - loss(minus)) / (2 * h)), "\(spec.name)")
            }
        }
    }
}
