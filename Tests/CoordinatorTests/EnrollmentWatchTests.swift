import Coordinator
import Foundation
import TestSupport
import Testing
import Wire

/// The coordinator's view of the enrolled keys, which every message over a CURVE connection is
/// checked against: a key enrolled a moment ago counts at once, a revoked one is refused, and a
/// revoked peer that keeps sending does not make the coordinator read the key directory each time.
@Suite struct EnrollmentWatchTests {
    @Test func aNewKeyCountsAtOnceAndARevokedPeerCostsOneRead() throws {
        let keys = KeyDirectory(dataDirectory: try ScratchFiles.directory(prefix: "reel-enrollment"))
        let first = try CurveKeyPair.generate(), second = try CurveKeyPair.generate()
        try keys.enroll(first.publicKey, name: "w1", as: .worker)
        let clock = ManualClock()
        let watch = EnrollmentWatch(keys: keys, clock: clock)
        let w1 = "worker:w1:\(first.publicKey)", w2 = "worker:w2:\(second.publicKey)"
        #expect(watch.isEnrolled(w1) && watch.reads == 1, "an enrolled key is known from the first read")

        try keys.enroll(second.publicKey, name: "w2", as: .worker)
        #expect(watch.isEnrolled(w2), "a key enrolled since the last read is looked up at once")
        #expect(watch.reads == 2)

        try keys.revoke("w1", as: .worker)
        clock.advance(seconds: 0.9)
        #expect(!watch.refreshIfDue(), "not read again within the second")
        clock.advance(seconds: 0.2)
        #expect(watch.refreshIfDue(), "the keys are read again once a second")
        let before = watch.reads
        for _ in 0..<1000 { #expect(!watch.isEnrolled(w1), "a revoked key is refused") }
        #expect(watch.reads == before + 1, "a thousand messages of a revoked key read the keys once, not \(watch.reads - before) times")
        #expect(watch.isEnrolled(w2))
    }
}
