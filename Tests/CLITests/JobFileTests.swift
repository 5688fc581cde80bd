import Evaluation
import Foundation
import Media
import Testing
import Yams

/// Job files: storyboards and every render option in one file, with errors that name the line.
@Suite(.serialized) struct JobFileTests {
    static let twoShots = """
        # two shots of reel-tiny
        model: reel-tiny
        seed: 5
        steps: 3
        overlap: 4
        scale: 1
        shots:
          - prompt: a red circle moving left
            frames: 24
          - prompt: a blue square moving up
            frames: 16
        """

    @Test func aTwoShotJobRendersOneVideoAndTheFarmRendersTheSameBytes() throws {
        let farm = try ProcessFarm()
        try farm.startWorker("w1")
        try farm.startWorker("w2")
        try Self.twoShots.write(toFile: "\(farm.directory)/story.yaml", atomically: true, encoding: .utf8)
        let local = try ReelCommand.run(["render", "story.yaml", "-o", "local.mp4"], in: farm.directory)
        #expect(local.status == 0, "\(local.stderr)")
        #expect(local.stdout.contains("chunk 1 (frames 0-15): a red circle moving left"), "\(local.stdout)")
        #expect(local.stdout.contains("chunk 3 (frames 24-39): a blue square moving up"), "\(local.stdout)")
        let video = try VideoDecoder.read("\(farm.directory)/local.mp4").video
        #expect(video.frameCount == 40, "one video of both shots")

        try farm.waitForWorkers(2)
        let submitted = try farm.client(["submit", "story.yaml", "--wait", "-o", "farm.mp4"])
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let farmed = try ReelCommand.video("\(farm.directory)/farm.mp4")
        #expect(farmed == (try ReelCommand.video("\(farm.directory)/local.mp4")), "the same bytes through the farm")

        // With one prompt throughout, the second shot's frames come out otherwise: the
        // storyboard reached the workers.
        let single = try ReelCommand.run(["render", "a red circle moving left", "--frames", "40", "--steps", "3", "--seed", "5",
                                          "--overlap", "4", "--scale", "1", "--model", "reel-tiny", "-o", "single.mp4"], in: farm.directory)
        #expect(single.status == 0, "\(single.stderr)")
        let singleVideo = try VideoDecoder.read("\(farm.directory)/single.mp4").video
        #expect(singleVideo.frame(39) != video.frame(39), "the second shot is not the first prompt's")
    }

