// The benchmark's yardstick, not a kernel the learning engine calls.

extension Kernels {
    /// Independent SIMD16 FMA chains on registers only: the single-core FP32 peak the benchmark
    /// compares kernels with. Twelve chains fill AVX-512's 32 registers; six (twelve ymm halves)
    /// fit AVX2's sixteen without spilling. Returns the FLOPs done and a value that keeps the work.
    public static func fmaPeakLoop(iterations: Int) -> (flops: Double, sink: Float) {
        let x = V(repeating: 0.999_999), y = V(repeating: 1e-7)
        var a0 = V(repeating: 1), a1 = V(repeating: 2), a2 = V(repeating: 3), a3 = V(repeating: 4)
        var a4 = V(repeating: 5), a5 = V(repeating: 6)
        if hasWideRegisters {
            var a6 = V(repeating: 7), a7 = V(repeating: 8), a8 = V(repeating: 9), a9 = V(repeating: 10)
            var a10 = V(repeating: 11), a11 = V(repeating: 12)
            for _ in 0..<iterations {
                a0 = a0.addingProduct(x, y); a1 = a1.addingProduct(x, y); a2 = a2.addingProduct(x, y)
                a3 = a3.addingProduct(x, y); a4 = a4.addingProduct(x, y); a5 = a5.addingProduct(x, y)
                a6 = a6.addingProduct(x, y); a7 = a7.addingProduct(x, y); a8 = a8.addingProduct(x, y)
                a9 = a9.addingProduct(x, y); a10 = a10.addingProduct(x, y); a11 = a11.addingProduct(x, y)
            }
            return (Double(2 * 16 * 12 * iterations), (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11).sum())
        }
        for _ in 0..<iterations {
            a0 = a0.addingProduct(x, y); a1 = a1.addingProduct(x, y); a2 = a2.addingProduct(x, y)
            a3 = a3.addingProduct(x, y); a4 = a4.addingProduct(x, y); a5 = a5.addingProduct(x, y)
        }
        return (Double(2 * 16 * 6 * iterations), (a0 + a1 + a2 + a3 + a4 + a5).sum())
    }
}
