import Foundation
import Media
import TestSupport
import Testing
import Wire

/// Runs the built `reel` binary as a user would.
struct ReelCommand {
    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["REEL_BINARY"] { return path }
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = testBinary.deletingLastPathComponent()
        // The test runner may sit inside a bundle directory below the build products.
        while !FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("reel").path), directory.path != "/" {
            directory = directory.deletingLastPathComponent()
        }
        return directory.appendingPathComponent("reel").path
    }

    /// The repository root, where models/ lives.
    /// REEL_MODELS for every command a test runs: the shipped packages, and the tiny
    /// parity-checked Wan model (`wan-tiny`).
    static var modelPath: String { packageRoot + "/models:" + packageRoot + "/Tests/WanTests/Fixtures" }

    static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// Runs `reel` with `arguments`, behind `wrapper` (e.g. `ip netns exec NAME`) if given,
    /// with `environment` added to this process's.
    static func run(_ arguments: [String], in directory: String, wrapper: [String] = [],
                    environment extra: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: wrapper.isEmpty ? binary : "/usr/bin/env")
        process.arguments = wrapper.isEmpty ? arguments : wrapper + [binary] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment
        environment.merge(testEnvironment) { _, new in new }
        environment.merge(extra) { _, new in new }
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile(), stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// A video file's stream and decoded frames: what two renders of one job share bit for bit
    /// (their manifests differ in the time and the signer).
    static func video(_ path: String) throws -> VideoDigest { try VideoDigest.of(file: path) }

    /// Where the `reel` processes of this test run keep the signing key `reel render` makes and
    /// their weight digests, rather than the home directory's.
    static let home: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("reel-test-home-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: FileManager.default.temporaryDirectory.appendingPathComponent("reel-test-home-\(getpid())").path) }
        return path
    }()

    /// The variables every `reel` a test starts gets.
    static var testEnvironment: [String: String] {
        ["REEL_MODELS": modelPath, "REEL_SIGNING_KEY": "\(home)/signing.key", "XDG_CACHE_HOME": "\(home)/cache"]
    }

    /// A new directory for one test's files; every one is removed when the test process
    /// exits, unless REEL_KEEP_TEST_FILES=1 asks to keep them for a look.
    static func scratchDirectory() throws -> String { try ScratchFiles.directory(prefix: "reel-cli") }
}

@Suite struct RenderCommandTests {
    /// `reel --version` names the release, the commit it was built from and the protocol.
    @Test func versionNamesTheReleaseCommitAndProtocol() throws {
        let result = try ReelCommand.run(["--version"], in: try ReelCommand.scratchDirectory())
        #expect(result.status == 0)
        #expect(result.stdout == "reel \(ReelVersion.build) (protocol \(Envelope.protocolVersion))\n", "\(result.stdout)")
        #expect(ReelVersion.commit.count >= 12 || ReelVersion.commit == "unknown", "a commit from the BuildStamp plugin: \(ReelVersion.commit)")
    }

    /// On a terminal `reel render` redraws one progress line, which fits the terminal's width
    /// (here 60 columns, told by $COLUMNS as a pseudo-terminal without a size has none), so it
    /// never wraps and scrolls; and it gives no advice to start workers, having its own.
    @Test func progressOnATerminalFitsItsWidth() throws {
        let directory = try ReelCommand.scratchDirectory()
        let command = [ReelCommand.binary, "render", "a blue square moving up", "--frames", "40", "--steps", "3", "-o", "x.mp4"]
            .map { "'\($0)'" }.joined(separator: " ")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-qec", command, "/dev/null"]
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment.merging(ReelCommand.testEnvironment) { _, new in new }
        environment["COLUMNS"] = "60"
        process.environment = environment
        let out = Pipe()
        process.standardOutput = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        let redrawn = text.replacingOccurrences(of: "\u{1B}[K", with: "").split(whereSeparator: { $0 == "\r" || $0 == "\n" || $0 == "\r\n" })
            .filter { $0.hasPrefix("render [") }
        #expect(redrawn.count >= 2 && redrawn.allSatisfy { $0.count <= 59 }, "\(redrawn.map { "\($0.count): \($0)" })")
        #expect(!text.contains("waits:"), "\(text)")
    }

