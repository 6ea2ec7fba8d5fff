import Logging
import SiteFitNN

/// The federated-averaging server (FedAvg, or FedAdam/FedYogi/FedAdagrad on the averaged update). It never holds patient data: it sees only serialised updates,
/// and accepts only tensors in the selection, with the selection's shapes and finite values.
public actor FederatedServer {
    public nonisolated let selection: ParameterSelection
    /// Global values of the selected tensors, packed in selection order; frozen tensors are not
    /// the server's business.
    private var global: [Float]
    private let optimizer: ServerOptimizer
    private var optimizerState: ServerOptimizerState
    private let logger: Logger

    /// Starts from the pretrained values of the selected tensors.
    public init(pretrained: [Float], selection: ParameterSelection, optimizer: ServerOptimizer = .fedAvg,
                logger: Logger = Logger(label: "sitefit.server")) {
        self.selection = selection
        self.logger = logger
        self.optimizer = optimizer
        global = selection.gather(from: pretrained)
        optimizerState = ServerOptimizerState(count: selection.count, optimizer: optimizer)
    }

    /// The round's broadcast: the current global values of the selected tensors.
    public func broadcast(round: Int) -> [UInt8] {
        WireFormat.encode(packed: global, selection: selection,
                          metadata: [WireFormat.Key.kind: "broadcast", WireFormat.Key.round: String(round)])
    }

    /// Validates every update, averages the accepted ones (in the given order) and installs the result.
    /// With no accepted update the global model is left as it was.
    public func aggregate(round: Int, updates: [(site: String, blob: [UInt8])]) -> AggregationOutcome {
        var accepted: [(values: [Float], trainSize: Int)] = []
        var acceptedSites: [String] = []
        var rejected: [(site: String, reason: String)] = []
        for update in updates {
            do throws(UpdateRejection) {
                let (tensors, metadata) = try WireFormat.validate(update.blob, selection: selection)
                guard let size = metadata[WireFormat.Key.trainSize].flatMap(Int.init), size > 0 else {
                    throw UpdateRejection("metadata 'train_size' is missing or not a positive integer")
                }
                guard metadata[WireFormat.Key.round] == String(round) else {
                    throw UpdateRejection("update is for round \(metadata[WireFormat.Key.round] ?? "?"), expected \(round)")
                }
                accepted.append((tensors.flatMap(\.values), size))
                acceptedSites.append(update.site)
            } catch {
                logger.warning("rejected update", metadata: ["site": "\(update.site)", "round": "\(round)", "reason": "\(error.reason)"])
                rejected.append((update.site, error.reason))
            }
        }
        if !accepted.isEmpty {
            global = optimizerState.step(global: global, average: FedAvg.aggregate(accepted), optimizer: optimizer)
        }
        return AggregationOutcome(acceptedSites: acceptedSites, rejected: rejected.map { RejectedUpdate(site: $0.site, reason: $0.reason) })
    }

    /// The current global selected values, packed in selection order.
    public func globalValues() -> [Float] { global }
}

/// What the server did with one round's updates.
public struct AggregationOutcome: Sendable, Equatable {
    public var acceptedSites: [String]
    public var rejected: [RejectedUpdate]
}

/// An update the server refused, with its reason (shown in the report).
public struct RejectedUpdate: Sendable, Equatable, Codable {
    public var site: String
    public var reason: String
}
