/// The buffers of one workspace, cache-line aligned and zeroed, freed with it. Why aligned: an
/// unaligned SIMD16 load spans two cache lines, which cost the matrix products up to a fifth of
/// their speed depending on where malloc put a buffer.
public final class AlignedStorage {
    private var blocks: [UnsafeMutableRawPointer] = []

    public init() {}

    /// A new zeroed buffer of `count` floats (at least one).
    public func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        blocks.append(raw)
        let p = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        p.initialize(repeating: 0, count: max(count, 1))
        return p
    }

    /// A new buffer holding `values` (at least one entry).
    public func integers<T: FixedWidthInteger>(_ values: [T]) -> UnsafeMutablePointer<T> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(values.count, 1) * MemoryLayout<T>.stride, alignment: 64)
        blocks.append(raw)
        let p = raw.bindMemory(to: T.self, capacity: max(values.count, 1))
        p.initialize(repeating: 0, count: max(values.count, 1))
        p.update(from: values, count: values.count)
        return p
    }

    deinit { blocks.forEach { $0.deallocate() } }
}
