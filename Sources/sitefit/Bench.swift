import ArgumentParser
import Foundation
import SiteFitBenchmarks
import SiteFitCore
import SiteFitEHR
import SiteFitTransformer

extension SiteFit {
    /// Benchmarks live outside the libraries (`SiteFitBenchmarks`); timing is for this command
    /// only, never in reports. Each prints one JSON line, then a table.
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure kernel and training-step throughput (build with -c release).",
            subcommands: [Kernels.self, Heart.self, Synthetic.self, Transformer.self, Shards.self, Bootstrap.self, Allocations.self])

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
                    let bench = try BenchWorkloads.heart(shards: shards, hidden: model == .logreg ? [] : [64, 64])
                    print(try await bench.run().report())
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
                let bench = BenchWorkloads.synthetic(sites: sites, patients: patients, rounds: rounds)
                do {
                    print(try await bench.run().report())
                } catch {
                    throw reportFailure(error)
                }
            }
        }

        struct Transformer: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "The transformer's training step per fine-tuning mode against the core's FP32 peak, then FedAvg with full and BitFit updates.",
                discussion: "Default size: 4 layers, width 128, 4 heads, 128 tokens, feed-forward 512, batch 32 (Tests/Reference/transformer_torch.py times the same step in PyTorch).")

            @Option(help: "Encoder blocks.")
            var layers: Int = 4
            @Option(help: "Model width (divisible by --heads).")
            var width: Int = 128
            @Option(help: "Attention heads.")
            var heads: Int = 4
            @Option(help: "Tokens per patient.")
            var length: Int = 128
            @Option(help: "Patients per batch.")
            var batch: Int = 32
            @Option(help: "Timed calls of three steps per mode (the fastest is reported, after a warm-up step).")
            var repetitions: Int = 5
            @Option(help: "Sites in the federated loop.")
            var sites: Int = 4
            @Option(help: "Train patients per site.")
            var patients: Int = 64
            @Option(help: "Federated rounds.")
            var rounds: Int = 3

            func validate() throws {
                for (name, value, range) in [("--layers", layers, 1...24), ("--width", width, 1...1024), ("--heads", heads, 1...64),
                                             ("--length", length, 1...1024), ("--batch", batch, 1...1024), ("--repetitions", repetitions, 1...100),
                                             ("--sites", sites, 1...64), ("--patients", patients, 1...100_000), ("--rounds", rounds, 1...100)]
                where !range.contains(value) {
                    throw ValidationError("\(name) must be from \(range.lowerBound) to \(range.upperBound) (got \(value))")
                }
                guard width % heads == 0 else { throw ValidationError("--width (\(width)) must divide into --heads (\(heads))") }
                // Attention keeps batch × heads × length² probabilities per layer.
                guard batch * heads * length * length * layers <= 1 << 28 else {
                    throw ValidationError("--batch × --heads × --length² × --layers must be at most 2^28 (the attention probabilities would need over 1 GiB)")
                }
            }

            func run() async throws {
                bootstrapLogging(verbose: false)
                let size = TransformerConfiguration(vocabularySize: 1003, timeBuckets: 16, maxLength: length, width: width, heads: heads,
                                                    layers: layers, feedForwardWidth: 4 * width)
                let bench = TransformerBench(configuration: size, batch: batch, repetitions: repetitions, sites: sites, patients: patients,
                                             rounds: rounds)
                do {
                    print(try TransformerBench.report(try await bench.run()))
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

            func run() throws {
                bootstrapLogging(verbose: false)
                print(try KernelBench.report(KernelBench(seconds: seconds, stepsOnly: stepsOnly).run()))
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
                print(try ShardBench.run(patients: patients, repetitions: repetitions))
            }
        }

        struct Bootstrap: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Time the paired bootstrap behind a report's comparisons on synthetic test sets (one JSON line, then a summary).")

            @Option(help: "Test patients per seed.")
            var patients: Int = 1000

            @Option(help: "Seeds (test sets).")
            var seeds: Int = 5

            @Option(help: "Models compared (each against the first).")
            var models: Int = 5

            @Option(help: "Replicates (fixed: no adaptive doubling).")
            var replicates: Int = 2000

            func validate() throws {
                guard patients >= 10 else { throw ValidationError("--patients must be at least 10 (got \(patients))") }
                guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1 (got \(seeds))") }
                guard models >= 2 else { throw ValidationError("--models must be at least 2 (got \(models))") }
                guard replicates >= 40 else { throw ValidationError("--replicates must be at least 40 (got \(replicates))") }
            }

            func run() throws {
                bootstrapLogging(verbose: false)
                print(BootstrapBench.run(patients: patients, seeds: seeds, models: models, replicates: replicates))
            }
        }

        /// Runs training steps so that an allocation counter can show that the count does not
        /// grow with the number of steps.
        struct Allocations: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "allocations",
                abstract: "Run N training steps of the MLP 40→128→128→1 at batch 32, or of a small transformer (for counting allocations per step).")

            @Option(help: "Training steps.")
            var steps: Int = 100

            @Option(help: "full, lora (rank 8 on every layer), adapter (bottleneck 8) or ia3 on the MLP; transformer-full, transformer-bitfit or transformer-extended (LoRA, adapters and (IA)³ together) on the transformer.")
            var mode: AllocationRun.Mode = .full

            func validate() throws {
                guard steps >= 1 else { throw ValidationError("--steps must be at least 1 (got \(steps))") }
            }

            func run() throws {
                let summary = AllocationRun.run(steps: steps, mode: mode)
                print("steps: \(summary.steps), final loss: \(String(format: "%.4f", summary.finalLoss))")
            }
        }
    }
}

extension AllocationRun.Mode: ExpressibleByArgument {}
