import Testing
@testable import SiteFitCore

@Suite("Seeded random streams")
struct RandomStreamTests {
    @Test("the same key gives the same stream")
    func sameKeySameStream() {
        var a = RandomStream(seed: 42, "split", "riverside")
        var b = RandomStream(seed: 42, "split", "riverside")
        #expect((0..<100).map { _ in a.next() } == (0..<100).map { _ in b.next() })
    }

    @Test("seed, site and purpose each change the stream", arguments: [
        (UInt64(43), "split", "riverside"), (UInt64(42), "training", "riverside"), (UInt64(42), "split", "lakeside"),
    ])
    func differentKeysDiffer(seed: UInt64, purpose: String, site: String) {
        var reference = RandomStream(seed: 42, "split", "riverside")
        var other = RandomStream(seed: seed, purpose, site)
        #expect((0..<8).map { _ in reference.next() } != (0..<8).map { _ in other.next() })
    }

    @Test("component boundaries matter: (\"ab\",\"c\") differs from (\"a\",\"bc\")")
    func componentBoundaries() {
        var a = RandomStream(seed: 1, "ab", "c")
        var b = RandomStream(seed: 1, "a", "bc")
        #expect(a.next() != b.next())
    }

    @Test("uniform draws lie in [0, 1) and average near one half")
    func uniformRange() {
        var r = RandomStream(seed: 7, "uniform")
        let draws = (0..<20_000).map { _ in r.uniform() }
        #expect(draws.allSatisfy { $0 >= 0 && $0 < 1 })
        let mean = draws.reduce(0, +) / Double(draws.count)
        // Standard error of the mean is 0.289/√20000 ≈ 0.002; 0.01 is five of them.
        #expect(abs(mean - 0.5) < 0.01)
    }

    @Test("gaussian draws have mean 0 and variance 1")
    func gaussianMoments() {
        var r = RandomStream(seed: 9, "gaussian")
        let draws = (0..<20_000).map { _ in r.gaussian() }
        let mean = draws.reduce(0, +) / Double(draws.count)
        let variance = draws.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(draws.count - 1)
        #expect(abs(mean) < 0.03)
        #expect(abs(variance - 1) < 0.05)
    }

    @Test("shuffle is a deterministic permutation")
    func shuffle() {
        var a = Array(0..<50), b = Array(0..<50)
        var ra = RandomStream(seed: 3, "shuffle"), rb = RandomStream(seed: 3, "shuffle")
        ra.shuffle(&a)
        rb.shuffle(&b)
        #expect(a == b)
        #expect(a.sorted() == Array(0..<50))
        #expect(a != Array(0..<50))
    }

    @Test("FNV-1a matches the published test vectors")
    func fnvVectors() {
        // From the FNV reference (Fowler/Noll/Vo): FNV-1a 64 of "" and "a".
        #expect(StableHash.fnv1a("") == 0xCBF2_9CE4_8422_2325)
        #expect(StableHash.fnv1a("a") == 0xAF63_DC4C_8601_EC8C)
    }
}

@Suite("Diagnostics")
struct DiagnosticTests {
    @Test("a diagnostic renders as file:line:column: field: problem")
    func rendering() {
        let d = Diagnostic(file: "Scenarios/demo.yaml", line: 14, column: 5, field: "sites[2].patients",
                           problem: "expected a positive integer, found '-3'")
        #expect(d.description == "Scenarios/demo.yaml:14:5: sites[2].patients: expected a positive integer, found '-3'")
    }

    @Test("did-you-mean finds close keys and ignores far ones")
    func suggestions() {
        #expect(suggestion(for: "seeed", among: ["seed", "sites", "arms"]) == "seed")
        #expect(suggestion(for: "round", among: ["rounds", "batch_size"]) == "rounds")
        #expect(suggestion(for: "completely_different", among: ["seed", "sites"]) == nil)
        #expect(editDistance("kitten", "sitting") == 3)
    }
}