    @Test func rendersAnMP4WithTheRequestedFramesSizeAndFps() throws {
        let directory = try ReelCommand.scratchDirectory()
        let result = try ReelCommand.run(["render", "a red circle moving right", "--frames", "6", "--steps", "3",
                                          "--fps", "12", "--scale", "2", "--seed", "3", "-o", "clip.mp4",
                                          "--contact-sheet", "sheet.png"], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("step 3/3"), "progress is reported")
        let file = "\(directory)/clip.mp4"
        let decoded = try VideoDecoder.read(file)
        #expect(decoded.codec == "h264" && decoded.fps == 12)
        #expect(decoded.video.frameCount == 6 && decoded.video.width == 128 && decoded.video.height == 128)
        #expect(try VideoDecoder.read("\(directory)/sheet.png").video.width > 64)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains("partial") }
        #expect(leftovers.isEmpty)
    }

    @Test func aModelGivenAsADirectoryRenders() throws {
        let directory = try ReelCommand.scratchDirectory()
        try FileManager.default.copyItem(atPath: ReelCommand.packageRoot + "/models/reel-tiny", toPath: "\(directory)/my-model")
        let result = try ReelCommand.run(["render", "a red circle moving right", "--model", "./my-model", "--frames", "4", "--steps", "2",
                                          "-o", "clip.mp4"], in: directory, wrapper: ["timeout", "60"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try VideoDecoder.read("\(directory)/clip.mp4").video.frameCount == 4)
    }

    @Test func longerAndLargerThanTheModelRendersThroughChunksAndTiles() throws {
        let directory = try ReelCommand.scratchDirectory()
        let result = try ReelCommand.run(["render", "a blue square moving up", "--frames", "20", "--size", "96x64",
                                          "--steps", "2", "--scale", "1", "-o", "long.mp4"], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("2 chunk(s) x 2 tile(s)"))
        let decoded = try VideoDecoder.read("\(directory)/long.mp4")
        #expect(decoded.video.frameCount == 20 && decoded.video.width == 96 && decoded.video.height == 64)
    }

    /// Interrupted midway, a render ends at once with the status a shell gives the signal, and
    /// leaves neither its working directory (the in-process farm's job store) nor an output file.
    @Test(arguments: [SIGINT, SIGTERM])
    func interruptedRenderLeavesNothingBehind(signal number: Int32) throws {
        let directory = try ReelCommand.scratchDirectory(), temporary = try ReelCommand.scratchDirectory()
        let process = try Self.launch(["render", "a red circle moving right", "--model", "reel-tiny", "--frames", "64", "--steps", "1000",
                                       "-o", "out.mp4"], in: directory, temporary: temporary)
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let started = Date().addingTimeInterval(30)
        while try FileManager.default.contentsOfDirectory(atPath: temporary).isEmpty, process.isRunning, Date() < started {
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(process.isRunning, "the render is still going when the signal comes")
        kill(process.processIdentifier, number)
        let ended = Date().addingTimeInterval(20)
        while process.isRunning, Date() < ended { Thread.sleep(forTimeInterval: 0.05) }
        #expect(!process.isRunning, "the render ends within 20 s of the signal")
        guard !process.isRunning else { return }
        #expect(process.terminationStatus == 128 + number)
        #expect(try FileManager.default.contentsOfDirectory(atPath: temporary).isEmpty, "no working directory left")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty, "no output file")
    }

    /// `reel bench farm` killed (not Ctrl-C, which reaches its whole process group) while its
    /// `reel worker` processes run: they end with it, instead of looking for the vanished
    /// coordinator for ever.
    @Test func killedFarmBenchTakesItsWorkersWithIt() throws {
        let temporary = try ReelCommand.scratchDirectory()
        let process = try Self.launch(["bench", "farm", "--model", "reel-tiny", "--frames", "64", "--steps", "1000"],
                                      in: temporary, temporary: temporary)
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        var workers: [pid_t] = []
        let started = Date().addingTimeInterval(30)
        while workers.isEmpty, process.isRunning, Date() < started {
            Thread.sleep(forTimeInterval: 0.05)
            workers = Self.children(of: process.processIdentifier)
        }
        defer { for worker in workers { kill(worker, SIGKILL) } }
        #expect(!workers.isEmpty, "the bench started a worker process")
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(process.terminationStatus == 128 + SIGTERM)
        let ended = Date().addingTimeInterval(5)
        while workers.contains(where: Self.isAlive), Date() < ended { Thread.sleep(forTimeInterval: 0.05) }
        #expect(!workers.contains(where: Self.isAlive), "every worker process ends with the bench")
        #expect(try FileManager.default.contentsOfDirectory(atPath: temporary).isEmpty, "no working directory left")
    }

    /// `reel ARGUMENTS` started in `directory`, its temporary files in `temporary`, its output
    /// discarded; the caller waits for it.
    static func launch(_ arguments: [String], in directory: String, temporary: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ReelCommand.binary)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = ProcessInfo.processInfo.environment.merging(ReelCommand.testEnvironment) { _, new in new }
            .merging(["TMPDIR": temporary]) { _, new in new }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Processes whose parent is `parent`, from /proc.
    static func children(of parent: pid_t) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(pid_t.init).filter { statField($0, 1) == "\(parent)" }
    }

    /// Running, or stopped, but not exited (a zombie whose parent has not reaped it yet has exited).
    static func isAlive(_ pid: pid_t) -> Bool {
        guard let state = statField(pid, 0) else { return false }
        return state != "Z" && state != "X"
    }

    /// Field `index` of /proc/PID/stat after the command name: 0 the state, 1 the parent's pid.
    static func statField(_ pid: pid_t, _ index: Int) -> String? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return index < fields.count ? String(fields[index]) : nil
    }

