import Crypto
import Foundation
import Media
import Planning

/// What made a video, as the MP4 carries it in its container tags (`reel.manifest`, JSON, and
/// `reel.signature`, an Ed25519 signature of those exact bytes by `signer`). `ffprobe
/// -show_format` prints both. Everything a re-render needs is here: the model's weights, the
/// whole resolved job, the input video's digest and the BLAS kernel its workers ran.
public struct Manifest: Codable, Equatable, Sendable {
    public static let currentFormat = "reel-manifest/1"
    /// The container tags that hold it.
    public static let manifestTag = "reel.manifest"
    public static let signatureTag = "reel.signature"

    public var format = Manifest.currentFormat
    /// The program and its build: "reel 0.8.0+1a2b3c4d5e6f".
    public var generator: String
    /// When the video was encoded, ISO 8601 in UTC.
    public var created: String
    public var model: ModelRecord
    public var job: JobRecord
    /// The input video a re-render started from, as the bytes that were submitted.
    public var input: InputRecord?
    /// OpenBLAS kernel families of the processes that rendered it (bits are the same only on
    /// the same family).
    public var blasKernels: [String]
    public var video: VideoRecord
    /// The public key that signed it, base64.
    public var signer: String

    public init(generator: String, created: String, model: ModelRecord, job: JobRecord, input: InputRecord?,
                blasKernels: [String], video: VideoRecord, signer: String) {
        self.generator = generator; self.created = created; self.model = model; self.job = job; self.input = input
        self.blasKernels = blasKernels; self.video = video; self.signer = signer
    }

    /// Its bytes as stored and signed: compact JSON, keys sorted, snake_case names as job files
    /// spell them.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return try encoder.encode(self)
    }

    /// The most a manifest may take of a file's tags; a larger one is refused unread.
    public static let maxBytes = 1 << 20

    /// The manifest the MP4 at `path` carries, its exact bytes and its signature's text; nil
    /// when it carries none. A manifest that does not decode is a `ProvenanceError`.
    public static func read(from path: String) throws -> (manifest: Manifest, bytes: Data, signature: String?)? {
        let tags = try ContainerMetadata.read(path)
        guard let text = tags[manifestTag] else { return nil }
        let bytes = Data(text.utf8)
        return (try decode(bytes), bytes, tags[signatureTag])
    }

    public static func decode(_ bytes: Data) throws -> Manifest {
        guard bytes.count <= maxBytes else { throw ProvenanceError("the manifest is \(bytes.count) bytes; at most \(maxBytes)") }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do {
            let manifest = try decoder.decode(Manifest.self, from: bytes)
            guard manifest.format == currentFormat else {
                throw ProvenanceError("the manifest's format is \(manifest.format.prefix(40).debugDescription); this reel reads \(currentFormat)")
            }
            return manifest
        } catch let error as ProvenanceError {
            throw error
        } catch {
            throw ProvenanceError("the manifest is not one this reel reads: \(error)")
        }
    }
}

public struct ModelRecord: Codable, Equatable, Sendable {
    /// As the job named it: a package name, or the directory `reel render --model` was given.
    public var name: String
    public var family: String
    /// Every weight file, relative to the model's folder, with its SHA-256 (the digest Hugging
    /// Face lists for each file, so a published model can be compared file by file).
    public var weights: [WeightFile]

    public init(name: String, family: String, weights: [WeightFile]) { self.name = name; self.family = family; self.weights = weights }
}

public struct WeightFile: Codable, Equatable, Sendable {
    public var path: String
    public var bytes: Int
    public var sha256: String

    public init(path: String, bytes: Int, sha256: String) { self.path = path; self.bytes = bytes; self.sha256 = sha256 }
}

/// The job as it was rendered: every field of its resolved spec, and how its file was written.
public struct JobRecord: Codable, Equatable, Sendable {
    /// "farm": the farm's path (`reel render`, `reel submit`); "reference": the reference
    /// pipeline in one process (`reel render --sampler unipc` for Wan).
    public var pipeline: String
    /// With `private_prompt`, its prompt texts are empty.
    public var spec: JobSpec
    public var outputScale: Int
    public var watermark: String?
    /// Set when the prompt was kept private: a salted hash of its prompts instead of their text.
    public var privatePrompt: PromptHash?

