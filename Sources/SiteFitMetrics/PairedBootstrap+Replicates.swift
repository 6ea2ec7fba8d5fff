import SiteFitCore

// The bootstrap's inner loop: each seed's patients sorted once per model, and every metric of a
// model on a weighted resample in one branch-free pass that allocates nothing.

/// One model's metrics on one (possibly resampled) test set.
struct MetricValues {
    var auroc = Double.nan, balancedAccuracy = Double.nan, accuracy = Double.nan, brier = Double.nan
    var calibrationInTheLarge = Double.nan, worstSiteAccuracy = Double.nan
    /// Per attribute, each gap kind's value (`GapKind.allCases` order).
    var gaps: [[Double]] = []
    /// Per attribute, each group's TPR (NaN without positives).
    var groupTruePositiveRates: [[Double]] = []
}

/// Where each metric sits in the flat result of `SortedModel.evaluate`: the six standard metrics,
/// then every attribute's gaps, then every group's true-positive rate.
struct MetricLayout {
    static let standard = 6
    static let kinds = ComparisonMetric.GapKind.allCases.count
    let attributes: [AttributeGroups]
    /// Per attribute, where its groups start among all groups.
    let groupOffsets: [Int]
    var groupCount: Int { groupOffsets.last ?? 0 }
    var count: Int { Self.standard + attributes.count * Self.kinds + groupCount }

    init(attributes: [AttributeGroups]) {
        self.attributes = attributes
        var offsets = [0]
        for a in attributes { offsets.append(offsets.last! + a.large.count) }
        groupOffsets = offsets
    }

    func gap(attribute a: Int, kind k: Int) -> Int { Self.standard + a * Self.kinds + k }
    func truePositiveRate(groupSlot: Int) -> Int { Self.standard + attributes.count * Self.kinds + groupSlot }

    /// The metric's index in a result, or nil when the test set has no such attribute or group.
    func index(_ metric: ComparisonMetric, groupIndex: [String: [String: Int]]) -> Int? {
        switch metric {
        case .auroc: return 0
        case .balancedAccuracy: return 1
        case .accuracy: return 2
        case .brier: return 3
        case .calibrationInTheLarge: return 4
        case .worstSiteAccuracy: return 5
        case .gap(let kind, let attribute):
            guard let a = attributes.firstIndex(where: { $0.name == attribute }),
                  let k = ComparisonMetric.GapKind.allCases.firstIndex(of: kind) else { return nil }
            return gap(attribute: a, kind: k)
        case .truePositiveRate(let attribute, let group):
            guard let a = attributes.firstIndex(where: { $0.name == attribute }), let g = groupIndex[attribute]?[group] else { return nil }
            return truePositiveRate(groupSlot: groupOffsets[a] + g)
        }
    }

    func values(_ flat: [Double]) -> MetricValues {
        var v = MetricValues(auroc: flat[0], balancedAccuracy: flat[1], accuracy: flat[2], brier: flat[3],
                             calibrationInTheLarge: flat[4], worstSiteAccuracy: flat[5])
        v.gaps = attributes.indices.map { a in (0..<Self.kinds).map { flat[gap(attribute: a, kind: $0)] } }
        v.groupTruePositiveRates = attributes.indices.map { a in
            attributes[a].large.indices.map { flat[truePositiveRate(groupSlot: groupOffsets[a] + $0)] }
        }
        return v
    }
}

