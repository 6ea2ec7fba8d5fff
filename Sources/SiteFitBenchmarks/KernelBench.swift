import Foundation
import SiteFitCore
import SiteFitKernels
import SiteFitNN
import SiteFitTuning

/// GFLOP/s of each matrix product a training step makes at its own shape, Adam's cost per
/// parameter and whole training steps, beside the core's FP32 peak.
public struct KernelBench: Sendable {
    /// Minimum seconds per measurement.
    public var seconds: Double
    /// Only the whole training steps (for profiling).
    public var stepsOnly: Bool

    public init(seconds: Double, stepsOnly: Bool) {
        self.seconds = seconds
        self.stepsOnly = stepsOnly
    }

    /// What `bench kernels` prints as its JSON line (then as a table).
    public struct Result: Codable, Sendable {
        /// One product's rate at one shape, beside its naive twin's.
        public struct ProductRate: Codable, Sendable {
            public var product: String, m: Int, k: Int, n: Int
            public var gflopsPerSecond: Double, naiveGflopsPerSecond: Double, shareOfPeak: Double
            enum CodingKeys: String, CodingKey {
                case product, m, k, n, gflopsPerSecond = "gflops_per_second"
                case naiveGflopsPerSecond = "naive_gflops_per_second", shareOfPeak = "share_of_peak"
            }
        }
        /// One whole training step's rate.
        public struct StepRate: Codable, Sendable {
            public var model: String, batch: Int, mode: String, gflopsPerSecond: Double, stepsPerSecond: Double
            enum CodingKeys: String, CodingKey {
                case model, batch, mode, gflopsPerSecond = "gflops_per_second", stepsPerSecond = "steps_per_second"
            }
        }
        public var workload = "kernels"
        public var tiles: String
        public var peakGflopsPerSecond: Double
        public var products: [ProductRate] = []
        public var adamNanosecondsPerParameter: Double?
        public var adamParameters: Int?
        public var steps: [StepRate] = []
        public var peakRSSMegabytes: Double = 0
        enum CodingKeys: String, CodingKey {
            case workload, tiles, products, steps
            case peakGflopsPerSecond = "peak_gflops_per_second", adamParameters = "adam_parameters"
            case adamNanosecondsPerParameter = "adam_ns_per_parameter", peakRSSMegabytes = "peak_rss_mb"
        }
    }

    public func run() -> Result {
        var sink: Float = 0
        let flopsPerCall = PeakMeasurement.fmaLoop(iterations: 100_000).flops
        let peak = measure(flopsPerCall) { sink += PeakMeasurement.fmaLoop(iterations: 100_000).sink }
        if sink == 42 { print("") }
        var result = Result(tiles: Kernels.hasWideRegisters ? "avx512" : "avx2", peakGflopsPerSecond: peak)
        if !stepsOnly {
            for (name, product, m, k, n) in Self.products {
                let rates = rate(of: product, name, m, k, n)
                result.products.append(.init(product: name, m: m, k: k, n: n, gflopsPerSecond: rates.fast,
                                             naiveGflopsPerSecond: rates.naive, shareOfPeak: rates.fast / peak))
            }
            let count = MLP(MLPConfiguration(inputSize: 40, hiddenSizes: [128, 128])).layout.count
            result.adamParameters = count
            result.adamNanosecondsPerParameter = adam(count: count)
        }
        for (widths, batch, mode) in [([40, 128, 128], 32, FineTuningMode.full), ([40, 128, 128], 32, .bitfit), ([13], 4, .full)] {
            result.steps.append(step(inputSize: widths[0], hidden: Array(widths.dropFirst()), batch: batch, mode: mode))
        }
        result.peakRSSMegabytes = BenchClock.peakRSSMegabytes()
        return result
    }

    enum Product { case ab, atb, abt }

