import Crypto
import Foundation
import Media

/// SHA-256 of a model's weight files. A published model's weights run to tens of gigabytes, so
/// each file's digest is kept, keyed by its path, size, modification time and inode: in memory
/// for this process, and in a cache file for the next (`$XDG_CACHE_HOME/reel/weight-digests.json`,
/// else ~/.cache/reel/...). A file that changes in any of those is read again.
public final class WeightDigests: @unchecked Sendable {
    public static let shared = WeightDigests(cachePath: WeightDigests.defaultCachePath)

    private let lock = NSLock()
    private var known: [String: Entry] = [:]
    private var loaded = false
    let cachePath: String?

    struct Entry: Codable, Equatable {
        var size: Int, modified: Int64, inode: UInt64, sha256: String
    }

    public init(cachePath: String?) { self.cachePath = cachePath }

    static var defaultCachePath: String {
        let environment = ProcessInfo.processInfo.environment
        let base = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory() + "/.cache"
        return base + "/reel/weight-digests.json"
    }

    /// Every `.safetensors` file under `directory`, by relative path, with its digest.
    public func weights(in directory: String) throws -> [WeightFile] {
        let root = URL(fileURLWithPath: directory).standardizedFileURL.resolvingSymlinksInPath()
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else {
            throw ProvenanceError("cannot list the model folder \(directory)")
        }
        var paths: [String] = []
        for case let url as URL in walker where url.pathExtension == "safetensors" {
            paths.append(String(url.path.dropFirst(root.path.count + 1)))  // a link (a hub cache's blobs) keeps its own name
        }
        return try paths.sorted().map { relative in
            let (size, sha256) = try digest(of: root.path + "/" + relative)
            return WeightFile(path: relative, bytes: size, sha256: sha256)
        }
    }

    /// One file's size and SHA-256, from the cache when the file is unchanged.
    func digest(of path: String) throws -> (Int, String) {
        var info = stat()
        guard stat(path, &info) == 0 else { throw ProvenanceError("cannot read the weight file \(path): \(String(cString: strerror(errno)))") }
        let key = Entry(size: Int(info.st_size), modified: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec),
                        inode: UInt64(info.st_ino), sha256: "")
        if let entry = lock.withLock({ loadIfNeeded(); return known[path] }),
           entry.size == key.size, entry.modified == key.modified, entry.inode == key.inode {
            return (entry.size, entry.sha256)
        }
        let sha256 = try Self.hash(path)
        var entry = key
        entry.sha256 = sha256
        lock.withLock {
            known[path] = entry
            save()
        }
        return (entry.size, sha256)
    }

    static func hash(_ path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ProvenanceError("cannot read the weight file \(path)") }
        defer { try? handle.close() }
        var hash = SHA256()
        while let chunk = try handle.read(upToCount: 8 << 20), !chunk.isEmpty { hash.update(data: chunk) }
        return VideoDigest.hex(hash.finalize())
    }

    private func loadIfNeeded() {
        guard !loaded else { return }
        loaded = true
        guard let cachePath, let data = FileManager.default.contents(atPath: cachePath),
              let entries = try? JSONDecoder().decode([String: Entry].self, from: data) else { return }
        known = entries.merging(known) { _, mine in mine }
    }

    /// A cache that cannot be written costs the next process a re-read, nothing else.
    private func save() {
        guard let cachePath, let data = try? JSONEncoder().encode(known) else { return }
        try? FileManager.default.createDirectory(atPath: URL(fileURLWithPath: cachePath).deletingLastPathComponent().path,
                                                 withIntermediateDirectories: true)
        try? data.write(to: URL(fileURLWithPath: cachePath), options: .atomic)
    }
}
