import Foundation

/// Writes whole files so that a reader sees either the old file or the complete new one, and
/// so that a file once renamed into place survives a power loss: its bytes reach the disk
/// before the rename, and the directory entry after it.
public enum AtomicFile {
    /// What names a temporary file: `.STEM.partial-TOKEN[.EXT]`. A crash can leave one behind;
    /// `removeOrphans` clears them.
    static let partialMarker = ".partial-"

    /// A temporary path in the same directory as `path` (so rename stays on one file system),
    /// keeping the extension so tools that guess formats from names still can.
    public static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let ext = url.pathExtension
        let stem = url.deletingPathExtension().lastPathComponent
        let token = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return "\(directory)/.\(stem)\(partialMarker)\(token)" + (ext.isEmpty ? "" : ".\(ext)")
    }

    public static func write(_ data: Data, to path: String) throws {
        let temporary = temporaryPath(for: path)
        do {
            try data.write(to: URL(fileURLWithPath: temporary))
            try commit(temporary, to: path)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }

    /// Renames a finished temporary file over its final path: the file's bytes are synced
    /// first, the directory after.
    public static func commit(_ temporary: String, to path: String) throws {
        try sync(temporary)
        CrashHook.at(.beforeRename, of: path)
        guard rename(temporary, path) == 0 else { throw failure("cannot rename \(temporary) to \(path)") }
        try sync(URL(fileURLWithPath: path).deletingLastPathComponent().path)
        CrashHook.at(.afterRename, of: path)
    }

    /// fsync of a file or a directory.
    static func sync(_ path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure("cannot open \(path) to sync it") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw failure("cannot sync \(path) to disk") }
    }

    /// Removes the temporary files a crash left in `directory`; returns their names.
    @discardableResult
    public static func removeOrphans(in directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix(".") && $0.contains(partialMarker) }.filter { name in
            (try? FileManager.default.removeItem(atPath: "\(directory)/\(name)")) != nil
        }
    }

    private static func failure(_ what: String) -> CocoaError {
        CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "\(what): \(String(cString: strerror(errno)))"])
    }
}

/// A test hook for power-loss tests: with REEL_CRASH_BEFORE_RENAME=SUFFIX (or
/// REEL_CRASH_AFTER_RENAME) in its environment, a process kills itself (SIGKILL, as a power cut
/// would stop it) right before (or after) renaming a finished temporary file onto a path ending
/// in SUFFIX; with REEL_CRASH_MID_SHARD=PART, a worker kills itself holding a shard of that model
/// part (text, dit or vae). Unset, it does nothing.
public enum CrashHook {
    public enum Moment: String, Sendable {
        case beforeRename = "REEL_CRASH_BEFORE_RENAME"
        case afterRename = "REEL_CRASH_AFTER_RENAME"
        case midShard = "REEL_CRASH_MID_SHARD"
    }

    static let suffixes: [Moment: String] = [Moment.beforeRename, .afterRename, .midShard].reduce(into: [:]) { suffixes, moment in
        if let suffix = ProcessInfo.processInfo.environment[moment.rawValue], !suffix.isEmpty { suffixes[moment] = suffix }
    }

    public static func at(_ moment: Moment, of path: String) {
        guard let suffix = suffixes[moment], path.hasSuffix(suffix) else { return }
        kill(getpid(), SIGKILL)
    }
}
