/// A deterministic random stream (xoshiro256**) keyed by scenario seed, site, round and purpose.
///
/// Every random draw in SiteFit comes from one of these, never from the system generator or the
/// clock, so a run is bit-identical for the same seed whatever the task scheduling. Keys are hashed
/// with FNV-1a (stable across processes, unlike `Hasher`) and expanded with SplitMix64.
public struct RandomStream: RandomNumberGenerator, Sendable {
    @usableFromInline var s0: UInt64
    @usableFromInline var s1: UInt64
    @usableFromInline var s2: UInt64
    @usableFromInline var s3: UInt64

    /// A stream for one purpose, e.g. `RandomStream(seed: 42, "split", "riverside-general")`.
    public init(seed: UInt64, _ components: String...) {
        self.init(seed: seed, components: components)
    }

    /// A stream keyed by an arbitrary list of components.
    public init(seed: UInt64, components: [String]) {
        var key = StableHash.fnv1a(seed)
        for component in components {
            key = StableHash.fnv1a(component, basis: key ^ 0x9E37_79B9_7F4A_7C15)
        }
        var sm = key
        s0 = RandomStream.splitMix(&sm)
        s1 = RandomStream.splitMix(&sm)
        s2 = RandomStream.splitMix(&sm)
        s3 = RandomStream.splitMix(&sm)
    }

    private static func splitMix(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniform() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// Uniform integer in 0..<bound (Lemire's unbiased method via the standard library).
    @inlinable
    public mutating func int(below bound: Int) -> Int {
        precondition(bound > 0)
        return Int(next(upperBound: UInt64(bound)))
    }

    /// Standard normal draw (Box–Muller; one draw per call keeps the stream position simple).
    public mutating func gaussian() -> Double {
        var u1 = uniform()
        while u1 <= .leastNormalMagnitude { u1 = uniform() }
        let u2 = uniform()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * .pi * u2)
    }

    /// Normal draw with the given mean and standard deviation.
    public mutating func gaussian(mean: Double, standardDeviation: Double) -> Double {
        mean + standardDeviation * gaussian()
    }

    /// True with probability `p`.
    public mutating func bernoulli(_ p: Double) -> Bool {
        uniform() < p
    }

    /// Index drawn from unnormalised non-negative weights.
    public mutating func categorical(_ weights: [Double]) -> Int {
        let total = weights.reduce(0, +)
        var u = uniform() * total
        for (index, weight) in weights.enumerated() {
            if u < weight { return index }
            u -= weight
        }
        return weights.count - 1
    }

    /// Fisher–Yates shuffle driven by this stream (the standard library's algorithm may change).
    /// Inlinable so callers get a specialised loop instead of generic witness calls per swap.
    @inlinable
    public mutating func shuffle<T>(_ array: inout [T]) {
        guard array.count > 1 else { return }
        for i in stride(from: array.count - 1, to: 0, by: -1) {
            let j = int(below: i + 1)
            if i != j { array.swapAt(i, j) }
        }
    }
}

/// Process-independent hashes (FNV-1a, 64-bit) for keys and fingerprints.
public enum StableHash {
    public static let offsetBasis: UInt64 = 0xCBF2_9CE4_8422_2325
    public static let prime: UInt64 = 0x0000_0100_0000_01B3

    /// FNV-1a of a string's UTF-8 bytes.
    public static func fnv1a(_ string: String, basis: UInt64 = offsetBasis) -> UInt64 {
        var hash = basis
        for byte in string.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* prime
        }
        return hash
    }

    /// FNV-1a of an integer's little-endian bytes.
    public static func fnv1a(_ value: UInt64, basis: UInt64 = offsetBasis) -> UInt64 {
        var hash = basis
        for shift in stride(from: 0, to: 64, by: 8) {
            hash ^= (value >> UInt64(shift)) & 0xFF
            hash = hash &* prime
        }
        return hash
    }

    /// FNV-1a of raw bytes, as 16 hex digits.
    public static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var hash = offsetBasis
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* prime
        }
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
