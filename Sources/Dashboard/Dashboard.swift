import Coordinator
import Foundation
import Hummingbird
import Logging
import Media
import Prometheus
import Wire

/// The coordinator's web side (`reel coordinator --http`): the dashboard page, a JSON API it
/// polls, previews of running jobs, finished videos, and Prometheus `/metrics`. It reads the
/// coordinator's published snapshot and sends it commands; it never touches the coordinator's
/// state directly. Every request needs the access token (bearer header or `token` query).
public final class Dashboard: Sendable {
    let coordinator: CoordinatorServer
    let registry: PrometheusCollectorRegistry
    let token: String
    let logger = Logger(label: "reel.dashboard")

    public init(coordinator: CoordinatorServer, registry: PrometheusCollectorRegistry, token: String) {
        self.coordinator = coordinator
        self.registry = registry
        self.token = token
    }

    /// Serves on `host:port` until the task is cancelled; `onListening` gets the bound port.
    public func serve(host: String, port: Int, onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let app = Application(router: router(), configuration: .init(address: .hostname(host, port: port), serverName: "reel"),
                              onServerRunning: { channel in onListening(channel.localAddress?.port ?? port) },
                              logger: logger)
        try await app.run()
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: TokenCheck(token: token))
        router.get("/") { _, _ in try Self.page("index.html", type: "text/html; charset=utf-8") }
        router.get("/dashboard.js") { _, _ in try Self.page("dashboard.js", type: "text/javascript; charset=utf-8") }
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
                  let video = FileManager.default.contents(atPath: "\(snapshot.dataDirectory)/jobs/\(job).mp4") else {
                throw HTTPError(.notFound, message: "job \(job) has no finished video")
            }
            return Response(status: .ok, headers: [.contentType: "video/mp4"], body: .init(byteBuffer: ByteBuffer(bytes: video)))
        }
        router.post("/api/jobs/:job/cancel") { [coordinator] _, context in
            let job = try Self.knownJob(context, coordinator)
            coordinator.perform(.cancel(job: job))
            return Response(status: .accepted)
        }
        router.post("/api/jobs/:job/priority") { [coordinator] request, context in
            let job = try Self.knownJob(context, coordinator)
            guard let value = request.uri.queryParameters.get("value", as: Int.self), (-1000...1000).contains(value) else {
                throw HTTPError(.badRequest, message: "priority: pass ?value=N with N from -1000 to 1000")
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

    static func page(_ name: String, type: String) throws -> Response {
        guard let url = Bundle.module.url(forResource: "Page/\(name)", withExtension: nil),
              let bytes = FileManager.default.contents(atPath: url.path) else {
            throw HTTPError(.internalServerError, message: "the dashboard's \(name) is missing from this build")
        }
        return Response(status: .ok, headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func json<T: Encodable>(_ value: T) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }
}

/// Refuses any request for farm data without the token, as a bearer header or a `token`
/// query parameter (the page passes it on to the API, images and videos it uses).
struct TokenCheck: RouterMiddleware {
    typealias Context = BasicRequestContext
    let token: String

    /// The page and its script hold no farm data; the page carries its token to the API.
    static let open: Set<String> = ["/", "/dashboard.js"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if Self.open.contains(request.uri.path) { return try await next(request, context) }
        let bearer = request.headers[.authorization].map { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : "" }
        guard bearer == token || request.uri.queryParameters.get("token") == token else {
            throw HTTPError(.unauthorized, message: "pass the dashboard token (reel coordinator prints where it is) as ?token= or a bearer header")
        }
        return try await next(request, context)
    }
}
