import Foundation
import Testing
import Wire

/// Real sockets on inproc and loopback TCP.
@Suite struct SocketTests {
    @Test func routerAndDealerExchangeEnvelopesWithPayloads() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context, .router)
        try router.bind("tcp://127.0.0.1:*")
        let dealer = try ZMQSocket(context, .dealer)
        try dealer.setReceiveTimeout(milliseconds: 5000)
        try router.setReceiveTimeout(milliseconds: 5000)
        try dealer.connect(router.lastEndpoint)

        var hello = Reel_V1_WorkerHello()
        hello.protocolVersion = Envelope.protocolVersion
        hello.workerID = "w1"
        hello.models = ["reel-tiny"]
        try dealer.send(Envelope(.hello, hello).frames)

        let received = try router.receive()
        let identity = received[0]
        let envelope = try Envelope(frames: Array(received.dropFirst()))
        #expect(envelope.kind == .hello)
        #expect(try envelope.decode(Reel_V1_WorkerHello.self) == hello)

        var assignment = Reel_V1_ShardAssignment()
        assignment.jobID = "job-1"
        assignment.attempt = 7
        let latent: [Float] = [1.5, -2, .pi, 0]
        try router.send([identity] + Envelope(.assignment, assignment, payloads: [LatentCodec.encode(latent), Data(), Data(), Data()]).frames)
        let reply = try Envelope(frames: dealer.receive())
        #expect(reply.kind == .assignment)
        #expect(try reply.decode(Reel_V1_ShardAssignment.self).attempt == 7)
        #expect(try LatentCodec.decode(reply.payloads[0], count: 4) == latent)
    }

    @Test func routerRefusesToSendToAnUnknownPeer() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context, .router)
        try router.bind("inproc://mandatory")
        let error = #expect(throws: ZMQError.self) {
            try router.send([Data("nobody".utf8)] + Envelope(.disconnect, Reel_V1_Disconnect()).frames)
        }
        #expect(error?.isUnreachable == true)
    }

    @Test func receiveTimesOutWhenNothingArrives() throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context, .dealer)
        try socket.setReceiveTimeout(milliseconds: 50)
        try socket.bind("inproc://quiet")
        let error = #expect(throws: ZMQError.self) { _ = try socket.receive() }
        #expect(error?.isTimeout == true)
    }

    @Test func anOversizedFrameDropsThatPeerButNotOthers() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context, .router, maxMessageBytes: 4096)
        try router.bind("tcp://127.0.0.1:*")
        let hostile = try ZMQSocket(context, .dealer), friendly = try ZMQSocket(context, .dealer)
        try hostile.connect(router.lastEndpoint)
        try friendly.connect(router.lastEndpoint)
        var big = Reel_V1_Disconnect()
        big.reason = String(repeating: "x", count: 10_000)
        try hostile.send(Envelope(.disconnect, big).frames)
        var small = Reel_V1_Disconnect()
        small.reason = "fine"
        try friendly.send(Envelope(.disconnect, small).frames)
        #expect(try ZMQSocket.poll([router], milliseconds: 5000) == [0])
        let received = try Envelope(frames: Array(router.receive().dropFirst()))
        #expect(try received.decode(Reel_V1_Disconnect.self).reason == "fine")
        #expect(try ZMQSocket.poll([router], milliseconds: 300).isEmpty, "the oversized message never arrives")
    }

    @Test func aMonitorClosedBeforeItsSocketLeavesTheContextWorking() throws {
        let context = try ZMQContext()
        var first: ZMQSocket? = try ZMQSocket(context, .router)
        try first!.bind("tcp://127.0.0.1:*")
        let endpoint = first!.lastEndpoint
        let dealer = try ZMQSocket(context, .dealer)
        var monitor: ZMQSocket? = try dealer.monitor(context, events: SocketEvent.handshakeEvents)
        try dealer.connect(endpoint)
        try dealer.send(Envelope(.heartbeat, Reel_V1_Heartbeat()).frames)
        #expect(try ZMQSocket.poll([first!], milliseconds: 5000) == [0])
        // The monitor goes first, then the peer; the dealer reconnects to a new one, a handshake
        // event that would have blocked libzmq's I/O thread had the monitor not stopped it.
        monitor = nil
        first = nil
        let second = try ZMQSocket(context, .router)
        try Self.bind(second, to: endpoint)
        let arrived = try Self.reaches(second, from: dealer, within: 5)
        #expect(arrived, "the dealer's messages reach the new router")
        // Terminating a stalled context waits on its blocked thread for ever: keep it instead.
        if !arrived { _ = Unmanaged.passRetained(context) }
    }

    /// Whether a heartbeat from `dealer` reaches `router` within `seconds`, sending one every
    /// quarter second: a message sent while the dealer is still noticing its old peer is gone, or
    /// while it reconnects, is dropped with that connection (ZeroMQ delivers at most once), so
    /// only a dealer that never gets through, as behind a stalled I/O thread, fails.
    static func reaches(_ router: ZMQSocket, from dealer: ZMQSocket, within seconds: TimeInterval) throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            try dealer.send(Envelope(.heartbeat, Reel_V1_Heartbeat()).frames, dontWait: true)
            if try ZMQSocket.poll([router], milliseconds: 250) == [0] { return true }
        }
        return false
    }

    /// Binds `endpoint` again once its previous socket has let the port go.
    static func bind(_ socket: ZMQSocket, to endpoint: String) throws {
        let deadline = Date().addingTimeInterval(5)
        while true {
            do { return try socket.bind(endpoint) } catch where Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        }
    }
}

