import Testing
@testable import SiteFitCore
@testable import SiteFitEHR

@Suite("Cohort splits")
struct CohortSplitTests {
    @Test("a stratified split takes round(fraction × class size) of each class to test, each list sorted, every row once")
    func stratified() {
        // 3 positives (rows 0, 2, 5) and 7 negatives: round(0.9) = 1 positive and round(2.1) = 2 negatives go to test.
        let labels: [Float] = [1, 0, 1, 0, 0, 1, 0, 0, 0, 0]
        var random = RandomStream(seed: 4, "split", "site")
        let split = CohortSplit.stratified(labels: labels, testFraction: 0.3, random: &random)
        #expect(split.testRows.filter { labels[$0] == 1 }.count == 1)
        #expect(split.testRows.filter { labels[$0] == 0 }.count == 2)
        #expect(split.trainRows.count == 7)
        #expect(Set(split.trainRows + split.testRows) == Set(0..<10))
        #expect(split.trainRows == split.trainRows.sorted() && split.testRows == split.testRows.sorted())
        var same = RandomStream(seed: 4, "split", "site")
        #expect(CohortSplit.stratified(labels: labels, testFraction: 0.3, random: &same) == split)
        // Another site's stream keeps the class counts (which rows differ is the stream's business).
        var other = RandomStream(seed: 4, "split", "another-site")
        #expect(CohortSplit.stratified(labels: labels, testFraction: 0.3, random: &other).testRows.count == 3)
    }

    @Test("a fixed assignment keeps the data's own train and test rows")
    func fixed() {
        let split = CohortSplit(isTest: [false, true, false, false, true])
        #expect(split.trainRows == [0, 2, 3])
        #expect(split.testRows == [1, 4])
    }

    @Test("fractions at the edges: nothing, or everything of a class, goes to test")
    func edges() {
        var random = RandomStream(seed: 1, "split")
        let none = CohortSplit.stratified(labels: [1, 0, 0], testFraction: 0.1, random: &random)
        #expect(none.testRows.isEmpty && none.trainRows == [0, 1, 2])
        let all = CohortSplit.stratified(labels: [1, 1, 0, 0], testFraction: 1, random: &random)
        #expect(all.trainRows.isEmpty && all.testRows == [0, 1, 2, 3])
    }

    @Test("a temporal split tests from the date on and trains before it, from train_from when given")
    func temporal() {
        let dates = ["2020-03-01", "2021-06-30", "2021-07-01", "2020-12-31", "2021-01-01", "2021-12-30"]
        let split = CohortSplit.temporal(indexDates: dates, TemporalSplit(testFrom: "2021-07-01"))
        #expect(split.trainRows == [0, 1, 3, 4] && split.testRows == [2, 5])
        let recent = CohortSplit.temporal(indexDates: dates, TemporalSplit(trainFrom: "2021-01-01", testFrom: "2021-07-01"))
        #expect(recent.trainRows == [1, 4] && recent.testRows == [2, 5], "rows before train_from are left out")
        let undated = CohortSplit.temporal(indexDates: ["", "2021-01-02", "2021-08-01"], TemporalSplit(testFrom: "2021-07-01"))
        #expect(undated.trainRows == [1] && undated.testRows == [2], "a row without an index date is on neither side")
    }
}
