import Foundation

/// A request the coordinator refused, or one it never answered.
public struct FarmClientError: Error, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// No answer came in time; the description says how far the connection got.
        case timeout
        /// The coordinator answered with an error; its words are the description.
        case refused
        /// A job it was following is no longer listed.
        case jobLost
    }

    public let code: Code
    public let description: String
    public init(_ code: Code, _ description: String) { (self.code, self.description) = (code, description) }
    public var isTimeout: Bool { code == .timeout }
}

/// Talks to a coordinator: one request, one reply, over a DEALER socket.
public final class FarmClient {
    public let endpoint: String
    private let context: ZMQContext
    private let security: SocketSecurity
    private var socket: ZMQSocket
    /// The socket's connection events, read while a reply is awaited (so that they never pile
    /// up: libzmq's monitor blocks its I/O thread on a full reader) and to say why none came.
    private var monitor: ZMQSocket
    private let timeoutMilliseconds: Int32

    public init(context: ZMQContext, endpoint: String, timeoutSeconds: Double = 10, security: SocketSecurity = .plaintext) throws {
        self.endpoint = endpoint
        self.context = context
        self.security = security
        timeoutMilliseconds = Int32(timeoutSeconds * 1000)
        (socket, monitor) = try Self.connect(context, endpoint, security, timeoutMilliseconds)
    }

    private static func connect(_ context: ZMQContext, _ endpoint: String, _ security: SocketSecurity,
                                _ timeout: Int32) throws -> (ZMQSocket, ZMQSocket) {
        let socket = try ZMQSocket(context, .dealer)
        try socket.secure(security)
        try socket.setSendTimeout(milliseconds: timeout)
        let monitor = try socket.monitor(context, events: SocketEvent.connectionEvents)
        try socket.connect(endpoint)
        return (socket, monitor)
    }

    /// A new connection, so that a late reply to a request given up on cannot answer the next.
    private func reconnect() throws {
        (socket, monitor) = try Self.connect(context, endpoint, security, timeoutMilliseconds)
        connection = .connecting
    }

    /// Sends one request and waits for its reply of kind `expected`.
    public func request(_ kind: MessageKind, _ message: any SwiftProtobufMessage, payloads: [Data] = [], expecting expected: MessageKind) throws -> Envelope {
        do {
            try socket.send(Envelope(kind, message, payloads: payloads).frames)
        } catch let error as ZMQError where error.isTimeout {
            throw FarmClientError(.timeout, noAnswer(seconds: Double(timeoutMilliseconds) / 1000))
        }
        let reply = try Envelope(frames: awaitReply())
        answered = true
        if reply.kind == .error { throw FarmClientError(.refused, try reply.decode(Reel_V1_ErrorReply.self).message) }
        guard reply.kind == expected else { throw WireError(.unexpectedMessage, "expected \(expected), the coordinator sent \(reply.kind)") }
        return reply
    }

    /// Whether the coordinator has answered this client: one that never did is not waited for.
    private var answered = false

    /// How far the connection has got, as its monitor last said.
    enum Connection { case connecting, refused, connected, handshook, keyRefused, securityMismatch }
    private var connection = Connection.connecting

