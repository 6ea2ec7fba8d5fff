import SiteFitCore
import SiteFitFederation
import SiteFitNN
import SiteFitTransformer
import SiteFitTuning
import Yams

extension ScenarioLoader {
    /// Keys of an arm: its own, then every strategy's settings (the JSON Schema test checks the
    /// schema lists the same).
    static let armKeys = ["name", "mode", "model", "learning_rate", "local_epochs"] + FineTuningMode.all.filter { !$0.settings.isEmpty }.map(\.name)
        + ["strategy"]
        + StrategyRegistry.settingKeys + ["dp", "secure_aggregation", "training_sites"]

    /// `arms`: the compared configurations, each a federation from the same pretrained model.
    static func arms(_ node: Node?, federation: Scenario.Federation, model: MLPConfiguration,
                     transformer: Scenario.TransformerModel? = nil, siteCount: Int,
                     siteIds: [String] = [], reserved: Set<String> = [], reader: inout YAMLReader) -> [Scenario.Arm] {
        var arms: [Scenario.Arm] = []
        guard let node, let list = reader.sequence(node, "arms") else { return arms }
        if list.isEmpty { reader.fail(node, "arms", "list at least one arm") }
        for (i, item) in list.enumerated() {
            if var arm = arm(item, "arms[\(i)]", earlier: arms, federation: federation, model: model, transformer: transformer, siteCount: siteCount,
                             reserved: reserved, reader: &reader) {
                arm.trainingSites = trainingSites(item, "arms[\(i)]", siteIds: siteIds, reader: &reader)
                if let training = arm.trainingSites, !training.isEmpty, training.count < federation.participation.quorum {
                    reader.fail(item.mapping?["training_sites"], "arms[\(i)].training_sites",
                                "\(training.count) training site(s) can never reach the federation's quorum of \(federation.participation.quorum)")
                }
                arms.append(arm)
            }
        }
        return arms
    }

    /// One arm: its mode, then privacy, strategy, name and training overrides, then the mode's own
    /// settings. Unset values come from `federation`.
    static func arm(_ item: Node, _ field: String, earlier: [Scenario.Arm], federation: Scenario.Federation, model: MLPConfiguration,
                    transformer: Scenario.TransformerModel? = nil, siteCount: Int, reserved: Set<String> = [], reader: inout YAMLReader) -> Scenario.Arm? {
        guard let fields = reader.mapping(item, field, allowed: armKeys, required: ["mode"]) else { return nil }
        guard let modeNode = fields["mode"], let mode = reader.choice(modeNode, "\(field).mode", FineTuningMode.self)
        else { return nil }
        var arm = Scenario.Arm(name: mode.rawValue, mode: mode, learningRate: federation.learningRate,
                               localEpochs: federation.localEpochs, modeSettings: mode.resolved(),
                               strategy: StrategyRegistry.standard, strategyOptions: StrategyRegistry.standard.resolved([:]),
                               privacy: nil, secureAggregation: false)
        if let n = fields["dp"] {
            arm.privacy = privacy(n, "\(field).dp", sampling: federation.participation.sampling, siteCount: siteCount, reader: &reader)
        }
        if let n = fields["secure_aggregation"], let v = reader.boolean(n, "\(field).secure_aggregation") { arm.secureAggregation = v }
        strategy(fields, field, into: &arm, reader: &reader)
        if let n = fields["name"], let v = reader.string(n, "\(field).name") {
            if SafeText.isLabel(v) && !v.contains("/") { arm.name = v } else { reader.fail(n, "\(field).name", SafeText.labelRule + "; no '/'") }
        }
        // Two arms of one name (a repeated `name:`, or two unnamed arms of one mode) would give two
        // identical-looking rows and share their training streams, which are keyed by arm name.
        if earlier.contains(where: { $0.name == arm.name }) {
            let hint = fields["name"] == nil ? "; give each arm of mode '\(arm.mode.name)' its own `name:`" : ""
            reader.fail(fields["name"] ?? modeNode, "\(field).\(fields["name"] == nil ? "mode" : "name")", "arm '\(arm.name)' is defined twice\(hint)")
        } else if reserved.contains(arm.name) {
            reader.fail(fields["name"] ?? modeNode, "\(field).name", "'\(arm.name)' names a baseline's row; give the arm another name")
        }
        if let n = fields["learning_rate"], let v = reader.number(n, "\(field).learning_rate", in: 1e-7...10, what: "a positive learning rate up to 10") { arm.learningRate = v }
        if let n = fields["local_epochs"], let v = reader.integer(n, "\(field).local_epochs", in: 1...1000, what: "an integer from 1 to 1000") { arm.localEpochs = v }
        if let n = fields["model"], let v = reader.choice(n, "\(field).model", among: ["transformer", "mlp"]) {
            if transformer == nil && v == "mlp" {
                reader.fail(n, "\(field).model", "every arm trains the MLP here; `model: mlp` picks it out in a scenario whose model is a transformer")
            } else if transformer == nil {
                reader.fail(n, "\(field).model", "the scenario's model is the MLP; give `model: {kind: transformer, ...}` to fine-tune a transformer")
            }
            arm.onMLP = v == "mlp"
        }
        modeSettings(fields, field, model: model, into: &arm, reader: &reader)
        if transformer == nil || arm.onMLP {
            if let problem = mode.problem(with: model) { reader.fail(modeNode, "\(field).mode", problem) }
        } else if let problem = mode.transformerProblem(settings: arm.modeSettings) {
            reader.fail(fields[mode.name] ?? modeNode, "\(field).\(fields[mode.name] == nil ? "mode" : mode.name)", problem)
        }
        return arm
    }

