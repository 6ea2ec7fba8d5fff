import SiteFitCore

// The bootstrap's inner loop: each seed's patients sorted once per model, and every metric of a
// model on a weighted resample in one pass.

/// One model's metrics on one (possibly resampled) test set.
struct MetricValues {
    var auroc = Double.nan, balancedAccuracy = Double.nan, accuracy = Double.nan, brier = Double.nan
    var calibrationInTheLarge = Double.nan, worstSiteAccuracy = Double.nan
    /// Per attribute, each gap kind's value (`GapKind.allCases` order).
    var gaps: [[Double]] = []
    /// Per attribute, each group's TPR (NaN without positives).
    var groupTruePositiveRates: [[Double]] = []

    /// Where a metric's value sits, resolved once per test set so a replicate reads it without hashing names.
    enum Slot {
        case auroc, balancedAccuracy, accuracy, brier, calibrationInTheLarge, worstSiteAccuracy
        case gap(attribute: Int, kind: Int)
        case truePositiveRate(attribute: Int, group: Int)
        case undefined
    }

    static func slot(_ metric: ComparisonMetric, attributeIndex: [String: Int], groupIndex: [String: [String: Int]]) -> Slot {
        switch metric {
        case .auroc: .auroc
        case .balancedAccuracy: .balancedAccuracy
        case .accuracy: .accuracy
        case .brier: .brier
        case .calibrationInTheLarge: .calibrationInTheLarge
        case .worstSiteAccuracy: .worstSiteAccuracy
        case .gap(let kind, let attribute):
            attributeIndex[attribute].map { .gap(attribute: $0, kind: ComparisonMetric.GapKind.allCases.firstIndex(of: kind)!) } ?? .undefined
        case .truePositiveRate(let attribute, let group):
            attributeIndex[attribute].flatMap { a in groupIndex[attribute]?[group].map { .truePositiveRate(attribute: a, group: $0) } } ?? .undefined
        }
    }

    func value(_ slot: Slot) -> Double {
        switch slot {
        case .auroc: auroc
        case .balancedAccuracy: balancedAccuracy
        case .accuracy: accuracy
        case .brier: brier
        case .calibrationInTheLarge: calibrationInTheLarge
        case .worstSiteAccuracy: worstSiteAccuracy
        case .gap(let a, let k): a < gaps.count ? gaps[a][k] : .nan
        case .truePositiveRate(let a, let g): a < groupTruePositiveRates.count ? groupTruePositiveRates[a][g] : .nan
        case .undefined: .nan
        }
    }

    func value(_ metric: ComparisonMetric, attributeIndex: [String: Int], groupIndex: [String: [String: Int]]) -> Double {
        switch metric {
        case .auroc: auroc
        case .balancedAccuracy: balancedAccuracy
        case .accuracy: accuracy
        case .brier: brier
        case .calibrationInTheLarge: calibrationInTheLarge
        case .worstSiteAccuracy: worstSiteAccuracy
        case .gap(let kind, let attribute):
            attributeIndex[attribute].map { gaps[$0][ComparisonMetric.GapKind.allCases.firstIndex(of: kind)!] } ?? .nan
        case .truePositiveRate(let attribute, let group):
            attributeIndex[attribute].flatMap { a in groupIndex[attribute]?[group].map { groupTruePositiveRates[a][$0] } } ?? .nan
        }
    }
}

/// One seed's patients sorted once per model, and every model's metric on each replicate so far.
final class PreparedSeed: @unchecked Sendable {
    // @unchecked: used by one thread at a time inside `PairedBootstrap.compare`.
    let count: Int
    let siteRows: [[Int32]]
    let metrics: [ComparisonMetric]
    let attributeIndex: [String: Int]
    /// Per attribute, each group's index in the model's per-group arrays.
    let groupIndex: [String: [String: Int]]
    /// Where each of `metrics` sits in a model's `MetricValues`.
    let slots: [MetricValues.Slot]
    let models: [String: SortedModel]
    let seed: UInt64
    let purpose: String
    /// Keys this seed's patient resamples: its index, or "shared" when every seed tests the same patients.
    let streamKey: String
    private var points: [String: MetricValues] = [:]
    /// Per model and metric, one value per replicate drawn so far.
    private var values: [String: [[Double]]] = [:]
    private(set) var drawn = 0

