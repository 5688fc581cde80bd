import Coordinator
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Media
import Planning
import Prometheus
import ServiceLifecycle
import Wire

/// The coordinator's web side (`reel coordinator --http`): the dashboard page, a JSON API it
/// polls, previews of running jobs, finished videos, and Prometheus `/metrics`. It reads the
/// coordinator's published snapshot and sends it commands; it never touches the coordinator's
/// state directly. Every request for farm data needs the access token: a bearer header (for
/// scrapers and scripts) or the session cookie that `POST /login` sets for a browser. The
/// token is never taken from a URL, where logs, history and Referer headers would keep it.
public final class Dashboard: Sendable {
    let coordinator: CoordinatorServer
    let registry: PrometheusCollectorRegistry
    let token: String
    let logger = Logger(label: "reel.dashboard")

    /// The shortest token accepted: shorter ones are guessable over the network.
    public static let minimumTokenLength = 16

    public init(coordinator: CoordinatorServer, registry: PrometheusCollectorRegistry, token: String) {
        precondition(token.utf8.count >= Self.minimumTokenLength, "a dashboard token of at least \(Self.minimumTokenLength) characters")
        self.coordinator = coordinator
        self.registry = registry
        self.token = token
    }

    /// The dashboard's HTTP server on `host:port`, a swift-service-lifecycle Service (it stops
    /// on graceful shutdown); `onListening` gets the bound port.
    public func application(host: String, port: Int, onListening: @escaping @Sendable (Int) -> Void = { _ in }) -> some Service {
        Application(router: router(), configuration: .init(address: .hostname(host, port: port), serverName: "reel"),
                    onServerRunning: { channel in onListening(channel.localAddress?.port ?? port) },
                    logger: logger)
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: SecurityHeaders())
        router.add(middleware: TokenCheck(token: token))
        router.post("/login") { [token] request, _ in
            var request = request
            let body = try await request.collectBody(upTo: 1024)
            guard TokenCheck.matches(String(buffer: body).trimmingCharacters(in: .whitespacesAndNewlines), token) else {
                throw HTTPError(.unauthorized, message: "wrong token; it is in the coordinator's DATA-DIR/keys/http-token")
            }
            return Response(status: .noContent, headers: [.setCookie: "\(TokenCheck.cookie)=\(token); Path=/; HttpOnly; SameSite=Strict"])
        }
        router.get("/") { _, _ in Self.page(PageFiles.indexHTML, type: "text/html; charset=utf-8") }
        router.get("/dashboard.js") { _, _ in Self.page(PageFiles.dashboardJS, type: "text/javascript; charset=utf-8") }
        router.get("/metrics") { [registry] _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        router.get("/api/farm") { [coordinator] _, _ in try Self.json(FarmView(coordinator.snapshot)) }
        router.get("/api/jobs/:job/preview/:chunk") { [coordinator] _, context in
            let job = try context.parameters.require("job")
            let chunk = try context.parameters.require("chunk", as: Int.self)
            guard let frame = coordinator.snapshot.previews[job]?.first(where: { $0.chunk == chunk }) else {
                throw HTTPError(.notFound, message: "no preview of chunk \(chunk) of \(job) (yet)")
            }
            let picture = RGBVideo(planar: frame.planar, frames: 1, height: frame.height, width: frame.width)
            let png = try StillImages.png(rgb: picture.pixels, width: frame.width, height: frame.height)
            return Response(status: .ok, headers: [.contentType: "image/png", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(bytes: png)))
        }
        router.get("/api/jobs/:job/video") { [coordinator] _, context in
            let job = try context.parameters.require("job")
            let snapshot = coordinator.snapshot
            guard snapshot.jobs.contains(where: { $0.jobID == job && $0.state == .done }),
                  let video = FileManager.default.contents(atPath: JobFiles(dataDirectory: snapshot.dataDirectory).video(job)) else {
                throw HTTPError(.notFound, message: "job \(job) has no finished video")
            }
            return Response(status: .ok, headers: [.contentType: "video/mp4"], body: .init(byteBuffer: ByteBuffer(bytes: video)))
        }
        router.post("/api/jobs/:job/cancel") { [coordinator] _, context in
            let job = try Self.knownJob(context, coordinator)
            coordinator.perform(.cancel(job: job))
            return Response(status: .accepted)
        }
        for action in [JobAction.pause, .resume, .retry] {
            router.post("/api/jobs/:job/\(action)") { [coordinator] _, context in
                let job = try Self.knownJob(context, coordinator)
                coordinator.perform(.control(job: job, action: action))
                return Response(status: .accepted)
            }
        }
        router.post("/api/jobs/:job/priority") { [coordinator] request, context in
            let job = try Self.knownJob(context, coordinator)
            guard let value = request.uri.queryParameters.get("value", as: Int.self), JobLimits.priorities.contains(value) else {
                throw HTTPError(.badRequest, message: "priority: pass ?value=N with N from \(JobLimits.priorities.lowerBound) to \(JobLimits.priorities.upperBound)")
            }
            coordinator.perform(.setPriority(job: job, priority: value))
            return Response(status: .accepted)
        }
        return router
    }

    static func knownJob(_ context: BasicRequestContext, _ coordinator: CoordinatorServer) throws -> String {
        let job = try context.parameters.require("job")
        guard coordinator.snapshot.jobs.contains(where: { $0.jobID == job }) else {
            throw HTTPError(.notFound, message: "no job \(job)")
        }
        return job
    }

    static func page(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func json<T: Encodable>(_ value: T) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }
}

/// Refuses any request for farm data without the token, given as a bearer header or as the
/// session cookie `POST /login` sets; refuses state-changing requests from another origin.
struct TokenCheck: RouterMiddleware {
    typealias Context = BasicRequestContext
    let token: String

    static let cookie = "reel_session"
    /// The page, its script and the login hold no farm data.
    static let open: Set<String> = ["/", "/dashboard.js", "/login"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.method != .get && request.method != .head {
            // A browser says where a request comes from; one from another site is refused even
            // with the cookie (SameSite=Strict keeps it from being sent there in the first place).
            if let origin = request.headers[.origin], let host = request.head.authority,
               origin != "http://\(host)" && origin != "https://\(host)" {
                throw HTTPError(.forbidden, message: "a request from \(origin) may not change this farm")
            }
        }
        if Self.open.contains(request.uri.path) { return try await next(request, context) }
        let bearer = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
        let session = request.cookies[Self.cookie]?.value
        guard let given = bearer ?? session, Self.matches(given, token) else {
            throw HTTPError(.unauthorized, message: "sign in: open the dashboard at /#token=TOKEN, or send the header Authorization: Bearer TOKEN (the token is in DATA-DIR/keys/http-token)")
        }
        return try await next(request, context)
    }

    /// Compares in time that depends on the lengths alone, not on where the first difference
    /// is, so a token cannot be found a byte at a time by timing refusals.
    static func matches(_ given: String, _ token: String) -> Bool {
        let a = Array(given.utf8), b = Array(token.utf8)
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<b.count { difference |= (index < a.count ? a[index] : 0) ^ b[index] }
        return difference == 0
    }
}

/// Headers that keep the dashboard out of other sites' frames and scripts.
struct SecurityHeaders: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        for (name, value) in Self.fields { response.headers[name] = value }
        return response
    }

    static let fields: [(HTTPField.Name, String)] = [
        ("Content-Security-Policy", "default-src 'self'; img-src 'self'; media-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
    ].map { (HTTPField.Name($0.0)!, $0.1) }
}