    /// Each bad input: non-zero exit, exactly one line on stderr that names the problem, and no
    /// output file (nor a temporary one) left behind.
    @Test(arguments: [
        (["--frames", "0"], "--frames 0"),
        (["--size=-64x64"], "--size -64x64"),
        (["--size", "30x30"], "multiple of the model's patch"),
        (["--model", "no-such-model"], "model 'no-such-model' not found"),
        (["--fps", "0"], "fps 0"),
        (["--sampler", "ddim"], "sampler ddim is unknown"),
        (["--steps", "0"], "--steps 0"),
        (["--window", "40"], "window 40 is out of range"),
        (["--overlap", "16"], "overlap 16 is out of range"),
        (["--seed", "-1"], "a seed is a whole number from 0"),
        (["--frames", "-8"], "--frames -8"),
        (["--size", "-64x64"], "--size -64x64"),
        (["--layout-strength", "0"], "--layout-strength 0.0 is out of range; use above 0 to 1"),
    ])
    func badOptionIsOneClearLineAndNoFile(extra: [String], expected: String) throws {
        try expectFailure(["render", "a red circle", "--steps", "2", "-o", "out.mp4"] + extra, expected: expected, output: "out.mp4")
    }

    @Test func anEmptyPromptIsRefused() throws {
        try expectFailure(["render", " ", "-o", "out.mp4"], expected: "prompt is empty", output: "out.mp4")
    }

    @Test func unknownWordIsNamed() throws {
        try expectFailure(["render", "a purple elephant", "-o", "out.mp4"], expected: "'elephant'", output: "out.mp4")
    }

    @Test func unwritableOutputIsAClearError() throws {
        try expectFailure(["render", "a red circle", "-o", "/nonexistent-reel-dir/out.mp4"],
                          expected: "/nonexistent-reel-dir", output: nil)
        let directory = try ReelCommand.scratchDirectory()
        _ = FileManager.default.createFile(atPath: "\(directory)/file", contents: Data())
        try expectFailure(["render", "a red circle", "-o", "\(directory)/file/out.mp4"], expected: "does not exist", output: nil)
        try expectFailure(["render", "a red circle", "-o", "out.avi"], expected: "must end in .mp4", output: "out.avi")
    }

    func expectFailure(_ arguments: [String], expected: String, output: String?) throws {
        let directory = try ReelCommand.scratchDirectory()
        let result = try ReelCommand.run(arguments, in: directory)
        #expect(result.status != 0)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "one line on stderr, got: \(result.stderr)")
        #expect(result.stderr.contains(expected), "stderr: \(result.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty, "no file left in the working directory")
        if let output { #expect(!FileManager.default.fileExists(atPath: "\(directory)/\(output)")) }
    }
}

@Suite struct HelpTextTests {
    /// Every command's help, unwrapped: at 1,000 columns the lines are the source's own.
    static func unwrappedHelps(_ path: [String] = []) throws -> [(command: String, help: String)] {
        let result = try ReelCommand.run(path + ["--help"], in: NSTemporaryDirectory(), environment: ["COLUMNS": "1000"])
        let own = (command: (["reel"] + path).joined(separator: " "), help: result.stdout)
        return try [own] + CLIReference.subcommands(result.stdout).sorted().flatMap { try unwrappedHelps(path + [$0]) }
    }

