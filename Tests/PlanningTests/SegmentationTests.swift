import Planning
import Testing

@Suite struct SegmentationTests {
    @Test func chunksStartEveryStrideAndTheLastEndsAtTheEnd() {
        #expect(Segmentation.cover(total: 40, window: 16, overlap: 4) == [0..<16, 12..<28, 24..<40])
        #expect(Segmentation.cover(total: 41, window: 16, overlap: 4) == [0..<16, 12..<28, 24..<40, 25..<41])
        #expect(Segmentation.cover(total: 16, window: 16, overlap: 4) == [0..<16])
        #expect(Segmentation.cover(total: 5, window: 16, overlap: 4) == [0..<5])
        #expect(Segmentation.cover(total: 32, window: 16, overlap: 0) == [0..<16, 16..<32])
    }

    @Test(arguments: [(64, 16, 4), (100, 16, 8), (17, 16, 1), (1000, 12, 11), (33, 8, 0)])
    func segmentsCoverEverythingWithFullWindowsAndAtLeastTheOverlap(total: Int, window: Int, overlap: Int) {
        let segments = Segmentation.cover(total: total, window: window, overlap: overlap)
        #expect(segments.first?.lowerBound == 0 && segments.last?.upperBound == total)
        #expect(segments.allSatisfy { $0.count == window })
        for (a, b) in zip(segments, segments.dropFirst()) {
            #expect(a.lowerBound < b.lowerBound && a.upperBound - b.lowerBound >= overlap, "\(a) then \(b)")
        }
    }

    @Test func weightsRampAcrossOverlapsAndStayWholeInside() {
        let segments = Segmentation.cover(total: 40, window: 16, overlap: 4)
        #expect(Segmentation.weights(of: segments, at: 0) == [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])
        let middle = Segmentation.weights(of: segments, at: 1)
        #expect(Array(middle.prefix(4)) == [0.2, 0.4, 0.6, 0.8] && Array(middle.suffix(4)) == [0.8, 0.6, 0.4, 0.2])
        #expect(Segmentation.weights(of: segments, at: 2).prefix(4) == [0.2, 0.4, 0.6, 0.8])
        #expect(Segmentation.weights(of: [0..<7], at: 0) == [Float](repeating: 1, count: 7))
    }
}

@Suite struct RenderPlanTests {
    let model = ModelShape(canvasWidth: 64, canvasHeight: 64, windowFrames: 16, patch: 4, fps: 8)

    func spec(frames: Int = 64, width: Int = 64, height: Int = 64, steps: Int = 10, sync: Int = 1) -> JobSpec {
        JobSpec(prompt: "a red circle", model: "m", frames: frames, width: width, height: height, fps: 8, steps: steps,
                sampler: "euler", guidance: 4, shift: 1, seed: 1, window: 16, overlap: 4, syncInterval: sync)
    }

    @Test func a64FrameJobIsFiveOverlappingChunks() {
        let plan = RenderPlan(spec: spec(), model: model)
        #expect(plan.chunks == [0..<16, 12..<28, 24..<40, 36..<52, 48..<64])
        #expect(plan.regions.count == 5 && plan.tileRows == [0..<64])
        #expect(plan.overlapping[0] == [0, 1] && plan.overlapping[2] == [1, 2, 3] && plan.overlapping[4] == [3, 4])
    }

    @Test func largeCanvasesAreTiledInWholePatches() {
        let plan = RenderPlan(spec: spec(frames: 16, width: 160, height: 64), model: model)
        #expect(plan.tileColumns == [0..<64, 48..<112, 96..<160] && plan.tileRows == [0..<64])
        #expect(plan.regions.map(\.tile) == [0, 1, 2])
        #expect(plan.overlapping[0] == [0, 1])
    }

    /// Each chunk of a storyboard draws its shot: the shot's prompt, and a place counted from
    /// the shot's first frame in a video as long as the shot, so that its objects start their
    /// paths and growth with the shot. A job of one prompt places chunks in the whole video.
    @Test func aStoryboardsChunksArePlacedInTheirShots() {
        var story = spec()  // chunks 0..<16, 12..<28, 24..<40, 36..<52, 48..<64
        story.shots = [Shot(prompt: "a red circle", frames: 30), Shot(prompt: "a blue square", frames: 34)]
        let chunks = RenderPlan(spec: story, model: model).chunks
        #expect(chunks.map { story.prompt(forChunk: $0) } == ["a red circle", "a red circle", "a blue square", "a blue square", "a blue square"])
        let places = chunks.map { story.place(ofChunk: $0) }
        #expect(places.map(\.firstFrame) == [0, 12, -6, 6, 18], "the chunk from frame 24 opens the shot from frame 30")
        #expect(places.map(\.videoFrames) == [30, 30, 34, 34, 34])
        #expect(chunks.map { spec().place(ofChunk: $0).firstFrame } == [0, 12, 24, 36, 48])
        #expect(chunks.allSatisfy { spec().place(ofChunk: $0).videoFrames == 64 })
    }

