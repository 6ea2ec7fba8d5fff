import SiteFitCore
import SiteFitFederation
import SiteFitNN
import Yams

extension ScenarioLoader {
    /// Keys of `federation` (the JSON Schema test checks the schema lists the same).
    static let federationKeys = ["rounds", "local_epochs", "local_steps", "batch_size", "optimizer", "learning_rate", "weight_decay",
                                 "gradient_clip_norm", "positive_weight", "sampling", "quorum", "dropout", "stragglers"]

    /// `federation`: rounds, each site's local training, and who takes part in a round.
    static func federation(_ node: Node?, siteIds: [String], reader: inout YAMLReader) -> Scenario.Federation {
        var federation = Scenario.Federation(rounds: 5, localEpochs: 1, batchSize: 32, optimizer: .adam, learningRate: 0.003,
                                             weightDecay: 0.01, gradientClipNorm: nil, positiveWeight: 1, localSteps: nil,
                                             participation: ParticipationSettings())
        guard let node, let fields = reader.mapping(node, "federation", allowed: federationKeys) else { return federation }
        federation.participation = participation(fields, siteIds: siteIds, reader: &reader)
        if let n = fields["local_steps"], let v = reader.integer(n, "federation.local_steps", in: 1...100_000, what: "an integer from 1 to 100000") {
            if fields["local_epochs"] != nil { reader.fail(n, "federation.local_steps", "give local_steps or local_epochs, not both") }
            federation.localSteps = v
        }
        if let n = fields["rounds"], let v = reader.integer(n, "federation.rounds", in: 1...1000, what: "an integer from 1 to 1000") { federation.rounds = v }
        if let n = fields["local_epochs"], let v = reader.integer(n, "federation.local_epochs", in: 1...1000, what: "an integer from 1 to 1000") { federation.localEpochs = v }
        if let n = fields["batch_size"], let v = reader.integer(n, "federation.batch_size", in: 1...4096, what: "an integer from 1 to 4096") { federation.batchSize = v }
        if let n = fields["optimizer"], let v = reader.choice(n, "federation.optimizer", OptimizerKind.self) { federation.optimizer = v }
        if let n = fields["learning_rate"], let v = reader.number(n, "federation.learning_rate", in: 1e-7...10, what: "a positive learning rate up to 10") { federation.learningRate = v }
        if let n = fields["weight_decay"], let v = reader.number(n, "federation.weight_decay", in: 0...1, what: "a number from 0 to 1") { federation.weightDecay = v }
        if let n = fields["gradient_clip_norm"], let v = reader.number(n, "federation.gradient_clip_norm", in: 1e-6...1e6, what: "a positive norm") { federation.gradientClipNorm = v }
        if let n = fields["positive_weight"], let v = reader.number(n, "federation.positive_weight", in: 0.01...100, what: "a weight from 0.01 to 100") { federation.positiveWeight = v }
        return federation
    }

    /// `federation.sampling`, `quorum`, `dropout` and `stragglers`; site ids are checked against the scenario's sites.
    static func participation(_ fields: [String: Node], siteIds: [String], reader: inout YAMLReader) -> ParticipationSettings {
        var settings = ParticipationSettings()
        if let n = fields["sampling"], let m = reader.mapping(n, "federation.sampling", allowed: ["fraction", "count"]) {
            if m.count != 1 { reader.fail(n, "federation.sampling", "give exactly one of fraction or count") }
            if let f = m["fraction"], let v = reader.number(f, "federation.sampling.fraction", in: 1e-6...1, what: "a fraction above 0 and at most 1") {
                settings.sampling = .fraction(v)
            } else if let c = m["count"], let v = reader.integer(c, "federation.sampling.count", in: 1...max(1, siteIds.count), what: "an integer from 1 to \(max(1, siteIds.count)) (the number of sites)") {
                settings.sampling = .count(v)
            }
        }
        if let n = fields["quorum"], let v = reader.integer(n, "federation.quorum", in: 1...max(1, siteIds.count), what: "an integer from 1 to \(max(1, siteIds.count)) (the number of sites)") {
            settings.quorum = v
        }
        if let n = fields["dropout"], let m = reader.mapping(n, "federation.dropout", allowed: ["probability", "schedule"]) {
            dropout(m, siteIds: siteIds, into: &settings, reader: &reader)
        }
        if let n = fields["stragglers"], let m = reader.mapping(n, "federation.stragglers", allowed: ["seconds_per_step", "jitter", "deadline_seconds"]) {
            stragglers(m, siteIds: siteIds, into: &settings, reader: &reader)
        }
        return settings
    }

    /// `federation.dropout`: a per-round probability and a schedule of round → sites that drop.
    static func dropout(_ m: [String: Node], siteIds: [String], into settings: inout ParticipationSettings, reader: inout YAMLReader) {
        if let p = m["probability"], let v = reader.number(p, "federation.dropout.probability", in: 0...1, what: "a probability from 0 to 1") { settings.dropoutProbability = v }
        if let schedule = m["schedule"], let rounds = reader.mapping(schedule, "federation.dropout.schedule", allowed: schedule.mapping?.keys.compactMap { $0.scalar?.string } ?? []) {
            for (key, list) in rounds {
                let field = "federation.dropout.schedule.\(key)"
                guard let round = Int(key), round >= 1 else { reader.fail(list, field, "keys are round numbers from 1, found '\(key)'"); continue }
                guard let items = reader.sequence(list, field) else { continue }
                settings.dropoutSchedule[round] = Set(items.enumerated().compactMap { i, item in
                    knownSite(item, "\(field)[\(i)]", siteIds: siteIds, reader: &reader)
                })
            }
        }
    }

    /// `federation.stragglers`: simulated seconds per step (one for all sites or per site), jitter and deadline.
    static func stragglers(_ m: [String: Node], siteIds: [String], into settings: inout ParticipationSettings, reader: inout YAMLReader) {
        if let perStep = m["seconds_per_step"] {
            if let v = perStep.scalar.flatMap({ Double($0.string) }) {
                if v > 0 && v.isFinite { settings.defaultSecondsPerStep = v } else { reader.fail(perStep, "federation.stragglers.seconds_per_step", "expected a positive number of seconds") }
            } else if let sitesMap = reader.mapping(perStep, "federation.stragglers.seconds_per_step", allowed: ["default"] + siteIds) {
                for (key, value) in sitesMap {
                    guard let v = reader.number(value, "federation.stragglers.seconds_per_step.\(key)", in: 1e-12...1e6, what: "a positive number of seconds") else { continue }
                    if key == "default" { settings.defaultSecondsPerStep = v } else { settings.secondsPerStep[key] = v }
                }
            }
        }
        if let j = m["jitter"], let v = reader.number(j, "federation.stragglers.jitter", in: 0...5, what: "a log-normal spread from 0 to 5") { settings.timeJitter = v }
        if let d = m["deadline_seconds"], let v = reader.number(d, "federation.stragglers.deadline_seconds", in: 1e-9...1e9, what: "a positive number of seconds") { settings.deadlineSeconds = v }
    }

    /// A site id from the scenario's sites, or a did-you-mean diagnostic.
    static func knownSite(_ node: Node, _ field: String, siteIds: [String], reader: inout YAMLReader) -> String? {
        guard let id = reader.string(node, field) else { return nil }
        guard siteIds.contains(id) else {
            var problem = "no site '\(id)' in this scenario"
            if let guess = suggestion(for: id, among: siteIds) { problem += "; did you mean '\(guess)'?" }
            reader.fail(node, field, problem)
            return nil
        }
        return id
    }
}