    /// The reply's frames, reading connection events as they come; a timeout error saying why
    /// none came within the timeout.
    private func awaitReply() throws -> [Data] {
        let deadline = Date().addingTimeInterval(Double(timeoutMilliseconds) / 1000)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw FarmClientError(.timeout, noAnswer(seconds: Double(timeoutMilliseconds) / 1000)) }
            let ready = try ZMQSocket.poll([socket, monitor], milliseconds: Int((left * 1000).rounded(.up)))
            if ready.contains(1) { readConnectionEvents() }
            if ready.contains(0) { return try socket.receive(dontWait: true) }
        }
    }

    /// Follows the monitor's events to how far the connection has got.
    private func readConnectionEvents() {
        while let frames = try? monitor.receive(dontWait: true), let event = SocketEvent(frames: frames) {
            if event.isAuthenticationFailure { connection = .keyRefused }
            else if event.isSecurityMismatch { connection = .securityMismatch }
            else if event.isHandshakeSuccess { connection = .handshook }
            else if event.isConnected { connection = .connected }
            else if event.isConnectRetried { connection = connection == .keyRefused || connection == .securityMismatch ? connection : .refused }
            else if event.isDisconnect { connection = .connecting }
        }
    }

    /// Why no answer came in `seconds`, from how far the connection last got: nothing
    /// listening, no route, a key or security mode the coordinator refused, or a coordinator
    /// that took the request and did not answer.
    func noAnswer(seconds: Double) -> String {
        readConnectionEvents()
        let wait = String(format: "%g s", seconds)
        switch connection {
        case .keyRefused:
            return "the coordinator at \(endpoint) refused this client's key: enroll its .pub on the coordinator (`reel keys enroll client NAME.pub`) or connect with an enrolled --key"
        case .securityMismatch:
            return "the coordinator at \(endpoint) speaks another security mode: it runs with CURVE keys (give --key and --coordinator-key) or --insecure (give --insecure too)"
        case .handshook:
            return "the coordinator at \(endpoint) took the connection but did not answer within \(wait); it may be overloaded or stopping (try again, or a longer --timeout)"
        case .connected:
            return "connected to \(endpoint) but no handshake completed within \(wait): is that port a Reel coordinator's, and does its --coordinator-key match?"
        case .refused:
            return "nothing accepts connections at \(endpoint) (connection refused): is `reel coordinator` running there, on that port?"
        case .connecting:
            return "no answer from \(endpoint) within \(wait): the host is unreachable, or a firewall drops the connection"
        }
    }

    /// Submits a job. When no answer comes, it asks again on a new connection with the same
    /// idempotency key, up to `attempts` times: if the first submission was taken and only its
    /// reply lost, the coordinator answers with that job instead of making a second.
    public func submit(_ spec: Reel_V1_JobSpec, idempotencyKey: String = UUID().uuidString, input: Data = Data(),
                       attempts: Int = 3) throws -> String {
        let request = Reel_V1_SubmitRequest.with { $0.spec = spec; $0.idempotencyKey = idempotencyKey }
        for attempt in 1...max(1, attempts) {
            do {
                return try self.request(.submit, request, payloads: [input], expecting: .submitReply).decode(Reel_V1_SubmitReply.self).jobID
            } catch let error as FarmClientError where error.isTimeout {
                guard attempt < attempts else {
                    throw FarmClientError(.timeout, error.description + " (asked \(attempts) times, \(String(format: "%g", Double(timeoutMilliseconds) / 1000)) s each)")
                }
                try reconnect()
            }
        }
        throw FarmClientError(.timeout, "unreachable")  // the loop returns or throws on its last attempt
    }

    public func status(_ job: String = "") throws -> [Reel_V1_JobStatus] {
        try request(.status, Reel_V1_StatusRequest.with { $0.jobID = job }, expecting: .statusReply).decode(Reel_V1_StatusReply.self).jobs
    }

    public func cancel(_ job: String) throws -> Reel_V1_JobStatus {
        try request(.cancel, Reel_V1_CancelRequest.with { $0.jobID = job }, expecting: .cancelReply).decode(Reel_V1_CancelReply.self).status
    }

    /// Pauses, resumes or retries a job: its status after, or for a retry the new job's.
    public func control(_ job: String, _ action: Reel_V1_JobAction) throws -> Reel_V1_JobStatus {
        try request(.control, Reel_V1_ControlRequest.with { $0.jobID = job; $0.action = action }, expecting: .controlReply)
            .decode(Reel_V1_ControlReply.self).status
    }

    public func workers() throws -> [Reel_V1_WorkerStatus] {
        try request(.workers, Reel_V1_WorkersRequest(), expecting: .workersReply).decode(Reel_V1_WorkersReply.self).workers
    }

    /// The job's status and, once it is done, its MP4.
    public func fetch(_ job: String) throws -> (status: Reel_V1_JobStatus, video: Data) {
        let reply = try request(.fetch, Reel_V1_FetchRequest.with { $0.jobID = job }, expecting: .fetchReply)
        return (try reply.decode(Reel_V1_FetchReply.self).status, reply.payloads[0])
    }

    /// Runs `request`, asking again on a new connection while a coordinator that has answered
    /// this client before does not answer (restarting: its jobs are durable), for up to
    /// `patience` seconds in all; `unanswered` hears each time why. One that never answered
    /// (a wrong address, a key not enrolled) fails at the first timeout.
    public func askingAgain<T>(patience: Double, unanswered: (FarmClientError) -> Void = { _ in },
                               _ request: () throws -> T) throws -> T {
        let start = Date().addingTimeInterval(-Double(timeoutMilliseconds) / 1000)
        while true {
            do {
                return try request()
            } catch let error as FarmClientError where error.isTimeout && answered {
                let silent = Date().timeIntervalSince(start)
                guard silent < patience else {
                    throw FarmClientError(.timeout, "\(error.description); gave up after \(Int(silent)) s without an answer")
                }
                unanswered(error)
                try reconnect()
            }
        }
    }

    /// Polls the job's status every `interval` seconds, passing each to `update`, until it ends.
    /// A coordinator that stops answering is asked again for up to `patience` seconds.
    public func wait(for job: String, interval: Double = 0.2, patience: Double = 300, unanswered: (FarmClientError) -> Void = { _ in },
                     update: (Reel_V1_JobStatus) -> Void = { _ in }) throws -> Reel_V1_JobStatus {
        while true {
            let answer = try askingAgain(patience: patience, unanswered: unanswered) { try status(job) }
            guard let status = answer.first else { throw FarmClientError(.jobLost, "the coordinator lost job \(job)") }
            update(status)
            if ![.running, .queued, .encoding, .paused].contains(status.state) { return status }
            Thread.sleep(forTimeInterval: interval)
        }
    }
}