@Suite struct EnvelopeTests {
    let valid = Envelope(.heartbeat, Reel_V1_Heartbeat()).frames

    @Test func wrongProtocolTagIsRejected() {
        var frames = valid
        frames[0] = Data("REEL/0".utf8)
        #expect { try Envelope(frames: frames) } throws: { ($0 as? WireError)?.code == .malformed }
    }

    @Test func unknownKindIsRejected() {
        var frames = valid
        frames[1] = Data([200])
        #expect { try Envelope(frames: frames) } throws: { ($0 as? WireError)?.code == .malformed }
    }

    @Test(arguments: [2, 4, 6])
    func wrongFrameCountIsRejected(count: Int) {
        var frames = valid
        while frames.count < count { frames.append(Data()) }
        let error = #expect(throws: WireError.self) { try Envelope(frames: Array(frames.prefix(count))) }
        #expect(error?.code == .malformed)
        // An assignment must carry exactly its two payload frames.
        #expect(throws: WireError.self) { try Envelope(frames: Envelope(.assignment, Reel_V1_ShardAssignment(), payloads: [Data(), Data(), Data(), Data()]).frames.dropLast()) }
    }

    @Test func malformedProtobufIsRejectedWhenDecoded() throws {
        var frames = valid
        frames[2] = Data([0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
        let envelope = try Envelope(frames: frames)
        let error = #expect(throws: WireError.self) { try envelope.decode(Reel_V1_Heartbeat.self) }
        #expect(error?.code == .malformed && error?.description.contains("reel.v1.Heartbeat") == true)
    }

    @Test func latentOfTheWrongSizeIsRejected() throws {
        #expect { try LatentCodec.decode(Data(count: 10), count: 3) } throws: { ($0 as? WireError)?.code == .latentSizeMismatch }
        #expect(try LatentCodec.decode(LatentCodec.encode([1, 2, 3]), count: 3) == [1, 2, 3])
    }
}

@Suite struct JobStatusTests {
    /// The coordinator lists a layout pass's regions after the video's: 2 chunks of 2 tiles, then
    /// one shot's layout of 2 tiles.
    @Test func regionStepsSplitIntoTheVideosAndTheLayouts() {
        var status = Reel_V1_JobStatus()
        status.chunks = 2
        status.tiles = 2
        status.regionSteps = [6, 7, 6, 8, 30, 29]
        #expect(status.videoRegionSteps == [6, 7, 6, 8])
        #expect(status.layoutRegionSteps == [30, 29])
        status.regionSteps = [3, 4, 5, 6]
        #expect(status.layoutRegionSteps.isEmpty)
    }

    /// A chunk waits while the layout runs and none of its tiles has moved past the step chunks
    /// start from; a two-shot job's first shot's chunks may run while the second shot's layout does.
    @Test func chunksWaitForTheLayoutUntilTheyMove() {
        var status = Reel_V1_JobStatus()
        status.spec.steps = 30
        status.chunks = 2
        status.tiles = 1
        status.chunkFirstStep = 6
        status.regionSteps = [6, 6, 12]
        #expect(status.chunksWaitingForLayout == 2)
        #expect(status.chunksWaitForLayout == [true, true])
        status.state = .cancelled
        #expect(status.chunksWaitForLayout == [false, false], "an ended job waits for nothing")
        status.state = .running
        status.regionSteps = [6, 6, 30]
        #expect(status.chunksWaitingForLayout == 0, "the layout is done: the chunks are about to run")
        status.regionSteps = [9, 6, 30, 17]
        #expect(status.chunksWaitForLayout == [false, true], "the first shot's chunk runs, the second's waits")
        status.chunks = 1
        status.tiles = 2
        status.regionSteps = [6, 7, 12, 12]
        #expect(status.chunksWaitingForLayout == 0, "one tile of the chunk has moved")
        status.regionSteps = [6, 6]
        #expect(status.chunksWaitingForLayout == 0, "no layout pass")
    }
}