    /// Each product a batch-32 step of MLP 40→128→128→1 makes, at its own shape: forward Y = X·Wᵀ
    /// per layer, weight gradients dW = dZᵀ·X, input gradients dX = dZ·W (none below the first
    /// layer); then all three at one large square shape.
    static let products: [(String, Product, Int, Int, Int)] = [
        ("forward, layer 1 (A·Bᵀ)", .abt, 32, 40, 128), ("forward, layer 2 (A·Bᵀ)", .abt, 32, 128, 128),
        ("forward, head (A·Bᵀ)", .abt, 32, 128, 1),
        ("weight grad, layer 1 (Aᵀ·B)", .atb, 128, 32, 40), ("weight grad, layer 2 (Aᵀ·B)", .atb, 128, 32, 128),
        ("weight grad, head (Aᵀ·B)", .atb, 1, 32, 128),
        ("input grad, head (A·B)", .ab, 32, 1, 128), ("input grad, layer 2 (A·B)", .ab, 32, 128, 128),
        ("A·B", .ab, 256, 256, 256), ("Aᵀ·B", .atb, 256, 256, 256), ("A·Bᵀ", .abt, 256, 256, 256),
        // The transformer's products at `bench transformer`'s size: 32 patients × 128 tokens =
        // 4,096 token rows, width 128, feed-forward 512.
        ("transformer forward, q/k/v (A·Bᵀ)", .abt, 4096, 128, 384), ("transformer forward, feed-forward in (A·Bᵀ)", .abt, 4096, 128, 512),
        ("transformer forward, feed-forward out (A·Bᵀ)", .abt, 4096, 512, 128),
        ("transformer input grad, q/k/v (A·B)", .ab, 4096, 384, 128), ("transformer input grad, feed-forward in (A·B)", .ab, 4096, 512, 128),
        ("transformer input grad, feed-forward out (A·B)", .ab, 4096, 128, 512),
        ("transformer weight grad, q/k/v (Aᵀ·B)", .atb, 384, 4096, 128), ("transformer weight grad, feed-forward out (Aᵀ·B)", .atb, 128, 4096, 512),
    ]

    func rate(of product: Product, _ name: String, _ m: Int, _ k: Int, _ n: Int) -> (fast: Double, naive: Double) {
        switch product {
        case .ab:
            bench(name, m, k, n, fast: { a, b, c, scratch, m, k, n, acc in
                Kernels.matmul(a, b, c, m: m, k: k, n: n, accumulate: acc, scratch: scratch) }, naive: NaiveKernels.matmul)
        case .atb:
            bench(name, m, k, n, fast: { a, b, c, scratch, m, k, n, acc in
                Kernels.matmulTransposedA(a, b, c, m: m, k: k, n: n, accumulate: acc, scratch: scratch)
            }, naive: NaiveKernels.matmulTransposedA)
        case .abt:
            bench(name, m, k, n, fast: { a, b, c, scratch, m, k, n, acc in
                Kernels.matmulTransposedB(a, b, c, m: m, k: k, n: n, accumulate: acc, scratch: scratch)
            }, naive: NaiveKernels.matmulTransposedB)
        }
    }

    /// GFLOP/s of the fastest of several equal time slices. Why the fastest: on a shared two-core
    /// machine a slice that another process interrupts runs slower, never faster, so the best
    /// slice is the kernel's own speed and the figure repeats from run to run.
    func measure(_ flopsPerCall: Double, _ body: () -> Void) -> Double {
        let clock = ContinuousClock()
        let warmUp = clock.now
        body()
        let once = clock.now - warmUp
        var slices = 24
        var sliceLength = Duration.milliseconds(max(1, Int(seconds * 1000) / slices))
        // A call longer than a slice (a naive product over a transformer's 4,096 token rows) is
        // timed alone, three times, so the naive twins of large shapes take seconds, not hours.
        let group = once > sliceLength ? 1 : 16
        if once > sliceLength { slices = 3; sliceLength = .zero }
        var best = 0.0
        for _ in 0..<slices {
            var calls = 0
            let start = clock.now
            var elapsed = Duration.zero
            repeat {
                for _ in 0..<group { body() }
                calls += group
                elapsed = clock.now - start
            } while elapsed < sliceLength
            best = max(best, flopsPerCall * Double(calls) / BenchClock.seconds(elapsed) / 1e9)
        }
        return best
    }

