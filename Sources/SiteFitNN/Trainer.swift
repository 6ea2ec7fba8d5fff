import SiteFitCore
import SiteFitKernels

/// Mini-batch training of a model on the selected parameters.
public struct TrainingConfiguration: Sendable, Equatable {
    public var optimizer: OptimizerConfiguration
    public var epochs: Int
    public var batchSize: Int
    /// Weight w of positive examples in the loss, for imbalanced outcomes (1 = unweighted).
    public var positiveWeight: Float
    /// FedProx's μ (Li et al., arXiv:1812.06127): the local loss gains (μ/2)·‖w − w₀‖² over the
    /// selected parameters, w₀ being the parameters at the start of training (the global model).
    public var proximalMu: Double
    /// When set, training runs exactly this many mini-batch steps (reshuffling at each pass over
    /// the data) and `epochs` is ignored: FLamby's protocol counts local updates, not epochs.
    public var steps: Int?

    public init(optimizer: OptimizerConfiguration, epochs: Int, batchSize: Int, positiveWeight: Float = 1,
                proximalMu: Double = 0, steps: Int? = nil) {
        self.optimizer = optimizer
        self.epochs = epochs
        self.steps = steps
        self.batchSize = batchSize
        self.positiveWeight = positiveWeight
        self.proximalMu = proximalMu
    }
}

/// Early stopping on a validation set: stop after `patience` epochs without a lower validation
/// loss and keep the best parameters seen.
public struct EarlyStopping: Sendable, Equatable {
    public var validation: Dataset
    public var patience: Int

    public init(validation: Dataset, patience: Int) {
        self.validation = validation
        self.patience = patience
    }
}

/// What one training run did, for the compute footprint in reports.
public struct TrainingSummary: Sendable, Equatable {
    public var steps: Int
    /// Mean training loss of the last epoch run.
    public var finalLoss: Double
    public var optimizerStateBytes: Int
    /// Epochs actually run (fewer than configured when early stopping ended training).
    public var epochs: Int
    /// Best validation loss, when early stopping was used.
    public var bestValidationLoss: Double?
}

/// Runs forward/backward/update loops for any `NeuralModel`; the trainer owns the workspace and
/// the batch buffers, so nothing is allocated per step.
public struct Trainer<Model: NeuralModel> {
    public let model: Model
    public let workspace: Model.Workspace
    private var gradient: [Float]
    private var batchFeatures: [Float]
    private var batchLabels: [Float]

    public init(model: Model, maxBatch: Int) {
        self.model = model
        workspace = model.makeWorkspace(capacity: maxBatch)
        gradient = [Float](repeating: 0, count: model.layout.count)
        batchFeatures = [Float](repeating: 0, count: maxBatch * model.inputSize)
        batchLabels = [Float](repeating: 0, count: maxBatch)
    }

