import COpenBLAS

/// The one place the diffusion core calls OpenBLAS. Every linear layer and attention product
/// goes through `gemm`, so the BLAS kernel decides the speed of the denoiser.
public enum BLAS {
    /// Row-major C[m×n] = alpha · op(A) · op(B) + beta · C, where op transposes when asked.
    ///
    /// Leading dimensions are row strides, which lets callers address one head of a packed
    /// QKV matrix, or one spatial position across frames, without copying.
    @inline(__always)
    package static func gemm(
        transposeA: Bool = false, transposeB: Bool = false,
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        // OpenBLAS must be single-threaded before its first product (ComputeThreads sets it when
        // first read): its own threads would split the work another way and change the bits.
        ComputeThreads.ensureConfigured()
        cblas_sgemm(
            CblasRowMajor,
            transposeA ? CblasTrans : CblasNoTrans,
            transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha,
            a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Threads OpenBLAS uses for one call. Workers pin this so several processes share a machine.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    /// The CPU kernel family OpenBLAS chose (for example "Haswell"); results are bit-identical
    /// only between machines that use the same one.
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// Measures sgemm throughput on square n×n matrices with OpenBLAS's own threading on
    /// `threads` cores: the machine's raw sgemm, the yardstick the engine benchmark compares
    /// the denoiser against.
    public static func measureSgemm(size n: Int, threads: Int, minimumSeconds: Double = 1.0) -> (gflops: Double, seconds: Double, calls: Int) {
        let previous = BLAS.threads
        BLAS.threads = threads
        defer { BLAS.threads = previous }
        var a = [Float](repeating: 0, count: n * n)
        var b = a
        var c = a
        for i in 0..<(n * n) {
            a[i] = Float((i * 7919) % 1000) / 1000 - 0.5
            b[i] = Float((i * 104729) % 1000) / 1000 - 0.5
        }
        let once = {
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        gemm(m: n, n: n, k: n, a: pa.baseAddress!, lda: n, b: pb.baseAddress!, ldb: n,
                             c: pc.baseAddress!, ldc: n)
                    }
                }
            }
        }
        once()  // warm-up: thread pool start, page faults
        let clock = ContinuousClock()
        let start = clock.now
        var calls = 0
        var elapsed = 0.0
        repeat {
            once()
            calls += 1
            elapsed = (clock.now - start).seconds
        } while elapsed < minimumSeconds
        let flops = 2.0 * Double(n) * Double(n) * Double(n) * Double(calls)
        return (flops / elapsed / 1e9, elapsed, calls)
    }
}

extension Duration {
    /// The duration in seconds as a Double.
    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}
