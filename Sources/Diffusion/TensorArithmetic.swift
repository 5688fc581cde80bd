extension Tensor {
    /// self + scale · other, elementwise.
    public func adding(_ other: Tensor, scaledBy scale: Float = 1) -> Tensor {
        precondition(shape == other.shape, "shapes \(shape) and \(other.shape) differ")
        var out = self
        out.withUnsafeMutablePointer { o in
            other.withUnsafePointer { p in for i in 0..<count { o[i] += scale * p[i] } }
        }
        return out
    }

    /// a · self + b · other, elementwise.
    public func combined(_ a: Float, _ other: Tensor, _ b: Float) -> Tensor {
        precondition(shape == other.shape, "shapes \(shape) and \(other.shape) differ")
        var out = self
        out.withUnsafeMutablePointer { o in
            other.withUnsafePointer { p in for i in 0..<count { o[i] = a * o[i] + b * p[i] } }
        }
        return out
    }

    /// The first-axis slices `range`, as one tensor.
    public func slices(_ range: Range<Int>) -> Tensor {
        let stride = count / shape[0]
        var newShape = shape
        newShape[0] = range.count
        return Tensor(shape: newShape, scalars: Array(scalars[(range.lowerBound * stride)..<(range.upperBound * stride)]))
    }

    /// Tensors of equal shape stacked along a new first axis.
    public static func stacked(_ parts: [Tensor]) -> Tensor {
        Tensor(shape: [parts.count] + parts[0].shape, scalars: parts.flatMap(\.scalars))
    }
}
