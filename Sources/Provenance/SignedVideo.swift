import Crypto
import Foundation
import Media
import Wire

/// What is known of a video before it is encoded, for its manifest.
public struct ManifestSubject: Sendable {
    public var job: JobRecord
    public var model: ModelRecord
    public var input: InputRecord?
    public var blasKernels: [String]

    public init(job: JobRecord, model: ModelRecord, input: InputRecord?, blasKernels: [String]) {
        self.job = job; self.model = model; self.input = input; self.blasKernels = blasKernels
    }
}

/// Writes MP4s that carry their signed manifest.
public enum SignedVideo {
    /// Encodes `video` to `path`; with a subject, the file carries the manifest, made from it,
    /// from the frames and from what the encode wrote, signed with `key`.
    public static func writeMP4(_ video: RGBVideo, options: EncodeOptions, to path: String,
                                subject: ManifestSubject?, key: SigningKey, date: Date) throws {
        guard let subject else { return try VideoEncoder.writeMP4(video, options: options, to: path) }
        let rendered = VideoRecord.renderedDigest(video)
        try VideoEncoder.writeMP4(video, options: options, to: path) { digest in
            let manifest = Manifest(generator: "reel \(ReelVersion.build)", created: timestamp(date), model: subject.model, job: subject.job,
                                    input: subject.input, blasKernels: subject.blasKernels.sorted(),
                                    video: VideoRecord(fps: options.fps, renderedSha256: rendered,
                                                       encoder: VideoEncoder.settings(options), decoded: digest),
                                    signer: key.publicText)
            return try tags(manifest, key: key)
        }
    }

    /// The container tags holding `manifest` and its signature.
    public static func tags(_ manifest: Manifest, key: SigningKey) throws -> [String: String] {
        let bytes = try manifest.encoded()
        let signature = try key.privateKey.signature(for: bytes)
        return [Manifest.manifestTag: String(decoding: bytes, as: UTF8.self), Manifest.signatureTag: signature.base64EncodedString()]
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }
}

/// What `reel verify` finds in a file: its manifest, and each check with its outcome.
public struct Verification: Sendable {
    public struct Finding: Sendable, Equatable, Encodable {
        /// "manifest", "signature", "signer", "stream" or "frames"; `reel verify --rerender`
        /// adds "model" and "rerender".
        public let check: String
        public let passed: Bool
        public let detail: String

        public init(check: String, passed: Bool, detail: String) { self.check = check; self.passed = passed; self.detail = detail }
    }

    public let manifest: Manifest?
    public let findings: [Finding]

    public var passed: Bool { manifest != nil && findings.allSatisfy(\.passed) }
    /// The checks that failed.
    public var failures: [Finding] { findings.filter { !$0.passed } }

    /// Reads the file's manifest and checks it: its signature (by `trustedKey`, when given),
    /// and that the file's stream and decoded pictures are the ones it names.
    public static func check(file path: String, trustedKey: Curve25519.Signing.PublicKey?) throws -> Verification {
        var findings: [Finding] = []
        let carried: (manifest: Manifest, bytes: Data, signature: String?)?
        do {
            carried = try Manifest.read(from: path)
        } catch let error as ProvenanceError {
            return Verification(manifest: nil, findings: [Finding(check: "manifest", passed: false, detail: "\(error)")])
        }
        guard let (manifest, bytes, signatureText) = carried else {
            return Verification(manifest: nil, findings: [Finding(check: "manifest", passed: false,
                detail: "the file carries no Reel manifest (rendered with --no-manifest, not made by Reel, or its tags were stripped)")])
        }

        let signer = Data(base64Encoded: manifest.signer).flatMap { try? Curve25519.Signing.PublicKey(rawRepresentation: $0) }
        let signature = signatureText.flatMap { Data(base64Encoded: $0) }
        if let signer, let signature, signer.isValidSignature(signature, for: bytes) {
            findings.append(Finding(check: "signature", passed: true, detail: "good, by key \(manifest.signer)"))
        } else {
            findings.append(Finding(check: "signature", passed: false, detail: signature == nil
                ? "missing or not base64: nothing vouches for the manifest"
                : "does not match: the manifest was changed after it was signed, or was not signed by the key it names (\(manifest.signer.prefix(44)))"))
        }
        if let trustedKey {
            let trusted = SigningKey.text(trustedKey)
            findings.append(trusted == manifest.signer
                ? Finding(check: "signer", passed: true, detail: "is the key given with --key")
                : Finding(check: "signer", passed: false, detail: "is \(manifest.signer.prefix(44)), not the key given with --key (\(trusted))"))
        }

        let expected = manifest.video.decoded
        do {
            let found = try VideoDigest.of(file: path)
            findings.append(found.streamSha256 == expected.streamSha256
                ? Finding(check: "stream", passed: true, detail: "the coded video is the one signed (sha256 \(found.streamSha256))")
                : Finding(check: "stream", passed: false, detail: "the coded video differs from the one signed (sha256 \(found.streamSha256), signed \(expected.streamSha256))"))
            if found.framesSha256 == expected.framesSha256 {
                findings.append(Finding(check: "frames", passed: true, detail: "\(found.frames) decoded frames of \(found.width)x\(found.height) are the ones signed (sha256 \(found.framesSha256))"))
            } else {
                var what = "the decoded frames differ from the signed ones: the video was re-encoded or edited"
                if found.frames != expected.frames || found.width != expected.width || found.height != expected.height {
                    what += " (\(found.frames) frames of \(found.width)x\(found.height); signed \(expected.frames) of \(expected.width)x\(expected.height))"
                }
                findings.append(Finding(check: "frames", passed: false, detail: what))
            }
        } catch {
            findings.append(Finding(check: "stream", passed: false, detail: "the coded video differs from the one signed: it does not decode (\(error))"))
            findings.append(Finding(check: "frames", passed: false, detail: "the video was damaged or edited: its frames cannot be decoded"))
        }
        return Verification(manifest: manifest, findings: findings)
    }
}