extension Reel_V1_JobState {
    /// The state in one word, as people read it (status lines, the dashboard).
    public var word: String {
        switch self {
        case .queued: return "queued"
        case .running: return "running"
        case .encoding: return "encoding"
        case .done: return "done"
        case .failed: return "failed"
        case .cancelled: return "cancelled"
        case .paused: return "paused"
        default: return "unknown"
        }
    }
}

extension Reel_V1_JobStatus {
    /// The steps finished by each of the video's regions (chunk by chunk, tile by tile): the
    /// first `chunks × tiles` of `regionSteps`.
    public var videoRegionSteps: [Int] { regionSteps.prefix(Int(chunks * tiles)).map(Int.init) }

    /// The steps finished by each region of a long video's layout pass (shot by shot, tile by
    /// tile), which the coordinator lists after the video's; empty for a job without one.
    public var layoutRegionSteps: [Int] { regionSteps.dropFirst(Int(chunks * tiles)).map(Int.init) }

    /// For each chunk, whether it waits for the layout pass: the job has not ended, the pass
    /// runs, and none of the chunk's tiles has moved past the step chunks start from. A chunk
    /// starts once the layouts of its shots are done, so a two-shot job's first chunks may run
    /// while the second shot's layout does. The CLI counts these and the dashboard marks them:
    /// one rule for both.
    public var chunksWaitForLayout: [Bool] {
        let video = videoRegionSteps, tiles = Int(tiles), first = Int(chunkFirstStep)
        guard tiles > 0 else { return [] }
        let ended = [.done, .failed, .cancelled].contains(state)
        let layoutRuns = !ended && layoutRegionSteps.contains { $0 < Int(spec.steps) }
        return stride(from: 0, to: video.count, by: tiles).map { start in
            layoutRuns && video[start..<min(start + tiles, video.count)].allSatisfy { $0 <= first }
        }
    }

    /// How many chunks wait for the layout pass (`chunksWaitForLayout`).
    public var chunksWaitingForLayout: Int { chunksWaitForLayout.filter { $0 }.count }
}

extension Reel_V1_WorkerStatus {
    /// The models as people read them: a worker started with `--model DIR` offers the package
    /// both by its directory and by its name (jobs may name either), which is one model.
    public var modelsShown: [String] {
        models.filter { model in
            !(model.contains("/") && models.contains(URL(fileURLWithPath: model).lastPathComponent))
        }
    }
}