    /// Help prose is read on terminals of any width: each paragraph must be one line for the
    /// help printer to wrap, since a line broken in the source stays broken on a narrower
    /// screen, and examples (indented lines) must fit 80 columns.
    @Test func paragraphsAreLeftToTheTerminalAndExamplesFitEightyColumns() throws {
        let helps = try Self.unwrappedHelps()
        #expect(helps.count > 15, "every subcommand's help was read")
        for (command, help) in helps {
            let prose = help.components(separatedBy: "\nUSAGE:").first?.split(separator: "\n", omittingEmptySubsequences: false) ?? []
            for (line, next) in zip(prose, prose.dropFirst()) where !line.isEmpty && !line.hasPrefix(" ") {
                #expect(next.isEmpty || next.hasPrefix(" "), "`\(command) --help`: a paragraph is broken after \"\(line)\"")
            }
            for line in prose where line.hasPrefix(" ") {
                #expect(line.count <= 80, "`\(command) --help`: an example is wider than 80 columns: \"\(line)\"")
            }
        }
    }
}

@Suite struct BenchCommandTests {
    @Test func engineBenchPrintsBothRowsAndTheirRatioAsJSON() throws {
        let result = try ReelCommand.run(["bench", "engine", "--model", "reel-tiny", "--seconds", "0.1", "--rounds", "2", "--sgemm-size", "256", "--json"],
                                         in: try ReelCommand.scratchDirectory())
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let sgemm = report?["sgemm_gflops"] as? Double ?? 0, forward = report?["forward_gflops"] as? Double ?? 0
        let ratio = report?["ratio"] as? Double ?? 0
        #expect(sgemm > 0 && forward > 0)
        #expect(abs(ratio - forward / sgemm) < 1e-9)
    }

    /// A latent model's job on 1 and 2 worker processes: each kind of shard is counted, and the
    /// two runs make the same file.
    @Test func farmBenchRunsAWanModelsThreeKindsOfShard() throws {
        let result = try ReelCommand.run(["bench", "farm", "--model", "wan-tiny", "--size", "64x64", "--steps", "2", "--json"],
                                         in: try ReelCommand.scratchDirectory())
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(report["chunks"] as? Int == 2 && report["frames"] as? Int == 117)
        #expect(report["same_file"] as? Bool == true)
        let traffic = report["traffic"] as? [String: [String: Int]] ?? [:]
        #expect(traffic["text"]?["accepted"] == 2 && traffic["denoise"]?["accepted"] == 4 && traffic["decode"]?["accepted"] == 2, "\(traffic)")
        // Two embeddings of 512 x 32 floats ride with every denoising shard.
        #expect((traffic["denoise"]?["payload_bytes_sent"] ?? 0) > 4 * 2 * 512 * 32 * 4)
        #expect(report["dispatch_shards"] == nil, "the dispatch run is a pixel model's")
    }

    @Test func farmBenchReportsScalingDispatchBytesAndSeams() throws {
        let result = try ReelCommand.run(["bench", "farm", "--frames", "20", "--steps", "2", "--dispatch-shards", "200", "--json"],
                                         in: try ReelCommand.scratchDirectory())
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(report["chunks"] as? Int == 2)
        #expect((report["speedup"] as? Double ?? 0) > 0)
        #expect(report["dispatch_shards"] as? Int == 200)
        // A 16-frame region of 64x64 RGB floats is 786,432 bytes; it travels out and back.
        #expect((report["bytes_per_shard"] as? Double ?? 0) > 2 * 786_432)
        #expect((report["seam_figure"] as? Double ?? 0).isFinite)
        #expect(report["same_file"] as? Bool == true, "one worker and two make the same MP4")
        #expect((report["coordinator_milliseconds_per_shard"] as? Double ?? 0) > 0)
    }

