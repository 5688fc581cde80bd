/// 64-bit FNV-1a: a cheap, stable hash of bytes, the one the project uses wherever bytes need a
/// fixed key (tensor names to seeds, latents to content digests).
public struct FNV1a: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    @inline(__always)
    public mutating func add(_ byte: UInt8) { value = (value ^ UInt64(byte)) &* 0x100_0000_01b3 }

    public mutating func add<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        for byte in bytes { add(byte) }
    }

    /// Each float's bit pattern, little-endian.
    public mutating func add(_ values: [Float]) {
        for value in values {
            var bits = value.bitPattern.littleEndian
            for _ in 0..<4 {
                add(UInt8(bits & 0xFF))
                bits >>= 8
            }
        }
    }

    public static func hash(_ text: String) -> UInt64 {
        var hash = FNV1a()
        hash.add(text.utf8)
        return hash.value
    }
}
