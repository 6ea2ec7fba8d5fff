import Foundation
import SiteFitCore
import SiteFitMetrics

/// The paired bootstrap behind every comparison of a report: synthetic test sets of a given size,
/// several models and seeds, every standard metric, gap and group rate, at a fixed number of
/// replicates (no adaptive doubling, so the work is the same on every machine).
public enum BootstrapBench {
    /// One JSON line, then a readable line.
    public static func run(patients: Int, seeds: Int, models: Int, replicates: Int) -> String {
        var random = RandomStream(seed: 1, "bench-bootstrap")
        let sets = (0..<seeds).map { _ in
            var set = ScoredTestSet(labels: [], sites: [])
            for i in 0..<patients {
                let y: Float = random.uniform() < 0.2 ? 1 : 0
                set.labels.append(y)
                set.sites.append(i % 3)
                set.groups["sex", default: []].append(random.uniform() < 0.5 ? "female" : "male")
                set.groups["age_band", default: []].append(["18-44", "45-64", "65-74", "75+"][random.int(below: 4)])
                set.groups["race", default: []].append(["White", "Black", "Asian"][random.int(below: 3)])
            }
            for m in 0..<models {
                set.scores["model-\(m)"] = set.labels.map { y in Float(1 / (1 + exp(-(Double(y) * 1.5 - 1.2 + random.gaussian())))) }
            }
            return set
        }
        let metrics = ComparisonMetric.standard + ComparisonMetric.gaps(attributes: ["sex", "age_band", "race"])
        let pairs = (1..<max(models, 2)).map { (arm: "model-\($0)", against: "model-0") }
        let options = PairedBootstrap.Options(minimumReplicates: replicates, maximumReplicates: replicates, targetMonteCarloError: 1,
                                              minimumGroupSize: 20)
        let clock = ContinuousClock()
        var differences: [PairedDifference] = []
        let elapsed = BenchClock.seconds(clock.measure {
            differences = PairedBootstrap.compare(sets, pairs: pairs, metrics: metrics, seed: 1, purpose: "bench", options: options)
        })
        // Per cell of the seeds × replicates grid, every model once. With several seeds only the
        // (seed, resample) cells that replicates draw are scored (about 63 % of them), so this is
        // the cost of the grid as a whole, not of one scoring pass.
        let evaluations = Double(replicates * seeds * models)
        let nsPerPatient = elapsed / (evaluations * Double(patients)) * 1e9
        let json = String(format: #"{"bench":"bootstrap","patients":%d,"seeds":%d,"models":%d,"replicates":%d,"differences":%d,"seconds":%.3f,"ns_per_patient_model_seed_replicate":%.2f}"#,
                          patients, seeds, models, replicates, differences.count, elapsed, nsPerPatient)
        return json + "\n" + String(format: "paired bootstrap: %d patients × %d seeds × %d models × %d replicates, %d differences: %.3f s (%.2f ns per patient, model, seed and replicate)",
                                    patients, seeds, models, replicates, differences.count, elapsed, nsPerPatient)
    }
}