    /// Neighbouring chunks of one shot are fused at every sync point; the chunks either side of
    /// a cut share frames but are fused only in the finished video, a cross-fade.
    @Test func chunksAreFusedOnlyWithTheirOwnShotUntilTheEnd() {
        var story = spec()  // chunks 0..<16, 12..<28 | 24..<40, 36..<52, 48..<64
        story.shots = [Shot(prompt: "a red circle", frames: 30), Shot(prompt: "a blue square", frames: 34)]
        let plan = RenderPlan(spec: story, model: model)
        #expect(plan.overlapping[1] == [0, 1, 2] && plan.fusedWith[1] == [0, 1])
        #expect(plan.overlapping[2] == [1, 2, 3] && plan.fusedWith[2] == [2, 3])
        #expect(RenderPlan(spec: spec(), model: model).fusedWith == RenderPlan(spec: spec(), model: model).overlapping,
                "one prompt: every overlapping chunk is fused")
    }

    /// A long video with a layout pass: one window per shot, after the video's frames, runs
    /// every step; the chunks run the rest, each from the layout of the shots its frames lie in.
    @Test func aLayoutPassIsOneWindowPerShotBeforeTheChunks() {
        var long = spec()  // chunks 0..<16, 12..<28, 24..<40, 36..<52, 48..<64
        long.layoutStrength = 0.8
        let plan = RenderPlan(spec: long, model: model)
        #expect(plan.videoRegions == 0..<5 && plan.regions.count == 6 && plan.firstStep == 2)
        #expect(plan.regions[5].layoutShot == 0 && plan.regions[5].box.frames == 64..<80 && plan.firstStep(of: 5) == 0)
        #expect(plan.layoutSources.prefix(5).allSatisfy { $0 == [5] } && plan.layoutSources[5].isEmpty && plan.fusedWith[5] == [5])
        #expect(plan.shardCount == 5 * 8 + 10)
        #expect(plan.stepRange(of: 0, startingAt: 2) == 2..<3 && plan.stepRange(of: 0, startingAt: 0) == nil && plan.stepRange(of: 5, startingAt: 0) == 0..<1)

        long.shots = [Shot(prompt: "a red circle", frames: 30), Shot(prompt: "a blue square", frames: 34)]
        let story = RenderPlan(spec: long, model: model)
        #expect(story.regions.suffix(2).map(\.box.frames) == [64..<80, 80..<96])
        #expect(story.layoutSources.prefix(5) == [[5], [5], [5, 6], [6], [6]], "the chunk from frame 24 crosses the cut at 30")
        #expect(story.regions.suffix(2).map { long.prompt(for: $0) } == ["a red circle", "a blue square"])
        let places = story.regions.suffix(2).map { long.place(of: $0) }
        #expect(places.map(\.videoFrames) == [30, 34] && places.allSatisfy { $0.firstFrame == 0 && $0.keyframes },
                "a layout window is its shot's keyframes")
        #expect(long.place(of: story.regions[0]) == (0, 30, false))

        var short = spec(frames: 16)
        short.layoutStrength = 0.8
        #expect(RenderPlan(spec: short, model: model).layout == nil, "one chunk needs no layout")
        var input = spec()
        input.layoutStrength = 0.8
        input.strength = 0.5
        #expect(RenderPlan(spec: input, model: model).layout == nil && input.firstStep == 5, "an input video lays the video out itself")
    }

    /// A shot's layout is stretched over its frames: its first and last frames are the layout's,
    /// the ones between interpolated.
    @Test func aLayoutIsStretchedOverItsShot() {
        var long = spec(frames: 46)
        long.layoutStrength = 0.5
        let layout = RenderPlan(spec: long, model: model).layout!
        #expect(layout.source(ofFrame: 0) == (46, 47, 0) && layout.source(ofFrame: 45) == (61, 61, 0))
        #expect(layout.source(ofFrame: 3) == (47, 48, 0))  // 3 × 15 / 45 = 1
        let box = Box(frames: 2..<5, rows: 0..<1, columns: 0..<1)
        #expect(layout.sourceBox(of: box).frames == 46..<49)
        let stretched = layout.stretched([0, 3, 6], to: box, channels: 1)  // layout frame f holds 3f
        #expect(zip(stretched, [2, 3, 4]).allSatisfy { abs($0 - $1) < 1e-5 })
    }

    /// Each keyframe of a shot has one nearest video frame, which keeps it; the frames between
    /// keep none. A model without `frame_stride` draws no keyframes.
    @Test func everyKeyframeIsKeptByItsNearestFrame() {
        var long = spec()  // 64 frames: keyframe k lies 63k/15 = 4.2k frames in
        long.layoutStrength = 0.5
        #expect(RenderPlan(spec: long, model: model).layout?.keyframes == false)
        var keyframeModel = model
        keyframeModel.keyframeLayouts = true
        let layout = RenderPlan(spec: long, model: keyframeModel).layout!
        let kept = (0..<64).compactMap { frame in layout.keyframe(atFrame: frame).map { (frame, $0) } }
        #expect(layout.keyframes && kept.map(\.1) == Array(64..<80), "one frame for each keyframe, in order")
        #expect(kept.map(\.0) == [0, 4, 8, 13, 17, 21, 25, 29, 34, 38, 42, 46, 50, 55, 59, 63])

        long.shots = [Shot(prompt: "a red circle", frames: 31), Shot(prompt: "a blue square", frames: 33)]
        let story = RenderPlan(spec: long, model: keyframeModel).layout!
        #expect(story.keyframe(atFrame: 30) == 79 && story.keyframe(atFrame: 31) == 80 && story.keyframe(atFrame: 63) == 95,
                "each shot's last frame keeps its own last keyframe; the next shot starts on its first")
        #expect((0..<31).compactMap(story.keyframe(atFrame:)) == Array(64..<80))
    }

    @Test func stepRangesFollowTheSyncInterval() {
        #expect(RenderPlan(spec: spec(steps: 10, sync: 3), model: model).stepRanges == [0..<3, 3..<6, 6..<9, 9..<10])
        #expect(RenderPlan(spec: spec(steps: 2, sync: 1), model: model).stepRanges == [0..<1, 1..<2])
    }

    @Test func fusionOfEqualValuesIsThoseValuesAndOrderDoesNotMatter() {
        let plan = RenderPlan(spec: spec(frames: 40, width: 96), model: model)
        let contributions = plan.regions.map { region in
            Fusion.Contribution(region: region.index, values: (0..<region.box.count(channels: 3)).map { Float(($0 * 37 + region.index * 11) % 101) / 50 - 1 })
        }
        let area = plan.wholeVideo
        let forward = Fusion.fuse(area, plan: plan, contributions: contributions)
        let backward = Fusion.fuse(area, plan: plan, contributions: contributions.reversed())
        #expect(forward == backward)

        let constant = plan.regions.map { Fusion.Contribution(region: $0.index, values: [Float](repeating: 0.25, count: $0.box.count(channels: 3))) }
        let fused = Fusion.fuse(area, plan: plan, contributions: constant)
        #expect(fused.allSatisfy { abs($0 - 0.25) < 1e-6 })
        // A region's own area, fused, has the same bits as the same points of the whole video.
        let region = plan.regions[3]
        let part = Fusion.fuse(region.box, plan: plan, contributions: contributions)
        #expect(part == Fusion.crop(forward, from: area, to: region.box, channels: 3))
    }

    @Test func aSingleRegionFusesToItsOwnBits() {
        let plan = RenderPlan(spec: spec(frames: 16), model: model)
        let values = (0..<plan.regions[0].box.count(channels: 3)).map { Float($0 % 97) / 13 }
        #expect(Fusion.fuse(plan.wholeVideo, plan: plan, contributions: [.init(region: 0, values: values)]) == values)
    }
}

