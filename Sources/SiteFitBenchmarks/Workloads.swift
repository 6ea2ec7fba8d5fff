import Foundation
import SiteFitCore
import SiteFitEHR
import SiteFitFederation
import SiteFitNN

/// The federations the benchmarks run, built outside the timed loop.
public enum BenchWorkloads {
    /// FedAvg on the four real heart-disease shards (FLamby's protocol: 15 rounds × 100 local
    /// steps, batch 4, Adam lr 0.001), logistic regression or MLP 13→64→64→1.
    public static func heart(shards: [URL], hidden: [Int]) throws -> FederatedBench<MLP> {
        let mlp = MLP(MLPConfiguration(inputSize: 13, hiddenSizes: hidden))
        var random = RandomStream(seed: 42, "bench", "heart")
        let start = mlp.initialParameters(random: &random, scheme: .uniformFanIn)
        let pretrained = PretrainedModel(network: mlp, parameters: start, standardizer: .identity(columns: 13),
                                         columns: HeartDiseaseCohort.columns)
        // Feature matrices are extracted once per site, before the clock starts.
        let sites = try shards.map { url in
            try SiteActor(source: HeartDiseaseCohortSource(shard: SiteShard(site: url.deletingPathExtension().lastPathComponent, url: url)),
                          model: pretrained, seed: 42, maxBatch: 4)
        }
        return FederatedBench(
            workload: hidden.isEmpty ? "heart-logreg" : "heart-mlp", sites: sites, network: mlp, start: start, rounds: 15,
            configuration: TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .adam, learningRate: 0.001),
                                                 epochs: 1, batchSize: 4, steps: 100))
    }

    /// FedAvg over `siteCount` synthetic sites × `patients` train patients (+patients/5 test),
    /// 40 features, MLP 40→128→128→1, one epoch a round, batch 32, Adam lr 0.001. One logistic
    /// ground truth; each site's features are shifted (covariate shift).
    public static func synthetic(sites siteCount: Int, patients: Int, rounds: Int) -> FederatedBench<MLP> {
        let columns = 40
        let mlp = MLP(MLPConfiguration(inputSize: columns, hiddenSizes: [128, 128]))
        var random = RandomStream(seed: 7, "bench", "synthetic")
        let start = mlp.initialParameters(random: &random)
        let pretrained = PretrainedModel(network: mlp, parameters: start, standardizer: .identity(columns: columns),
                                         columns: (0..<columns).map { "x\($0)" })
        let truth = (0..<columns).map { _ in random.gaussian() / Double(columns).squareRoot() * 2 }
        // Sites share a pool of trainers: workspaces grow with the cores, not with the sites.
        let pool = TrainerPool<MLP>(maxBatch: 32)
        var actors: [SiteActor<MLP>] = []
        actors.reserveCapacity(siteCount)
        for s in 0..<siteCount {
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
        return FederatedBench(
            workload: "synthetic-\(siteCount)x\(patients)", sites: actors, network: mlp, start: start, rounds: rounds,
            configuration: TrainingConfiguration(optimizer: OptimizerConfiguration(kind: .adam, learningRate: 0.001),
                                                 epochs: 1, batchSize: 32))
    }
}
