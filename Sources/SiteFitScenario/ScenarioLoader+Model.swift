import SiteFitEHR
import SiteFitNN
import Yams

extension ScenarioLoader {
    static let maximumHiddenLayers = 16
    static let mlpKeys = ["hidden", "activation", "layer_norm", "dropout", "init"]
    static let transformerKeys = ["layers", "width", "heads", "feed_forward", "max_length", "masked_epochs", "masked_learning_rate", "vocabulary"]
    /// Attention scores held per example over all layers (heads · length² · layers), as checkpoints bound them.
    static let maximumAttentionScores = 1 << 22
    /// Parameters a transformer may have (a checkpoint holds at most 2²⁷ floats).
    static let maximumTransformerParameters = 1 << 26

    /// `model`: the MLP's hidden widths, activation, LayerNorm, dropout and initialisation; or, with
    /// `kind: transformer`, the transformer's shape and sequences (the MLP keys then shape the MLP
    /// that `model: mlp` arms train). The MLP's input width follows from the task (FLamby's 13
    /// columns for the heart-disease dataset).
    static func model(_ node: Node?, dataset: Scenario.Dataset, task: FeatureSpec, reader: inout YAMLReader)
        -> (model: MLPConfiguration, initialization: MLP.Initialization, transformer: Scenario.TransformerModel?) {
        var initialization = MLP.Initialization.he
        var model = MLPConfiguration(inputSize: dataset == .heartDisease ? HeartDiseaseCohort.columns.count : task.columnNames.count,
                                     hiddenSizes: [32, 16])
        let isTransformer = node?.mapping?["kind"]?.scalar?.string == "transformer"
        guard let node, let fields = reader.mapping(node, "model", allowed: ["kind"] + mlpKeys + transformerKeys)
        else { return (model, initialization, nil) }
        if let n = fields["kind"], reader.choice(n, "model.kind", among: ["mlp", "transformer"]) == nil { return (model, initialization, nil) }
        if !isTransformer, let extra = fields.keys.first(where: { transformerKeys.contains($0) }) {
            reader.fail(fields[extra], "model.\(extra)", "'\(extra)' is a transformer setting; add `kind: transformer`")
        }
        if let n = fields["init"], let v = reader.choice(n, "model.init", MLP.Initialization.self) { initialization = v }
        if let hidden = fields["hidden"], let list = reader.sequence(hidden, "model.hidden") {
            // An empty list is logistic regression (FLamby's model for heart disease). Sixteen
            // layers is far past what tabular EHR features use, and bounds what validate estimates.
            if list.count > Self.maximumHiddenLayers {
                reader.fail(hidden, "model.hidden", "at most \(Self.maximumHiddenLayers) hidden layers, found \(list.count)")
                return (model, initialization, nil)
            }
            model.hiddenSizes = list.enumerated().compactMap { i, n in
                reader.integer(n, "model.hidden[\(i)]", in: 1...4096, what: "a layer width from 1 to 4096")
            }
        }
        if let n = fields["activation"], let v = reader.choice(n, "model.activation", Activation.self) { model.activation = v }
        if let n = fields["layer_norm"], let v = reader.boolean(n, "model.layer_norm") { model.layerNorm = v }
        if let n = fields["dropout"], let v = reader.number(n, "model.dropout", in: 0...0.9, what: "a probability from 0 to 0.9") { model.dropout = v }
        guard isTransformer else { return (model, initialization, nil) }
        if dataset == .heartDisease {
            reader.fail(fields["kind"], "model.kind", "the transformer reads code sequences from OMOP shards; the heart-disease data have none")
        }
        return (model, initialization, transformer(fields, task: task, reader: &reader))
    }

    /// The transformer's settings under `model` (with `kind: transformer`).
    static func transformer(_ fields: [String: Node], task: FeatureSpec, reader: inout YAMLReader) -> Scenario.TransformerModel {
        var t = Scenario.TransformerModel()
        t.sequences.lookbackDays = task.lookbackDays
        if let n = fields["layers"], let v = reader.integer(n, "model.layers", in: 1...12, what: "an integer from 1 to 12") { t.layers = v }
        if let n = fields["width"], let v = reader.integer(n, "model.width", in: 4...1024, what: "a width from 4 to 1024") { t.width = v }
        if let n = fields["heads"], let v = reader.integer(n, "model.heads", in: 1...16, what: "an integer from 1 to 16") { t.heads = v }
        // Each head takes width / heads of every token: the width must split evenly, whichever of
        // the two was written (the other at its default).
        if t.width % t.heads != 0 {
            let key = fields["heads"] != nil ? "heads" : "width"
            reader.fail(fields[key], "model.\(key)", "\(t.heads) heads do not divide the width \(t.width)")
            t.heads = 1
        }
        if let n = fields["feed_forward"], let v = reader.integer(n, "model.feed_forward", in: 1...4096, what: "a width from 1 to 4096") { t.feedForwardWidth = v }
        if let n = fields["max_length"], let v = reader.integer(n, "model.max_length", in: 2...512, what: "a length from 2 to 512 codes") {
            if t.heads * v * v * t.layers <= maximumAttentionScores { t.sequences.maxLength = v } else {
                reader.fail(n, "model.max_length", "\(t.layers) layers of \(t.heads) heads over \(v) codes hold \(t.heads * v * v * t.layers) "
                            + "attention scores per patient; at most \(maximumAttentionScores)")
            }
        }
        if let n = fields["masked_epochs"], let v = reader.integer(n, "model.masked_epochs", in: 0...1000, what: "an integer from 0 to 1000") { t.maskedEpochs = v }
        if let n = fields["masked_learning_rate"], let v = reader.number(n, "model.masked_learning_rate", in: 1e-7...10, what: "a positive learning rate up to 10") {
            t.maskedLearningRate = v
        }
        if let n = fields["vocabulary"], let m = reader.mapping(n, "model.vocabulary", allowed: ["minimum_count", "minimum_sites", "maximum"]) {
            if let c = m["minimum_count"], let v = reader.integer(c, "model.vocabulary.minimum_count", in: 1...1_000_000, what: "an integer from 1 to 1000000") {
                t.sequences.vocabulary.minimumCount = v
            }
            if let c = m["minimum_sites"], let v = reader.integer(c, "model.vocabulary.minimum_sites", in: 1...1000, what: "an integer from 1 to 1000") {
                t.sequences.vocabulary.minimumSites = v
            }
            if let c = m["maximum"], let v = reader.integer(c, "model.vocabulary.maximum", in: 1...20_000, what: "an integer from 1 to 20000") {
                t.sequences.vocabulary.maximum = v
            }
        }
        // Bounded as checkpoints bound them, so the model a run writes can be read back.
        let vocabulary = t.sequences.vocabulary.maximum + 3
        let parameters = t.layers * (4 * t.width * t.width + 2 * t.width * t.feedForwardWidth + 9 * t.width + t.feedForwardWidth)
            + (vocabulary + 8 + t.sequences.maxLength + 2) * t.width
        if parameters > maximumTransformerParameters {
            reader.fail(fields["width"] ?? fields["layers"] ?? fields["feed_forward"], "model.\(fields["width"] != nil ? "width" : fields["layers"] != nil ? "layers" : "feed_forward")",
                        "\(t.layers) layers of width \(t.width) (feed-forward \(t.feedForwardWidth)) hold about \(parameters) parameters; at most \(maximumTransformerParameters)")
        }
        return t
    }
}
