import CFFmpeg
import COpenBLAS
import CZeroMQ
import Testing

/// The system libraries are found, linked, and the shims return what the C macros mean.
@Suite struct SystemLibraryTests {
    @Test func zeroMQIsRecentEnoughForCurve() {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        #expect(major * 100 + minor >= 403, "libzmq \(major).\(minor).\(patch); Reel needs 4.3 or later")
        #expect(CZeroMQ_header_version() == major * 10000 + minor * 100 + patch, "headers and library agree")
        #expect(zmq_has("curve") == 1, "libzmq built with CURVE security")
    }

    @Test func openBLASMultipliesRowMajor() {
        let a: [Float] = [1, 2, 3, 4, 5, 6]          // 2x3
        let b: [Float] = [7, 8, 9, 10, 11, 12]       // 3x2
        var c = [Float](repeating: 0, count: 4)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 3, 1, a, 3, b, 2, 0, &c, 2)
        #expect(c == [58, 64, 139, 154])
    }

    @Test func ffmpegShimsAndEncoders() {
        // AVERROR_EOF is FFERRTAG('E','O','F',' '), negated.
        #expect(CFFmpeg_averror_eof() == -Int32(bitPattern: 0x2046_4F45))
        #expect(CFFmpeg_av_nopts_value() == Int64.min)
        #expect(CFFmpeg_av_time_base() == 1_000_000)
        #expect(avcodec_find_encoder_by_name("libx264") != nil, "libavcodec has libx264")
        #expect(avcodec_find_encoder(AV_CODEC_ID_PNG) != nil)
        #expect(av_guess_format("mp4", nil, nil) != nil)
    }
}
