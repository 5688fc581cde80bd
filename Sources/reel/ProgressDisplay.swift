import Diffusion
import Foundation

/// Shows sampler progress: a redrawn bar on a terminal, one plain line per step otherwise
/// (for logs and pipes).
struct ProgressDisplay {
    let interactive = isatty(STDERR_FILENO) == 1
    let label: String

    func update(_ progress: StepProgress) {
        update(done: progress.step, total: progress.steps, seconds: progress.seconds)
    }

    /// `done` of `total` steps (summed over chunks and tiles) after `seconds`.
    func update(done: Int, total: Int, seconds: Double) {
        let progress = (step: done, steps: total)
        let fraction = Double(done) / Double(total)
        let perStep = seconds / Double(max(done, 1))
        let remaining = perStep * Double(total - done)
        let timing = String(format: "%.2f s/step, ETA %@", perStep, Self.duration(remaining))
        if interactive {
            let width = 30, filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            write("\r\(label) [\(bar)] \(progress.step)/\(progress.steps) steps  \(timing)\u{1B}[K")
            if progress.step == progress.steps { write("\n") }
        } else {
            write("\(label): step \(progress.step)/\(progress.steps) (\(Int(fraction * 100))%), \(timing)\n")
        }
    }

    static func duration(_ seconds: Double) -> String {
        seconds < 60 ? String(format: "%.0f s", seconds) : String(format: "%dm%02ds", Int(seconds) / 60, Int(seconds) % 60)
    }

    private func write(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }
}
