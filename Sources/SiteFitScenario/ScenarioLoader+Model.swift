import SiteFitEHR
import SiteFitNN
import Yams

extension ScenarioLoader {
    static let maximumHiddenLayers = 16

    /// `model`: the MLP's hidden widths, activation, LayerNorm, dropout and initialisation. The
    /// input width follows from the task (FLamby's 13 columns for the heart-disease dataset).
    static func model(_ node: Node?, dataset: Scenario.Dataset, task: FeatureSpec, reader: inout YAMLReader)
        -> (model: MLPConfiguration, initialization: MLP.Initialization) {
        var initialization = MLP.Initialization.he
        var model = MLPConfiguration(inputSize: dataset == .heartDisease ? HeartDiseaseCohort.columns.count : task.columnNames.count,
                                     hiddenSizes: [32, 16])
        guard let node, let fields = reader.mapping(node, "model", allowed: ["hidden", "activation", "layer_norm", "dropout", "init"])
        else { return (model, initialization) }
        if let n = fields["init"], let v = reader.choice(n, "model.init", MLP.Initialization.self) { initialization = v }
        if let hidden = fields["hidden"], let list = reader.sequence(hidden, "model.hidden") {
            // An empty list is logistic regression (FLamby's model for heart disease). Sixteen
            // layers is far past what tabular EHR features use, and bounds what validate estimates.
            if list.count > Self.maximumHiddenLayers {
                reader.fail(hidden, "model.hidden", "at most \(Self.maximumHiddenLayers) hidden layers, found \(list.count)")
                return (model, initialization)
            }
            model.hiddenSizes = list.enumerated().compactMap { i, n in
                reader.integer(n, "model.hidden[\(i)]", in: 1...4096, what: "a layer width from 1 to 4096")
            }
        }
        if let n = fields["activation"], let v = reader.choice(n, "model.activation", Activation.self) { model.activation = v }
        if let n = fields["layer_norm"], let v = reader.boolean(n, "model.layer_norm") { model.layerNorm = v }
        if let n = fields["dropout"], let v = reader.number(n, "model.dropout", in: 0...0.9, what: "a probability from 0 to 0.9") { model.dropout = v }
        return (model, initialization)
    }
}