    /// Simulated workers over real sockets: every shard of both runs comes back, and the
    /// coordinator's figures are present (their sizes are the benchmark's, not a test's).
    @Test func farmBenchWithSimulatedWorkersRunsBothJobsThroughEveryWorker() throws {
        let result = try ReelCommand.run(["bench", "farm", "--simulated-workers", "40", "--idle-seconds", "0.5",
                                          "--dispatch-shards", "200", "--shard-seconds", "0.05", "--json"],
                                         in: try ReelCommand.scratchDirectory())
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(report["workers"] as? Int == 40)
        #expect(report["dispatch_shards"] as? Int == 200)
        #expect(report["latency_shards"] as? Int == 400, "ten shards for each of the 40 workers")
        #expect((report["shards_per_second"] as? Double ?? 0) > 0)
        #expect((report["assignment_latency_p99_milliseconds"] as? Double ?? 0) > 0)
        #expect((report["idle_coordinator_share"] as? Double ?? -1) >= 0)
    }

    @Test func evalRendersHeldOutPromptsAndReportsEachAttribute() throws {
        let directory = try ReelCommand.scratchDirectory()
        // 34 videos: more jobs at once than a coordinator takes from one client by default.
        let result = try ReelCommand.run(["eval", "--limit", "17", "--seeds", "2", "--steps", "1", "--json",
                                          "--contact-sheet", "sheet.png"], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(report["videos"] as? Int == 34, "17 prompts x 2 seeds")
        #expect(report["whole_videos"] == nil, "a video of one window is scored once already")
        for attribute in ["color", "motion", "background"] {
            let value = report[attribute] as? Double ?? -1
            #expect(value >= 0 && value <= 1, "\(attribute) is a fraction")
        }
        // Each video that missed an attribute is listed once, with what it missed: at least as
        // many as missed the most-missed attribute, at most every video.
        let misses = report["failures"] as? [[String: Any]] ?? []
        let mostMissed = ["color", "motion", "background"].map { 34 - Int(((report[$0] as? Double ?? 0) * 34).rounded()) }.max()!
        #expect(misses.count >= mostMissed && misses.count <= 34, "\(misses.count) listed, \(mostMissed) missed one attribute")
        #expect(misses.allSatisfy { ($0["missed"] as? [String])?.isEmpty == false && $0["prompt"] is String }, "\(misses)")
        #expect(try VideoDecoder.read("\(directory)/sheet.png").video.width > 64 * 8)
        // 40 frames of a 16-frame window: chunks through the farm, scored at 0, 16 and 24.
        // The model given as a package directory rather than a name.
        let package = ReelCommand.packageRoot + "/models/reel-shapes"
        let long = try ReelCommand.run(["eval", "--model", package, "--limit", "1", "--seeds", "1", "--steps", "2", "--frames", "40",
                                        "--overlap", "8", "--sampler", "dpm++2m", "--json", "--contact-sheet", "long.png"], in: directory)
        #expect(long.status == 0, "\(long.stderr)")
        let longReport = try JSONSerialization.jsonObject(with: Data(long.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(longReport["videos"] as? Int == 1 && longReport["frames"] as? Int == 40 && longReport["segments"] as? Int == 3
                && longReport["overlap"] as? Int == 8 && longReport["sampler"] as? String == "dpm++2m", "\(longReport)")
        let whole = longReport["whole_videos"] as? [String: Double] ?? [:]
        #expect(["color", "motion", "background"].allSatisfy { (0...1).contains(whole[$0] ?? -1) }, "the video scored as a whole too: \(longReport)")
        let longMisses = longReport["failures"] as? [[String: Any]] ?? []
        #expect(longMisses.allSatisfy { [0, 16, 24].contains($0["first_frame"] as? Int ?? -1) }, "misses name their window: \(longMisses)")
        let wide = try ReelCommand.run(["eval", "--frames", "40", "--overlap", "16"], in: directory)
        #expect(wide.status != 0 && wide.stderr.contains("overlap 16 is out of range"), "\(wide.stderr)")
        let unknown = try ReelCommand.run(["eval", "--sampler", "ddim"], in: directory)
        #expect(unknown.status != 0 && unknown.stderr.contains("sampler") && unknown.stderr.contains("ddim"), "\(unknown.stderr)")
        let untrained = try ReelCommand.run(["eval", "--model", "reel-tiny"], in: directory)
        #expect(untrained.status != 0 && untrained.stderr.contains("world.json"), "a model without a world cannot be evaluated")
    }
}