    init(_ set: ScoredTestSet, models names: [String], metrics: [ComparisonMetric], options: PairedBootstrap.Options,
         seed: UInt64, purpose: String, streamKey: String) {
        count = set.labels.count
        let siteCount = (set.sites.max() ?? -1) + 1
        var rows = [[Int32]](repeating: [], count: siteCount)
        for (i, s) in set.sites.enumerated() { rows[s].append(Int32(i)) }
        siteRows = rows.filter { !$0.isEmpty }
        self.metrics = metrics
        self.seed = seed
        self.purpose = purpose
        self.streamKey = streamKey
        // The attributes a gap or group rate is asked for, each group with what it is large enough
        // to enter (decided once on all patients, so every replicate compares the same groups, by
        // the rules of `Fairness.gaps`).
        var attributes: [AttributeGroups] = []
        var groupIndex: [String: [String: Int]] = [:]
        for metric in metrics {
            let attribute: String
            switch metric {
            case .gap(_, let a), .truePositiveRate(let a, _): attribute = a
            default: continue
            }
            guard !attributes.contains(where: { $0.name == attribute }) else { continue }
            let values = set.groups[attribute] ?? Array(repeating: "", count: set.labels.count)
            let names = Array(Set(values)).sorted()
            let code = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, Int32($0)) })
            let codes = values.map { code[$0]! }
            var size = [Int](repeating: 0, count: names.count), positives = size
            for (c, y) in zip(codes, set.labels) {
                size[Int(c)] += 1
                if y >= 0.5 { positives[Int(c)] += 1 }
            }
            let large = names.indices.map { size[$0] >= options.minimumGroupSize }
            attributes.append(AttributeGroups(
                name: attribute, codes: codes, large: large,
                withPositives: names.indices.map { large[$0] && positives[$0] >= options.classMinimum },
                withNegatives: names.indices.map { large[$0] && size[$0] - positives[$0] >= options.classMinimum }))
            groupIndex[attribute] = code.mapValues(Int.init)
        }
        self.groupIndex = groupIndex
        let attributeIndex = Dictionary(uniqueKeysWithValues: attributes.enumerated().map { ($1.name, $0) })
        slots = metrics.map { MetricValues.slot($0, attributeIndex: attributeIndex, groupIndex: groupIndex) }
        self.attributeIndex = attributeIndex
        var models: [String: SortedModel] = [:]
        for name in names {
            let scores = set.scores[name] ?? Array(repeating: .nan, count: set.labels.count)
            models[name] = SortedModel(scores: scores, labels: set.labels, sites: set.sites, siteCount: siteCount, attributes: attributes)
        }
        self.models = models
        let unit = [Int32](repeating: 1, count: count)
        for (name, model) in models { points[name] = model.evaluate(weights: unit) }
    }

    func point(_ model: String, _ metric: ComparisonMetric) -> Double {
        if model == PairedBootstrap.zero { return 0 }
        return points[model]?.value(metric, attributeIndex: attributeIndex, groupIndex: groupIndex) ?? .nan
    }

    func replicates(_ model: String, _ metric: ComparisonMetric) -> [Double] {
        if model == PairedBootstrap.zero { return Array(repeating: 0, count: drawn) }
        guard let m = metrics.firstIndex(of: metric), let all = values[model] else { return [] }
        return all[m]
    }

    /// Draws replicates `drawn..<target`: each resamples every site's patients (as many as it has),
    /// from a stream keyed by the replicate, and scores every model on that resample.
    func extend(to target: Int) {
        guard target > drawn else { return }
        var weights = [Int32](repeating: 0, count: count)
        for name in models.keys where values[name] == nil { values[name] = Array(repeating: [], count: metrics.count) }
        let names = models.keys.sorted()
        for r in drawn..<target {
            for i in weights.indices { weights[i] = 0 }
            var random = RandomStream(seed: seed, "paired-bootstrap", purpose, streamKey, String(r))
            for rows in siteRows {
                for _ in 0..<rows.count { weights[Int(rows[random.int(below: rows.count)])] += 1 }
            }
            for name in names {
                let result = models[name]!.evaluate(weights: weights)
                for m in slots.indices { values[name]![m].append(result.value(slots[m])) }
            }
        }
        drawn = target
    }
}

