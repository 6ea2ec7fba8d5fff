import Foundation
import Logging
import SiteFitCore
import SiteFitEHR
import SiteFitFederation
import SiteFitNN
import SiteFitTuning
#if canImport(Glibc)
import Glibc
#endif

/// The federated loop the benchmarks time: the simulation's own site actors, wire format and
/// server (every update a real safetensors blob, validated and averaged by the server actor),
/// without the report's per-round evaluation and audits. One JSON line, then a human table.
struct FederatedBench {
    var workload: String
    var sites: [SiteActor]
    var mlp: MLP
    var start: [Float]
    var rounds: Int
    var configuration: TrainingConfiguration

    struct Result: Codable {
        var workload: String
        var sites: Int
        var trainPatients: Int
        var parameters: Int
        var rounds: Int
        var wallSeconds: Double
        var roundsPerSecond: Double
        var localStepsPerSecond: Double
        var samplesPerSecond: Double
        var gflopsPerSecond: Double
        var peakRSSMegabytes: Double
        var finalAccuracy: Double

        enum CodingKeys: String, CodingKey {
            case workload, sites, parameters, rounds
            case trainPatients = "train_patients", wallSeconds = "wall_seconds", roundsPerSecond = "rounds_per_second"
            case localStepsPerSecond = "local_steps_per_second", samplesPerSecond = "samples_per_second"
            case gflopsPerSecond = "gflops_per_second", peakRSSMegabytes = "peak_rss_mb", finalAccuracy = "final_accuracy"
        }
    }

    func run() async throws -> Result {
        let selection = FineTuningMode.full.selection(for: mlp.layout)
        let server = FederatedServer(pretrained: start, selection: selection, logger: Logger(label: "sitefit.bench"))
        for site in sites { await site.begin(mlp: mlp, parameters: start, selection: selection) }
        let configuration = self.configuration
        let clock = ContinuousClock()
        var steps = 0, samples = 0
        let began = clock.now
        for round in 1...rounds {
            let message = await server.broadcast(round: round)
            // Sites train concurrently; the server folds their updates into a running sum in
            // site order (a small reorder buffer holds the ones that finish early), so neither
            // side holds the whole round's updates. Why a window: with every site's task started
            // at once, nothing bounds how many finished updates (87 KB each here) wait in the task
            // group for the server; a site now starts only within `window` of the next update the
            // server needs. Measured: the 10,000 × 100 loop went from 26 s to 15–17 s.
            await server.beginRound(round)
            let window = 4 * max(1, ProcessInfo.processInfo.activeProcessorCount)
            try await withThrowingTaskGroup(of: (Int, LocalUpdate).self) { group in
                var started = 0
                func startSites(upTo limit: Int) {
                    while started < min(limit, sites.count) {
                        let index = started, site = sites[index]
                        group.addTask {
                            (index, try await site.localUpdate(arm: "bench", round: round, broadcast: message, configuration: configuration))
                        }
                        started += 1
                    }
                }
                startSites(upTo: window)
                var next = 0
                var early: [Int: LocalUpdate] = [:]
                for try await (index, update) in group {
                    early[index] = update
                    while let ready = early.removeValue(forKey: next) {
                        steps += ready.steps
                        // Examples actually seen: an epoch's last batch may be short, so count rows, not steps × batch.
                        let rows = sites[next].trainSize
                        samples += configuration.steps.map { min($0 * configuration.batchSize, $0 * rows) } ?? rows * configuration.epochs
                        await server.submit(site: ready.site, blob: ready.blob)
                        next += 1
                    }
                    startSites(upTo: next + window)
                }
            }
            let outcome = await server.endRound()
            guard outcome.rejected.isEmpty else { throw UserFacingError("bench: the server rejected an update: \(outcome.rejected[0].reason)") }
        }
        let elapsed = clock.now - began
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        // The final model, scored at every site (outside the timed loop).
        let final = await server.broadcast(round: rounds)
        var correct = 0.0, total = 0.0
        for site in sites {
            let p = try await site.evaluate(broadcast: final)
            for (s, y) in zip(p.scores, p.labels) where (s >= 0.5) == (y >= 0.5) { correct += 1 }
            total += Double(p.labels.count)
        }
        let flops = mlp.trainingFlopsPerExample(TrainableMask(mlp: mlp, selection: selection)) * Double(samples)
        return Result(workload: workload, sites: sites.count, trainPatients: sites.reduce(0) { $0 + $1.trainSize },
                      parameters: mlp.layout.count, rounds: rounds, wallSeconds: seconds,
                      roundsPerSecond: Double(rounds) / seconds, localStepsPerSecond: Double(steps) / seconds,
                      samplesPerSecond: Double(samples) / seconds, gflopsPerSecond: flops / seconds / 1e9,
                      peakRSSMegabytes: Self.peakRSSMegabytes(), finalAccuracy: total > 0 ? correct / total : .nan)
    }

    /// The process's peak resident set size (Linux reports ru_maxrss in KiB).
    static func peakRSSMegabytes() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }

    static func print(_ result: Result) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        Swift.print(String(decoding: try encoder.encode(result), as: UTF8.self))
        Swift.print("""
            workload             \(result.workload)
            sites × train rows   \(result.sites) sites, \(result.trainPatients) train patients, \(result.parameters) parameters
            federated loop       \(String(format: "%.3f s", result.wallSeconds)) for \(result.rounds) rounds (\(String(format: "%.1f", result.roundsPerSecond)) rounds/s)
            local steps          \(String(format: "%.0f", result.localStepsPerSecond)) steps/s, \(String(format: "%.0f", result.samplesPerSecond)) samples/s
            arithmetic           \(String(format: "%.2f", result.gflopsPerSecond)) GFLOP/s (forward + backward, multiply-adds × 2)
            peak memory          \(String(format: "%.0f", result.peakRSSMegabytes)) MB resident
            final accuracy       \(String(format: "%.3f", result.finalAccuracy)) (all sites' test rows)
            """)
    }
}