/// One seed's patients sorted once per model, and every model's metric on each replicate so far.
final class PreparedSeed: @unchecked Sendable {
    // @unchecked: used by one thread at a time inside `PairedBootstrap.compare`.
    let count: Int
    let siteRows: [[Int32]]
    let metrics: [ComparisonMetric]
    /// Per attribute, each group's index in the model's per-group arrays.
    let groupIndex: [String: [String: Int]]
    let layout: MetricLayout
    /// Where each of `metrics` sits in a model's flat result (nil: undefined on this test set).
    let slots: [Int?]
    let modelIndex: [String: Int]
    let models: [SortedModel]
    let seed: UInt64
    let purpose: String
    /// Keys this seed's patient resamples: its index, or "shared" when every seed tests the same patients.
    let streamKey: String
    /// Per model, its flat result on all patients.
    private let points: [[Double]]
    /// Per model, replicate-major: `values[m][r * metrics.count + j]` is metric j on replicate r.
    private var values: [[Double]]
    /// Which replicates have been scored.
    private var computed: [Bool] = []
    /// Replicates with a place in `values` (scored or not).
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
        let layout = MetricLayout(attributes: attributes)
        self.layout = layout
        slots = metrics.map { layout.index($0, groupIndex: groupIndex) }
        modelIndex = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        models = names.map { name in
            SortedModel(scores: set.scores[name] ?? Array(repeating: .nan, count: set.labels.count), labels: set.labels,
                        sites: set.sites, siteCount: siteCount, layout: layout)
        }
        var scratch = SortedModel.Scratch(layout: layout, siteCount: siteCount)
        let unit = [Double](repeating: 1, count: count)
        points = models.map { model in
            unit.withUnsafeBufferPointer { model.evaluate(weights: $0, scratch: &scratch) }
            return scratch.result
        }
        values = Array(repeating: [], count: names.count)
    }

    func point(_ model: String, _ metric: ComparisonMetric) -> Double {
        if model == PairedBootstrap.zero { return 0 }
        guard let m = modelIndex[model], let slot = layout.index(metric, groupIndex: groupIndex) else { return .nan }
        return points[m][slot]
    }

    func replicates(_ model: String, _ metric: ComparisonMetric) -> [Double] {
        if model == PairedBootstrap.zero { return Array(repeating: 0, count: drawn) }
        guard let j = metrics.firstIndex(of: metric), let m = modelIndex[model] else { return [] }
        let stride = metrics.count
        return (0..<drawn).map { values[m][$0 * stride + j] }
    }

    /// Makes replicates `0..<target` available: replicate r resamples every site's patients (as
    /// many as it has) from a stream keyed by r and scores every model on that resample. With
    /// `needed`, only the replicates it marks are scored (the others stay NaN until a later call
    /// needs them): a hierarchical bootstrap reads only the (seed, replicate) pairs it draws. A
    /// replicate's values depend on r alone, so which are scored, and when, changes no result.
    func extend(to target: Int, needed: [Bool]? = nil) {
        let stride = metrics.count
        var all = values
        // Moved out of the instance so appends and writes never copy.
        values = []
        if target > drawn {
            for m in all.indices { all[m].append(contentsOf: repeatElement(.nan, count: (target - drawn) * stride)) }
            computed.append(contentsOf: repeatElement(false, count: target - drawn))
            drawn = target
        }
        var weights = [Double](repeating: 0, count: count)
        var scratch = SortedModel.Scratch(layout: layout, siteCount: models.first?.siteCount ?? 0)
        for r in 0..<target where !computed[r] && (needed?[r] ?? true) {
            for i in weights.indices { weights[i] = 0 }
            var random = RandomStream(seed: seed, "paired-bootstrap", purpose, streamKey, String(r))
            for rows in siteRows {
                for _ in 0..<rows.count { weights[Int(rows[random.int(below: rows.count)])] += 1 }
            }
            for m in models.indices {
                weights.withUnsafeBufferPointer { models[m].evaluate(weights: $0, scratch: &scratch) }
                for (j, slot) in slots.enumerated() { all[m][r * stride + j] = slot.map { scratch.result[$0] } ?? .nan }
            }
            computed[r] = true
        }
        values = all
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
    /// A sorted row with its indicator products precomputed, so the pass multiplies by 0 or 1
    /// instead of branching on the class and the prediction (adding w·0 leaves every sum exactly
    /// as the branching pass left it).
    struct Row {
        var score: Double
        var error: Double
        var positive: Double
        var negative: Double
        var predicted: Double
        var truePositive: Double
        var trueNegative: Double
        var falsePositive: Double
        var correct: Double
        var index: Int32
        var site: Int32
    }

    /// Buffers one evaluation works in, reused across replicates.
    struct Scratch {
        var site: [Double]
        var tally: [Double]
        var result: [Double]

        init(layout: MetricLayout, siteCount: Int) {
            site = Array(repeating: 0, count: 2 * siteCount)
            tally = Array(repeating: 0, count: SortedModel.fields * layout.groupCount)
            result = Array(repeating: .nan, count: layout.count)
        }
    }

    /// Per group: size, positives, selected, true positives, false positives, score sum, AUROC
    /// pairs won, negatives below the current score, negatives tied at it.
    static let fields = 9

    let rows: [Row]
    /// Where each run of tied scores starts, then the row count. Nearly every run is one row.
    let runStarts: [Int32]
    let siteCount: Int
    let layout: MetricLayout
    /// Row-major (sorted row, attribute): the row's group slot.
    let rowSlots: [Int32]
    let defined: Bool

    init(scores raw: [Float], labels: [Float], sites rawSites: [Int], siteCount: Int, layout: MetricLayout) {
        defined = raw.allSatisfy(\.isFinite)
        let order = raw.indices.sorted { raw[$0] < raw[$1] || (raw[$0] == raw[$1] && $0 < $1) }
        rows = order.map { i in
            let s = Double(raw[i]), y = labels[i] >= 0.5, p = raw[i] >= 0.5
            func one(_ b: Bool) -> Double { b ? 1 : 0 }
            return Row(score: s, error: s - one(y), positive: one(y), negative: one(!y), predicted: one(p),
                       truePositive: one(y && p), trueNegative: one(!y && !p), falsePositive: one(!y && p),
                       correct: one(y == p), index: Int32(i), site: Int32(rawSites[i]))
        }
        var starts: [Int32] = []
        for k in order.indices where k == 0 || raw[order[k]] != raw[order[k - 1]] { starts.append(Int32(k)) }
        starts.append(Int32(order.count))
        runStarts = starts
        self.siteCount = siteCount
        self.layout = layout
        let attributes = layout.attributes
        var slots = [Int32](repeating: 0, count: order.count * attributes.count)
        for (k, row) in order.enumerated() {
            for (a, attribute) in attributes.enumerated() {
                slots[k * attributes.count + a] = Int32(layout.groupOffsets[a]) + attribute.codes[row]
            }
        }
        rowSlots = slots
    }

    /// Convenience for tests: integer weights, the metrics as a struct.
    func evaluate(weights: [Int32]) -> MetricValues {
        var scratch = Scratch(layout: layout, siteCount: siteCount)
        weights.map(Double.init).withUnsafeBufferPointer { evaluate(weights: $0, scratch: &scratch) }
        return layout.values(scratch.result)
    }

    /// Every metric with patient i counted weights[i] times (0 = not drawn), in one pass over the
    /// rows in ascending score, into `scratch.result` (laid out by `layout`).
    func evaluate(weights: UnsafeBufferPointer<Double>, scratch: inout Scratch) {
        for i in scratch.result.indices { scratch.result[i] = .nan }
        guard defined else { return }
        let attributeCount = layout.attributes.count, fields = Self.fields
        var total = 0.0, positives = 0.0, scoreSum = 0.0, squares = 0.0
        var tp = 0.0, tn = 0.0, negativesBelow = 0.0, pairs = 0.0
        for i in scratch.site.indices { scratch.site[i] = 0 }
        for i in scratch.tally.indices { scratch.tally[i] = 0 }
        let siteCount = self.siteCount
        rows.withUnsafeBufferPointer { rows in
        runStarts.withUnsafeBufferPointer { runStarts in
        rowSlots.withUnsafeBufferPointer { rowSlots in
        scratch.site.withUnsafeMutableBufferPointer { site in
        scratch.tally.withUnsafeMutableBufferPointer { t in
            // Tally fields at t[group * fields + f].
            let size = 0, pos = 1, sel = 2, tps = 3, fps = 4, sum = 5, won = 6, below = 7, tied = 8
            for run in 0..<(runStarts.count - 1) {
                let i = Int(runStarts[run]), j = Int(runStarts[run + 1])
                if j - i == 1 {
                    // A run of one row (nearly every run: scores are continuous).
                    let row = rows[i]
                    let w = weights[Int(row.index)]
                    let wp = w * row.positive
                    total += w
                    scoreSum += w * row.score
                    squares += w * row.error * row.error
                    site[Int(row.site)] += w
                    site[siteCount + Int(row.site)] += w * row.correct
                    positives += wp
                    tp += w * row.truePositive
                    tn += w * row.trueNegative
                    pairs += wp * negativesBelow
                    negativesBelow += w * row.negative
                    for a in 0..<attributeCount {
                        let g = Int(rowSlots[i * attributeCount + a]) * fields
                        t[g + size] += w
                        t[g + sum] += w * row.score
                        t[g + sel] += w * row.predicted
                        t[g + pos] += wp
                        t[g + tps] += w * row.truePositive
                        t[g + won] += wp * t[g + below]
                        t[g + fps] += w * row.falsePositive
                        t[g + below] += w * row.negative
                    }
                    continue
                }
                // A run of tied scores is one step of the ROC curve: its positives beat the
                // negatives below it and tie (½) with the negatives in it.
                var runPositives = 0.0, runNegatives = 0.0
                for k in i..<j {
                    let row = rows[k]
                    let w = weights[Int(row.index)]
                    guard w > 0 else { continue }
                    total += w
                    scoreSum += w * row.score
                    squares += w * row.error * row.error
                    site[Int(row.site)] += w
                    site[siteCount + Int(row.site)] += w * row.correct
                    tp += w * row.truePositive
                    tn += w * row.trueNegative
                    if row.positive > 0 {
                        positives += w
                        runPositives += w
                    } else {
                        runNegatives += w
                    }
                    for a in 0..<attributeCount {
                        let g = Int(rowSlots[k * attributeCount + a]) * fields
                        t[g + size] += w
                        t[g + sum] += w * row.score
                        t[g + sel] += w * row.predicted
                        if row.positive > 0 {
                            t[g + pos] += w
                            t[g + tps] += w * row.truePositive
                            t[g + won] += w * t[g + below]
                        } else {
                            t[g + fps] += w * row.falsePositive
                            t[g + tied] += w
                        }
                    }
                }
                pairs += runPositives * negativesBelow + 0.5 * runPositives * runNegatives
                negativesBelow += runNegatives
                guard attributeCount > 0 else { continue }
                // Within-group ties: each positive of the run ties with its group's negatives of the run.
                for k in i..<j where rows[k].positive > 0 {
                    let w = weights[Int(rows[k].index)]
                    guard w > 0 else { continue }
                    for a in 0..<attributeCount {
                        let g = Int(rowSlots[k * attributeCount + a]) * fields
                        t[g + won] += 0.5 * w * t[g + tied]
                    }
                }
                for k in i..<j where rows[k].positive == 0 {
                    for a in 0..<attributeCount {
                        let g = Int(rowSlots[k * attributeCount + a]) * fields
                        t[g + below] += t[g + tied]
                        t[g + tied] = 0
                    }
                }
            }
        }}}}}
        let negatives = total - positives
        guard total > 0 else { return }
        scratch.result[2] = (tp + tn) / total
        scratch.result[3] = squares / total
        scratch.result[4] = abs(scoreSum / total - positives / total)
        if positives > 0 && negatives > 0 {
            scratch.result[0] = pairs / (positives * negatives)
            scratch.result[1] = (tp / positives + tn / negatives) / 2
        }
        var worst = Double.infinity
        for s in 0..<siteCount where scratch.site[s] > 0 { worst = min(worst, scratch.site[siteCount + s] / scratch.site[s]) }
        scratch.result[5] = worst.isFinite ? worst : .nan
        finishGaps(&scratch)
    }

    /// Each attribute's five gaps and each group's TPR from the group tallies, as `Fairness.gaps` defines them.
    private func finishGaps(_ scratch: inout Scratch) {
        /// The spread (largest − smallest) of the values seen, NaN below two values.
        struct Spread {
            var low = Double.infinity, high = -Double.infinity, count = 0
            mutating func add(_ x: Double) { low = min(low, x); high = max(high, x); count += 1 }
            var value: Double { count >= 2 ? high - low : .nan }
        }
        for (a, groups) in layout.attributes.enumerated() {
            var selection = Spread(), tpr = Spread(), fpr = Spread(), auroc = Spread(), calibration = Spread()
            for g in groups.large.indices {
                let slot = layout.groupOffsets[a] + g, base = slot * Self.fields
                let size = scratch.tally[base], pos = scratch.tally[base + 1], sel = scratch.tally[base + 2]
                let tps = scratch.tally[base + 3], fps = scratch.tally[base + 4], sum = scratch.tally[base + 5]
                let won = scratch.tally[base + 6]
                let neg = size - pos
                if pos > 0 { scratch.result[layout.truePositiveRate(groupSlot: slot)] = tps / pos }
                guard groups.large[g], size > 0 else { continue }
                selection.add(sel / size)
                calibration.add((sum - pos) / size)
                if groups.withPositives[g] && pos > 0 { tpr.add(tps / pos) }
                if groups.withNegatives[g] && neg > 0 { fpr.add(fps / neg) }
                if groups.withPositives[g] && groups.withNegatives[g] && pos > 0 && neg > 0 { auroc.add(won / (pos * neg)) }
            }
            let (tprGap, fprGap) = (tpr.value, fpr.value)
            let odds = tprGap.isNaN ? fprGap : fprGap.isNaN ? tprGap : max(tprGap, fprGap)
            // GapKind.allCases order: demographic parity, equal opportunity, equalised odds, AUROC, calibration.
            scratch.result[layout.gap(attribute: a, kind: 0)] = selection.value
            scratch.result[layout.gap(attribute: a, kind: 1)] = tprGap
            scratch.result[layout.gap(attribute: a, kind: 2)] = odds
            scratch.result[layout.gap(attribute: a, kind: 3)] = auroc.value
            scratch.result[layout.gap(attribute: a, kind: 4)] = calibration.value
        }
    }
}
