import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TestSupport
import Testing
import Wire

/// The dashboard as a user sees it: headless Chromium (Debian's chromium, which `make test`
/// installs) loads the page from a real coordinator while a job runs.
@Suite(.serialized) struct DashboardTests {
    static var chromium: String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// A farm with its dashboard on a free loopback port; returns the base URL and token.
    static func farmWithDashboard() throws -> (farm: ProcessFarm, base: String, token: String) {
        let farm = try ProcessFarm(coordinatorArguments: ["--http", "127.0.0.1:0"])
        let line = try farm.waitForLog(farm.coordinatorLog, containing: "dashboard on http://")
        let address = line.split(separator: " ").first { $0.hasPrefix("http://") }.map { String($0.prefix { $0 != "?" && $0 != "#" }) } ?? ""
        let token = try String(contentsOfFile: "\(farm.directory)/data/keys/http-token", encoding: .utf8)
        return (farm, address.hasSuffix("/") ? String(address.dropLast()) : address, token)
    }

    /// Status code and body of one request.
    static func fetch(_ url: String, method: String = "GET", token: String? = nil, headers: [String: String] = [:],
                      body: String? = nil) throws -> (status: Int, body: String) {
        try fetchWithHeaders(url, method: method, token: token, headers: headers, body: body).map { ($0.status, $0.body) }!
    }

    static func fetchWithHeaders(_ url: String, method: String = "GET", token: String? = nil, headers: [String: String] = [:],
                                 body: String? = nil) throws -> (status: Int, body: String, headers: [String: String])? {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = body.map { Data($0.utf8) }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: (Int, String, [String: String]) = (0, "", [:])
        cookieless.dataTask(with: request) { data, response, _ in
            let http = response as? HTTPURLResponse
            let fields = (http?.allHeaderFields ?? [:]).reduce(into: [String: String]()) { $0["\($1.key)".lowercased()] = "\($1.value)" }
            result = (http?.statusCode ?? 0, data.map { String(decoding: $0, as: UTF8.self) } ?? "", fields)
            done.signal()
        }.resume()
        guard done.wait(timeout: .now() + 20) == .success else { throw TestFailure("no answer from \(url)") }
        return (result.0, result.1, result.2)
    }

