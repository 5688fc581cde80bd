import Foundation

/// A command's working directory under the system's temporary directory (an in-process farm's
/// job store and videos), removed when the command ends: by `remove()` on the way out, or on
/// SIGINT or SIGTERM, which would otherwise end the process and leave the directory behind.
/// Processes working for the command (`adopt`) are killed then, so none outlives it.
final class WorkDirectory: Sendable {
    let path: String

    /// `TMPDIR/PREFIX-UUID`, not yet created: the farm that works in it creates it.
    init(prefix: String) {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
        Interruption.shared.add(path)
    }

    func remove() {
        Interruption.shared.remove(path)
        try? FileManager.default.removeItem(atPath: path)
    }

    /// `process`, already running, works for this command until `release`: a signal that ends
    /// the command kills it too (Ctrl-C reaches it through the process group anyway; a `kill`
    /// does not). Killed, not asked to stop: a `reel worker` asked would first finish its shard
    /// for a coordinator that is going away with this command.
    func adopt(_ process: Process) { Interruption.shared.adopt(process.processIdentifier) }

    func release(_ process: Process) { Interruption.shared.release(process.processIdentifier) }

    /// Blocks for good once a signal has come: its handler is removing the work directories
    /// and ends the process itself. Called where the command would end, so that the failure a
    /// removed directory causes, or the command's own return, cannot end it first with another
    /// status and its files half removed.
    static func waitIfInterrupted() {
        guard Interruption.shared.interrupted else { return }
        while true { sleep(1) }
    }
}

/// The work directories not yet removed and the child processes still working, and the signal
/// handlers that clean them up: installed with the first directory, so commands without one keep
/// the default handling.
private final class Interruption: @unchecked Sendable {
    static let shared = Interruption()
    private let lock = NSLock()
    private var paths: Set<String> = []
    private var children: Set<pid_t> = []
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

    func adopt(_ child: pid_t) { _ = lock.withLock { children.insert(child) } }

    func release(_ child: pid_t) { _ = lock.withLock { children.remove(child) } }

    /// On signal `number`: kills the children, removes every live directory and ends the process
    /// at once, with 128 + the number as its status, as a shell reports a process the signal
    /// ended. Ending at once (not unwinding) is the point: the render in hand may have minutes left.
    private func removeAllOn(_ number: Int32) -> DispatchSourceSignal {
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { [self] in
            let (live, working) = lock.withLock { signalled = true; return (paths, children) }
            // Also any child not adopted yet: one started a moment before the signal came.
            for child in working.union(Self.childProcesses()) { kill(child, SIGKILL) }
            for path in live { Self.removeForGood(path) }
            FileHandle.standardError.write(Data("\nreel: interrupted; its working files are removed\n".utf8))
            _exit(128 + number)
        }
        source.resume()
        return source
    }

    /// This process's children, as /proc lists them (none where there is no /proc).
    private static func childProcesses() -> Set<pid_t> {
        let me = getpid()
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return Set(entries.compactMap(pid_t.init).filter { pid in
            // "pid (name) state ppid …": the name may hold spaces and parentheses, so fields
            // are counted from the last ')'.
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && pid_t(fields[1]) == me
        })
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
