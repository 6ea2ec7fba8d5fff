import Foundation
import SiteFitCore
import SiteFitNN

extension SiteActor {
    /// The reconstruction experiment at this site, for the current arm (after `begin`, before
    /// round 1): for every setting and trial the site draws `batchSize` of its training patients,
    /// trains `localSteps` full-batch steps on them from the model it holds, and hands the server's
    /// attacks only what the server would receive (the shared tensors' change, clipped under DP).
    /// The site alone scores the reconstructions against those patients and its held-out ones.
    ///
    /// Every stream is keyed by (seed, site, batch size, steps, trial) and not by the arm, so each
    /// arm is attacked on the same patients from the same starting guesses: differences between
    /// arms are paired.
    public func reconstructionTrials(settings: ReconstructionSettings, optimizer: OptimizerConfiguration, positiveWeight: Float,
                                     clipNorm: Double?) -> [ReconstructionTrial] {
        restoreLocal()
        let start = local
        let columns = train.columns
        var trials: [ReconstructionTrial] = []
        for batchSize in settings.batchSizes where batchSize <= train.rows {
            var trainer = Trainer(model: network, maxBatch: batchSize)
            for steps in settings.localSteps {
                for trial in 0..<settings.trials {
                    let key = [id, String(batchSize), String(steps), String(trial)]
                    var draw = RandomStream(seed: seed, components: ["reconstruction-batch"] + key)
                    var order = Array(0..<train.rows)
                    draw.shuffle(&order)
                    let batch = train.subset(Array(order.prefix(batchSize)))
                    var parameters = start
                    var training = RandomStream(seed: seed, components: ["reconstruction-training"] + key)
                    let configuration = TrainingConfiguration(optimizer: optimizer, epochs: 1, batchSize: batchSize,
                                                              positiveWeight: positiveWeight, steps: steps)
                    _ = trainer.train(parameters: &parameters, data: batch, selection: selection, configuration: configuration,
                                      random: &training)
                    var delta = zip(shared.gather(from: parameters), shared.gather(from: start)).map { $0 - $1 }
                    if let clipNorm { DPFedAvg.clip(&delta, clipNorm: clipNorm) }

                    // The server's side: the update and public knowledge only.
                    let knowledge = ReconstructionAttack.Knowledge(network: network, parameters: start, shared: shared,
                                                                   learningRate: optimizer.learningRate, batchSize: batchSize,
                                                                   localSteps: steps, optimizer: optimizer.kind)
                    let candidates = ReconstructionAttack.analytic(delta, knowledge: knowledge)
                    var guesses = RandomStream(seed: seed, components: ["reconstruction-attack"] + key)
                    // The attack's first guesses, before any fitting: what matching by chance scores.
                    var prior = guesses
                    let chance = (0..<(batchSize * columns)).map { _ in Float(prior.gaussian()) }
                    let fitted = ReconstructionAttack.optimisation(delta, knowledge: knowledge,
                                                                   settings: .init(budget: settings.budget), random: &guesses)
                    let gap = ReconstructionAttack.outcomeGap(delta, knowledge: knowledge)
                    let estimatedRisk = gap.map { _ in meanRisk(start, fitted.features, rows: batchSize) }

                    // The site's side: how close the server came.
                    func scored(_ rows: [Float]) -> ReconstructionScore {
                        ReconstructionScore.score(rows, batch: batch.features, heldOut: test.features, columns: columns, binary: binaryColumns)
                    }
                    let outcomeRate = Double(batch.labels.reduce(0, +)) / Double(batchSize)
                    trials.append(ReconstructionTrial(
                        site: id, batchSize: batchSize, localSteps: steps, trial: trial,
                        analytic: candidates.map { $0.isEmpty ? scored([]) : scored($0.flatMap { $0 }) },
                        optimisation: scored(fitted.features), chance: scored(chance),
                        outcomeRateError: zip2(gap, estimatedRisk).map { abs(min(max($0 + $1, 0), 1) - outcomeRate) }))
                }
            }
        }
        return trials
    }

    /// Mean predicted risk of `rows` feature rows under `parameters`.
    private func meanRisk(_ parameters: [Float], _ features: [Float], rows: Int) -> Double {
        let workspace = network.makeWorkspace(capacity: rows)
        return parameters.withUnsafeBufferPointer { p in
            features.withUnsafeBufferPointer { x in
                network.forward(parameters: p.baseAddress!, input: x.baseAddress!, batch: rows, workspace: workspace)
                var total = 0.0
                for i in 0..<rows { total += 1 / (1 + exp(-Double(workspace.logits[i]))) }
                return total / Double(rows)
            }
        }
    }
}

private func zip2<A, B>(_ a: A?, _ b: B?) -> (A, B)? {
    guard let a, let b else { return nil }
    return (a, b)
}
