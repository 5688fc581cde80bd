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

    /// Blocks for good once a signal has come: its handler is removing the work directories
    /// and ends the process itself. Called where the command would end, so that the failure a
    /// removed directory causes, or the command's own return, cannot end it first with another
    /// status and its files half removed.
    static func waitIfInterrupted() {
        guard LiveDirectories.shared.interrupted else { return }
        while true { sleep(1) }
    }
}

/// The work directories not yet removed, and the signal handlers that remove them: installed
/// with the first directory, so commands without one keep the default handling.
private final class LiveDirectories: @unchecked Sendable {
    static let shared = LiveDirectories()
    private let lock = NSLock()
    private var paths: Set<String> = []
    private var sources: [DispatchSourceSignal] = []
    private var signalled = false

    var interrupted: Bool { lock.withLock { signalled } }

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
            let live = lock.withLock { signalled = true; return paths }
            for path in live { Self.removeForGood(path) }
            FileHandle.standardError.write(Data("\nreel: interrupted; its working files are removed\n".utf8))
            _exit(128 + number)
        }
        source.resume()
        return source
    }

    /// Removes `path` while the farm's threads, still running, may write there: a file they
    /// create mid-removal leaves the directory standing, and one starting up creates it anew. So
    /// it is removed again until it has stayed away for 50 ms (2 s at the most).
    private static func removeForGood(_ path: String) {
        for _ in 0..<40 {
            try? FileManager.default.removeItem(atPath: path)
            usleep(50_000)
            if !FileManager.default.fileExists(atPath: path) { return }
        }
    }
}
