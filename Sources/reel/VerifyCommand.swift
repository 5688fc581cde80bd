import ArgumentParser
import Coordinator
import Diffusion
import Families
import Foundation
import Media
import Planning
import Provenance
import Wan
import Wire

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a video's signed manifest: who signed it, and that its frames are the ones signed; optionally render its job again.",
        discussion: """
            Every MP4 Reel writes carries a manifest (docs/provenance.md): the model and its \
            weights' SHA-256, the whole job, the BLAS kernel and the SHA-256 of the frames, \
            signed with the farm's Ed25519 key. `reel verify FILE` checks the signature (by \
            --key, the farm's published key from `reel keys export-signing`, when given) and \
            that the file's stream and decoded frames are the signed ones, so a re-encode or \
            an edit is reported. With --rerender it renders the job again, on this machine \
            or with --farm on a coordinator, and says whether the frames are identical, bit \
            for bit. Exits 0 only when every check passes.
            """)

    @Argument(help: "The MP4 to check.")
    var file: String

    @Option(help: "The signer's public key: as `reel keys export-signing` prints it, or a file holding it.")
    var key: String?

    @Flag(help: "Render the manifest's job again and compare the frames bit for bit.")
    var rerender = false

    @Option(help: "With --rerender: the model's folder (default: the manifest's model, by name or path).")
    var model: String?

    @Option(help: "With --rerender, for a private prompt: the prompt (once per shot, in order), checked against the manifest's salted hash.")
    var prompt: [String] = []

    @Option(help: "With --rerender, for a re-render of an input video: that video, checked against the manifest's SHA-256.")
    var input: String?

    @Flag(help: "With --rerender: render on the coordinator --coordinator names (a farm holding the model by the manifest's name), not in this process.")
    var farm = false

    @Option(help: "With --rerender: keep the new render here (an .mp4).")
    var output: String?

    @Option(help: "With --rerender: compute threads in all (default: all cores).")
    var threads: Int?

    @Option(help: "With --farm: the coordinator's endpoint, HOST:PORT (default: $REEL_COORDINATOR, else the config file's, else tcp://127.0.0.1:5555).")
    var coordinator: String?

    @Option(help: "With --farm: this client's key pair, a .key file (default: $REEL_KEY, else the config file's). --key is the signer's.")
    var clientKey: String?

    @Option(help: "With --farm: the coordinator's public key (default: $REEL_COORDINATOR_KEY, else the config file's).")
    var coordinatorKey: String?

    @Flag(help: "With --farm: talk plaintext, with no keys: only on a network you trust entirely.")
    var insecure = false

    @Option(help: "With --farm: seconds to wait for the coordinator's answer.")
    var timeout: Double = 10

    @Flag(help: "Print one JSON object: the file, whether it verified, its manifest, each check and each note.")
    var json = false

    /// What the checks found: printed as they come, or as one JSON object at the end.
    final class Report {
        let json: Bool
        var findings: [Verification.Finding] = []
        var notes: [String] = []

        init(json: Bool) { self.json = json }

        func add(_ finding: Verification.Finding) {
            findings.append(finding)
            if !json { print("\(finding.passed ? "ok  " : "FAIL") \(finding.check): \(finding.detail)") }
        }

        func note(_ text: String) {
            notes.append(text)
            if !json { print("note: \(text)") }
        }
    }

    struct JSONReport: Encodable {
        let file: String
        let verified: Bool
        let manifest: Manifest?
        let findings: [Verification.Finding]
        let notes: [String]
    }

    func run() throws {
        LogSetup.start(level: .warning)
        let trusted = try key.map { try SigningKey.publicKey($0) }
        guard FileManager.default.isReadableFile(atPath: file) else { throw UserError("\(file): no such file, or not readable") }
        let verification: Verification
        do {
            verification = try Verification.check(file: file, trustedKey: trusted)
        } catch {
            throw UserError("\(file): \(error)")
        }
        let report = Report(json: json)
        if let manifest = verification.manifest, !json { print(Self.describe(manifest)) }
        verification.findings.forEach(report.add)
        if trusted == nil, verification.manifest != nil {
            report.note("the signer was not checked against a key you trust; give --key with the farm's published key")
        }
        if rerender {
            guard let manifest = verification.manifest else { throw UserError("\(file) has no manifest to render again") }
            try rerendered(manifest, report: report)
        }
        let passed = verification.manifest != nil && report.findings.allSatisfy(\.passed)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            let report = JSONReport(file: file, verified: passed, manifest: verification.manifest, findings: report.findings, notes: report.notes)
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(passed ? "verified" : "NOT verified")
        }
        if !passed { throw ExitCode(1) }
    }

    /// Renders the manifest's job again and compares the frames with the signed ones.
    private func rerendered(_ manifest: Manifest, report: Report) throws {
        let job = manifest.job
        var spec = job.spec
        if let hash = job.privatePrompt {
            guard !prompt.isEmpty else {
                throw UserError("the manifest keeps its prompt private; give it with --prompt (once per shot, in order) to render it again")
            }
            guard hash.matches(prompt) else { throw UserError("--prompt: not the prompt(s) rendered (their salted hash differs from the manifest's)") }
            if spec.shots.isEmpty { spec.prompt = prompt[0] } else {
                guard prompt.count == spec.shots.count else { throw UserError("--prompt: give one per shot (\(spec.shots.count))") }
                for index in spec.shots.indices { spec.shots[index].prompt = prompt[index] }
            }
        }
        let location = model ?? manifest.model.name
        let directory: String
        do { directory = try ModelFamilies.locate(location) } catch { throw UserError("--model: \(error)") }
        // The manifest names the folder; only one a model family recognises is read for digests.
        guard ModelFamilies.family(of: directory) != nil else {
            throw UserError("\(directory.prefix(200)) is not a model folder (no config.json or model_index.json); give the model's folder with --model")
        }
        let weights = try WeightDigests.shared.weights(in: directory)
        guard weights == manifest.model.weights else {
            return report.add(Verification.Finding(check: "model", passed: false,
                detail: "the weights in \(directory) are not the manifest's: " + Self.weightDifference(weights, manifest.model.weights)))
        }
        report.add(Verification.Finding(check: "model", passed: true, detail: "the weights in \(directory) are the manifest's"))
        var inputBytes: Data?
        if let record = manifest.input {
            guard let input else { throw UserError("the job re-rendered an input video; give it with --input FILE") }
            guard let bytes = FileManager.default.contents(atPath: input) else { throw UserError("--input \(input): no such file, or not readable") }
            guard InputRecord(of: bytes) == record else { throw UserError("--input \(input): not the video rendered from (its SHA-256 differs from the manifest's)") }
            inputBytes = bytes
        }
        if !farm, !manifest.blasKernels.isEmpty, !manifest.blasKernels.contains(BLAS.coreName) {
            report.note("this machine's OpenBLAS kernel is \(BLAS.coreName); the video was rendered with \(manifest.blasKernels.joined(separator: ", ")), and bits are identical only on the same kernel (set OPENBLAS_CORETYPE)")
        }
        let work = WorkDirectory(prefix: "reel-verify")
        defer { work.remove() }
        try FileManager.default.createDirectory(atPath: work.path, withIntermediateDirectories: true)
        if let output { try OutputPath.check(output, extension: "mp4", flag: "--output") }
        let again = output ?? "\(work.path)/rerender.mp4"
        let options = OutputOptions(scale: job.outputScale, privatePrompt: job.privatePrompt != nil, watermark: job.watermark)
        FileHandle.standardError.write(Data("reel: rendering the job again (\(job.pipeline) pipeline)\n".utf8))
        switch job.pipeline {
        case "farm":
            var request = spec.message(output: options)
            request.withInput = inputBytes != nil
            if farm {
                try renderOnFarm(request, input: inputBytes, to: again)
            } else {
                request.model = directory
                let planned = try PlannedModel(directory: directory)
                let resolved = try SpecResolver(model: planned).resolve(request) { spec, maxFrames in
                    try InputVideo.frames(inputBytes ?? Data(), width: spec.width, height: spec.height, fps: spec.fps, maxFrames: maxFrames).frameCount
                }
                _ = try Render.renderInProcess(request, input: inputBytes, spec: resolved.spec, planned: planned, directory: directory,
                                               threads: threads, from: input, to: again)
            }
        case "reference":
            guard !farm else { throw UserError("--farm: a reference-pipeline render (--sampler unipc) runs in one process; leave --farm out") }
            try renderReference(spec, scale: job.outputScale, watermark: job.watermark, directory: directory, to: again)
        default:
            throw UserError("the manifest's pipeline \(job.pipeline.prefix(40).debugDescription) is not one this reel renders (farm or reference)")
        }
        // Made here a moment ago: its manifest is read, not checked again.
        guard let fresh = try Manifest.read(from: again)?.manifest else { throw UserError("the new render carries no manifest") }
        let video = manifest.video
        guard fresh.video.renderedSha256 == video.renderedSha256 else {
            return report.add(Verification.Finding(check: "rerender", passed: false,
                detail: "different: the job renders other frames than the signed ones (sha256 \(fresh.video.renderedSha256), signed \(video.renderedSha256))"))
        }
        report.add(Verification.Finding(check: "rerender", passed: true, detail: "identical: the job renders the signed frames, bit for bit (sha256 \(video.renderedSha256))"))
        if fresh.video.decoded.framesSha256 == video.decoded.framesSha256 {
            report.add(Verification.Finding(check: "rerender", passed: true, detail: "and they encode to the file's frames, bit for bit"))
        } else {
            report.note("this machine's encoder (\(fresh.video.encoder)) writes other frames than the file's (\(video.encoder)); the rendered frames are the same")
        }
    }

    private func renderOnFarm(_ request: Reel_V1_JobSpec, input: Data?, to path: String) throws {
        let client = try FarmClient(context: try ZMQContext(), endpoint: try ConnectionOptions.endpoint(coordinator), timeoutSeconds: timeout,
                                    security: try PeerKeyOptions.security(key: clientKey, coordinatorKey: coordinatorKey, insecure: insecure, as: "client"))
        let id = try client.submit(request, input: input ?? Data())
        FileHandle.standardError.write(Data("reel: submitted job \(id)\n".utf8))
        let status = try client.wait(for: id, update: ProgressDisplay(label: id).update)
        guard status.state == .done else { throw UserError("job \(id) \(status.state.word): \(status.error)") }
        let (_, video) = try client.fetch(id)
        try OutputPath.write(video, to: path)
    }

    /// A `--sampler unipc` render again, through the same command line it would have had. The
    /// manifest's texts are values, never options: each is joined to its flag with '=', and the
    /// prompt comes after "--", so a prompt such as "--input=x" stays a prompt.
    private func renderReference(_ spec: JobSpec, scale: Int, watermark: String?, directory: String, to path: String) throws {
        var arguments = ["--model=\(directory)", "--frames=\(spec.frames)", "--size=\(spec.width)x\(spec.height)",
                         "--fps=\(spec.fps)", "--steps=\(spec.steps)", "--sampler=\(spec.sampler)", "--guidance=\(spec.guidance)",
                         "--seed=\(spec.seed)", "--shift=\(spec.shift)", "--weights=\(spec.weights)", "--scale=\(scale)"]
        if let negative = spec.negativePrompt { arguments.append("--negative-prompt=\(negative)") }
        if let watermark { arguments.append("--watermark=\(watermark)") }
        if let input { arguments += ["--input=\(input)", "--strength=\(spec.strength)"] }
        let job = try JobOptions.parse(arguments + ["--", spec.prompt])
        let weights = WeightPrecision(rawValue: spec.weights) ?? .default
        try WanRender(model: try WanModel(directory: directory, weights: weights), job: job, output: path, threads: threads,
                      directory: directory, weights: weights, quiet: true).run()
    }

    static func weightDifference(_ found: [WeightFile], _ signed: [WeightFile]) -> String {
        let signedByPath = Dictionary(signed.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        let foundByPath = Dictionary(found.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        var lines: [String] = []
        for file in found where signedByPath[file.path] == nil { lines.append("\(file.path) is not in the manifest") }
        for file in signed where foundByPath[file.path] == nil { lines.append("\(file.path) is missing") }
        for file in found {
            if let other = signedByPath[file.path], other != file { lines.append("\(file.path) has sha256 \(file.sha256), the manifest \(other.sha256)") }
        }
        return lines.joined(separator: "; ")
    }

    /// The manifest, a line for each part.
    static func describe(_ manifest: Manifest) -> String {
        let spec = manifest.job.spec
        let prompt = manifest.job.privatePrompt != nil ? "(private: salted sha256 \(manifest.job.privatePrompt!.sha256))"
            : spec.shots.isEmpty ? spec.prompt.debugDescription : "\(spec.shots.count) shots: " + spec.shots.map { "\($0.prompt.debugDescription) (\($0.frames) frames)" }.joined(separator: ", ")
        var lines = [
            "manifest: \(manifest.format), written by \(manifest.generator) at \(manifest.created)",
            "  model:  \(manifest.model.name) (\(manifest.model.family)); weights: "
                + (manifest.model.weights.isEmpty ? "none found" : manifest.model.weights.map { "\($0.path) sha256 \($0.sha256)" }.joined(separator: ", ")),
            "  prompt: \(prompt)",
        ]
        if let negative = spec.negativePrompt { lines.append("  negative prompt: \(negative.debugDescription)") }
        lines.append("  job:    \(spec.frames) frames of \(spec.width)x\(spec.height) at \(spec.fps) fps, \(spec.steps) \(spec.sampler) steps, guidance \(spec.guidance), shift \(spec.shift), seed \(spec.seed), window \(spec.window), overlap \(spec.overlap), sync interval \(spec.syncInterval), weights \(spec.weights)"
                     + (spec.strength < 1 ? ", strength \(spec.strength)" : "") + " (\(manifest.job.pipeline) pipeline)")
        if let input = manifest.input { lines.append("  input:  sha256 \(input.sha256)") }
        lines.append("  kernel: \(manifest.blasKernels.isEmpty ? "none (no shard was computed)" : manifest.blasKernels.joined(separator: ", "))")
        lines.append("  file:   \(manifest.video.decoded.frames) frames of \(manifest.video.decoded.width)x\(manifest.video.decoded.height), \(manifest.video.encoder)"
                     + (manifest.job.watermark.map { "; marked \($0.debugDescription)" } ?? ""))
        lines.append("  frames: rendered sha256 \(manifest.video.renderedSha256)")
        return lines.joined(separator: "\n")
    }
}