@Suite struct JobSpecValidationTests {
    let model = ModelShape(canvasWidth: 64, canvasHeight: 64, windowFrames: 16, patch: 4, fps: 8)
    let good = JobSpec(prompt: "a red circle", model: "reel-tiny", frames: 16, width: 64, height: 64, fps: 8, steps: 20,
                       sampler: "euler", guidance: 4, shift: 1, seed: 0, window: 16, overlap: 4)

    @Test func aGoodSpecPasses() throws {
        try good.validate(for: model, samplers: ["euler", "heun", "dpm++2m"])
    }

    @Test func everyBadFieldIsNamedWithWhatWouldBeAccepted() {
        var bad = good
        bad.frames = 0
        bad.width = 30
        bad.height = -8
        bad.sampler = "ddim"
        bad.overlap = 16
        bad.guidance = .nan
        do {
            try bad.validate(for: model, samplers: ["euler", "heun", "dpm++2m"])
            Issue.record("a bad spec passed")
        } catch let error as SpecError {
            #expect(error.problems.map(\.field) == ["frames", "width", "height", "sampler", "guidance", "overlap"])
            #expect(error.description.contains("frames 0 is out of range; use 1 to 10000"))
            #expect(error.description.contains("width 30 is not a multiple of the model's patch (4)"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func windowCannotExceedTheModelsWindow() {
        var bad = good
        bad.window = 32
        #expect(throws: SpecError.self) { try bad.validate(for: model, samplers: ["euler", "heun", "dpm++2m"]) }
    }
}