/// One attribute's groups: each patient's group code, and which groups may enter which gap.
struct AttributeGroups {
    var name: String
    var codes: [Int32]
    /// At least the minimum group size: enters demographic parity and calibration gaps.
    var large: [Bool]
    /// Large, with enough positives for a TPR (and, with `withNegatives`, a within-group AUROC).
    var withPositives: [Bool]
    /// Large, with enough negatives for an FPR.
    var withNegatives: [Bool]
}

/// One model's scores sorted ascending once, so that every weighted replicate is a single pass.
struct SortedModel {
    let order: [Int32]
    let scores: [Float]
    let positive: [Bool]
    let sites: [Int32]
    let siteCount: Int
    /// Per attribute, its groups; each group's tallies start at `groupOffsets[a] + group`.
    let attributes: [AttributeGroups]
    let groupOffsets: [Int]
    /// Row-major (sorted row, attribute): the row's group slot.
    let rowSlots: [Int32]
    let defined: Bool

    init(scores raw: [Float], labels: [Float], sites rawSites: [Int], siteCount: Int, attributes: [AttributeGroups]) {
        defined = raw.allSatisfy(\.isFinite)
        let order = raw.indices.sorted { raw[$0] < raw[$1] || (raw[$0] == raw[$1] && $0 < $1) }
        self.order = order.map { Int32($0) }
        scores = order.map { raw[$0] }
        positive = order.map { labels[$0] >= 0.5 }
        sites = order.map { Int32(rawSites[$0]) }
        self.siteCount = siteCount
        self.attributes = attributes
        var offsets = [0]
        for a in attributes { offsets.append(offsets.last! + a.large.count) }
        groupOffsets = offsets
        var slots = [Int32](repeating: 0, count: order.count * attributes.count)
        for (k, row) in order.enumerated() {
            for (a, attribute) in attributes.enumerated() { slots[k * attributes.count + a] = Int32(offsets[a]) + attribute.codes[row] }
        }
        rowSlots = slots
    }

