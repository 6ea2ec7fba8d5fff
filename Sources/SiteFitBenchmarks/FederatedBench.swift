import Foundation
import Logging
import SiteFitCore
import SiteFitFederation
import SiteFitNN
import SiteFitTuning
#if canImport(Glibc)
import Glibc
#endif

/// The federated loop the benchmarks time: `sitefit run`'s own round driver, site actors, wire
/// format and server (every update a real safetensors blob, validated and folded by the server
/// actor), without the report's per-round evaluation and audits.
/// Generic over the model: the MLP's workloads and the transformer's run the same loop.
public struct FederatedBench<Network: NeuralModel>: Sendable {
    public var workload: String
    public var sites: [SiteActor<Network>]
    public var network: Network
    public var start: [Float]
    public var rounds: Int
    public var configuration: TrainingConfiguration
    /// What the sites train and send.
    public var mode: FineTuningMode

    public init(workload: String, sites: [SiteActor<Network>], network: Network, start: [Float], rounds: Int,
                configuration: TrainingConfiguration, mode: FineTuningMode = .full) {
        self.workload = workload
        self.sites = sites
        self.network = network
        self.start = start
        self.rounds = rounds
        self.configuration = configuration
        self.mode = mode
    }

    public typealias Result = FederatedBenchResult

    public func run() async throws -> Result {
        let selection = mode.selection(for: network.layout)
        let server = FederatedServer(pretrained: start, selection: selection, logger: Logger(label: "sitefit.bench"))
        for site in sites { await site.begin(network: network, parameters: start, selection: selection) }
        var driver = RoundDriver(sites: sites, server: server, seed: 0, arm: "bench", configuration: configuration)
        let clock = ContinuousClock()
        var steps = 0, samples = 0
        let began = clock.now
        for round in 1...rounds {
            guard let record = try await driver.run(round: round) else { break }
            for trained in record.trained {
                steps += trained.steps
                samples += trained.examples
            }
            if let rejected = record.outcome.rejected.first {
                throw UserFacingError("bench: the server rejected an update: \(rejected.reason)")
            }
        }
        let seconds = BenchClock.seconds(clock.now - began)
        // The final model, scored at every site (outside the timed loop).
        let final = await server.broadcast(round: rounds)
        var correct = 0.0, total = 0.0
        for site in sites {
            let p = try await site.evaluate(broadcast: final)
            for (s, y) in zip(p.scores, p.labels) where (s >= 0.5) == (y >= 0.5) { correct += 1 }
            total += Double(p.labels.count)
        }
        let flops = network.trainingFlopsPerExample(network.trainableMask(selection)) * Double(samples)
        return Result(workload: workload, sites: sites.count, trainPatients: sites.reduce(0) { $0 + $1.trainSize },
                      parameters: network.layout.count, rounds: rounds, wallSeconds: seconds,
                      roundsPerSecond: Double(rounds) / seconds, localStepsPerSecond: Double(steps) / seconds,
                      samplesPerSecond: Double(samples) / seconds, gflopsPerSecond: flops / seconds / 1e9,
                      peakRSSMegabytes: BenchClock.peakRSSMegabytes(), finalAccuracy: total > 0 ? correct / total : .nan)
    }
}

/// One federated benchmark run's figures, printed as a JSON line (the keys CI and the README read).
public struct FederatedBenchResult: Codable, Sendable {
    public var workload: String
    public var sites: Int
    public var trainPatients: Int
    public var parameters: Int
    public var rounds: Int
    public var wallSeconds: Double
    public var roundsPerSecond: Double
    public var localStepsPerSecond: Double
    public var samplesPerSecond: Double
    public var gflopsPerSecond: Double
    public var peakRSSMegabytes: Double
    public var finalAccuracy: Double

    enum CodingKeys: String, CodingKey {
        case workload, sites, parameters, rounds
        case trainPatients = "train_patients", wallSeconds = "wall_seconds", roundsPerSecond = "rounds_per_second"
        case localStepsPerSecond = "local_steps_per_second", samplesPerSecond = "samples_per_second"
        case gflopsPerSecond = "gflops_per_second", peakRSSMegabytes = "peak_rss_mb", finalAccuracy = "final_accuracy"
    }

    /// The JSON line, then a table for people.
    public func report() throws -> String {
        let result = self
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(result), as: UTF8.self) + "\n" + """
            workload             \(result.workload)
            sites × train rows   \(result.sites) sites, \(result.trainPatients) train patients, \(result.parameters) parameters
            federated loop       \(String(format: "%.3f s", result.wallSeconds)) for \(result.rounds) rounds (\(String(format: "%.1f", result.roundsPerSecond)) rounds/s)
            local steps          \(String(format: "%.0f", result.localStepsPerSecond)) steps/s, \(String(format: "%.0f", result.samplesPerSecond)) samples/s
            arithmetic           \(String(format: "%.2f", result.gflopsPerSecond)) GFLOP/s (forward + backward, multiply-adds × 2)
            peak memory          \(String(format: "%.0f", result.peakRSSMegabytes)) MB resident
            final accuracy       \(String(format: "%.3f", result.finalAccuracy)) (all sites' test rows)
            """
    }
}

/// Wall-clock and memory readings the benchmarks share.
public enum BenchClock {
    public static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }

    /// The process's peak resident set size (Linux reports ru_maxrss in KiB).
    public static func peakRSSMegabytes() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}
