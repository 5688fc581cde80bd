/// A box of a video: frames × rows × columns, in whole-video coordinates.
public struct Box: Hashable, Sendable {
    public let frames: Range<Int>
    public let rows: Range<Int>
    public let columns: Range<Int>

    public init(frames: Range<Int>, rows: Range<Int>, columns: Range<Int>) {
        self.frames = frames; self.rows = rows; self.columns = columns
    }

    public func intersection(_ other: Box) -> Box? {
        let f = frames.clamped(to: other.frames), r = rows.clamped(to: other.rows), c = columns.clamped(to: other.columns)
        return f.isEmpty || r.isEmpty || c.isEmpty ? nil : Box(frames: f, rows: r, columns: c)
    }

    /// Values in a planar [frames, channels, rows, columns] latent of this box.
    public func count(channels: Int) -> Int { frames.count * channels * rows.count * columns.count }
}

/// One unit of parallel work: a temporal chunk of one spatial tile, denoised on its own
/// between fusion points.
public struct Region: Sendable, Equatable {
    /// Position in canonical order (chunk-major, then tile row, then tile column); fusion sums
    /// contributions in this order, so results never depend on completion order.
    public let index: Int
    /// The temporal chunk; for a region of the layout pass, the shot.
    public let chunk: Int
    public let tile: Int
    public let box: Box
    /// For a region of the layout pass, the shot it lays out; nil for a chunk of the video.
    public let layoutShot: Int?
}

/// How a job is cut up: temporal chunks of the window, spatial tiles of the model's canvas,
/// and the step ranges between fusion points. Everything follows from the spec and the
/// model's shape alone.
public struct RenderPlan: Sendable {
    public let frames: Int
    public let height: Int
    public let width: Int
    public let channels: Int
    public let chunks: [Range<Int>]
    public let tileRows: [Range<Int>]
    public let tileColumns: [Range<Int>]
    /// The video's regions in canonical order, then the layout pass's (none unless the spec has one).
    public let regions: [Region]
    /// The regions that draw the video's frames: every region but the layout pass's.
    public let videoRegions: Range<Int>
    /// Steps of the whole schedule, and the one the video's regions start from (later than 0
    /// when an input video or a layout pass stands in for the first steps).
    public let steps: Int
    public let firstStep: Int
    /// Steps a shard runs between fusions.
    public let syncInterval: Int
    /// The layout pass, when the spec has one: each shot rendered whole as one window first,
    /// from step 0, so that the chunks drawing it agree on where its objects go.
    public let layout: LayoutPass?
    /// For each region of the video, the layout regions its starting latent is drawn from
    /// (those of the shots its frames lie in, over its rows and columns); empty for the layout's
    /// own regions and without a layout pass.
    public let layoutSources: [[Int]]
    /// For each region, the regions that share at least one point with it (itself included),
    /// ascending.
    public let overlapping: [[Int]]
    /// For each region, the overlapping regions its input is fused from at every sync point
    /// (itself included), ascending: those that draw the same shot. Chunks of neighbouring
    /// shots share frames too, but are denoised apart and meet only in the finished video, whose
    /// fusion weights cross-fade one shot into the next; two scenes fused at every step pull
    /// each other's pixels about and end as a patchy mix of both.
    public let fusedWith: [[Int]]

