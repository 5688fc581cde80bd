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

    /// A 5-D tensor [B, X, Y, H, W] as [B, Y, X, H, W]: frame-major video to channel-major and back.
    public func swappingAxes1And2() -> Tensor {
        precondition(shape.count == 5, "swappingAxes1And2 takes [B, X, Y, H, W]")
        let (b, x, y, plane) = (shape[0], shape[1], shape[2], shape[3] * shape[4])
        var out = Tensor.uninitialized([b, y, x, shape[3], shape[4]])
        withUnsafePointer { src in
            out.withUnsafeMutablePointer { dst in
                for bi in 0..<b { for xi in 0..<x { for yi in 0..<y {
                    (dst + ((bi * y + yi) * x + xi) * plane).update(from: src + ((bi * x + xi) * y + yi) * plane, count: plane)
                } } }
            }
        }
        return out
    }
}
