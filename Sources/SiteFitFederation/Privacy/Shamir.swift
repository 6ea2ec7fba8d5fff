/// Shamir's t-of-n secret sharing (Shamir, "How to share a secret", CACM 1979) of 32-byte secrets
/// over the prime field GF(2^61 − 1), as secure aggregation's dropout recovery needs it
/// (Bonawitz et al., CCS 2017, §4): any `threshold` shares give the secret back exactly, fewer
/// give no information about it.
///
/// Why this field: a Mersenne prime makes reduction a shift and an add, and x-coordinates up to
/// 2^61 − 2 mean no limit on the number of sites (GF(2^8) would stop at 255). The secret is cut
/// into 7-byte limbs (56 bits < 61), each shared with its own polynomial.
public enum Shamir {
    /// The field's modulus, 2^61 − 1.
    public static let prime: UInt64 = (1 << 61) - 1
    /// Limbs per 32-byte secret: four of 7 bytes and one of 4.
    public static let limbs = 5
    /// Bytes of one share on the wire: one 8-byte field element per limb.
    public static let shareBytes = 8 * limbs

    /// One share: the polynomials' values at `x` (x ≥ 1; x = 0 is the secret).
    public struct Share: Sendable, Equatable {
        public var x: UInt64
        public var values: [UInt64]

        public init(x: UInt64, values: [UInt64]) {
            self.x = x
            self.values = values
        }

        /// Little-endian field elements, `shareBytes` long (x travels as the sender's roster position).
        public var bytes: [UInt8] {
            values.flatMap { v in (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        }

        /// Reads `shareBytes` bytes; nil when the length is wrong or an element is not in the field.
        public init?(x: UInt64, bytes: some Collection<UInt8>) {
            let b = Array(bytes)
            guard x >= 1, x < Shamir.prime, b.count == Shamir.shareBytes else { return nil }
            var values: [UInt64] = []
            for limb in 0..<Shamir.limbs {
                var v: UInt64 = 0
                for k in 0..<8 { v |= UInt64(b[8 * limb + k]) << (8 * k) }
                guard v < Shamir.prime else { return nil }
                values.append(v)
            }
            self.init(x: x, values: values)
        }
    }

    /// Shares `secret` (32 bytes) at x = 1…`count`; any `threshold` of them reconstruct it.
    /// The coefficients come from `random`, which must be a cryptographic generator in use
    /// (the system's); tests pass a seeded one.
    public static func split(_ secret: [UInt8], threshold: Int, count: Int,
                             using random: inout some RandomNumberGenerator) -> [Share] {
        precondition(secret.count == 32, "Shamir shares 32-byte secrets")
        precondition(threshold >= 1 && threshold <= count, "threshold \(threshold) of \(count) shares")
        var shares = (1...count).map { Share(x: UInt64($0), values: []) }
        for limb in 0..<limbs {
            let bytes = secret[(7 * limb)..<min(7 * limb + 7, 32)]
            var constant: UInt64 = 0
            for (k, byte) in bytes.enumerated() { constant |= UInt64(byte) << (8 * k) }
            let coefficients = [constant] + (1..<threshold).map { _ in UInt64.random(in: 0..<prime, using: &random) }
            for i in shares.indices { shares[i].values.append(evaluate(coefficients, at: shares[i].x)) }
        }
        return shares
    }

    /// The secret from `threshold` or more shares with distinct x (Lagrange interpolation at 0).
    /// Returns nil when the shares are too few, repeat an x, or interpolate to a value that is not
    /// a 32-byte secret (a limb beyond its byte width: a wrong or tampered share).
    public static func reconstruct(_ shares: [Share], threshold: Int) -> [UInt8]? {
        guard shares.count >= threshold, threshold >= 1 else { return nil }
        let used = Array(shares.prefix(threshold))
        guard Set(used.map(\.x)).count == used.count, used.allSatisfy({ $0.values.count == limbs && $0.x != 0 && $0.x < prime })
        else { return nil }
        // Lagrange basis at 0: ∏_{j≠i} x_j / (x_j − x_i).
        let basis = used.indices.map { i -> UInt64 in
            var numerator: UInt64 = 1, denominator: UInt64 = 1
            for j in used.indices where j != i {
                numerator = multiply(numerator, used[j].x)
                denominator = multiply(denominator, subtract(used[j].x, used[i].x))
            }
            return multiply(numerator, inverse(denominator))
        }
        var secret: [UInt8] = []
        for limb in 0..<limbs {
            var value: UInt64 = 0
            for i in used.indices { value = add(value, multiply(basis[i], used[i].values[limb])) }
            let width = min(7, 32 - 7 * limb)
            guard value >> (8 * width) == 0 else { return nil }
            secret += (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
        }
        return secret
    }

    static func evaluate(_ coefficients: [UInt64], at x: UInt64) -> UInt64 {
        var result: UInt64 = 0
        for c in coefficients.reversed() { result = add(multiply(result, x), c) }
        return result
    }

    static func add(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let s = a + b  // both < 2^61: no overflow
        return s >= prime ? s - prime : s
    }

    static func subtract(_ a: UInt64, _ b: UInt64) -> UInt64 {
        a >= b ? a - b : a + prime - b
    }

    static func multiply(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (high, low) = a.multipliedFullWidth(by: b)
        // 2^61 ≡ 1: fold the 122-bit product's bits above 61 back onto its low 61 bits.
        // Each part is below 2^61, so the sum is below 2^62 and two subtractions reduce it fully.
        var folded = (low & prime) + ((low >> 61) | (high << 3))
        if folded >= prime { folded -= prime }
        if folded >= prime { folded -= prime }
        return folded
    }

    /// a^(p−2) = a^(−1) by Fermat (a ≠ 0).
    static func inverse(_ a: UInt64) -> UInt64 {
        var result: UInt64 = 1, base = a, exponent = prime - 2
        while exponent > 0 {
            if exponent & 1 == 1 { result = multiply(result, base) }
            base = multiply(base, base)
            exponent >>= 1
        }
        return result
    }
}