    /// Trains `parameters` in place on `data`; only `selection` changes. Rows are shuffled each
    /// epoch, and dropout masks drawn, from `random`, so the caller decides the stream key
    /// (seed, site, round, purpose). With `earlyStopping` the best parameters by validation loss
    /// are kept.
    public mutating func train(
        parameters: inout [Float], data: Dataset, selection: ParameterSelection,
        configuration: TrainingConfiguration, random: inout RandomStream, earlyStopping: EarlyStopping? = nil
    ) -> TrainingSummary {
        precondition(data.columns == model.inputSize)
        precondition(configuration.batchSize <= workspace.capacity)
        var optimizer = Optimizer(configuration.optimizer, selection: selection)
        let mask = model.trainableMask(selection)
        var order = Array(0..<data.rows)
        var steps = 0, epochsRun = 0
        var lastEpochLoss = 0.0
        var best: (loss: Double, parameters: [Float])? = nil
        var sinceBest = 0
        let columns = data.columns
        let workspace = self.workspace
        let model = self.model
        let positiveWeight = configuration.positiveWeight
        let mu = Float(configuration.proximalMu)
        let anchor = mu > 0 ? parameters : []
        let ranges = selection.ranges
        let stepLimit = configuration.steps ?? Int.max
        let epochLimit = configuration.steps == nil ? configuration.epochs : Int.max
        while epochsRun < epochLimit && steps < stepLimit && !order.isEmpty {
            random.shuffle(&order)
            var epochLoss = 0.0
            var start = 0
            while start < order.count && steps < stepLimit {
                let batch = min(configuration.batchSize, order.count - start)
                data.features.withUnsafeBufferPointer { source in
                    batchFeatures.withUnsafeMutableBufferPointer { target in
                        order.withUnsafeBufferPointer { order in
                            Kernels.gatherRows(source.baseAddress!, columns: columns,
                                               rows: UnsafeBufferPointer(rebasing: order[start..<(start + batch)]),
                                               into: target.baseAddress!)
                        }
                    }
                }
                for r in 0..<batch { batchLabels[r] = data.labels[order[start + r]] }
                let loss = parameters.withUnsafeMutableBufferPointer { params in
                    gradient.withUnsafeMutableBufferPointer { grad in
                        batchFeatures.withUnsafeBufferPointer { x in
                            batchLabels.withUnsafeBufferPointer { y in
                                model.forward(parameters: params.baseAddress!, input: x.baseAddress!, batch: batch,
                                            workspace: workspace, training: true, random: &random)
                                let loss = BinaryCrossEntropy.lossAndGradient(
                                    logits: workspace.logits, labels: y.baseAddress!, batch: batch,
                                    dLogits: workspace.dLogitsPointer, positiveWeight: positiveWeight)
                                model.backward(parameters: params.baseAddress!, input: x.baseAddress!, batch: batch,
                                             workspace: workspace, gradient: grad.baseAddress!, trainable: mask, dInput: nil)
                                if mu > 0 {
                                    // ∂/∂w (μ/2)‖w − w₀‖² = μ(w − w₀)
                                    for range in ranges { for i in range { grad[i] += mu * (params[i] - anchor[i]) } }
                                }
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
            epochsRun += 1
            lastEpochLoss = epochLoss / Double(max(start, 1))
            if let stopping = earlyStopping {
                let validationLoss = loss(parameters: parameters, data: stopping.validation, positiveWeight: positiveWeight)
                if best == nil || validationLoss < best!.loss {
                    best = (validationLoss, parameters)
                    sinceBest = 0
                } else {
                    sinceBest += 1
                    if sinceBest >= stopping.patience { break }
                }
            }
        }
        if let best { parameters = best.parameters }
        return TrainingSummary(steps: steps, finalLoss: lastEpochLoss, optimizerStateBytes: optimizer.stateBytes,
                               epochs: epochsRun, bestValidationLoss: best?.loss)
    }

    /// Mean (weighted) BCE of `parameters` on `data`, from logits.
    public func loss(parameters: [Float], data: Dataset, positiveWeight: Float = 1) -> Double {
        BinaryCrossEntropy.loss(logits: logits(parameters: parameters, data: data), labels: data.labels,
                                positiveWeight: positiveWeight)
    }

    /// Logits for every row of `data` (inference: no dropout).
    public func logits(parameters: [Float], data: Dataset) -> [Float] {
        // A dataset of another width would make the forward pass read past each row.
        precondition(data.columns == model.inputSize && parameters.count >= model.layout.count, "data or parameters do not fit the model")
        var out = [Float](repeating: 0, count: data.rows)
        let capacity = workspace.capacity
        let columns = data.columns
        parameters.withUnsafeBufferPointer { params in
            data.features.withUnsafeBufferPointer { x in
                var start = 0
                while start < data.rows {
                    let batch = min(capacity, data.rows - start)
                    model.forward(parameters: params.baseAddress!, input: x.baseAddress! + start * columns,
                                batch: batch, workspace: workspace)
                    for r in 0..<batch { out[start + r] = workspace.logits[r] }
                    start += batch
                }
            }
        }
        return out
    }

    /// Predicted probabilities σ(z) for every row of `data`.
    public func predict(parameters: [Float], data: Dataset) -> [Float] {
        logits(parameters: parameters, data: data).map(sigmoid)
    }
}
