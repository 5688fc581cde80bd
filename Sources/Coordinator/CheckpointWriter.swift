import Foundation
import GRDB
import Wire

/// Writes job checkpoints off the coordinator's thread, one job at a time in order, so the
/// loop never waits for a disk. At most one write per job is in flight: a job whose results
/// arrive faster than its checkpoints can be written simply checkpoints less often.
final class CheckpointWriter: @unchecked Sendable {
    private let queue = DispatchQueue(label: "reel.checkpoints")
    private let lock = NSLock()
    private var busy: Set<String> = []
    private let store: JobStore
    private let files: JobFiles
    private let onError: @Sendable (String, Error) -> Void

    init(store: JobStore, files: JobFiles, onError: @escaping @Sendable (String, Error) -> Void) {
        self.store = store
        self.files = files
        self.onError = onError
    }

    func path(for job: String) -> String { files.checkpoint(job) }

    /// Whether a checkpoint of `job` is being written now.
    func isWriting(_ job: String) -> Bool { lock.withLock { busy.contains(job) } }

    /// Writes `checkpoint` (temporary name, rename), then records it in the store.
    func write(_ job: String, _ checkpoint: JobRun.Checkpoint, stepsDone: Int) {
        lock.withLock { _ = busy.insert(job) }
        queue.async { [self] in
            defer { lock.withLock { _ = busy.remove(job) } }
            do {
                try CheckpointFile.write(checkpoint, to: path(for: job))
                try store.recordCheckpoint(job, stepsDone: stepsDone)
            } catch {
                onError(job, error)
            }
        }
    }

    /// Deletes `job`'s checkpoint after any write already queued for it.
    func discard(_ job: String) {
        queue.async { [self] in try? FileManager.default.removeItem(atPath: path(for: job)) }
    }

    /// Waits for every queued write: a stopping coordinator flushes its state.
    func flush() { queue.sync {} }
}
