/// What a parameter tensor is for; fine-tuning modes select tensors by role.
///
/// A struct, not an enum, so that a fine-tuning mode that adds tensors (in SiteFitTuning) names
/// their role in its own file: `extension TensorRole { static let loraA = TensorRole("lora_a") }`.
public struct TensorRole: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public var rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }

    public var description: String { rawValue }

    /// A hidden Linear layer's weight and bias.
    public static let weight = TensorRole("weight"), bias = TensorRole("bias")
    /// LayerNorm's gain γ and additive bias β.
    public static let normGain = TensorRole("norm_gain"), normBias = TensorRole("norm_bias")
    /// The output (task head) Linear layer's weight and bias.
    public static let headWeight = TensorRole("head_weight"), headBias = TensorRole("head_bias")

    /// Bias terms in BitFit's sense: every Linear bias and every LayerNorm β.
    public var isBiasTerm: Bool { self == .bias || self == .headBias || self == .normBias }
}

/// One named tensor inside the flat parameter buffer: a dotted key, a shape and a range.
public struct TensorSpec: Sendable, Equatable, Codable {
    /// Dotted key, identical in selections, reports and on the wire (`layers.1.bias`).
    public var name: String
    public var shape: [Int]
    public var role: TensorRole
    /// First element of this tensor in the flat buffer.
    public var offset: Int
    /// Added to the pretrained network by a fine-tuning mode (LoRA factors, adapters, ...), not part of it.
    public var isExtension: Bool

    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset..<(offset + count) }

    public init(name: String, shape: [Int], role: TensorRole, offset: Int, isExtension: Bool = false) {
        self.name = name
        self.shape = shape
        self.role = role
        self.offset = offset
        self.isExtension = isExtension
    }
}

/// The named ranges of a model's single contiguous `Float` parameter buffer (llm.c style).
public struct ParameterLayout: Sendable, Equatable {
    public private(set) var tensors: [TensorSpec] = []
    public private(set) var count = 0

    public init() {}

    /// Appends a tensor after the last one.
    public mutating func append(name: String, shape: [Int], role: TensorRole, isExtension: Bool = false) {
        precondition(tensor(named: name) == nil, "duplicate tensor \(name)")
        let spec = TensorSpec(name: name, shape: shape, role: role, offset: count, isExtension: isExtension)
        tensors.append(spec)
        count += spec.count
    }

    public func tensor(named name: String) -> TensorSpec? {
        tensors.first { $0.name == name }
    }
}

/// A subset of a model's tensors as a sorted list of disjoint ranges of the flat buffer.
///
/// This is what a fine-tuning mode trains and what a site is allowed to send: `gather` packs the
/// selected values contiguously, `scatter` writes them back.
public struct ParameterSelection: Sendable, Equatable {
    /// Selected tensors, in buffer order.
    public let tensors: [TensorSpec]
    /// Sorted, disjoint, merged ranges of the flat buffer.
    public let ranges: [Range<Int>]
    /// Number of selected scalars.
    public let count: Int

    /// Selects the named tensors of `layout`; unknown names are a programming error.
    public init(layout: ParameterLayout, tensorNames: some Sequence<String>) {
        let wanted = Set(tensorNames)
        let chosen = layout.tensors.filter { wanted.contains($0.name) }
        precondition(chosen.count == wanted.count, "selection names a tensor the layout does not have")
        self.init(tensors: chosen)
    }

    init(tensors chosen: [TensorSpec]) {
        let sorted = chosen.sorted { $0.offset < $1.offset }
        var merged: [Range<Int>] = []
        for spec in sorted where spec.count > 0 {
            if let last = merged.last, last.upperBound == spec.offset {
                merged[merged.count - 1] = last.lowerBound..<spec.range.upperBound
            } else {
                merged.append(spec.range)
            }
        }
        tensors = sorted
        ranges = merged
        count = merged.reduce(0) { $0 + $1.count }
    }

    public var tensorNames: [String] { tensors.map(\.name) }

    /// The selected tensors for which `isIncluded` holds.
    public func filter(_ isIncluded: (TensorSpec) -> Bool) -> ParameterSelection {
        ParameterSelection(tensors: tensors.filter(isIncluded))
    }

    /// The selected values, packed in buffer order.
    public func gather(from buffer: [Float]) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(count)
        for range in ranges { out.append(contentsOf: buffer[range]) }
        return out
    }

    /// Writes packed selected values back into their ranges.
    public func scatter(_ packed: [Float], into buffer: inout [Float]) {
        precondition(packed.count == count)
        var cursor = 0
        for range in ranges {
            buffer.replaceSubrange(range, with: packed[cursor..<(cursor + range.count)])
            cursor += range.count
        }
    }

    /// True when the tensor is selected.
    public func contains(tensorNamed name: String) -> Bool {
        tensors.contains { $0.name == name }
    }
}

extension ParameterLayout {
    /// Copies into `buffer` (laid out by `self`) every tensor of `base` (laid out by `baseLayout`)
    /// that this layout also names: how an extended model takes its pretrained values, whatever the model.
    public func copySharedTensors(from base: [Float], layout baseLayout: ParameterLayout, into buffer: inout [Float]) {
        for spec in baseLayout.tensors {
            guard let target = tensor(named: spec.name) else { continue }
            buffer.replaceSubrange(target.range, with: base[spec.range])
        }
    }
}
