import Foundation

/// A command's working directory under the system's temporary directory (an in-process farm's
/// job store and videos), removed when the command ends: by `remove()` on the way out, or on
/// SIGINT or SIGTERM, which would otherwise end the process and leave the directory behind.
final class WorkDirectory: Sendable {
    let path: String

    /// `TMPDIR/PREFIX-UUID`, not yet created: the farm that works in it creates it.
    init(prefix: String) {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
        LiveDirectories.shared.add(path)
    }

    func remove() {
        LiveDirectories.shared.remove(path)
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// The work directories not yet removed, and the signal handlers that remove them: installed
/// with the first directory, so commands without one keep the default handling.
private final class LiveDirectories: @unchecked Sendable {
    static let shared = LiveDirectories()
    private let lock = NSLock()
    private var paths: Set<String> = []
    private var sources: [DispatchSourceSignal] = []

    func add(_ path: String) {
        lock.withLock {
            if sources.isEmpty { sources = [SIGINT, SIGTERM].map(removeAllOn) }
            paths.insert(path)
        }
    }

    func remove(_ path: String) {
        _ = lock.withLock { paths.remove(path) }
    }

    /// On signal `number`: removes every live directory and ends the process at once, with
    /// 128 + the number as its status, as a shell reports a process the signal ended. Ending at
    /// once (not unwinding) is the point: the render in hand may have minutes left.
    private func removeAllOn(_ number: Int32) -> DispatchSourceSignal {
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { [self] in
            for path in lock.withLock({ paths }) { try? FileManager.default.removeItem(atPath: path) }
            FileHandle.standardError.write(Data("\nreel: interrupted; its working files are removed\n".utf8))
            _exit(128 + number)
        }
        source.resume()
        return source
    }
}