    public init(spec: JobSpec, model: ModelShape, channels: Int = 3) {
        frames = spec.frames
        height = spec.height
        width = spec.width
        self.channels = channels
        chunks = Segmentation.cover(total: spec.frames, window: spec.window, overlap: spec.overlap)
        tileRows = Segmentation.cover(total: spec.height, window: model.canvasHeight, overlap: Self.tileOverlap(model.canvasHeight, patch: model.patch))
        tileColumns = Segmentation.cover(total: spec.width, window: model.canvasWidth, overlap: Self.tileOverlap(model.canvasWidth, patch: model.patch))
        var regions: [Region] = []
        for (c, frames) in chunks.enumerated() {
            for (r, rows) in tileRows.enumerated() {
                for (k, columns) in tileColumns.enumerated() {
                    regions.append(Region(index: regions.count, chunk: c, tile: r * tileColumns.count + k,
                                          box: Box(frames: frames, rows: rows, columns: columns), layoutShot: nil))
                }
            }
        }
        let videoRegions = 0..<regions.count, layout = spec.layoutSteps > 0 ? LayoutPass(spec: spec, keyframes: model.keyframeLayouts) : nil
        self.videoRegions = videoRegions
        self.layout = layout
        if let layout {  // the layout pass's regions: each shot's window, tiled as the video is
            for shot in layout.shots.indices {
                for (r, rows) in tileRows.enumerated() {
                    for (k, columns) in tileColumns.enumerated() {
                        regions.append(Region(index: regions.count, chunk: shot, tile: r * tileColumns.count + k,
                                              box: Box(frames: layout.frames(ofShot: shot), rows: rows, columns: columns), layoutShot: shot))
                    }
                }
            }
        }
        self.regions = regions
        firstStep = spec.firstStep
        steps = spec.steps
        syncInterval = max(spec.syncInterval, 1)
        // Regions are chunk-major and chunks are ordered by start, so a region's overlapping
        // regions lie in the chunks next to its own: look there only.
        let tilesPerChunk = tileRows.count * tileColumns.count
        let chunkList = chunks
        overlapping = regions.map { region in
            if region.layoutShot != nil {
                return regions[videoRegions.upperBound...].filter { region.box.intersection($0.box) != nil }.map(\.index)
            }
            var chunk = region.chunk
            while chunk > 0 && chunkList[chunk - 1].upperBound > region.box.frames.lowerBound { chunk -= 1 }
            var last = region.chunk
            while last + 1 < chunkList.count && chunkList[last + 1].lowerBound < region.box.frames.upperBound { last += 1 }
            return regions[(chunk * tilesPerChunk)..<((last + 1) * tilesPerChunk)]
                .filter { region.box.intersection($0.box) != nil }.map(\.index)
        }
        let shotOfChunk = chunks.map { spec.shot(forChunk: $0)?.start ?? 0 }
        fusedWith = zip(regions, overlapping).map { region, neighbours in
            region.layoutShot != nil ? neighbours : neighbours.filter { shotOfChunk[regions[$0].chunk] == shotOfChunk[region.chunk] }
        }
        layoutSources = regions.map { region in
            guard let layout, region.layoutShot == nil else { return [] }
            return Self.layoutSources(of: region, among: regions[videoRegions.upperBound...], layout: layout)
        }
    }

    /// The layout regions whose shots hold one of `region`'s frames and whose tiles meet its own.
    static func layoutSources(of region: Region, among layoutRegions: ArraySlice<Region>, layout: LayoutPass) -> [Int] {
        let shots = Set(region.box.frames.map(layout.shot(ofFrame:)))
        return layoutRegions.filter { candidate in
            shots.contains(candidate.layoutShot!) && !candidate.box.rows.clamped(to: region.box.rows).isEmpty
                && !candidate.box.columns.clamped(to: region.box.columns).isEmpty
        }.map(\.index)
    }

    /// The step a region starts from: 0 for the layout pass, `firstStep` for the video.
    public func firstStep(of region: Int) -> Int { regions[region].layoutShot == nil ? firstStep : 0 }

    /// The step ranges of the video's regions.
    public var stepRanges: [Range<Int>] {
        stride(from: firstStep, to: steps, by: syncInterval).map { $0..<min($0 + syncInterval, steps) }
    }

    /// Shards of the whole job: every region runs each of its step ranges once.
    public var shardCount: Int {
        regions.indices.reduce(0) { $0 + (steps - firstStep(of: $1) + syncInterval - 1) / syncInterval }
    }

    /// Neighbouring tiles share a quarter of the canvas, in whole patches.
    static func tileOverlap(_ canvas: Int, patch: Int) -> Int { canvas / 4 / patch * patch }

    public var wholeVideo: Box { Box(frames: 0..<frames, rows: 0..<height, columns: 0..<width) }

    /// The step range of `region` that starts at `step`: ranges run `syncInterval` steps from
    /// the region's first step, the last one ending at `steps`.
    public func stepRange(of region: Int, startingAt step: Int) -> Range<Int>? {
        let first = firstStep(of: region)
        guard step >= first, step < steps, (step - first) % syncInterval == 0 else { return nil }
        return step..<min(step + syncInterval, steps)
    }

    /// Separable fusion weights of a region along frames, rows and columns.
    public func weights(of region: Region) -> FusionWeights {
        let (row, column) = region.tile.quotientAndRemainder(dividingBy: tileColumns.count)
        // A shot's layout is one window: its frames meet no other's.
        let frames = region.layoutShot == nil ? Segmentation.weights(of: chunks, at: region.chunk)
                                              : [Float](repeating: 1, count: region.box.frames.count)
        return FusionWeights(frames: frames,
                             rows: Segmentation.weights(of: tileRows, at: row),
                             columns: Segmentation.weights(of: tileColumns, at: column))
    }
}

/// A region's weight at (frame, row, column) is the product of its three axis weights.
public struct FusionWeights: Sendable, Equatable {
    public let frames: [Float]
    public let rows: [Float]
    public let columns: [Float]
}
