import Coordinator
import Foundation
import Wire

/// The JSON the dashboard polls: what a person watching the farm needs, nothing more.
struct FarmView: Encodable {
    struct Job: Encodable {
        let id, state, prompt: String
        let priority, frames, width, height, steps, stepsDone, stepsTotal, chunks, tiles: Int
        /// Per region of the video (chunk-major, then tile), the last step it finished: the
        /// chunk-by-step map.
        let regionSteps: [Int]
        /// The same for a long job's layout pass (shot-major, then tile), which runs first; empty
        /// without one. The wire lists its regions after the video's.
        let layoutSteps: [Int]
        /// The step the chunks start from: a chunk still at it has not started.
        let chunkFirstStep: Int
        /// Per chunk, whether it waits for the layout pass (the rule `reel status` counts by).
        let waitsForLayout: [Bool]
        let secondsElapsed: Double
        let secondsRemaining: Double?
        let error: String
        /// Why it is not moving, when the coordinator can tell.
        let waiting: String
        /// Chunks with a preview frame now.
        let previews: [Int]
        /// A latent model's other shard kinds: prompts encoded and pieces decoded, of how many
        /// (zero totals for a pixel model).
        let promptsEncoded, promptsTotal, piecesDecoded, piecesTotal: Int
    }

    struct Worker: Encodable {
        let id, host, state, job: String
        let region, threads: Int
        let models: [String]
        /// The parts of latent models it holds; empty: all.
        let parts: [String]
        let heartbeatAgeSeconds: Double
        let shardsCompleted: Int
        /// Its build (`reel --version`) and OpenBLAS kernel family.
        let build, kernel: String
    }

    let jobs: [Job]
    let workers: [Worker]
    let taken: Double
    /// The coordinator's own `reel --version` line.
    let version = ReelVersion.line

    init(_ snapshot: FarmSnapshot) {
        jobs = snapshot.jobs.map { status in
            Job(id: status.jobID, state: status.state.word, prompt: status.spec.prompt, priority: Int(status.spec.priority),
                frames: Int(status.spec.frames), width: Int(status.spec.width), height: Int(status.spec.height),
                steps: Int(status.spec.steps), stepsDone: Int(status.stepsDone), stepsTotal: Int(status.stepsTotal),
                chunks: Int(status.chunks), tiles: Int(status.tiles), regionSteps: status.videoRegionSteps, layoutSteps: status.layoutRegionSteps,
                chunkFirstStep: Int(status.chunkFirstStep), waitsForLayout: status.chunksWaitForLayout,
                secondsElapsed: status.secondsElapsed,
                secondsRemaining: status.state == .running && status.stepsDone > 0 ? status.secondsRemaining : nil,
                error: status.error, waiting: status.waiting, previews: (snapshot.previews[status.jobID] ?? []).map(\.chunk),
                promptsEncoded: Int(status.promptsEncoded), promptsTotal: Int(status.promptsTotal),
                piecesDecoded: Int(status.piecesDecoded), piecesTotal: Int(status.piecesTotal))
        }
        workers = snapshot.workers.map { worker in
            Worker(id: worker.workerID, host: worker.hostname, state: worker.jobID.isEmpty ? "idle" : "busy",
                   job: worker.jobID, region: Int(worker.region), threads: Int(worker.threads), models: worker.modelsShown,
                   parts: worker.parts,
                   heartbeatAgeSeconds: worker.heartbeatAgeSeconds, shardsCompleted: Int(worker.shardsCompleted),
                   build: worker.build, kernel: worker.cpuKernel)
        }
        taken = snapshot.taken.timeIntervalSince1970
    }
}