    public init(pipeline: String, spec: JobSpec, outputScale: Int, watermark: String?, privatePrompt: PromptHash?) {
        self.pipeline = pipeline; self.spec = spec; self.outputScale = outputScale; self.watermark = watermark; self.privatePrompt = privatePrompt
    }

    /// The record of `spec`; with `privatePrompt`, its prompts are replaced by their salted hash.
    public init(pipeline: String, spec: JobSpec, outputScale: Int, watermark: String?, privatePrompt: Bool) {
        var kept = spec
        var hash: PromptHash?
        if privatePrompt {
            hash = PromptHash(prompts: spec.promptTexts)
            kept.prompt = ""
            kept.shots = kept.shots.map { Shot(prompt: "", frames: $0.frames) }
        }
        self.init(pipeline: pipeline, spec: kept, outputScale: outputScale, watermark: watermark, privatePrompt: hash)
    }
}

extension JobSpec {
    /// The texts a private prompt hides: the prompt, or each shot's in order.
    public var promptTexts: [String] { shots.isEmpty ? [prompt] : shots.map(\.prompt) }
}

/// SHA-256 of a random salt followed by the prompts as a JSON array: it shows that given
/// prompts are the ones rendered without telling them. The salt makes a list of likely prompts
/// useless against other files; a short or guessable prompt can still be found by trying.
public struct PromptHash: Codable, Equatable, Sendable {
    public var salt: String
    public var sha256: String

    public init(prompts: [String], salt: [UInt8] = (0..<16).map { _ in UInt8.random(in: 0...255) }) {
        self.salt = VideoDigest.hex(salt)
        sha256 = Self.digest(prompts, salt: salt)
    }

    public func matches(_ prompts: [String]) -> Bool {
        guard let salt = Self.bytes(hex: salt) else { return false }
        return Self.digest(prompts, salt: salt) == sha256
    }

    private static func digest(_ prompts: [String], salt: [UInt8]) -> String {
        var hash = SHA256()
        hash.update(data: salt)
        hash.update(data: (try? JSONEncoder().encode(prompts)) ?? Data())
        return VideoDigest.hex(hash.finalize())
    }

    static func bytes(hex: String) -> [UInt8]? {
        let characters = Array(hex.utf8)
        guard characters.count % 2 == 0, characters.count <= 128 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: characters.count, by: 2) {
            guard let byte = UInt8(String(decoding: characters[index..<index + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}

/// The input video, as the bytes that were submitted.
public struct InputRecord: Codable, Equatable, Sendable {
    public var sha256: String

    public init(sha256: String) { self.sha256 = sha256 }

    public init(of data: Data) { sha256 = VideoDigest.hex(SHA256.hash(data: data)) }
}

/// The frames: as rendered (8-bit RGB, before encoding), and as the file holds them.
public struct VideoRecord: Codable, Equatable, Sendable {
    public var fps: Int
    /// SHA-256 of the rendered frames, 8-bit RGB in order, at the model's size: what a
    /// re-render reproduces bit for bit.
    public var renderedSha256: String
    /// The encoder and its settings, which turn those frames into `decoded`.
    public var encoder: String
    /// The file's stream and its decoded pictures (`VideoDigest`).
    public var decoded: VideoDigest

    public init(fps: Int, renderedSha256: String, encoder: String, decoded: VideoDigest) {
        self.fps = fps; self.renderedSha256 = renderedSha256; self.encoder = encoder; self.decoded = decoded
    }

    public static func renderedDigest(_ video: RGBVideo) -> String {
        var hash = SHA256()
        hash.update(data: Data("rgb24 \(video.width)x\(video.height)x\(video.frameCount)\n".utf8))
        video.pixels.withUnsafeBytes { hash.update(bufferPointer: $0) }
        return VideoDigest.hex(hash.finalize())
    }
}
