import SiteFitCore
import SiteFitKernels
import SiteFitNN
import SiteFitTuning

extension TensorRole {
    /// An embedding table (codes, time buckets, positions, segments): trained by full fine-tuning only.
    public static let embedding = TensorRole("embedding")
}

/// The token embedding as a unit over token rows (code id, time bucket, segment):
/// y = E_code[code] + E_time[time] + E_position[row mod maxLength] + E_segment[segment].
///
/// Tensors: `embedding.code` (vocabulary, width), `embedding.time` (buckets, width),
/// `embedding.position` (maxLength, width), `embedding.segment` (2, width). Ids outside their
/// table are clamped into it (a code beyond the vocabulary reads as unknown). The input is
/// discrete, so ∂L/∂input is written as 0.
public struct EmbeddingUnit: NetworkUnit {
    public let configuration: TransformerConfiguration

    public init(_ configuration: TransformerConfiguration) { self.configuration = configuration }

    public var inputWidth: Int { 3 }
    public var outputWidth: Int { configuration.width }
    public var signature: String {
        "embedding \(configuration.vocabularySize)×\(configuration.timeBuckets)×\(configuration.maxLength)→\(configuration.width)"
    }

    public var tensors: [TensorDeclaration] {
        let c = configuration
        return [("code", c.vocabularySize), ("time", c.timeBuckets), ("position", c.maxLength), ("segment", 2)].map { name, rows in
            TensorDeclaration(name: "embedding.\(name)", shape: [rows, c.width], role: .embedding, initialization: .gaussian(scale: 0.02))
        }
    }

    /// Scratch: the four table rows each token reads, kept for the backward pass.
    public var scratchPerRow: Int { 4 }

    /// Rows of each table, in tensor order.
    func tableRows(_ k: Int) -> Int {
        switch k {
        case 0: configuration.vocabularySize
        case 1: configuration.timeBuckets
        case 2: configuration.maxLength
        default: 2
        }
    }

    /// Runs `body` with the table-k ids of the pass's rows, kept as Int32 in the unit's Float
    /// scratch (rebound for the call: same size and alignment).
    @inline(__always)
    func withIDs<R>(_ pass: UnitPass, _ k: Int, _ body: (UnsafeMutablePointer<Int32>) -> R) -> R {
        pass.scratch(at: k).withMemoryRebound(to: Int32.self, capacity: max(pass.capacity, 1), body)
    }

    public func forward(_ pass: UnitPass, training: Bool, random: inout RandomStream) {
        let c = configuration
        for k in 0..<4 {
            withIDs(pass, k) { ids in
                for r in 0..<pass.batch {
                    let x = pass.input + 3 * r
                    switch k {
                    case 0: ids[r] = x[0] >= 0 && x[0] < Float(c.vocabularySize) ? Int32(x[0]) : Int32(TransformerConfiguration.Token.unknown)
                    case 1: ids[r] = x[1] >= 0 ? Int32(min(x[1], Float(c.timeBuckets - 1))) : 0
                    case 2: ids[r] = Int32(r % c.maxLength)
                    default: ids[r] = x[2] == 0 ? 0 : 1
                    }
                }
                Kernels.embeddingGather(pass.tensor(k), indices: ids, rows: pass.batch, width: c.width, into: pass.output, accumulate: k > 0)
            }
        }
    }

    public func backward(_ pass: UnitPass, dOutput: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>, wants: UnitWants) {
        let n = configuration.width
        for k in 0..<4 where wants.tensor(k) {
            pass.gradient(k).update(repeating: 0, count: tableRows(k) * n)
            withIDs(pass, k) { Kernels.embeddingScatter(dOutput, indices: $0, rows: pass.batch, width: n, into: pass.gradient(k)) }
        }
        if wants.propagates { dInput.update(repeating: 0, count: pass.batch * 3) }
    }

    public func flops(wants: UnitWants) -> Double { 0 }
}

/// (IA)³'s rescaling of keys and values inside the fused (tokens, 3·width) projection:
/// queries pass unchanged, k ← l_k ⊙ k, v ← l_v ⊙ v.
///
/// Tensors: `<name>.key.ia3.scale` (width), `<name>.value.ia3.scale` (width), starting at 1.
public struct KeyValueScale: NetworkUnit {
    public let name: String
    public let width: Int

    public init(name: String, width: Int) {
        self.name = name
        self.width = width
    }

    public var inputWidth: Int { 3 * width }
    public var outputWidth: Int { 3 * width }
    public var signature: String { "ia3 kv \(width)" }

    public var tensors: [TensorDeclaration] {
        ["key", "value"].map {
            TensorDeclaration(name: "\(name).\($0).ia3.scale", shape: [width], role: .ia3Scale, initialization: .constant(1), isExtension: true)
        }
    }

    public func forward(_ pass: UnitPass, training: Bool, random: inout RandomStream) {
        let n = width, lk = pass.tensor(0), lv = pass.tensor(1)
        for r in 0..<pass.batch {
            let x = pass.input + 3 * n * r, y = pass.output + 3 * n * r
            y.update(from: x, count: n)
            for j in 0..<n { y[n + j] = x[n + j] * lk[j] }
            for j in 0..<n { y[2 * n + j] = x[2 * n + j] * lv[j] }
        }
    }

    public func backward(_ pass: UnitPass, dOutput: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>, wants: UnitWants) {
        let n = width
        for k in 0..<2 where wants.tensor(k) {
            let dl = pass.gradient(k), column = (k + 1) * n
            dl.update(repeating: 0, count: n)
            for r in 0..<pass.batch {
                let x = pass.input + 3 * n * r + column, g = dOutput + 3 * n * r + column
                for j in 0..<n { dl[j] += g[j] * x[j] }
            }
        }
        guard wants.propagates else { return }
        let lk = pass.tensor(0), lv = pass.tensor(1)
        for r in 0..<pass.batch {
            let g = dOutput + 3 * n * r, d = dInput + 3 * n * r
            d.update(from: g, count: n)
            for j in 0..<n { d[n + j] = g[n + j] * lk[j] }
            for j in 0..<n { d[2 * n + j] = g[2 * n + j] * lv[j] }
        }
    }

    public func flops(wants: UnitWants) -> Double { 0 }
}
