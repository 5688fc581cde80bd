/// A dense, row-major float32 tensor.
///
/// Storage is a plain Swift array, so tensors are values: copying one is cheap until either copy
/// is written. Hot paths reach the storage through `withUnsafe…` pointers.
public struct Tensor: Sendable, Equatable {
    public private(set) var shape: [Int]
    public var scalars: [Float]

    public init(shape: [Int], scalars: [Float]) {
        precondition(shape.reduce(1, *) == scalars.count,
                     "Tensor shape \(shape) needs \(shape.reduce(1, *)) scalars, got \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    /// A tensor whose contents are left unspecified; every element must be written before it is read.
    package static func uninitialized(_ shape: [Int]) -> Tensor {
        let count = shape.reduce(1, *)
        let scalars = [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
        return Tensor(shape: shape, scalars: scalars)
    }

    public var count: Int { scalars.count }

    /// The same scalars seen with another shape of the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, scalars: scalars)
    }

    public func withUnsafePointer<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try scalars.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    public mutating func withUnsafeMutablePointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try scalars.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
    }
}

/// The scalars of four tensors at once, for kernels that fill several buffers in turn
/// (an attention's queries, keys, values and output).
public func withUnsafeMutablePointers<R>(_ a: inout Tensor, _ b: inout Tensor, _ c: inout Tensor, _ d: inout Tensor,
                                         _ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                                                  UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
    try a.withUnsafeMutablePointer { pa in
        try b.withUnsafeMutablePointer { pb in
            try c.withUnsafeMutablePointer { pc in try d.withUnsafeMutablePointer { pd in try body(pa, pb, pc, pd) } }
        }
    }
}

extension Tensor: CustomStringConvertible {
    /// A short summary; a test failure or log line should not print a million values.
    public var description: String {
        let head = scalars.prefix(4).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor(\(shape), \(count) values: \(head)\(count > 4 ? ", …" : ""))"
    }
}

import Foundation