    /// A session that neither keeps nor sends cookies: each request carries exactly the
    /// credentials the test gives it.
    static let cookieless: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        return URLSession(configuration: configuration)
    }()

    /// The page's DOM after its scripts ran, as headless Chromium renders it.
    static func renderedPage(_ url: String, screenshot: String? = nil) throws -> String {
        guard let chromium else { throw TestFailure("chromium is not installed; `make deps` installs it") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromium)
        let profile = try ReelCommand.scratchDirectory()
        process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--user-data-dir=\(profile)",
                             "--virtual-time-budget=5000", "--window-size=1400,900"]
            + (screenshot.map { ["--screenshot=\($0)"] } ?? ["--dump-dom"]) + [url]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let dom = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return dom
    }

    @Test func chromiumShowsJobsWorkersPreviewsAndVideosFromARealCoordinator() throws {
        let (farm, base, token) = try Self.farmWithDashboard()
        try farm.startWorker("dash-w1")
        try farm.waitForWorkers(1)
        let finished = try farm.client(["submit", "a red circle moving right", "--frames", "8", "--steps", "2", "--wait", "-o", "done.mp4"])
        #expect(finished.status == 0, "\(finished.stderr)")
        let doneID = String(finished.stdout.split(separator: "\n").first ?? "")
        let running = try farm.client(["submit", "a blue square moving up", "--frames", "40", "--steps", "30"])
        let runningID = running.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        // Queued behind it, so none of its chunks has started: they wait for its layout pass.
        let queued = try farm.client(["submit", "a green circle moving down", "--frames", "40", "--steps", "30"])
        #expect(queued.status == 0, "\(queued.stderr)")
        try FaultTests.waitUntilBusy(farm, worker: "dash-w1", job: runningID)
        try waitUntil("the running job has a preview", timeout: 30) {
            try Self.fetch("\(base)/api/jobs/\(runningID)/preview/0", token: token).status == 200
        }

        let dom = try Self.renderedPage("\(base)/#token=\(token)")
        #expect(dom.contains("<h1>Reel farm</h1>"))
        #expect(dom.contains("data-job=\"\(doneID)\" data-state=\"done\""), "the finished job is listed as done")
        #expect(dom.contains("data-job=\"\(runningID)\" data-state=\"running\""), "the running job is listed")
        #expect(dom.contains("a blue square moving up (40 frames, 64×64)"), "its prompt")
        #expect(dom.contains("role=\"progressbar\""), "a progress bar")
        #expect(dom.contains("class=\"map\""), "the chunk-by-step map")
        #expect(dom.contains("title=\"layout, tile 0: step "), "the 40-frame job's layout pass leads its map")
        #expect(dom.contains("title=\"chunk 0, tile 0: waits for the layout, to run steps 6-30\""),
                "a chunk that has not started says it waits for the layout")
        #expect(dom.contains("/api/jobs/\(runningID)/preview/"), "previews of the running job's latents")
        #expect(dom.contains("<video src=\"/api/jobs/\(doneID)/video\""), "the finished video, playable, with no token in its address")
        #expect(dom.contains("data-worker=\"dash-w1\""), "the worker")
        #expect(dom.contains(ReelVersion.line) && dom.contains("<td>\(ReelVersion.build), "), "the coordinator's build and the worker's")
        #expect(dom.contains("data-action=\"cancel\""), "a cancel button")
        #expect(!dom.contains("cannot reach the coordinator"), "\(dom)")

        // What the page's links and buttons call.
        #expect(try Self.fetch("\(base)/api/farm").status == 401, "no token, no farm")
        #expect(try Self.fetch("\(base)/api/farm?token=\(token)").status == 401, "a token in the URL is not taken")
        let preview = try Self.fetch("\(base)/api/jobs/\(runningID)/preview/0", token: token)
        #expect(preview.status == 200 && preview.body.dropFirst().hasPrefix("PNG"), "a PNG of the current latent")
        #expect(try Self.fetch("\(base)/api/jobs/\(doneID)/video", token: token).status == 200)
        #expect(try Self.fetch("\(base)/api/jobs/\(runningID)/priority?value=7", method: "POST", token: token).status == 202)
        #expect(try Self.fetch("\(base)/api/jobs/\(runningID)/pause", method: "POST", token: token).status == 202)
        try waitUntil("the job is paused") { try farm.status(runningID).state == .paused }
        #expect(try Self.renderedPage("\(base)/#token=\(token)").contains("data-action=\"resume\""), "a paused job offers Resume")
        #expect(try Self.fetch("\(base)/api/jobs/\(runningID)/resume", method: "POST", token: token).status == 202)
        try waitUntil("the job runs again") { try farm.status(runningID).state == .running }
        #expect(try Self.fetch("\(base)/api/jobs/\(runningID)/cancel", method: "POST", token: token).status == 202)
        try waitUntil("the job is cancelled") { try farm.client(["status", runningID]).stdout.contains("cancelled") }
        let after = try Self.renderedPage("\(base)/#token=\(token)")
        #expect(after.contains("data-job=\"\(runningID)\" data-state=\"cancelled\""), "cancel from the page's API took effect")
        let status = try farm.client(["status", runningID]).stdout
        #expect(status.contains("cancelled"), "\(status)")

        let metrics = try Self.fetch("\(base)/metrics", token: token).body
        for series in ["reel_jobs{state=\"done\"} 1", "reel_shards_completed_total", "reel_queue_depth", "reel_workers 1",
                       "reel_wire_bytes_total{direction=\"in\"}", "reel_shard_latency_seconds_bucket", "reel_step_latency_seconds_count",
                       "reel_jobs_ended_total{state=\"done\"} 1", "reel_jobs_ended_total{state=\"cancelled\"} 1",
                       "reel_build_info{", "protocol=\"\(Envelope.protocolVersion)\"", "reel_worker_shards_completed{worker=\"",
                       "reel_worker_heartbeat_age_seconds{worker=\""] {
            #expect(metrics.contains(series), "/metrics has \(series)")
        }
        // Every family says what it is.
        let families = Set(metrics.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] })
        let described = Set(metrics.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.map { $0.split(separator: " ")[2] })
        #expect(!families.isEmpty && families == described, "families without # HELP: \(families.subtracting(described))")
        print("dashboard: Chromium saw the done job's video, the running job's progress, map and previews, and the worker; cancel and priority took effect")
    }

    @Test func metricsMoveDuringARender() throws {
        let (farm, base, token) = try Self.farmWithDashboard()
        try farm.startWorker("m1")
        try farm.waitForWorkers(1)
        func shardsCompleted() throws -> Double {
            let text = try Self.fetch("\(base)/metrics", token: token).body
            return text.split(separator: "\n").first { $0.hasPrefix("reel_shards_completed_total ") }
                .flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        }
        let id = try farm.client(["submit", "a green triangle moving down", "--frames", "40", "--steps", "20"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try FaultTests.waitUntilBusy(farm, worker: "m1", job: id)
        let early = try shardsCompleted()
        var later = early
        try waitUntil("shards completed rises from \(early)", timeout: 60, interval: 0.1) { later = try shardsCompleted(); return later > early }
        _ = try farm.client(["cancel", id])
        print("metrics during a render: reel_shards_completed_total \(Int(early)) → \(Int(later))")
    }

    /// The token never rides in a URL; a browser trades it once for an HttpOnly, SameSite=Strict
    /// cookie; tokens are checked whole; other sites can neither frame the page nor change the
    /// farm; the default address is loopback.
    @Test func theDashboardKeepsItsTokenOutOfURLsAndOffOtherSites() throws {
        let (farm, base, token) = try Self.farmWithDashboard()
        defer { withExtendedLifetime(farm) {} }
        #expect(try Self.fetch("\(base)/login", method: "POST", body: "not-the-token-at-all").status == 401)
        #expect(try Self.fetch("\(base)/login", method: "POST", body: String(token.dropLast())).status == 401, "a prefix is not the token")
        let login = try #require(try Self.fetchWithHeaders("\(base)/login", method: "POST", body: token))
        #expect(login.status == 204)
        let cookie = login.headers["set-cookie"] ?? ""
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "\(cookie)")
        let session = String(cookie.prefix { $0 != ";" })
        #expect(try Self.fetch("\(base)/api/farm", headers: ["Cookie": session]).status == 200, "the cookie signs the page's requests")
        #expect(try Self.fetch("\(base)/api/farm", headers: ["Cookie": "reel_session=\(token.dropLast())x"]).status == 401)

        let page = try #require(try Self.fetchWithHeaders("\(base)/"))
        #expect(page.headers["content-security-policy"]?.contains("frame-ancestors 'none'") == true, "\(page.headers)")
        #expect(page.headers["x-frame-options"] == "DENY" && page.headers["referrer-policy"] == "no-referrer")

        let url = URL(string: base)!
        let foreign = try Self.fetch("\(base)/api/jobs/j1/cancel", method: "POST", token: token, headers: ["Origin": "http://evil.example"])
        #expect(foreign.status == 403, "a state-changing request from another site: \(foreign)")
        let own = try Self.fetch("\(base)/api/jobs/j1/cancel", method: "POST", token: token,
                                 headers: ["Origin": "http://\(url.host!):\(url.port!)"])
        #expect(own.status == 404, "the page's own origin reaches the handler (no such job): \(own)")

        let directory = try ReelCommand.scratchDirectory()
        try FileManager.default.createDirectory(atPath: "\(directory)/data/keys", withIntermediateDirectories: true)
        try Data().write(to: URL(fileURLWithPath: "\(directory)/data/keys/http-token"))
        let empty = try ReelCommand.run(["coordinator", "--insecure", "--bind", "tcp://127.0.0.1:*", "--data-dir", "data", "--http", ":0"],
                                        in: directory, wrapper: ["timeout", "20"])
        #expect(empty.status != 0 && empty.stderr.contains("holds a token of 0 characters"), "\(empty.stderr)")
        print("dashboard: token only by cookie or bearer, compared whole; CSP, frame and referrer headers; foreign origins refused; an empty token file refused")
    }

    /// A coordinator asked for a dashboard on a port in use refuses to start, saying so.
    @Test func aBusyHTTPPortIsRefusedAtStart() throws {
        let (farm, base, _) = try Self.farmWithDashboard()
        defer { withExtendedLifetime(farm) {} }
        let port = try #require(URL(string: base)?.port)
        let directory = try ReelCommand.scratchDirectory()
        let second = try ReelCommand.run(["coordinator", "--insecure", "--bind", "tcp://127.0.0.1:*", "--data-dir", "data",
                                          "--http", "127.0.0.1:\(port)"], in: directory, wrapper: ["timeout", "20"])
        #expect(second.status != 0 && second.status != 124 && second.stderr.contains("cannot serve the dashboard"), "\(second.status): \(second.stderr)")
    }

    /// The page is compiled into the binary: a `reel` copied alone into an empty directory, far
    /// from the tree it was built in, serves it.
    @Test func aBinaryInstalledAloneServesTheDashboard() throws {
        let directory = try ReelCommand.scratchDirectory()
        try FileManager.default.copyItem(atPath: ReelCommand.binary, toPath: "\(directory)/reel")
        let coordinator = Process()
        coordinator.executableURL = URL(fileURLWithPath: "\(directory)/reel")
        coordinator.arguments = ["coordinator", "--insecure", "--bind", "tcp://127.0.0.1:*", "--data-dir", "\(directory)/data",
                                 "--http", "127.0.0.1:0"]
        coordinator.currentDirectoryURL = URL(fileURLWithPath: directory)
        let log = Pipe()
        coordinator.standardError = log
        coordinator.standardOutput = FileHandle.nullDevice
        try coordinator.run()
        defer { coordinator.terminate(); coordinator.waitUntilExit() }
        var text = ""
        let deadline = Date().addingTimeInterval(20)
        while !text.contains("dashboard on http://") && Date() < deadline {
            text += String(decoding: log.fileHandleForReading.availableData, as: UTF8.self)
        }
        let base = try #require(text.split(separator: " ").first { $0.hasPrefix("http://") }.map { String($0.prefix { $0 != "#" }) })
        let page = try Self.fetch(base)
        #expect(page.status == 200 && page.body.contains("<h1>Reel farm</h1>"), "\(page.status): \(page.body.prefix(200))")
        #expect(try Self.fetch(base + "dashboard.js").body.contains("async function refresh()"))
    }
}
