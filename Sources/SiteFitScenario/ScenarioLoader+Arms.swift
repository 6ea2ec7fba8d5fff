import SiteFitFederation
import SiteFitNN
import SiteFitTuning
import Yams

extension ScenarioLoader {
    /// Keys of an arm: its own, then every strategy's settings (the JSON Schema test checks the
    /// schema lists the same).
    static let armKeys = ["name", "mode", "learning_rate", "local_epochs", "lora", "adapter", "strategy"]
        + StrategyRegistry.settingKeys + ["dp", "secure_aggregation"]

    /// `arms`: the compared configurations, each a federation from the same pretrained model.
    static func arms(_ node: Node?, federation: Scenario.Federation, model: MLPConfiguration, siteCount: Int,
                     reader: inout YAMLReader) -> [Scenario.Arm] {
        var arms: [Scenario.Arm] = []
        guard let node, let list = reader.sequence(node, "arms") else { return arms }
        if list.isEmpty { reader.fail(node, "arms", "list at least one arm") }
        for (i, item) in list.enumerated() {
            if let arm = arm(item, "arms[\(i)]", earlier: arms, federation: federation, model: model, siteCount: siteCount, reader: &reader) {
                arms.append(arm)
            }
        }
        return arms
    }

    /// One arm: its mode, then privacy, strategy, name and training overrides, then the mode's own
    /// settings. Unset values come from `federation`.
    static func arm(_ item: Node, _ field: String, earlier: [Scenario.Arm], federation: Scenario.Federation, model: MLPConfiguration,
                    siteCount: Int, reader: inout YAMLReader) -> Scenario.Arm? {
        guard let fields = reader.mapping(item, field, allowed: armKeys, required: ["mode"]) else { return nil }
        guard let modeNode = fields["mode"], let mode = reader.choice(modeNode, "\(field).mode", FineTuningMode.self)
        else { return nil }
        var arm = Scenario.Arm(name: mode.rawValue, mode: mode, learningRate: federation.learningRate,
                               localEpochs: federation.localEpochs, lora: nil, loraTrainsBiases: false, adapter: nil,
                               strategy: StrategyRegistry.standard, strategyOptions: StrategyRegistry.standard.resolved([:]),
                               privacy: nil, secureAggregation: false)
        if let n = fields["dp"] {
            arm.privacy = privacy(n, "\(field).dp", sampling: federation.participation.sampling, siteCount: siteCount, reader: &reader)
        }
        if let n = fields["secure_aggregation"], let v = reader.boolean(n, "\(field).secure_aggregation") { arm.secureAggregation = v }
        strategy(fields, field, into: &arm, reader: &reader)
        if let n = fields["name"], let v = reader.string(n, "\(field).name") {
            if earlier.contains(where: { $0.name == v }) { reader.fail(n, "\(field).name", "arm '\(v)' is defined twice") }
            arm.name = v
        }
        if let n = fields["learning_rate"], let v = reader.number(n, "\(field).learning_rate", in: 1e-7...10, what: "a positive learning rate up to 10") { arm.learningRate = v }
        if let n = fields["local_epochs"], let v = reader.integer(n, "\(field).local_epochs", in: 1...1000, what: "an integer from 1 to 1000") { arm.localEpochs = v }
        lora(fields, field, model: model, into: &arm, reader: &reader)
        adapter(fields, field, modeNode: modeNode, model: model, into: &arm, reader: &reader)
        return arm
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

    /// `lora` (mode `lora` only): rank, alpha, which layers get adapters, and whether biases train too.
    static func lora(_ fields: [String: Node], _ field: String, model: MLPConfiguration, into arm: inout Scenario.Arm,
                     reader: inout YAMLReader) {
        guard arm.mode == .lora else {
            if let n = fields["lora"] { reader.fail(n, "\(field).lora", "LoRA settings need mode 'lora'") }
            return
        }
        var lora = LoRAConfiguration(rank: 4, alpha: 8)
        if let n = fields["lora"], let l = reader.mapping(n, "\(field).lora", allowed: ["rank", "alpha", "layers", "train_biases"]) {
            if let r = l["rank"], let v = reader.integer(r, "\(field).lora.rank", in: 1...256, what: "a rank from 1 to 256") { lora.rank = v }
            if let a = l["alpha"], let v = reader.number(a, "\(field).lora.alpha", in: 1e-3...1e4, what: "a positive alpha") { lora.alpha = v }
            if let list = l["layers"], let items = reader.sequence(list, "\(field).lora.layers") {
                let count = model.hiddenSizes.count + 1
                lora.layers = items.enumerated().compactMap { i, item in
                    reader.integer(item, "\(field).lora.layers[\(i)]", in: 0...(count - 1), what: "a layer index from 0 to \(count - 1)")
                }
            }
            if let b = l["train_biases"], let v = reader.boolean(b, "\(field).lora.train_biases") { arm.loraTrainsBiases = v }
        }
        arm.lora = lora
    }

    /// `adapter` (mode `adapter` only): the bottleneck width; the model needs a hidden layer to put it after.
    static func adapter(_ fields: [String: Node], _ field: String, modeNode: Node, model: MLPConfiguration,
                        into arm: inout Scenario.Arm, reader: inout YAMLReader) {
        guard arm.mode == .adapter else {
            if let n = fields["adapter"] { reader.fail(n, "\(field).adapter", "adapter settings need mode 'adapter'") }
            return
        }
        var adapter = AdapterConfiguration(bottleneck: 8)
        if let n = fields["adapter"], let a = reader.mapping(n, "\(field).adapter", allowed: ["bottleneck"]),
           let b = a["bottleneck"], let v = reader.integer(b, "\(field).adapter.bottleneck", in: 1...1024, what: "a width from 1 to 1024") {
            adapter.bottleneck = v
        }
        if model.hiddenSizes.isEmpty { reader.fail(modeNode, "\(field).mode", "adapters sit after hidden layers; the model has none") }
        arm.adapter = adapter
    }
}