    /// The model reads each shot's prompt on its own: five shots whose words together pass
    /// reel-tiny's limit of 23 render, and a shot with a word the model does not know is refused
    /// naming that shot, by `reel render` and by the coordinator at submission (where it used to
    /// be accepted and then fail on every worker).
    @Test func eachShotsPromptIsReadOnItsOwnAndABadOneIsNamed() throws {
        let farm = try ProcessFarm()
        let shots = ["a red circle moving left", "a blue square moving up", "a red square moving right",
                     "a blue circle moving down", "a red circle moving up"]
        let long = "model: reel-tiny\nsteps: 1\nscale: 1\nshots:\n" + shots.map { "  - prompt: \($0)\n    frames: 4\n" }.joined()
        try long.write(toFile: "\(farm.directory)/long.yaml", atomically: true, encoding: .utf8)
        let rendered = try ReelCommand.run(["render", "long.yaml", "-o", "long.mp4"], in: farm.directory)
        #expect(rendered.status == 0, "25 words in five shots: \(rendered.stderr)")

        let bad = long.replacingOccurrences(of: "a blue square moving up", with: "a blue elephant moving up")
        try bad.write(toFile: "\(farm.directory)/bad.yaml", atomically: true, encoding: .utf8)
        let message = "shots[1].prompt: the model does not know the word 'elephant'"
        for result in [try ReelCommand.run(["render", "bad.yaml", "-o", "bad.mp4"], in: farm.directory),
                       try farm.client(["submit", "bad.yaml"])] {
            #expect(result.status != 0)
            #expect(result.stderr.contains(message) && result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        }
        #expect(try farm.client(["status"]).stdout.contains("elephant") == false, "no job was queued")
    }

    /// examples/two-shots.yaml on the trained model, scored as `reel eval` scores a video: every
    /// window before the cross-fade (frames 32-39) shows the first shot's object colour,
    /// background and motion, every window after it the second's (each shot laid out whole
    /// first: without the layout pass the square wandered sideways as it appeared).
    @Test func theTwoShotExampleShowsEachShotsSceneOnEitherSideOfTheBlend() throws {
        let directory = try ReelCommand.scratchDirectory()
        let example = try String(contentsOfFile: ReelCommand.packageRoot + "/examples/two-shots.yaml", encoding: .utf8)
        try (example + "scale: 1\n").write(toFile: "\(directory)/two-shots.yaml", atomically: true, encoding: .utf8)
        let result = try ReelCommand.run(["render", "two-shots.yaml", "-o", "two-shots.mp4"], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        let video = try VideoDecoder.read("\(directory)/two-shots.mp4").video
        #expect(video.frameCount == 64 && video.width == 64, "two shots of 32 frames, at the model's canvas")

        let world = try World.load(package: ReelCommand.packageRoot + "/models/reel-shapes")
        let scorer = Scorer(world: world)
        let shots = (try Yams.load(yaml: example) as? [String: Any])?["shots"] as? [[String: Any]] ?? []
        let prompts = shots.compactMap { $0["prompt"] as? String }
        try #require(prompts.count == 2, "the example has two shots, each with a prompt")
        let (first, second) = (prompts[0], prompts[1])
        for (start, prompt) in [(0, first), (16, first), (40, second), (48, second)] {
            let window = Scorer.Frames(width: video.width, height: video.height,
                                       pixels: Array(video.pixels[start * video.frameBytes..<(start + 16) * video.frameBytes]))
            let score = scorer.score(window, against: try world.expectation(of: prompt))
            #expect(score.color && score.background, "frames \(start)-\(start + 15), \(prompt): \(score.seen)")
            #expect(score.motion, "frames \(start)-\(start + 15), \(prompt): \(score.seen)")
        }
    }

    @Test(arguments: [
        ("model: reel-tiny\npromt: a red circle\n", "story.yaml:2: promt is not a job file field"),
        ("prompt: a red circle\nsteps: many\n", "story.yaml:2: steps must be a whole number"),
        ("prompt: a red circle\nsteps: 0\n", "story.yaml:2: steps 0 is out of range; use 1 to 1000"),
        ("prompt: a red circle\nlayout_strength: 2\n", "story.yaml:2: layout_strength 2.0 is out of range; use 0.001 to 1.0"),
        ("frames: 10\nshots:\n  - prompt: a red circle\n    frames: 8\n", "frames is 10 but the shots add up to 8"),
        ("shots:\n  - prompt: a red circle\n    seconds: 2\n", "story.yaml:3: shots[0].seconds needs fps"),
        ("shots:\n  - prompt: a red circle\n    frame: 8\n", "story.yaml:3: shots[0].frame is not a shot field"),
        ("prompt: [unclosed\n", "story.yaml: not valid YAML or JSON: line"),
        ("- just a list\n", "a job file is a mapping of fields"),
        ("{\"prompt\": \"a red circle\", \"size\": \"64by64\"}", "size is not WIDTHxHEIGHT"),
    ])
    func badJobFilesAreRefusedWithTheLineAndField(file: String, message: String) throws {
        let directory = try ReelCommand.scratchDirectory()
        try file.write(toFile: "\(directory)/story.yaml", atomically: true, encoding: .utf8)
        let result = try ReelCommand.run(["render", "story.yaml", "-o", "out.mp4"], in: directory)
        #expect(result.status != 0)
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/out.mp4"))
    }

    @Test func renderFlagsBesideAJobFileAreRefusedRatherThanIgnored() throws {
        let directory = try ReelCommand.scratchDirectory()
        try Self.twoShots.write(toFile: "\(directory)/story.yaml", atomically: true, encoding: .utf8)
        // Default values too: a flag typed beside a job file is never dropped silently.
        for flags in [["--steps", "5"], ["--seed", "9"], ["--seed", "0"], ["--model", "reel-shapes"], ["--scale", "4"], ["--strength", "0.6"]] {
            let result = try ReelCommand.run(["render", "story.yaml", "-o", "out.mp4"] + flags, in: directory)
            #expect(result.status != 0)
            #expect(result.stderr.contains("\(flags[0]) does not apply to a job file") && result.stderr.contains("story.yaml"),
                    "\(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/out.mp4"))
        }
    }
}
