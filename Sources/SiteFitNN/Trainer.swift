import SiteFitCore
import SiteFitKernels

/// Mini-batch training of an MLP on the selected parameters.
public struct TrainingConfiguration: Sendable, Equatable {
    public var optimizer: OptimizerConfiguration
    public var epochs: Int
    public var batchSize: Int

    public init(optimizer: OptimizerConfiguration, epochs: Int, batchSize: Int) {
        self.optimizer = optimizer
        self.epochs = epochs
        self.batchSize = batchSize
    }
}

/// What one training run did, for the compute footprint in reports.
public struct TrainingSummary: Sendable, Equatable {
    public var steps: Int
    public var finalLoss: Double
    public var optimizerStateBytes: Int
}

/// Runs forward/backward/update loops; the caller owns the workspace so nothing is allocated per step.
public struct Trainer {
    public let mlp: MLP
    public let workspace: MLPWorkspace
    private var gradient: [Float]
    private var batchFeatures: [Float]
    private var batchLabels: [Float]

    public init(mlp: MLP, maxBatch: Int) {
        self.mlp = mlp
        workspace = MLPWorkspace(mlp: mlp, capacity: maxBatch)
        gradient = [Float](repeating: 0, count: mlp.layout.count)
        batchFeatures = [Float](repeating: 0, count: maxBatch * mlp.configuration.inputSize)
        batchLabels = [Float](repeating: 0, count: maxBatch)
    }

    /// Trains `parameters` in place on `data`; only `selection` changes. Rows are shuffled each
    /// epoch by `random`, so the caller decides the stream key (seed, site, round, purpose).
    public mutating func train(
        parameters: inout [Float], data: Dataset, selection: ParameterSelection,
        configuration: TrainingConfiguration, random: inout RandomStream
    ) -> TrainingSummary {
        precondition(data.columns == mlp.configuration.inputSize)
        precondition(configuration.batchSize <= workspace.capacity)
        var optimizer = Optimizer(configuration.optimizer, selection: selection)
        let mask = TrainableMask(mlp: mlp, selection: selection)
        var order = Array(0..<data.rows)
        var steps = 0
        var lastEpochLoss = 0.0
        let columns = data.columns
        let workspace = self.workspace
        let mlp = self.mlp
        for _ in 0..<configuration.epochs {
            random.shuffle(&order)
            var epochLoss = 0.0
            var start = 0
            while start < order.count {
                let batch = min(configuration.batchSize, order.count - start)
                data.features.withUnsafeBufferPointer { source in
                    batchFeatures.withUnsafeMutableBufferPointer { target in
                        for r in 0..<batch {
                            let row = order[start + r]
                            (target.baseAddress! + r * columns)
                                .update(from: source.baseAddress! + row * columns, count: columns)
                        }
                    }
                }
                for r in 0..<batch { batchLabels[r] = data.labels[order[start + r]] }
                let loss = parameters.withUnsafeMutableBufferPointer { params in
                    gradient.withUnsafeMutableBufferPointer { grad in
                        batchFeatures.withUnsafeBufferPointer { x in
                            batchLabels.withUnsafeBufferPointer { y in
                                mlp.forward(parameters: params.baseAddress!, input: x.baseAddress!,
                                            batch: batch, workspace: workspace)
                                let loss = BinaryCrossEntropy.lossAndGradient(
                                    logits: workspace.logits, labels: y.baseAddress!, batch: batch,
                                    dLogits: workspace.dLogitsPointer)
                                mlp.backward(parameters: params.baseAddress!, input: x.baseAddress!, batch: batch,
                                             workspace: workspace, gradient: grad.baseAddress!, trainable: mask)
                                optimizer.update(parameters: params.baseAddress!, gradient: grad.baseAddress!)
                                return loss
                            }
                        }
                    }
                }
                epochLoss += loss * Double(batch)
                steps += 1
                start += batch
            }
            lastEpochLoss = epochLoss / Double(max(order.count, 1))
        }
        return TrainingSummary(steps: steps, finalLoss: lastEpochLoss, optimizerStateBytes: optimizer.stateBytes)
    }

    /// Predicted probabilities σ(z) for every row of `data`.
    public func predict(parameters: [Float], data: Dataset) -> [Float] {
        var scores = [Float](repeating: 0, count: data.rows)
        let capacity = workspace.capacity
        let columns = data.columns
        parameters.withUnsafeBufferPointer { params in
            data.features.withUnsafeBufferPointer { x in
                var start = 0
                while start < data.rows {
                    let batch = min(capacity, data.rows - start)
                    mlp.forward(parameters: params.baseAddress!, input: x.baseAddress! + start * columns,
                                batch: batch, workspace: workspace)
                    for r in 0..<batch { scores[start + r] = sigmoid(workspace.logits[r]) }
                    start += batch
                }
            }
        }
        return scores
    }
}