    func bench(
        _ name: String, _ m: Int, _ k: Int, _ n: Int,
        fast: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
               UnsafeMutablePointer<Float>, Int, Int, Int, Bool) -> Void,
        naive: ([Float], [Float], Int, Int, Int) -> [Float]
    ) -> (fast: Double, naive: Double) {
        var random = RandomStream(seed: 1, "bench", name)
        let a = (0..<(m * k)).map { _ in Float(random.gaussian()) }
        let b = (0..<(k * n)).map { _ in Float(random.gaussian()) }
        // Cache-line-aligned operands, as the training workspace has: with the 16-byte alignment
        // of an Array a run's speed depends on where malloc put the buffers.
        let pa = aligned(a), pb = aligned(b), pc = aligned([Float](repeating: 0, count: m * n))
        let scratch = aligned([Float](repeating: 0, count: max(Kernels.transposedBScratch(m: m, k: k, n: n),
                                                               Kernels.transposedAScratch(m: m, k: k, n: n),
                                                               Kernels.matmulScratch(m: m, k: k, n: n))))
        defer { [pa, pb, pc, scratch].forEach { $0.deallocate() } }
        let flops = 2.0 * Double(m * k * n)
        let fastRate = measure(flops) { fast(pa, pb, pc, scratch, m, k, n, false) }
        let naiveRate = measure(flops) { _ = naive(a, b, m, k, n) }
        return (fastRate, naiveRate)
    }

    /// One fused Adam step over a whole model's parameters: streams four arrays in and three out,
    /// so it is reported in nanoseconds per parameter and GB/s moved, not GFLOP/s.
    func adam(count: Int) -> Double {
        var random = RandomStream(seed: 3, "bench", "adam")
        let theta = aligned((0..<count).map { _ in Float(random.gaussian()) })
        let gradient = aligned((0..<count).map { _ in Float(random.gaussian()) * 1e-2 })
        let m = aligned([Float](repeating: 0, count: count)), v = aligned([Float](repeating: 0, count: count))
        defer { [theta, gradient, m, v].forEach { $0.deallocate() } }
        // `measure` reports "GFLOP/s" of the unit given: one unit per parameter gives parameters/ns.
        let perNanosecond = measure(Double(count)) {
            Kernels.adamStep(theta, gradient: gradient, firstMoment: m, secondMoment: v, count: count,
                             alpha: 1e-3, beta1: 0.9, beta2: 0.999, epsilonHat: 1e-8, decay: 1)
        }
        return 1 / perNanosecond
    }

    func aligned(_ values: [Float]) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(1, values.count) * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: max(1, values.count))
        p.initialize(from: values, count: values.count)
        return p
    }

    func step(inputSize: Int, hidden: [Int], batch: Int, mode: FineTuningMode) -> Result.StepRate {
        let mlp = MLP(MLPConfiguration(inputSize: inputSize, hiddenSizes: hidden))
        var random = RandomStream(seed: 1, "bench", "step")
        var parameters = mlp.initialParameters(random: &random)
        let rows = batch * 64
        let data = Dataset(features: (0..<(rows * inputSize)).map { _ in Float(random.gaussian()) },
                           labels: (0..<rows).map { _ in random.bernoulli(0.3) ? 1 : 0 }, columns: inputSize)
        var trainer = Trainer(model: mlp, maxBatch: batch)
        let selection = mode.selection(for: mlp.layout)
        let mask = TrainableMask(mlp: mlp, selection: selection)
        let configuration = TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .adam, learningRate: 1e-3), epochs: 1, batchSize: batch)
        let flops = mlp.trainingFlopsPerExample(mask) * Double(rows)
        let rate = measure(flops) {
            var shuffle = RandomStream(seed: 2, "bench")
            _ = trainer.train(parameters: &parameters, data: data, selection: selection, configuration: configuration, random: &shuffle)
        }
        return .init(model: mlp.configuration.widths.map(String.init).joined(separator: "→"), batch: batch,
                     mode: mode.rawValue, gflopsPerSecond: rate, stepsPerSecond: rate * 1e9 / (flops / 64))
    }

    /// The JSON line, then the tables.
    public static func report(_ result: Result) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var lines = [String(decoding: try encoder.encode(result), as: UTF8.self)]
        let peak = result.peakGflopsPerSecond
        lines.append(String(format: "single-core FP32 peak (register-only FMAs): %.1f GFLOP/s (%@ tiles)", peak,
                            result.tiles == "avx512" ? "AVX-512" : "AVX2"))
        if !result.products.isEmpty {
            let nameWidth = max(31, (result.products.map(\.product.count).max() ?? 0) + 2)
            lines.append("product".padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "shape (m×k×n)      GFLOP/s   naive GFLOP/s   share of peak")
            for row in result.products {
                lines.append(row.product.padding(toLength: nameWidth, withPad: " ", startingAt: 0)
                             + "\(row.m)×\(row.k)×\(row.n)".padding(toLength: 17, withPad: " ", startingAt: 0)
                             + String(format: "%8.2f   %8.2f        %5.1f %%", row.gflopsPerSecond, row.naiveGflopsPerSecond,
                                      100 * row.shareOfPeak))
            }
        }
        if let ns = result.adamNanosecondsPerParameter, let count = result.adamParameters {
            lines.append("adam step".padding(toLength: 31, withPad: " ", startingAt: 0)
                         + "\(count) parameters".padding(toLength: 17, withPad: " ", startingAt: 0)
                         + String(format: "%8.3f ns/parameter, %.0f GB/s (28 bytes per parameter)", ns, 28 / ns))
        }
        lines.append("")
        lines.append("training step (forward + backward + Adam), one core")
        for row in result.steps {
            lines.append("  MLP \(row.model) batch \(row.batch) \(row.mode):".padding(toLength: 44, withPad: " ", startingAt: 0)
                         + String(format: "%8.2f GFLOP/s  %10.0f steps/s  %5.1f %% of peak", row.gflopsPerSecond, row.stepsPerSecond,
                                  100 * row.gflopsPerSecond / peak))
        }
        return lines.joined(separator: "\n")
    }
}