    /// `training_sites`: the arm's federation trains at these sites only (nil: every site).
    static func trainingSites(_ item: Node, _ field: String, siteIds: [String], reader: inout YAMLReader) -> [String]? {
        guard let node = item.mapping?["training_sites"] else { return nil }
        return siteList(node, "\(field).training_sites", siteIds: siteIds, reader: &reader)
    }

    /// A list of distinct site ids of this scenario, at least one (nil when it is not a list).
    static func siteList(_ node: Node, _ field: String, siteIds: [String], reader: inout YAMLReader) -> [String]? {
        guard let items = reader.sequence(node, field) else { return nil }
        var ids: [String] = []
        for (j, entry) in items.enumerated() {
            guard let id = reader.string(entry, "\(field)[\(j)]") else { continue }
            if !siteIds.contains(id) {
                reader.fail(entry, "\(field)[\(j)]", "'\(id)' is not a site of this scenario; use one of: \(siteIds.joined(separator: ", "))")
            } else if ids.contains(id) {
                reader.fail(entry, "\(field)[\(j)]", "site '\(id)' is listed twice")
            } else {
                ids.append(id)
            }
        }
        let key = field.split(separator: ".").last.map(String.init) ?? field
        if items.isEmpty { reader.fail(node, field, "list at least one site, or leave \(key) out for all of them") }
        return ids
    }

    /// `dp`: site-level DP-FedAvg settings, or nil when they do not parse.
    static func privacy(_ node: Node, _ field: String, sampling: ParticipationSettings.Sampling, siteCount: Int,
                        reader: inout YAMLReader) -> DPSettings? {
        guard let d = reader.mapping(node, field, allowed: ["clip_norm", "noise_multiplier", "delta", "epsilon_budget"],
                                     required: ["clip_norm", "noise_multiplier"]) else { return nil }
        var settings = DPSettings(clipNorm: 1, noiseMultiplier: 1)
        if let c = d["clip_norm"], let v = reader.number(c, "\(field).clip_norm", in: 1e-9...1e9, what: "a positive L2 norm") { settings.clipNorm = v }
        if let c = d["noise_multiplier"], let v = reader.number(c, "\(field).noise_multiplier", in: 0...1000, what: "a number from 0 to 1000") { settings.noiseMultiplier = v }
        if let c = d["delta"], let v = reader.number(c, "\(field).delta", in: 1e-20...0.5, what: "a probability above 0 and at most 0.5") { settings.delta = v }
        if let c = d["epsilon_budget"], let v = reader.number(c, "\(field).epsilon_budget", in: 1e-6...1e6, what: "a positive ε") { settings.epsilonBudget = v }
        // The accountant bounds the Poisson-subsampled Gaussian mechanism. A fixed count
        // of k sites out of K is a different mechanism; reporting its ε as Poisson with
        // q = k/K would print a number the analysis does not back.
        if case .count(let k) = sampling, k < siteCount {
            let fraction = (Double(k) / Double(siteCount) * 1000).rounded() / 1000
            reader.fail(node, field, "the privacy accountant covers Poisson sampling, not a fixed count of sites "
                        + "(federation.sampling.count: \(k)); use federation.sampling.fraction: \(fraction) "
                        + "(each site joins with that probability) or let every site train each round")
        }
        return settings
    }

