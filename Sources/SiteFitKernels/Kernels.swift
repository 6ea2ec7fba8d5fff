import Foundation

// The only SIMD / unsafe-pointer code in SiteFit. Every kernel here has a plain-loop twin in
// `NaiveKernels` and an equivalence test on odd shapes (SiteFitKernelsTests).
//
// Legend (kernels only): row-major matrices; m, n, k are the dimensions of C(m,n) = A(m,k)·B(k,n);
// `accumulate` adds into C instead of overwriting it (used to sum gradients over a batch chunk).
//
// One file per kind: Kernels+Products, Kernels+Packed and Kernels+Tiles (matrix products, the
// packed route of the large ones, and their register tiles), Kernels+ElementWise (bias, activations, column sums, row gather), Kernels+Optimizer
// (Adam), Kernels+Federation (the server's checks and sums), Kernels+Peak (the benchmark's FMA
// peak); NaiveKernels.swift holds the twins. This file holds what they share.

/// Fast FP32 kernels for the learning engine: matrix products and fused element-wise passes.
public enum Kernels {
    @usableFromInline typealias V = SIMD16<Float>
    @usableFromInline static let width = 16

    /// Whether the CPU has 32 vector registers of 512 bits (AVX-512). The kernels are built for the
    /// build machine (`-target-cpu native`); this picks the register tile that fits its register file.
    public static let hasWideRegisters: Bool = {
        #if os(Linux)
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let flags = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) {
            return flags.split(separator: " ").contains("avx512f")
        }
        #endif
        return false
    }()

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }

    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }
}
