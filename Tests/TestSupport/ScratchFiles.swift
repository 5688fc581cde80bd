import Foundation

/// The temporary files and directories of a test process, removed when it exits (unless
/// REEL_KEEP_TEST_FILES=1 asks to keep them for a look), so a test run leaves nothing behind
/// in the temporary directory, whether its tests pass or fail midway.
public final class ScratchFiles: @unchecked Sendable {
    public static let shared = ScratchFiles()
    private let lock = NSLock()
    private var paths: [String] = []

    private init() {
        atexit { ScratchFiles.shared.removeAll() }
    }

    /// A fresh path in the temporary directory, `PREFIX-UUID-NAME`, removed at exit; nothing
    /// is created there.
    public static func path(_ name: String, prefix: String = "reel-test") -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(UUID().uuidString)\(name.isEmpty ? "" : "-\(name)")").path
        shared.lock.withLock { shared.paths.append(path) }
        return path
    }

    /// A new empty directory in the temporary directory, removed at exit.
    public static func directory(prefix: String = "reel-test") throws -> String {
        let path = path("", prefix: prefix)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    private func removeAll() {
        guard ProcessInfo.processInfo.environment["REEL_KEEP_TEST_FILES"] != "1" else { return }
        for path in lock.withLock({ paths }) { try? FileManager.default.removeItem(atPath: path) }
    }
}
