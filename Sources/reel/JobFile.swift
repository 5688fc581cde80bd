import Foundation
import Planning
import Wire
import Yams

/// A render described in a file (YAML, or JSON, which YAML reads too): a prompt or a
/// storyboard of shots, and any render option. Schema: docs/job-file.schema.json.
///
///     model: reel-shapes
///     seed: 7
///     shots:
///       - prompt: a red circle moving right on a black background
///         frames: 32
///       - prompt: a blue square moving up on a white background
///         seconds: 4
///
/// Every error names the file, the line and the field.
struct JobFile {
    let path: String
    var spec = Reel_V1_JobSpec()
    var outputPath: String?

    static func looksLikeOne(_ argument: String) -> Bool {
        [".yaml", ".yml", ".json"].contains { argument.lowercased().hasSuffix($0) } && FileManager.default.fileExists(atPath: argument)
    }

    static let fields = ["prompt", "shots", "model", "frames", "size", "fps", "steps", "sampler", "guidance", "seed", "shift",
                         "window", "overlap", "sync_interval", "layout_strength", "priority", "scale", "output",
                         "negative_prompt", "weights", "manifest", "private_prompt", "watermark"]

    init(path: String) throws {
        self.path = path
        guard let data = FileManager.default.contents(atPath: path) else { throw UserError("\(path): no such file, or not readable") }
        let root: Node?
        do {
            root = try Yams.compose(yaml: String(decoding: data, as: UTF8.self))
        } catch let error as YamlError {
            throw UserError("\(path): not valid YAML or JSON: \(Self.describe(error))")
        }
        guard let mapping = root?.mapping else { throw UserError("\(path): a job file is a mapping of fields (\(Self.fields.joined(separator: ", ")))") }
        spec.outputScale = 4
        var fps = 0
        var shotNodes: [(Node, Node)] = []
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            let at = Location(file: path, line: keyNode.mark?.line, field: key)
            switch key {
            case "prompt": spec.prompt = try at.text(value)
            case "model": spec.model = try at.text(value)
            case "frames": spec.frames = UInt32(try at.count(value, 1...JobLimits.maxFrames))
            case "size":
                let parts = try at.text(value).lowercased().split(separator: "x").compactMap { Int($0) }
                guard parts.count == 2, parts.allSatisfy({ $0 > 0 }) else { throw at.error("is not WIDTHxHEIGHT, e.g. 64x64") }
                spec.width = UInt32(parts[0]); spec.height = UInt32(parts[1])
            case "fps": fps = try at.count(value, 1...JobLimits.maxFPS); spec.fps = UInt32(fps)
            case "steps": spec.steps = UInt32(try at.count(value, 1...JobLimits.maxSteps))
            case "sampler": spec.sampler = try at.text(value)
            case "guidance": spec.guidance = Float(try at.number(value, 0...Double(JobLimits.maxGuidance)))
            case "seed": spec.seed = UInt64(try at.count(value, 0...Int.max))
            case "shift": spec.shift = Float(try at.number(value, 0.001...Double(JobLimits.maxShift)))
            case "window": spec.window = UInt32(try at.count(value, 1...1024))
            case "overlap": spec.overlap = UInt32(try at.count(value, 0...1023))
            case "sync_interval": spec.syncInterval = UInt32(try at.count(value, 1...JobLimits.maxSteps))
            case "layout_strength": spec.layoutStrength = Float(try at.number(value, 0.001...1))
            case "priority": spec.priority = Int32(try at.count(value, JobLimits.priorities))
            case "scale": spec.outputScale = UInt32(try at.count(value, 1...16))
            case "output": outputPath = try at.text(value)
            case "negative_prompt": spec.negativePrompt = try at.text(value)
            case "weights": spec.weights = try at.text(value)
            case "manifest": spec.noManifest = !(try at.flag(value))
            case "private_prompt": spec.privatePrompt = try at.flag(value)
            case "watermark": spec.watermark = try at.text(value)
            case "shots":
                guard let sequence = value.sequence, !sequence.isEmpty else { throw at.error("is a list of shots, each with a prompt and frames or seconds") }
                shotNodes = sequence.map { (keyNode, $0) }
            default:
                throw at.error("is not a job file field; the fields are \(Self.fields.joined(separator: ", "))")
            }
        }
        for (index, (_, node)) in shotNodes.enumerated() {
            spec.shots.append(try shot(node, index: index, fps: fps))
        }
        if spec.shots.isEmpty && spec.prompt.isEmpty {
            throw UserError("\(path): give a prompt, or shots, each with a prompt and frames or seconds")
        }
        if !spec.shots.isEmpty {
            let total = spec.shots.reduce(0) { $0 + Int($1.frames) }
            if spec.frames == 0 { spec.frames = UInt32(clamping: total) }  // past UInt32, refused just below
            guard spec.frames == total else {
                throw UserError("\(path): frames is \(spec.frames) but the shots add up to \(total); leave frames out or make them equal")
            }
            if spec.prompt.isEmpty { spec.prompt = spec.shots.map(\.prompt).joined(separator: " / ") }
        }
    }

    /// One shot: a prompt, and its length in frames or (with `fps` given) seconds.
    func shot(_ node: Node, index: Int, fps: Int) throws -> Reel_V1_Shot {
        let place = Location(file: path, line: node.mark?.line, field: "shots[\(index)]")
        guard let mapping = node.mapping else { throw place.error("is a mapping with a prompt and frames or seconds") }
        var shot = Reel_V1_Shot()
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            let at = Location(file: path, line: keyNode.mark?.line, field: "shots[\(index)].\(key)")
            switch key {
            case "prompt": shot.prompt = try at.text(value)
            case "frames": shot.frames = UInt32(try at.count(value, 1...JobLimits.maxFrames))
            case "seconds":
                guard fps > 0 else { throw at.error("needs fps set in the job file (or give frames)") }
                shot.frames = UInt32(max(1, Int((try at.number(value, 0.001...3600) * Double(fps)).rounded())))
            default: throw at.error("is not a shot field; a shot has prompt, and frames or seconds")
            }
        }
        guard !shot.prompt.isEmpty else { throw place.error("has no prompt") }
        guard shot.frames > 0 else { throw place.error("has no length: give frames or seconds") }
        return shot
    }

    static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return "line \(mark.line): \(problem)"
        default:
            return "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
        }
    }
}

/// Where a value sits, for errors: file, line and field.
private struct Location {
    let file: String
    let line: Int?
    let field: String

    func error(_ problem: String) -> UserError {
        UserError("\(file)\(line.map { ":\($0)" } ?? ""): \(field) \(problem)")
    }

    func text(_ node: Node) throws -> String {
        guard let scalar = node.scalar else { throw error("must be text, not a list or a mapping") }
        return scalar.string
    }

    func count(_ node: Node, _ range: ClosedRange<Int>) throws -> Int {
        guard node.scalar != nil, let value = node.int else { throw error("must be a whole number") }
        guard range.contains(value) else { throw error("\(value) is out of range; use \(range.lowerBound) to \(range.upperBound)") }
        return value
    }

    func flag(_ node: Node) throws -> Bool {
        guard node.scalar != nil, let value = node.bool else { throw error("must be true or false") }
        return value
    }

    func number(_ node: Node, _ range: ClosedRange<Double>) throws -> Double {
        guard node.scalar != nil, let value = node.float ?? node.int.map(Double.init) else { throw error("must be a number") }
        guard range.contains(value) else { throw error("\(value) is out of range; use \(range.lowerBound) to \(range.upperBound)") }
        return value
    }
}
