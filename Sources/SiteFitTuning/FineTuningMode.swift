import SiteFitNN

/// Which parameters a site fine-tunes and sends.
///
/// - `full`: every tensor.
/// - `bitfit`: only bias terms (Ben Zaken, Ravfogel & Goldberg, arXiv:2106.10199): every Linear
///   bias, all weights frozen at their pretrained values.
public enum FineTuningMode: String, Sendable, Codable, CaseIterable, Equatable {
    case full
    case bitfit

    /// The tensors this mode trains in `layout`.
    public func selection(for layout: ParameterLayout) -> ParameterSelection {
        switch self {
        case .full:
            return ParameterSelection(layout: layout, tensorNames: layout.tensors.map(\.name))
        case .bitfit:
            return ParameterSelection(layout: layout, tensorNames: layout.tensors.filter { $0.role == .bias }.map(\.name))
        }
    }
}
