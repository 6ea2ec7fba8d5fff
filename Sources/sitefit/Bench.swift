import ArgumentParser
import Foundation
import SiteFitCore
import SiteFitEHR
import SiteFitFederation
import SiteFitKernels
import SiteFitNN
import SiteFitTuning

extension SiteFit {
    /// Benchmarks live outside the libraries; timing is for this command only, never in reports.
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure kernel and training-step throughput (build with -c release).",
            subcommands: [Kernels.self, Heart.self, Synthetic.self, Shards.self, Allocations.self])

        struct Heart: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "FedAvg on the four real heart-disease shards: 15 rounds × 100 local steps, batch 4, Adam lr 0.001.")

            enum Model: String, ExpressibleByArgument, CaseIterable { case logreg, mlp }

            @Option(help: "logreg (13→1) or mlp (13→64→64→1, ReLU).")
            var model: Model = .logreg

            @Option(help: "Folder with the UCI files and flamby-split.csv (the shards are imported into a temporary folder).")
            var data: String = "Sites/heart-disease"

            func run() async throws {
                bootstrapLogging(verbose: false)
                do {
                    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sitefit-bench-heart-\(ProcessInfo.processInfo.processIdentifier)")
                    defer { try? FileManager.default.removeItem(at: folder) }
                    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                    let shards = try HeartDiseaseImport.importAll(from: URL(fileURLWithPath: data), to: folder)
                    let mlp = MLP(MLPConfiguration(inputSize: 13, hiddenSizes: model == .logreg ? [] : [64, 64]))
                    var random = RandomStream(seed: 42, "bench", "heart")
                    let start = mlp.initialParameters(random: &random, scheme: .uniformFanIn)
                    let pretrained = PretrainedModel(mlp: mlp, parameters: start,
                                                     standardizer: Standardizer(means: [Double](repeating: 0, count: 13),
                                                                                standardDeviations: [Double](repeating: 1, count: 13)),
                                                     columns: HeartDiseaseCohort.columns)
                    // Feature matrices are extracted once per site, before the clock starts.
                    let sites = try shards.map { url in
                        try SiteActor(heartDisease: SiteShard(site: url.deletingPathExtension().lastPathComponent, url: url),
                                      model: pretrained, seed: 42, maxBatch: 4)
                    }
                    let bench = FederatedBench(
                        workload: "heart-\(model.rawValue)", sites: sites, mlp: mlp, start: start, rounds: 15,
                        configuration: TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .adam, learningRate: 0.001),
                                                             epochs: 1, batchSize: 4, steps: 100))
                    try FederatedBench.print(try await bench.run())
                } catch {
                    throw reportFailure(error)
                }
            }
        }

        struct Synthetic: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "FedAvg over S synthetic sites × P train patients (+P/5 test), 40 features, MLP 40→128→128→1, 20 rounds of 1 epoch, batch 32, Adam lr 0.001.")

            @Option(help: "Sites.")
            var sites: Int = 32

            @Option(help: "Train patients per site.")
            var patients: Int = 2000

            @Option(help: "Rounds.")
            var rounds: Int = 20

            func validate() throws {
                guard sites >= 1 else { throw ValidationError("--sites must be at least 1 (got \(sites))") }
                guard patients >= 1 else { throw ValidationError("--patients must be at least 1 (got \(patients))") }
                guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1 (got \(rounds))") }
            }

            func run() async throws {
                bootstrapLogging(verbose: false)
                let columns = 40
                let mlp = MLP(MLPConfiguration(inputSize: columns, hiddenSizes: [128, 128]))
                var random = RandomStream(seed: 7, "bench", "synthetic")
                let start = mlp.initialParameters(random: &random)
                let pretrained = PretrainedModel(mlp: mlp, parameters: start,
                                                 standardizer: Standardizer(means: [Double](repeating: 0, count: columns),
                                                                            standardDeviations: [Double](repeating: 1, count: columns)),
                                                 columns: (0..<columns).map { "x\($0)" })
                // One logistic ground truth; each site's features are shifted (covariate shift).
                let truth = (0..<columns).map { _ in random.gaussian() / Double(columns).squareRoot() * 2 }
                // Sites share a pool of trainers: workspaces grow with the cores, not with the sites.
                let pool = TrainerPool(maxBatch: 32)
                var actors: [SiteActor] = []
                actors.reserveCapacity(sites)
                for s in 0..<sites {
                    var siteRandom = RandomStream(seed: 7, "bench", "site", String(s))
                    let shift = (0..<columns).map { _ in siteRandom.gaussian() * 0.3 }
                    func rows(_ count: Int) -> Dataset {
                        var features = [Float](repeating: 0, count: count * columns)
                        var labels = [Float](repeating: 0, count: count)
                        for r in 0..<count {
                            var logit = 0.0
                            for c in 0..<columns {
                                let x = siteRandom.gaussian() + shift[c]
                                features[r * columns + c] = Float(x)
                                logit += truth[c] * x
                            }
                            labels[r] = siteRandom.bernoulli(1 / (1 + exp(-logit))) ? 1 : 0
                        }
                        return Dataset(features: features, labels: labels, columns: columns)
                    }
                    actors.append(SiteActor(id: "site-\(s)", train: rows(patients), test: rows(max(patients / 5, 1)), model: pretrained,
                                            seed: 7, maxBatch: 32, pool: pool))
                }
                let bench = FederatedBench(
                    workload: "synthetic-\(sites)x\(patients)", sites: actors, mlp: mlp, start: start, rounds: rounds,
                    configuration: TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .adam, learningRate: 0.001),
                                                         epochs: 1, batchSize: 32))
                do {
                    try FederatedBench.print(try await bench.run())
                } catch {
                    throw reportFailure(error)
                }
            }
        }

        struct Kernels: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "GFLOP/s of each kernel and of whole training steps.")

            @Option(help: "Minimum seconds per measurement.")
            var seconds: Double = 0.6

            @Flag(help: "Only the whole training steps (for profiling).")
            var stepsOnly = false

            func validate() throws {
                guard seconds > 0, seconds.isFinite else { throw ValidationError("--seconds must be a positive number of seconds") }
            }

            /// What `bench kernels` prints as its JSON line (then as a table).
            struct Result: Codable {
                struct ProductRate: Codable {
                    var product: String, m: Int, k: Int, n: Int
                    var gflopsPerSecond: Double, naiveGflopsPerSecond: Double, shareOfPeak: Double
                    enum CodingKeys: String, CodingKey {
                        case product, m, k, n, gflopsPerSecond = "gflops_per_second"
                        case naiveGflopsPerSecond = "naive_gflops_per_second", shareOfPeak = "share_of_peak"
                    }
                }
                struct StepRate: Codable {
                    var model: String, batch: Int, mode: String, gflopsPerSecond: Double, stepsPerSecond: Double
                    enum CodingKeys: String, CodingKey {
                        case model, batch, mode, gflopsPerSecond = "gflops_per_second", stepsPerSecond = "steps_per_second"
                    }
                }
                var workload = "kernels"
                var tiles: String
                var peakGflopsPerSecond: Double
                var products: [ProductRate] = []
                var adamNanosecondsPerParameter: Double?
                var adamParameters: Int?
                var steps: [StepRate] = []
                var peakRSSMegabytes: Double = 0
                enum CodingKeys: String, CodingKey {
                    case workload, tiles, products, steps
                    case peakGflopsPerSecond = "peak_gflops_per_second", adamParameters = "adam_parameters"
                    case adamNanosecondsPerParameter = "adam_ns_per_parameter", peakRSSMegabytes = "peak_rss_mb"
                }
            }

            func run() throws {
                bootstrapLogging(verbose: false)
                var sink: Float = 0
                let flopsPerCall = SiteFitKernels.Kernels.fmaPeakLoop(iterations: 100_000).flops
                let peak = measure(flopsPerCall) { sink += SiteFitKernels.Kernels.fmaPeakLoop(iterations: 100_000).sink }
                if sink == 42 { print("") }
                var result = Result(tiles: SiteFitKernels.Kernels.hasWideRegisters ? "avx512" : "avx2", peakGflopsPerSecond: peak)
                if !stepsOnly {
                    // Each product a batch-32 step of MLP 40→128→128→1 makes, at its own shape: forward
                    // Y = X·Wᵀ per layer, weight gradients dW = dZᵀ·X, input gradients dX = dZ·W (none
                    // below the first layer); then all three at one large square shape.
                    enum Product { case ab, atb, abt }
                    let products: [(String, Product, Int, Int, Int)] = [
                        ("forward, layer 1 (A·Bᵀ)", .abt, 32, 40, 128), ("forward, layer 2 (A·Bᵀ)", .abt, 32, 128, 128),
                        ("forward, head (A·Bᵀ)", .abt, 32, 128, 1),
                        ("weight grad, layer 1 (Aᵀ·B)", .atb, 128, 32, 40), ("weight grad, layer 2 (Aᵀ·B)", .atb, 128, 32, 128),
                        ("weight grad, head (Aᵀ·B)", .atb, 1, 32, 128),
                        ("input grad, head (A·B)", .ab, 32, 1, 128), ("input grad, layer 2 (A·B)", .ab, 32, 128, 128),
                        ("A·B", .ab, 256, 256, 256), ("Aᵀ·B", .atb, 256, 256, 256), ("A·Bᵀ", .abt, 256, 256, 256),
                    ]
                    for (name, product, m, k, n) in products {
                        let rates: (fast: Double, naive: Double)
                        switch product {
                        case .ab:
                            rates = bench(name, m, k, n, fast: { a, b, c, _, m, k, n, acc in
                                SiteFitKernels.Kernels.matmul(a, b, c, m: m, k: k, n: n, accumulate: acc) }, naive: NaiveKernels.matmul)
                        case .atb:
                            rates = bench(name, m, k, n, fast: { a, b, c, scratch, m, k, n, acc in
                                SiteFitKernels.Kernels.matmulTransposedA(a, b, c, m: m, k: k, n: n, accumulate: acc, scratch: scratch)
                            }, naive: NaiveKernels.matmulTransposedA)
                        case .abt:
                            rates = bench(name, m, k, n, fast: { a, b, c, scratch, m, k, n, acc in
                                SiteFitKernels.Kernels.matmulTransposedB(a, b, c, m: m, k: k, n: n, accumulate: acc, scratch: scratch)
                            }, naive: NaiveKernels.matmulTransposedB)
                        }
                        result.products.append(.init(product: name, m: m, k: k, n: n, gflopsPerSecond: rates.fast,
                                                     naiveGflopsPerSecond: rates.naive, shareOfPeak: rates.fast / peak))
                    }
                    let count = MLP(MLPConfiguration(inputSize: 40, hiddenSizes: [128, 128])).layout.count
                    result.adamParameters = count
                    result.adamNanosecondsPerParameter = adam(count: count)
                }
                for (widths, batch, mode) in [([40, 128, 128], 32, FineTuningMode.full), ([40, 128, 128], 32, .bitfit),
                                              ([13], 4, .full)] {
                    result.steps.append(step(inputSize: widths[0], hidden: Array(widths.dropFirst()), batch: batch, mode: mode))
                }
                result.peakRSSMegabytes = FederatedBench.peakRSSMegabytes()
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(result), as: UTF8.self))
                print(String(format: "single-core FP32 peak (register-only FMAs): %.1f GFLOP/s (%@ tiles)", peak,
                             result.tiles == "avx512" ? "AVX-512" : "AVX2"))
                if !result.products.isEmpty {
                    print("product                        shape (m×k×n)      GFLOP/s   naive GFLOP/s   share of peak")
                    for row in result.products {
                        print(row.product.padding(toLength: 31, withPad: " ", startingAt: 0)
                              + "\(row.m)×\(row.k)×\(row.n)".padding(toLength: 17, withPad: " ", startingAt: 0)
                              + String(format: "%8.2f   %8.2f        %5.1f %%", row.gflopsPerSecond, row.naiveGflopsPerSecond,
                                       100 * row.shareOfPeak))
                    }
                }
                if let ns = result.adamNanosecondsPerParameter, let count = result.adamParameters {
                    print("adam step".padding(toLength: 31, withPad: " ", startingAt: 0)
                          + "\(count) parameters".padding(toLength: 17, withPad: " ", startingAt: 0)
                          + String(format: "%8.3f ns/parameter, %.0f GB/s (28 bytes per parameter)", ns, 28 / ns))
                }
                print("")
                print("training step (forward + backward + Adam), one core")
                for row in result.steps {
                    print("  MLP \(row.model) batch \(row.batch) \(row.mode):".padding(toLength: 44, withPad: " ", startingAt: 0)
                          + String(format: "%8.2f GFLOP/s  %10.0f steps/s  %5.1f %% of peak", row.gflopsPerSecond, row.stepsPerSecond,
                                   100 * row.gflopsPerSecond / peak))
                }
            }

            /// GFLOP/s of the fastest of several equal time slices. Why the fastest: on a shared
            /// two-core machine a slice that another process interrupts runs slower, never faster,
            /// so the best slice is the kernel's own speed and the figure repeats from run to run.
            func measure(_ flopsPerCall: Double, _ body: () -> Void) -> Double {
                body()
                let clock = ContinuousClock()
                let slices = 24
                let sliceLength = Duration.milliseconds(max(1, Int(seconds * 1000) / slices))
                var best = 0.0
                for _ in 0..<slices {
                    var calls = 0
                    let start = clock.now
                    var elapsed = Duration.zero
                    repeat {
                        for _ in 0..<16 { body() }
                        calls += 16
                        elapsed = clock.now - start
                    } while elapsed < sliceLength
                    let secondsTaken = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                    best = max(best, flopsPerCall * Double(calls) / secondsTaken / 1e9)
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
                // Cache-line-aligned operands, as the training workspace has: with the 16-byte
                // alignment of an Array a run's speed depends on where malloc put the buffers.
                let pa = aligned(a), pb = aligned(b), pc = aligned([Float](repeating: 0, count: m * n))
                let scratch = aligned([Float](repeating: 0, count: max(SiteFitKernels.Kernels.transposedBScratch(m: m, k: k, n: n),
                                                                       SiteFitKernels.Kernels.transposedAScratch(m: m, n: n))))
                defer { [pa, pb, pc, scratch].forEach { $0.deallocate() } }
                let flops = 2.0 * Double(m * k * n)
                let fastRate = measure(flops) { fast(pa, pb, pc, scratch, m, k, n, false) }
                let naiveRate = measure(flops) { _ = naive(a, b, m, k, n) }
                return (fastRate, naiveRate)
            }

            /// One fused Adam step over a whole model's parameters: streams four arrays in and three
            /// out, so it is reported in nanoseconds per parameter and GB/s moved, not GFLOP/s.
            func adam(count: Int) -> Double {
                var random = RandomStream(seed: 3, "bench", "adam")
                let theta = aligned((0..<count).map { _ in Float(random.gaussian()) })
                let gradient = aligned((0..<count).map { _ in Float(random.gaussian()) * 1e-2 })
                let m = aligned([Float](repeating: 0, count: count)), v = aligned([Float](repeating: 0, count: count))
                defer { [theta, gradient, m, v].forEach { $0.deallocate() } }
                // `measure` reports "GFLOP/s" of the unit given: one unit per parameter gives parameters/ns.
                let perNanosecond = measure(Double(count)) {
                    SiteFitKernels.Kernels.adamStep(theta, gradient: gradient, firstMoment: m, secondMoment: v, count: count,
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
                var trainer = Trainer(mlp: mlp, maxBatch: batch)
                let selection = mode.selection(for: mlp.layout)
                let mask = TrainableMask(mlp: mlp, selection: selection)
                let configuration = TrainingConfiguration(
                    optimizer: OptimizerConfiguration(kind: .adam, learningRate: 1e-3), epochs: 1, batchSize: batch)
                let flops = mlp.trainingFlopsPerExample(mask) * Double(rows)
                let rate = measure(flops) {
                    var shuffle = RandomStream(seed: 2, "bench")
                    _ = trainer.train(parameters: &parameters, data: data, selection: selection,
                                      configuration: configuration, random: &shuffle)
                }
                let stepsPerSecond = rate * 1e9 / (flops / 64)
                return .init(model: mlp.configuration.widths.map(String.init).joined(separator: "→"), batch: batch,
                             mode: mode.rawValue, gflopsPerSecond: rate, stepsPerSecond: stepsPerSecond)
            }
        }

        struct Shards: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Time building a shard and extracting its features (median of several runs).")

            @Option(help: "Patients in the benchmark shard.")
            var patients: Int = 10_000

            @Option(help: "Repetitions (the median is reported).")
            var repetitions: Int = 3

            func validate() throws {
                guard patients >= 1 else { throw ValidationError("--patients must be at least 1 (got \(patients))") }
                guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1 (got \(repetitions))") }
            }

            func run() throws {
                bootstrapLogging(verbose: false)
                let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sitefit-bench-\(ProcessInfo.processInfo.processIdentifier)")
                defer { try? FileManager.default.removeItem(at: folder) }
                let url = folder.appendingPathComponent("bench.sqlite")
                let profile = SiteProfile(id: "bench", name: "Benchmark", seed: 1, patients: patients)
                let clock = ContinuousClock()
                func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
                var build: [Double] = [], extract: [Double] = []
                var rows = 0
                for _ in 0..<max(1, repetitions) {
                    build.append(seconds(try clock.measure { try ShardBuilder.build(profile: profile, to: url) }))
                    let shard = try SiteShard(site: "bench", url: url)
                    extract.append(seconds(try clock.measure { rows = try shard.extractCohort(.heartFailure).rows }))
                }
                let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
                func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
                print(String(format: "build shard, %d patients:        %7.3f s  (%.1f MB)", patients, median(build), Double(size) / 1e6))
                print(String(format: "extract features, %d patients:   %7.3f s  (%d rows × %d features)", rows, median(extract),
                             rows, FeatureSpec.heartFailure.columnNames.count))
            }
        }

        /// Runs training steps so that an allocation counter (valgrind's heap summary) can show that
        /// the count does not grow with the number of steps.
        struct Allocations: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "allocations",
                abstract: "Run N training steps of the MLP 40→128→128→1 at batch 32 (for counting allocations per step).")

            enum Mode: String, ExpressibleByArgument, CaseIterable { case full, lora, adapter }

            @Option(help: "Training steps.")
            var steps: Int = 100

            @Option(help: "full, lora (rank 8 on every layer) or adapter (bottleneck 8): each path's backward pass is checked.")
            var mode: Mode = .full

            func validate() throws {
                guard steps >= 1 else { throw ValidationError("--steps must be at least 1 (got \(steps))") }
            }

            func run() throws {
                let mlp = MLP(MLPConfiguration(inputSize: 40, hiddenSizes: [128, 128],
                                               lora: mode == .lora ? LoRAConfiguration(rank: 8, alpha: 16) : nil,
                                               adapter: mode == .adapter ? AdapterConfiguration(bottleneck: 8) : nil))
                var random = RandomStream(seed: 1, "bench", "allocations")
                var parameters = mlp.initialParameters(random: &random)
                let selection: ParameterSelection = switch mode {
                case .full: FineTuningMode.full.selection(for: mlp.layout)
                case .lora: FineTuningMode.lora.selection(for: mlp.layout)
                case .adapter: FineTuningMode.adapter.selection(for: mlp.layout)
                }
                let batch = 32
                let data = Dataset(features: (0..<(batch * 40)).map { _ in Float(random.gaussian()) },
                                   labels: (0..<batch).map { _ in random.bernoulli(0.3) ? 1 : 0 }, columns: 40)
                var trainer = Trainer(mlp: mlp, maxBatch: batch)
                // One epoch of one batch is one step; `steps` epochs in one call keep per-call set-up out of the count.
                let summary = trainer.train(
                    parameters: &parameters, data: data, selection: selection,
                    configuration: TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .adam, learningRate: 1e-3),
                                                         epochs: steps, batchSize: batch),
                    random: &random)
                print("steps: \(summary.steps), final loss: \(String(format: "%.4f", summary.finalLoss))")
            }
        }
    }
}