    /// Every metric with patient i counted weights[i] times (0 = not drawn), in one pass over the
    /// rows in ascending score. Group tallies of every attribute live in flat buffers indexed by
    /// `groupOffsets[a] + group`, so the pass allocates nothing per row.
    func evaluate(weights: [Int32]) -> MetricValues {
        var values = MetricValues()
        let kinds = ComparisonMetric.GapKind.allCases.count
        values.gaps = attributes.map { _ in Array(repeating: .nan, count: kinds) }
        values.groupTruePositiveRates = attributes.map { a in a.large.map { _ in .nan } }
        guard defined else { return values }
        let n = order.count, attributeCount = attributes.count, groupSlots = groupOffsets.last ?? 0
        var total = 0.0, positives = 0.0, scoreSum = 0.0, squares = 0.0
        var tp = 0.0, tn = 0.0, negativesBelow = 0.0, pairs = 0.0
        var siteTotal = [Double](repeating: 0, count: siteCount), siteCorrect = siteTotal
        // Per group slot: size, positives, selected, true positives, false positives, score sum,
        // AUROC pairs won, negatives below the current score, negatives tied at it.
        var tally = [Double](repeating: 0, count: groupSlots * 9)
        tally.withUnsafeMutableBufferPointer { t in
            let size = 0, pos = groupSlots, sel = 2 * groupSlots, tps = 3 * groupSlots, fps = 4 * groupSlots
            let sum = 5 * groupSlots, won = 6 * groupSlots, below = 7 * groupSlots, tied = 8 * groupSlots
            var i = 0
            // A run of tied scores is one step of the ROC curve: its positives beat the negatives
            // below it and tie (½) with the negatives in it.
            while i < n {
                var j = i + 1
                let s = scores[i]
                while j < n && scores[j] == s { j += 1 }
                let predicted = s >= 0.5
                // A run of one row (nearly every run: scores are continuous) needs no tie bookkeeping.
                let single = j - i == 1
                var runPositives = 0.0, runNegatives = 0.0
                for k in i..<j {
                    let w = Double(weights[Int(order[k])])
                    guard w > 0 else { continue }
                    let y = positive[k], site = Int(sites[k])
                    total += w
                    scoreSum += w * Double(s)
                    let error = Double(s) - (y ? 1 : 0)
                    squares += w * error * error
                    siteTotal[site] += w
                    if predicted == y { siteCorrect[site] += w }
                    if y {
                        positives += w
                        runPositives += w
                        if predicted { tp += w }
                    } else {
                        runNegatives += w
                        if !predicted { tn += w }
                    }
                    let base = k * attributeCount
                    for a in 0..<attributeCount {
                        let g = Int(rowSlots[base + a])
                        t[size + g] += w
                        t[sum + g] += w * Double(s)
                        if predicted { t[sel + g] += w }
                        if y {
                            t[pos + g] += w
                            if predicted { t[tps + g] += w }
                            t[won + g] += w * t[below + g]
                        } else {
                            if predicted { t[fps + g] += w }
                            if single { t[below + g] += w } else { t[tied + g] += w }
                        }
                    }
                }
                pairs += runPositives * negativesBelow + 0.5 * runPositives * runNegatives
                negativesBelow += runNegatives
                if attributeCount > 0 && !single {
                    // Within-group ties: each positive of the run ties with its group's negatives of the run.
                    for k in i..<j where positive[k] {
                        let w = Double(weights[Int(order[k])])
                        guard w > 0 else { continue }
                        for a in 0..<attributeCount {
                            let g = Int(rowSlots[k * attributeCount + a])
                            t[won + g] += 0.5 * w * t[tied + g]
                        }
                    }
                    for k in i..<j where !positive[k] {
                        for a in 0..<attributeCount {
                            let g = Int(rowSlots[k * attributeCount + a])
                            t[below + g] += t[tied + g]
                            t[tied + g] = 0
                        }
                    }
                }
                i = j
            }
        }
        let negatives = total - positives
        guard total > 0 else { return values }
        values.accuracy = (tp + tn) / total
        values.brier = squares / total
        values.calibrationInTheLarge = abs(scoreSum / total - positives / total)
        if positives > 0 && negatives > 0 {
            values.auroc = pairs / (positives * negatives)
            values.balancedAccuracy = (tp / positives + tn / negatives) / 2
        }
        var worst = Double.infinity
        for s in 0..<siteCount where siteTotal[s] > 0 { worst = min(worst, siteCorrect[s] / siteTotal[s]) }
        values.worstSiteAccuracy = worst.isFinite ? worst : .nan
        for (a, groups) in attributes.enumerated() {
            var selection: [Double] = [], tpr: [Double] = [], fpr: [Double] = [], auroc: [Double] = [], calibration: [Double] = []
            for g in groups.large.indices {
                let slot = groupOffsets[a] + g
                let size = tally[slot], pos = tally[groupSlots + slot], sel = tally[2 * groupSlots + slot]
                let tps = tally[3 * groupSlots + slot], fps = tally[4 * groupSlots + slot], sum = tally[5 * groupSlots + slot]
                let won = tally[6 * groupSlots + slot]
                let neg = size - pos
                if pos > 0 { values.groupTruePositiveRates[a][g] = tps / pos }
                guard groups.large[g], size > 0 else { continue }
                selection.append(sel / size)
                calibration.append((sum - pos) / size)
                if groups.withPositives[g] && pos > 0 { tpr.append(tps / pos) }
                if groups.withNegatives[g] && neg > 0 { fpr.append(fps / neg) }
                if groups.withPositives[g] && groups.withNegatives[g] && pos > 0 && neg > 0 { auroc.append(won / (pos * neg)) }
            }
            func spread(_ x: [Double]) -> Double { x.count >= 2 ? x.max()! - x.min()! : .nan }
            let (tprGap, fprGap) = (spread(tpr), spread(fpr))
            let odds = tprGap.isNaN ? fprGap : fprGap.isNaN ? tprGap : max(tprGap, fprGap)
            // GapKind.allCases order: demographic parity, equal opportunity, equalised odds, AUROC, calibration.
            values.gaps[a] = [spread(selection), tprGap, odds, spread(auroc), spread(calibration)]
        }
        return values
    }
}