    /// `strategy` and the settings it reads, as its `StrategyDescriptor` declares them. A setting
    /// given for a strategy that does not read it is an error naming the strategies that do.
    static func strategy(_ fields: [String: Node], _ field: String, into arm: inout Scenario.Arm, reader: inout YAMLReader) {
        if let n = fields["strategy"],
           let name = reader.choice(n, "\(field).strategy", among: StrategyRegistry.all.map(\.name)),
           let descriptor = StrategyRegistry.named(name) {
            arm.strategy = descriptor
            if let problem = descriptor.problem(with: arm.mode) { reader.fail(n, "\(field).strategy", problem) }
        }
        var given: [String: Double] = [:]
        for key in StrategyRegistry.settingKeys {
            guard let n = fields[key] else { continue }
            guard let setting = arm.strategy.setting(key) else {
                reader.fail(n, "\(field).\(key)", "\(key) needs strategy \(strategiesReading(key))")
                continue
            }
            if let v = reader.number(n, "\(field).\(key)", in: setting.range, what: setting.expected) { given[key] = v }
        }
        arm.strategyOptions = arm.strategy.resolved(given)
    }

    /// The strategies that read `key`, as an error names them: one quoted, several as a list.
    static func strategiesReading(_ key: String) -> String {
        let names = StrategyRegistry.reading(key).map(\.name)
        guard names.count > 1, let last = names.last else { return "'\(names.first ?? "")'" }
        return names.dropLast().joined(separator: ", ") + " or " + last
    }

    /// The mode's own settings under the key of its name (`lora: {rank: 4}`, `adapter: {bottleneck: 8}`),
    /// read as the mode declares them; settings for another mode than the arm's are an error.
    static func modeSettings(_ fields: [String: Node], _ field: String, model: MLPConfiguration, into arm: inout Scenario.Arm,
                             reader: inout YAMLReader) {
        for other in FineTuningMode.all where other != arm.mode && !other.settings.isEmpty {
            if let n = fields[other.name] { reader.fail(n, "\(field).\(other.name)", "\(other.title) settings need mode '\(other.name)'") }
        }
        let mode = arm.mode
        guard !mode.settings.isEmpty, let n = fields[mode.name],
              let given = reader.mapping(n, "\(field).\(mode.name)", allowed: mode.settings.map(\.key)) else { return }
        var values: [String: ModeSettingValue] = [:]
        for setting in mode.settings {
            guard let node = given[setting.key] else { continue }
            if let value = modeSetting(node, "\(field).\(mode.name).\(setting.key)", setting.kind, model: model, reader: &reader) {
                values[setting.key] = value
            }
        }
        arm.modeSettings = mode.resolved(values)
    }

    /// One mode setting's value, checked against what its kind accepts.
    static func modeSetting(_ node: Node, _ field: String, _ kind: ModeSetting.Kind, model: MLPConfiguration,
                            reader: inout YAMLReader) -> ModeSettingValue? {
        switch kind {
        case .integer(let range, let expected):
            return reader.integer(node, field, in: range, what: expected).map { .integer($0) }
        case .number(let range, let expected):
            return reader.number(node, field, in: range, what: expected).map { .number($0) }
        case .flag:
            return reader.boolean(node, field).map { .flag($0) }
        case .layers:
            guard let items = reader.sequence(node, field) else { return nil }
            let count = model.hiddenSizes.count + 1
            return .layers(items.enumerated().compactMap { i, item in
                reader.integer(item, "\(field)[\(i)]", in: 0...(count - 1), what: "a layer index from 0 to \(count - 1)")
            })
        }
    }
}
