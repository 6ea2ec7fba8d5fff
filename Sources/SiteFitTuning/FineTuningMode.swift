import SiteFitNN

/// A fine-tuning mode: which parameters a site trains and sends, the tensors (if any) it adds to
/// the pretrained network, and the settings an arm may give it.
///
/// Each mode is declared in its own file under `Modes/` (or beside its units, as LoRA and
/// adapters are) as a static member, and `FineTuningMode.all` lists them: adding a mode is its
/// file, its test and one line there. The scenario loader, the JSON Schema test and the
/// simulation read nothing else.
public struct FineTuningMode: Sendable, CustomStringConvertible {
    /// The name in scenarios and reports (`full`, `bitfit`, ...); also the arm key of its settings.
    public let name: String
    /// The name in prose ("LoRA"), for messages.
    public let title: String
    /// One line: what trains, and the paper the mode comes from.
    public let summary: String
    /// What an arm may set under the key `name` (e.g. `lora: {rank: 4}`), in the order checked.
    public let settings: [ModeSetting]
    private let selects: @Sendable (TensorSpec, ModeSettingValues) -> Bool
    private let extender: (@Sendable (MLP, ModeSettingValues) -> MLP)?
    private let modelProblem: @Sendable (MLPConfiguration) -> String?

    /// `selects` decides, tensor by tensor, what the mode trains; `extend` (when the mode adds
    /// tensors) builds the arm's network; `modelProblem` says why a model cannot take the mode.
    public init(name: String, title: String? = nil, summary: String, settings: [ModeSetting] = [],
                selects: @escaping @Sendable (TensorSpec, ModeSettingValues) -> Bool,
                extend: (@Sendable (MLP, ModeSettingValues) -> MLP)? = nil,
                modelProblem: @escaping @Sendable (MLPConfiguration) -> String? = { _ in nil }) {
        precondition(Set(settings.map(\.key)).count == settings.count, "\(name) lists a setting twice")
        self.name = name
        self.title = title ?? name
        self.summary = summary
        self.settings = settings
        self.selects = selects
        extender = extend
        self.modelProblem = modelProblem
    }

    public var description: String { name }

    /// Whether the mode adds tensors to the network (LoRA factors, adapters, ...).
    public var extendsModel: Bool { extender != nil }

    /// Every setting's value: the one given, or its default.
    public func resolved(_ given: [String: ModeSettingValue] = [:]) -> ModeSettingValues {
        ModeSettingValues(Dictionary(uniqueKeysWithValues: settings.map { ($0.key, given[$0.key] ?? $0.defaultValue) }))
    }

    /// The tensors this mode trains in `layout`.
    public func selection(for layout: ParameterLayout, settings values: ModeSettingValues? = nil) -> ParameterSelection {
        let values = values ?? resolved()
        return ParameterSelection(layout: layout, tensorNames: layout.tensors.filter { selects($0, values) }.map(\.name))
    }

    /// The network an arm of this mode trains: `mlp` itself, or extended with the mode's units;
    /// the new tensors start as the identity change.
    public func network(extending mlp: MLP, settings values: ModeSettingValues? = nil) -> MLP {
        extender?(mlp, values ?? resolved()) ?? mlp
    }

    /// Why a model of `configuration` cannot take this mode, in words for a scenario error; nil when it can.
    public func problem(with configuration: MLPConfiguration) -> String? { modelProblem(configuration) }

    /// Every mode a scenario can name, in the order errors and the schema list them.
    public static let all: [FineTuningMode] = [
        .full,
        .bitfit,
        .bitfitHead,
        .head,
        .lora,
        .adapter,
        .ia3,
    ]

    /// The mode called `name`, or nil.
    public static func named(_ name: String) -> FineTuningMode? { all.first { $0.name == name } }
}

extension FineTuningMode: RawRepresentable, CaseIterable {
    /// The name, as reports and scenarios spell it.
    public var rawValue: String { name }
    /// The registered mode of that name.
    public init?(rawValue: String) {
        guard let mode = Self.named(rawValue) else { return nil }
        self = mode
    }
    public static var allCases: [FineTuningMode] { all }
}

extension FineTuningMode: Equatable, Hashable {
    /// Modes are told apart by name: the registry holds one per name.
    public static func == (a: FineTuningMode, b: FineTuningMode) -> Bool { a.name == b.name }
    public func hash(into hasher: inout Hasher) { hasher.combine(name) }
}

/// One setting a mode reads from an arm (`rank`, `bottleneck`, ...): what the loader accepts,
/// and what an arm that leaves it out gets.
public struct ModeSetting: Sendable {
    /// What kind of value, and the range the loader accepts with its wording for errors
    /// ("expected `a rank from 1 to 256`, found '0'").
    public enum Kind: Sendable {
        case integer(ClosedRange<Int>, expected: String)
        case number(ClosedRange<Double>, expected: String)
        /// Indices of the model's Linear layers (checked against the model).
        case layers
        case flag
    }

    public let key: String
    public let kind: Kind
    public let defaultValue: ModeSettingValue
    /// What the setting does, for readers of a scenario or the schema.
    public let meaning: String

    public init(key: String, kind: Kind, defaultValue: ModeSettingValue, meaning: String) {
        self.key = key
        self.kind = kind
        self.defaultValue = defaultValue
        self.meaning = meaning
    }
}

/// A setting's value.
public enum ModeSettingValue: Sendable, Equatable {
    case integer(Int)
    case number(Double)
    /// Layer indices; nil means every layer.
    case layers([Int]?)
    case flag(Bool)
}

/// The values of a mode's settings for one arm (every setting present: given or default).
public struct ModeSettingValues: Sendable, Equatable {
    public let values: [String: ModeSettingValue]

    public init(_ values: [String: ModeSettingValue]) { self.values = values }

    public func integer(_ key: String) -> Int {
        if case .integer(let v) = values[key] { return v }
        preconditionFailure("mode setting '\(key)' is not an integer")
    }

    public func number(_ key: String) -> Double {
        if case .number(let v) = values[key] { return v }
        preconditionFailure("mode setting '\(key)' is not a number")
    }

    public func layers(_ key: String) -> [Int]? {
        if case .layers(let v) = values[key] { return v }
        preconditionFailure("mode setting '\(key)' is not a list of layers")
    }

    public func flag(_ key: String) -> Bool {
        if case .flag(let v) = values[key] { return v }
        preconditionFailure("mode setting '\(key)' is not a flag")
    }
}
