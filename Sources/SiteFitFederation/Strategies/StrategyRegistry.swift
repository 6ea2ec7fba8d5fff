import SiteFitTuning

/// One number an arm sets for its strategy (`proximal_mu`, `server_learning_rate`, ...), with
/// what the scenario loader accepts and what an arm that leaves it out gets.
public struct StrategySetting: Sendable {
    /// The arm key in a scenario file.
    public let key: String
    /// The values the loader accepts.
    public let range: ClosedRange<Double>
    /// The range in words, as the loader's error says it: "expected `expected`, found '-3'".
    public let expected: String
    /// The value of an arm that does not set the key.
    public let defaultValue: Double
    /// What the number does, for the reader of a scenario or of the schema.
    public let meaning: String

    public init(key: String, range: ClosedRange<Double>, expected: String, defaultValue: Double, meaning: String) {
        precondition(range.contains(defaultValue), "the default of \(key) must be a value the loader accepts")
        self.key = key
        self.range = range
        self.expected = expected
        self.defaultValue = defaultValue
        self.meaning = meaning
    }
}

/// The values a strategy's factory reads: each setting as the arm gave it, else its default.
public struct StrategySettingValues: Sendable {
    let given: [String: Double]

    public init(_ given: [String: Double]) { self.given = given }

    public subscript(_ setting: StrategySetting) -> Double { given[setting.key] ?? setting.defaultValue }
}

/// A federated strategy as scenarios see it: its name, what it is (with its paper), the arm
/// settings it reads, which fine-tuning modes it can serve, and how to build it.
///
/// Each strategy file declares its descriptor beside its maths, and `StrategyRegistry.all` lists
/// them; the scenario loader, the JSON Schema test and the arm's `makeStrategy` read nothing else,
/// so adding a strategy is its file plus one line in the registry.
public struct StrategyDescriptor: Sendable {
    /// The name in scenarios and reports (`fedavg`, `fedprox`, ...).
    public let name: String
    /// One line: what the server (or the site) does differently, and the paper it comes from.
    public let summary: String
    /// The arm keys it reads, in the order the loader checks them.
    public let settings: [StrategySetting]
    private let modeProblem: @Sendable (FineTuningMode) -> String?
    private let factory: @Sendable (StrategySettingValues, _ trainedCount: Int) -> any FederatedStrategy

    /// `modeProblem` returns why the strategy cannot serve a fine-tuning mode (nil: it can);
    /// `make` builds it from its settings for a trained selection of `trainedCount` values.
    public init(name: String, summary: String, settings: [StrategySetting] = [],
                modeProblem: @escaping @Sendable (FineTuningMode) -> String? = { _ in nil },
                make: @escaping @Sendable (StrategySettingValues, _ trainedCount: Int) -> any FederatedStrategy) {
        precondition(Set(settings.map(\.key)).count == settings.count, "\(name) lists a setting twice")
        self.name = name
        self.summary = summary
        self.settings = settings
        self.modeProblem = modeProblem
        factory = make
    }

    /// The setting read under `key`, or nil when this strategy does not read it.
    public func setting(_ key: String) -> StrategySetting? { settings.first { $0.key == key } }

    /// Every setting's value: the one in `options`, or its default. Keys it does not read are left out.
    public func resolved(_ options: [String: Double]) -> [String: Double] {
        let values = StrategySettingValues(options)
        return Dictionary(uniqueKeysWithValues: settings.map { ($0.key, values[$0]) })
    }

    /// The strategy with fresh server state; `trainedCount` is the size of the trained selection
    /// (what adaptive optimisers keep moments for). A setting missing from `options` takes its default.
    public func make(options: [String: Double], trainedCount: Int) -> any FederatedStrategy {
        factory(StrategySettingValues(options), trainedCount)
    }

    /// Why this strategy cannot serve `mode`, in words for a scenario error; nil when it can.
    public func problem(with mode: FineTuningMode) -> String? { modeProblem(mode) }
}

extension StrategyDescriptor: Equatable {
    /// Descriptors are told apart by name: the registry holds one per name.
    public static func == (lhs: StrategyDescriptor, rhs: StrategyDescriptor) -> Bool { lhs.name == rhs.name }
}

/// Every strategy a scenario can name, in the order errors and the schema list them.
public enum StrategyRegistry {
    public static let all: [StrategyDescriptor] = [
        FedAvg.descriptor,
        FedProx.descriptor,
        FedAdam.descriptor,
        FedYogi.descriptor,
        FedAdagrad.descriptor,
        PersonalizedBitFit.descriptor,
        FedAvgM.descriptor,
    ]

    /// The strategy of an arm that names none.
    public static var standard: StrategyDescriptor { FedAvg.descriptor }

    /// The strategy called `name`, or nil.
    public static func named(_ name: String) -> StrategyDescriptor? { all.first { $0.name == name } }

    /// Every arm key some strategy reads, each once, in the order the strategies list them.
    public static var settingKeys: [String] {
        var keys: [String] = []
        for key in all.flatMap({ $0.settings.map(\.key) }) where !keys.contains(key) { keys.append(key) }
        return keys
    }

    /// The strategies that read `key`.
    public static func reading(_ key: String) -> [StrategyDescriptor] { all.filter { $0.setting(key) != nil } }
}
