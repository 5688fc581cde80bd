import Coordinator
import Diffusion
import Foundation
import Wire
import Worker

/// A coordinator and workers in this process, talking over inproc ZeroMQ with the same
/// protocol as a farm of machines: `reel render` is the farm path on one machine.
public final class LocalFarm {
    public let context: ZMQContext
    public let endpoint: String
    public let coordinator: CoordinatorServer
    private let workers: [WorkerService]
    private var threads: [Thread] = []
    private let finished = DispatchGroup()

    /// Starts a coordinator keeping its files in `dataDirectory` and `workerCount` workers
    /// sharing `library`'s models. `signingKeyPath`: the key that signs its videos' manifests
    /// (default: one of its own in `dataDirectory`).
    public init(workerCount: Int, library: ModelLibrary, dataDirectory: String, bind: String? = nil,
                computation: WorkerService.Computation? = nil, signingKeyPath: String? = nil) throws {
        let context = try ZMQContext(), endpoint = bind ?? "inproc://reel-local-\(UUID().uuidString)"
        self.context = context
        var options = CoordinatorOptions(bind: [endpoint], dataDirectory: dataDirectory)
        options.modelPathsAllowed = true
        // Its one client is the command that started it, which waits for all it submits
        // (`reel eval` submits every video at once); the limit protects shared coordinators.
        options.maxActiveJobsPerClient = .max
        options.signingKeyPath = signingKeyPath
        coordinator = try CoordinatorServer(options: options, context: context)
        let reachable = coordinator.endpoints[0]
        self.endpoint = reachable
        workers = (0..<workerCount).map { index in
            WorkerService(options: WorkerOptions(endpoint: reachable, workerID: "local-\(index + 1)", threads: ComputeThreads.count),
                          context: context, library: library, computation: computation)
        }
        start("reel-coordinator") { [coordinator] in try coordinator.run() }
        for worker in workers { start("reel-worker") { try worker.run() } }
        // Its client submits at once: with its workers registered first, no status it reads
        // says a job waits for a worker that is about to say hello.
        let deadline = Date().addingTimeInterval(10)
        while coordinator.snapshot.workers.count < workerCount && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
    }

    private func start(_ name: String, _ body: @escaping @Sendable () throws -> Void) {
        finished.enter()
        let thread = Thread { [finished] in
            defer { finished.leave() }
            do { try body() } catch { FileHandle.standardError.write(Data("reel: \(name) stopped: \(error)\n".utf8)) }
        }
        thread.name = name
        thread.stackSize = 8 << 20
        thread.start()
        threads.append(thread)
    }

    /// Stops the workers (after their shards) and the coordinator, and waits for them.
    public func stop() {
        for worker in workers { worker.stop() }
        coordinator.stop()
        finished.wait()
    }

    deinit { stop() }
}
