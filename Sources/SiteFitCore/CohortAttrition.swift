/// Persons left after each step of a concept-set task's cohort, at one site.
public struct CohortAttrition: Sendable, Equatable, Codable {
    /// Persons with a qualifying target event inside an observation period (their first is the index date).
    public var withTargetEvent: Int
    /// … of whom enough observation before the index date.
    public var withPriorObservation: Int
    /// … of whom without the outcome before the time at risk.
    public var withoutPriorOutcome: Int
    /// … of whom observed long enough at risk, or with the outcome: the cohort.
    public var cohort: Int
    /// Cohort members with the outcome in their time at risk.
    public var outcomes: Int

    public init(withTargetEvent: Int, withPriorObservation: Int, withoutPriorOutcome: Int, cohort: Int, outcomes: Int) {
        self.withTargetEvent = withTargetEvent
        self.withPriorObservation = withPriorObservation
        self.withoutPriorOutcome = withoutPriorOutcome
        self.cohort = cohort
        self.outcomes = outcomes
    }

    enum CodingKeys: String, CodingKey {
        case withTargetEvent = "with_target_event", withPriorObservation = "with_prior_observation"
        case withoutPriorOutcome = "without_prior_outcome", cohort, outcomes
    }
}
