import Wire
import Foundation

/// Shows a job's progress: a redrawn bar on a terminal, one plain line per change otherwise
/// (for logs and pipes).
final class ProgressDisplay {
    let interactive = isatty(STDERR_FILENO) == 1
    let label: String
    /// What is counted: steps for a render, videos for an evaluation.
    let unit: String
    /// Whether to tell why a job waits. In-process, `reel render`'s own worker joins a moment
    /// after its job is submitted: advice to start a worker would be wrong there.
    let tellsWaiting: Bool
    private var lastDone = -1
    private var lastDetail = ""
    private var lastWaiting = ""

    init(label: String, unit: String = "step", tellsWaiting: Bool = true) {
        self.label = label; self.unit = unit; self.tellsWaiting = tellsWaiting
    }

    /// A farm job: steps summed over its regions, and how far its slowest and fastest chunks are.
    /// Why the job waits is told once each time it changes.
    func update(_ status: Reel_V1_JobStatus) {
        if tellsWaiting && status.waiting != lastWaiting {
            lastWaiting = status.waiting
            if !status.waiting.isEmpty { write("\(interactive ? "\n" : "")\(label) waits: \(status.waiting)\n") }
        }
        // A latent model's job encodes its prompts before its first step and decodes after its
        // last: those stages show beside the steps.
        let stages = status.promptsTotal == 0 ? ""
            : ", prompts \(status.promptsEncoded)/\(status.promptsTotal), pieces decoded \(status.piecesDecoded)/\(status.piecesTotal)"
        guard status.stepsTotal > 0, status.stepsDone > 0 || !stages.isEmpty else { return }
        update(done: Int(status.stepsDone), total: Int(status.stepsTotal), seconds: status.secondsElapsed,
               detail: Self.regionDetail(status) + stages)
    }

    /// Where a farm job's regions stand: a long video's layout pass (which runs first) and its
    /// chunks, each as the range of steps its regions have finished.
    static func regionDetail(_ status: Reel_V1_JobStatus) -> String {
        let video = status.videoRegionSteps, layout = status.layoutRegionSteps
        guard video.count + layout.count > 1 else { return "" }
        let waiting = status.chunksWaitingForLayout
        let standing = waiting == Int(status.chunks) ? "waiting for it"
            : "at \(steps(video))" + (waiting > 0 ? " (\(waiting) waiting for it)" : "")
        let chunks = ", \(status.chunks) chunk(s) x \(status.tiles) tile(s) " + standing
        return layout.isEmpty ? chunks : ", layout at \(steps(layout))" + chunks
    }

    private static func steps(_ finished: [Int]) -> String {
        guard let low = finished.min(), let high = finished.max() else { return "no step" }
        return low == high ? "step \(low)" : "steps \(low)-\(high)"
    }

    /// `done` of `total` units (for a render, steps summed over chunks and tiles) after `seconds`.
    func update(done: Int, total: Int, seconds: Double, detail: String = "") {
        guard done != lastDone || detail != lastDetail else { return }
        lastDone = done
        lastDetail = detail
        let fraction = Double(done) / Double(total)
        let perStep = seconds / Double(max(done, 1))
        let remaining = perStep * Double(total - done)
        // Before its first step a job has no rate to guess its end from.
        let timing = (done == 0 ? "no step yet" : String(format: "%.2f s/%@, ETA %@", perStep, unit, Self.duration(remaining))) + detail
        if interactive {
            write("\r" + Self.fitted(label: label, fraction: fraction, counts: "\(done)/\(total) \(unit)s", timing: timing,
                                     columns: Self.terminalColumns()) + "\u{1B}[K")
            if done == total { write("\n") }
        } else {
            write("\(label): \(unit) \(done)/\(total) (\(Int(fraction * 100))%), \(timing)\n")
        }
    }

    /// The redrawn line within `columns - 1` characters, so that it never wraps (a wrapped line
    /// is not redrawn but scrolls): the bar narrows from 30 cells to 10 first, then the timing
    /// and region detail are cut, marked with "…".
    static func fitted(label: String, fraction: Double, counts: String, timing: String, columns: Int) -> String {
        let room = max(20, columns - 1)
        func line(bar width: Int) -> String {
            let filled = min(width, Int(fraction * Double(width)))
            return "\(label) [\(String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled))] \(counts)  \(timing)"
        }
        for width in [30, 20, 10] where line(bar: width).count <= room { return line(bar: width) }
        return String(line(bar: 10).prefix(room - 1)) + "…"
    }

    /// The terminal's width from stderr's window size, else $COLUMNS, else 80.
    static func terminalColumns() -> Int {
        var size = winsize()
        if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return ProcessInfo.processInfo.environment["COLUMNS"].flatMap(Int.init) ?? 80
    }

    static func duration(_ seconds: Double) -> String {
        seconds < 60 ? String(format: "%.0f s", seconds) : String(format: "%dm%02ds", Int(seconds) / 60, Int(seconds) % 60)
    }

    private func write(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }
}
