/// Plain-loop twins of `Kernels`, the readable reference every fast kernel is tested against.
public enum NaiveKernels {
    /// C(m,n) (+)= A(m,k) · B(k,n).
    public static func matmul(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var t: Float = 0
            for p in 0..<k { t += a[i * k + p] * b[p * n + j] }
            c[i * n + j] = t
        } }
        return c
    }

    /// C(m,n) = A(k,m)ᵀ · B(k,n).
    public static func matmulTransposedA(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var t: Float = 0
            for p in 0..<k { t += a[p * m + i] * b[p * n + j] }
            c[i * n + j] = t
        } }
        return c
    }

    /// C(m,n) = A(m,k) · B(n,k)ᵀ.
    public static func matmulTransposedB(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var t: Float = 0
            for p in 0..<k { t += a[i * k + p] * b[j * k + p] }
            c[i * n + j] = t
        } }
        return c
    }

    /// (y + bias, max(0, y + bias)) row by row.
    public static func addBiasReLU(_ y: [Float], bias: [Float], m: Int, n: Int) -> (biased: [Float], activated: [Float]) {
        var biased = y
        for i in 0..<m { for j in 0..<n { biased[i * n + j] = y[i * n + j] + bias[j] } }
        return (biased, biased.map { max(0, $0) })
    }

    /// Plain Adam step, the reference for `Kernels.adamStep`.
    public static func adamStep(
        parameters: [Float], gradient: [Float], firstMoment: [Float], secondMoment: [Float],
        alpha: Float, beta1: Float, beta2: Float, epsilonHat: Float, decay: Float
    ) -> (parameters: [Float], firstMoment: [Float], secondMoment: [Float]) {
        var p = parameters, m = firstMoment, v = secondMoment
        for i in p.indices {
            m[i] = beta1 * m[i] + (1 - beta1) * gradient[i]
            v[i] = beta2 * v[i] + (1 - beta2) * gradient[i] * gradient[i]
            p[i] = p[i] * decay - alpha * m[i] / (v[i].squareRoot() + epsilonHat)
        }
        return (p, m, v)
    }

    /// Gradient masked where the activation was not positive.
    public static func reluBackward(_ gradient: [Float], activated: [Float]) -> [Float] {
        zip(gradient, activated).map { $1 > 0 ? $0 : 0 }
    }

    /// Column sums of an (m, n) matrix.
    public static func columnSums(_ x: [Float], m: Int, n: Int) -> [Float] {
        var sums = [Float](repeating: 0, count: n)
        for i in 0..<m { for j in 0..<n { sums[j] += x[i * n + j] } }
        return sums
    }
}
