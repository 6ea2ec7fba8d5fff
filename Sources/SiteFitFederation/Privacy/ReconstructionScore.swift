/// How close an attack's reconstructions came to the patients a site trained on, scored on the
/// site (the only place both exist), in standardised feature units.
public struct ReconstructionScore: Sendable, Equatable, Codable {
    /// Per-feature mean absolute error between each attacked patient and the reconstruction
    /// closest to them, averaged over the attacked patients.
    public var error: Double
    /// Binary features (conditions, drugs, sex, ...): a reconstruction's value above the
    /// standardised 0.5 reads as present. Counts summed over the attacked patients.
    public var truePositives: Int
    public var falsePositives: Int
    public var falseNegatives: Int
    /// Share of the attacked patients whose matched reconstruction lies nearer to them than to
    /// any of the site's held-out patients: the reconstruction singles out a training patient.
    public var identified: Double

    /// F1 of the binary features, or nil when there was nothing to find and nothing was claimed.
    public var f1: Double? {
        let denominator = 2 * truePositives + falsePositives + falseNegatives
        return denominator == 0 ? nil : Double(2 * truePositives) / Double(denominator)
    }

    /// Scores `reconstructions` (rows of `columns` values) against the attacked `batch` rows and
    /// the site's `heldOut` rows; `binary` gives each binary column's standardised threshold.
    ///
    /// Each patient is matched to a different reconstruction, closest pairs first (greedy
    /// one-to-one matching): an attack scores by reconstructing each patient, not by guessing one
    /// patient many times. With fewer reconstructions than patients, the unmatched patients take
    /// their closest reconstruction. Identification is NaN when the site has no held-out patient.
    public static func score(_ reconstructions: [Float], batch: [Float], heldOut: [Float], columns: Int,
                             binary: [(column: Int, threshold: Float)]) -> ReconstructionScore {
        let candidates = reconstructions.count / columns, patients = batch.count / columns, others = heldOut.count / columns
        func distance(_ a: [Float], _ i: Int, _ b: [Float], _ j: Int) -> Double {
            var total = 0.0
            for c in 0..<columns {
                let d = Double(a[i * columns + c] - b[j * columns + c])
                total += d * d
            }
            return total
        }
        var score = ReconstructionScore(error: 0, truePositives: 0, falsePositives: 0, falseNegatives: 0, identified: 0)
        guard candidates > 0, patients > 0 else {
            score.error = .nan
            score.identified = .nan
            return score
        }
        // Every (patient, reconstruction) pair by distance, ties in index order, so the matching is deterministic.
        var pairs: [(distance: Double, patient: Int, candidate: Int)] = []
        pairs.reserveCapacity(patients * candidates)
        for k in 0..<patients { for j in 0..<candidates { pairs.append((distance(reconstructions, j, batch, k), k, j)) } }
        pairs.sort { ($0.distance, $0.patient, $0.candidate) < ($1.distance, $1.patient, $1.candidate) }
        var match = [Int?](repeating: nil, count: patients)
        var taken = [Bool](repeating: false, count: candidates)
        for pair in pairs where match[pair.patient] == nil && !taken[pair.candidate] {
            match[pair.patient] = pair.candidate
            taken[pair.candidate] = true
        }
        var errors = 0.0, identified = 0
        for k in 0..<patients {
            let closest = match[k] ?? (0..<candidates).min { distance(reconstructions, $0, batch, k) < distance(reconstructions, $1, batch, k) }!
            var absolute = 0.0
            for c in 0..<columns { absolute += Double(abs(reconstructions[closest * columns + c] - batch[k * columns + c])) }
            errors += absolute / Double(columns)
            for (column, threshold) in binary {
                let claimed = reconstructions[closest * columns + column] > threshold, present = batch[k * columns + column] > threshold
                if claimed && present { score.truePositives += 1 } else if claimed { score.falsePositives += 1 } else if present { score.falseNegatives += 1 }
            }
            let own = distance(reconstructions, closest, batch, k)
            if (0..<others).allSatisfy({ distance(reconstructions, closest, heldOut, $0) > own }) { identified += 1 }
        }
        score.error = errors / Double(patients)
        score.identified = others == 0 ? .nan : Double(identified) / Double(patients)
        return score
    }
}

/// One attacked update of one site: the setting, each attack's score, and the label leak.
public struct ReconstructionTrial: Sendable, Equatable, Codable {
    public var site: String
    public var batchSize: Int
    public var localSteps: Int
    public var trial: Int
    /// Nil when the update has no input layer with weight and bias (the attack does not apply).
    public var analytic: ReconstructionScore?
    public var optimisation: ReconstructionScore
    /// The optimisation's starting guesses scored as they are: draws from the prior N(0, 1),
    /// matched to the closest patient like a reconstruction. What an attack must beat.
    public var chance: ReconstructionScore
    /// |estimated − true| outcome rate of the attacked batch, from the head bias's change and the
    /// optimisation's dummy patients; nil when the head bias does not travel.
    public var outcomeRateError: Double?

    public init(site: String, batchSize: Int, localSteps: Int, trial: Int, analytic: ReconstructionScore?,
                optimisation: ReconstructionScore, chance: ReconstructionScore, outcomeRateError: Double?) {
        self.chance = chance
        self.site = site
        self.batchSize = batchSize
        self.localSteps = localSteps
        self.trial = trial
        self.analytic = analytic
        self.optimisation = optimisation
        self.outcomeRateError = outcomeRateError
    }

    /// The server's attack on this update: the analytic one where it applies (the server knows
    /// it does: an input layer's weight and bias travel), the optimisation otherwise. The choice
    /// never looks at the patients, which the server does not have.
    public var chosen: ReconstructionScore { analytic ?? optimisation }
}

/// What the reconstruction experiment runs: every batch size × local steps, `trials` attacked
/// updates per site, and the optimisation attack's budget.
public struct ReconstructionSettings: Sendable, Equatable {
    public var batchSizes: [Int]
    public var localSteps: [Int]
    public var budget: Int
    public var trials: Int

    public init(batchSizes: [Int], localSteps: [Int], budget: Int, trials: Int) {
        self.batchSizes = batchSizes
        self.localSteps = localSteps
        self.budget = budget
        self.trials = trials
    }
}
