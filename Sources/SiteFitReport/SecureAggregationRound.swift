// How secure aggregation went in one round, as metrics.json stores it and the report words it.

/// One round of secure aggregation (Bonawitz et al. 2017): the masking set against the threshold,
/// how the round ended, dropped sites recovered from shares, values clamped, and each step's cost.
public struct SecureAggregationRound: Codable, Sendable, Equatable {
    /// Where a secure round ended.
    public enum Result: String, Codable, Sendable {
        case aggregated
        /// Fewer sites than the threshold could mask together: nobody trained or sent anything.
        case abortedBeforeMasking = "aborted before masking"
        /// Fewer masked vectors than the threshold arrived: the server unmasked nothing.
        case abortedAtUnmasking = "aborted at unmasking"
    }

    public var maskingSet: Int
    public var threshold: Int
    public var survivors: Int
    public var result: Result
    /// Dropped sites whose pairwise masks were removed with the survivors' Shamir shares.
    public var recoveredDropouts: Int
    /// Values clamped to the quantisation range, summed over the survivors (nil when nothing was unmasked).
    public var clamped: Int?
    public var steps: [Step]

    public init(maskingSet: Int, threshold: Int, survivors: Int, result: Result, recoveredDropouts: Int, clamped: Int?, steps: [Step]) {
        self.maskingSet = maskingSet
        self.threshold = threshold
        self.survivors = survivors
        self.result = result
        self.recoveredDropouts = recoveredDropouts
        self.clamped = clamped
        self.steps = steps
    }

    /// Messages and payload bytes of one protocol step.
    public struct Step: Codable, Sendable, Equatable {
        /// The protocol's four steps, in order.
        public enum Name: String, Codable, Sendable, CaseIterable {
            case advertiseKeys = "advertise keys", shareKeys = "share keys", maskedInput = "masked input", unmasking
        }

        public var step: Name
        public var messagesUp: Int
        public var bytesUp: Int
        public var messagesDown: Int
        public var bytesDown: Int

        public init(step: Name, messagesUp: Int, bytesUp: Int, messagesDown: Int, bytesDown: Int) {
            self.step = step
            self.messagesUp = messagesUp
            self.bytesUp = bytesUp
            self.messagesDown = messagesDown
            self.bytesDown = bytesDown
        }

        enum CodingKeys: String, CodingKey {
            case step, messagesUp = "messages_up", bytesUp = "bytes_up", messagesDown = "messages_down", bytesDown = "bytes_down"
        }
    }

    enum CodingKeys: String, CodingKey {
        case maskingSet = "masking_set", threshold, survivors, result, recoveredDropouts = "recovered_dropouts", clamped, steps
    }
}

/// An arm's secure rounds added up (over every seed once the seeds are folded): how many ended
/// which way, dropped sites recovered, values clamped, and the messages and bytes of each step.
public struct SecureAggregationTotals: Codable, Sendable, Equatable {
    public var rounds: Int
    public var aggregated: Int
    public var abortedBeforeMasking: Int
    public var abortedAtUnmasking: Int
    public var recoveredDropouts: Int
    public var clamped: Int
    /// The largest threshold any round used.
    public var threshold: Int
    public var steps: [SecureAggregationRound.Step]

    /// The totals of `rounds` (the rounds without a secure record are not counted).
    public init(_ rounds: [RoundMetrics]) {
        let secure = rounds.compactMap(\.secureAggregation)
        self.rounds = secure.count
        aggregated = secure.filter { $0.result == .aggregated }.count
        abortedBeforeMasking = secure.filter { $0.result == .abortedBeforeMasking }.count
        abortedAtUnmasking = secure.filter { $0.result == .abortedAtUnmasking }.count
        recoveredDropouts = secure.reduce(0) { $0 + $1.recoveredDropouts }
        clamped = secure.reduce(0) { $0 + ($1.clamped ?? 0) }
        threshold = secure.map(\.threshold).max() ?? 0
        steps = SecureAggregationRound.Step.Name.allCases.map { name in
            let same = secure.flatMap(\.steps).filter { $0.step == name }
            return SecureAggregationRound.Step(step: name, messagesUp: same.reduce(0) { $0 + $1.messagesUp },
                                               bytesUp: same.reduce(0) { $0 + $1.bytesUp },
                                               messagesDown: same.reduce(0) { $0 + $1.messagesDown },
                                               bytesDown: same.reduce(0) { $0 + $1.bytesDown })
        }
    }

    /// The sum of several seeds' totals.
    static func summed(_ totals: [SecureAggregationTotals]) -> SecureAggregationTotals? {
        guard var sum = totals.first else { return nil }
        for t in totals.dropFirst() {
            sum.rounds += t.rounds
            sum.aggregated += t.aggregated
            sum.abortedBeforeMasking += t.abortedBeforeMasking
            sum.abortedAtUnmasking += t.abortedAtUnmasking
            sum.recoveredDropouts += t.recoveredDropouts
            sum.clamped += t.clamped
            sum.threshold = max(sum.threshold, t.threshold)
            for i in sum.steps.indices where i < t.steps.count {
                sum.steps[i].messagesUp += t.steps[i].messagesUp
                sum.steps[i].bytesUp += t.steps[i].bytesUp
                sum.steps[i].messagesDown += t.steps[i].messagesDown
                sum.steps[i].bytesDown += t.steps[i].bytesDown
            }
        }
        return sum
    }

    enum CodingKeys: String, CodingKey {
        case rounds, aggregated, abortedBeforeMasking = "aborted_before_masking", abortedAtUnmasking = "aborted_at_unmasking"
        case recoveredDropouts = "recovered_dropouts", clamped, threshold, steps
    }
}
