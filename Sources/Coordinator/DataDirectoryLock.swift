import Foundation

/// An exclusive lock on DATA-DIR/coordinator.lock, held for a coordinator's life: a second
/// coordinator on the same data directory would serve the same jobs twice and remove the first
/// one's half-written files as crash leftovers, so it refuses to start instead. The kernel
/// drops the lock when the process dies, however it dies (flock), so no stale lock is left.
final class DataDirectoryLock: @unchecked Sendable {
    private let lock = NSLock()
    private var descriptor: Int32

    init(directory: String) throws {
        let path = "\(directory)/coordinator.lock"
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw CoordinatorError(.dataDirectoryUnavailable, "cannot open \(path): \(String(cString: strerror(errno))); check --data-dir and its permissions")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            release()
            throw CoordinatorError(.dataDirectoryInUse, "\(directory) is in use by another coordinator\(holder.isEmpty ? "" : " (pid \(holder))"); stop it, or give this one another --data-dir")
        }
        ftruncate(descriptor, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { write(descriptor, $0, strlen($0)) }
    }

    /// Lets another coordinator have the directory (a stopped one holds nothing of it). Safe to
    /// call again; deinit does it too.
    func release() {
        lock.withLock {
            if descriptor >= 0 { close(descriptor) }
            descriptor = -1
        }
    }

    deinit { release() }
}
