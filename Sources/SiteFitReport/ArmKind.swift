// What an arm is, as a type: the renderer asks `kind`, never the arm's name or strategy text.

/// What an arm is: a federation under a named strategy, or a baseline the federations are compared with.
public enum ArmKind: Sendable, Hashable {
    /// A federation; `strategy` is the strategy's name as scenarios spell it (`fedavg`, `fedprox`, …).
    case federated(strategy: String)
    /// A reference that is not a federation: no update crosses the network.
    case baseline(Baseline)

    /// The baselines SiteFit runs beside the federated arms.
    public enum Baseline: Sendable, Hashable {
        /// The model every arm starts from, scored as is: the pretrained model, or the seeded
        /// initialisation under `pretraining: none`.
        case startingModel
        /// In a transformer scenario, the MLP that `model: mlp` arms start from, scored as is.
        case startingMLP
        /// Every site trains alone on its own rows and is scored on its own test patients.
        case localOnly
        /// One model trained on every site's rows in one place (possible only in a simulation).
        case pooled
        /// One site's own model, scored at every site (FLamby's "Local i").
        case localAt(site: String)
    }

    /// True for the references, false for federations.
    public var isBaseline: Bool {
        if case .baseline = self { return true }
        return false
    }
}

extension ArmKind.Baseline {
    /// The baseline's arm name. It is an identifier as well as a label: the arm's `name` in
    /// metrics.json and predictions.csv, and its key in a scenario's `reference` table, which is
    /// why it is fixed here, beside `init(armName:)` that reads it back.
    public func armName(startsPretrained: Bool) -> String {
        switch self {
        case .startingModel: startsPretrained ? "pretrained" : "initial model"
        case .startingMLP: startsPretrained ? "pretrained mlp" : "initial mlp"
        case .localOnly: "local only"
        case .pooled: "pooled (simulation only)"
        case .localAt(let site): "local \(site)"
        }
    }

    /// The baseline an arm name denotes, or nil for a name `armName(startsPretrained:)` never gives.
    init?(armName: String) {
        let localPrefix = "local "
        switch armName {
        case "pretrained", "initial model": self = .startingModel
        case "pretrained mlp", "initial mlp": self = .startingMLP
        case "local only": self = .localOnly
        case "pooled (simulation only)": self = .pooled
        case _ where armName.hasPrefix(localPrefix) && armName.count > localPrefix.count:
            self = .localAt(site: String(armName.dropFirst(localPrefix.count)))
        default: return nil
        }
    }
}

extension ArmKind {
    /// The `strategy` field of metrics.json: the federation's strategy, or `baseline`; which
    /// baseline is told by the arm's name (the file has always been written that way).
    var storedStrategy: String {
        switch self {
        case .federated(let strategy): strategy
        case .baseline: ArmKind.storedBaselineStrategy
        }
    }

    static let storedBaselineStrategy = "baseline"

    /// The kind metrics.json's `strategy` and `name` fields describe, or nil when the strategy says
    /// baseline and the name is none a baseline is given.
    init?(storedStrategy strategy: String, name: String) {
        guard strategy == ArmKind.storedBaselineStrategy else {
            self = .federated(strategy: strategy)
            return
        }
        guard let baseline = Baseline(armName: name) else { return nil }
        self = .baseline(baseline)
    }
}
