import ArgumentParser
import Foundation
import SiteFitBenchmarks
import SiteFitCore
import SiteFitEHR
import SiteFitRemote
import SiteFitReport
import SiteFitScenario
import SiteFitSimulation
import SiteFitTransformer

extension SiteFit {
    /// Benchmarks live outside the libraries (`SiteFitBenchmarks`); timing is for this command
    /// only, never in reports. Each prints one JSON line, then a table.
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure kernel and training-step throughput (build with -c release).",
            subcommands: [Kernels.self, Heart.self, Synthetic.self, Transformer.self, Transport.self, Shards.self, Bootstrap.self, Allocations.self])

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

        struct Transport: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "The same federation in-process and with every site behind TLS on loopback: wall time, overhead per round, bytes on the wire against payload.",
                discussion: """
                    Two runs each: the scenario (first seed, no pooled baseline) and S generated sites × R rounds of BitFit. \
                    Both sides pretrain from scratch; the distributed run's metrics must equal the in-process run's.
                    """)

            @Option(help: "The scenario to run both ways (its first seed; a pooled baseline is left out).")
            var scenario: String = "Scenarios/quickstart.yaml"

            @Option(help: "Generated sites for the BitFit run.")
            var sites: Int = 32

            @Option(help: "Rounds of the BitFit run.")
            var rounds: Int = 20

            @Option(help: "Patients per generated site.")
            var patients: Int = 300

            func validate() throws {
                guard sites >= 2 else { throw ValidationError("--sites must be at least 2 (got \(sites))") }
                guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1 (got \(rounds))") }
                guard patients >= 50 else { throw ValidationError("--patients must be at least 50 (got \(patients))") }
            }

            func run() async throws {
                bootstrapLogging(verbose: false)
                do {
                    let work = FileManager.default.temporaryDirectory.appendingPathComponent("sitefit-bench-transport-\(ProcessInfo.processInfo.processIdentifier)")
                    defer { try? FileManager.default.removeItem(at: work) }
                    try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
                    var given = try ScenarioLoader.load(URL(fileURLWithPath: scenario))
                    given.file = scenario
                    given.extraSeeds = []
                    given.baselines.removeAll { $0 == .pooled }
                    let generated = try Self.generated(sites: sites, rounds: rounds, patients: patients, in: work)
                    var rows: [TransportRow] = []
                    for (label, run) in [(given.name, given), ("\(sites) sites × \(rounds) rounds, BitFit", generated)] {
                        rows.append(try await Self.measure(label, run, work: work))
                    }
                    let json = try JSONEncoder().encode(rows)
                    print(String(decoding: json, as: UTF8.self))
                    print(TransportRow.table(rows))
                } catch {
                    throw reportFailure(error)
                }
            }

            /// A scenario of `sites` generated hospitals (the quickstart's population, varied by seed) and one BitFit arm.
            static func generated(sites: Int, rounds: Int, patients: Int, in folder: URL) throws -> Scenario {
                var list = ""
                for index in 1...sites {
                    let id = String(format: "site-%02d", index)
                    let profile = """
                        name: Site \(index)
                        seed: \(1000 + index)
                        patients: \(patients)
                        outcome_prevalence: \(0.12 + 0.08 * Double(index % 4) / 3)
                        """
                    try Data(profile.utf8).write(to: folder.appendingPathComponent("\(id).yaml"))
                    list += "  - profile: \(id).yaml\n"
                }
                let text = """
                    name: transport-bench
                    seed: 7
                    sites:
                    \(list)task:
                      lookback_days: 365
                      outcome_window_days: 365
                      conditions: [type_2_diabetes, hypertension, hyperlipidemia, chronic_kidney_disease,
                                   atrial_fibrillation, myocardial_infarction, copd, obesity]
                      measurements: [hba1c, creatinine, systolic_bp, bmi, cholesterol, heart_rate]
                      drugs: [metformin, lisinopril, atorvastatin, aspirin]
                    model:
                      hidden: [32, 16]
                    pretraining:
                      patients: 2000
                      epochs: 5
                    federation:
                      rounds: \(rounds)
                      local_epochs: 1
                      batch_size: 32
                      optimizer: adam
                      learning_rate: 0.003
                    arms:
                      - {name: bitfit, mode: bitfit, learning_rate: 0.03}
                    baselines: [pretrained]
                    """
                let file = folder.appendingPathComponent("transport-bench.yaml")
                try Data(text.utf8).write(to: file)
                return try ScenarioLoader.load(file)
            }

            static func measure(_ label: String, _ scenario: Scenario, work: URL) async throws -> TransportRow {
                let clock = ContinuousClock()
                // An untimed in-process run first: it builds any missing shard the agents then open,
                // and warms the caches; then both ways, interleaved, three times (medians).
                _ = try await Simulation.run(scenario)
                var local: Simulation.Result?
                var remote: (result: Simulation.Result, wire: WireCounter)?
                var localTimes: [Duration] = [], remoteTimes: [Duration] = []
                for _ in 0..<3 {
                    localTimes.append(try await clock.measure { local = try await Simulation.run(scenario) })
                    remoteTimes.append(try await clock.measure { remote = try await LoopbackFederation.run(scenario, workFolder: work) })
                }
                let localTime = localTimes.sorted()[1], remoteTime = remoteTimes.sorted()[1]
                guard let local, let remote else { throw UserFacingError("a run returned nothing") }
                let encoder = JSONEncoder()
                encoder.outputFormatting = .sortedKeys
                let same = try encoder.encode(local.metrics.arms) == encoder.encode(remote.result.metrics.arms)
                let rounds = scenario.federation.rounds * scenario.arms.count
                let payload = local.metrics.arms.flatMap(\.rounds).reduce((up: 0, down: 0)) { ($0.up + $1.bytesUp, $0.down + $1.bytesDown) }
                return TransportRow(run: label, sites: scenario.sites.count, rounds: rounds, inProcessSeconds: BenchClock.seconds(localTime),
                                    loopbackSeconds: BenchClock.seconds(remoteTime), payloadUp: payload.up, payloadDown: payload.down,
                                    wireReceived: remote.wire.received, wireSent: remote.wire.sent, sameMetrics: same)
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

/// One row of `bench transport`.
struct TransportRow: Codable {
    var run: String
    var sites: Int
    /// Federated rounds over all arms.
    var rounds: Int
    var inProcessSeconds: Double
    var loopbackSeconds: Double
    /// The report's update and broadcast bytes (rounds only).
    var payloadUp: Int
    var payloadDown: Int
    /// TLS bytes through the server's sockets: everything (checkpoints, evaluations, handshakes) included.
    var wireReceived: Int
    var wireSent: Int
    var sameMetrics: Bool

    var overheadPerRound: Double { (loopbackSeconds - inProcessSeconds) / Double(max(rounds, 1)) }

    static func table(_ rows: [TransportRow]) -> String {
        func mib(_ bytes: Int) -> String { String(format: "%.2f MiB", Double(bytes) / 1_048_576) }
        var out = "| run | sites | rounds | in-process | loopback TLS | overhead per round | payload up / down | on the wire in / out | same metrics |\n"
        out += "|---|---:|---:|---:|---:|---:|---:|---:|:---:|\n"
        for r in rows {
            out += "| \(r.run) | \(r.sites) | \(r.rounds) | \(String(format: "%.2f s", r.inProcessSeconds)) | "
                + "\(String(format: "%.2f s", r.loopbackSeconds)) | \(String(format: "%.1f ms", 1000 * r.overheadPerRound)) | "
                + "\(mib(r.payloadUp)) / \(mib(r.payloadDown)) | \(mib(r.wireReceived)) / \(mib(r.wireSent)) | \(r.sameMetrics ? "yes" : "NO") |\n"
        }
        return out
    }
}
