import Foundation

/// Scores one rendered video against what its prompt asked for, from the frames alone.
public struct Scorer: Sendable {
    public let world: World

    public init(world: World) { self.world = world }

    /// Frames as packed RGB bytes, `width`×`height` each.
    public struct Frames: Sendable {
        public let width: Int
        public let height: Int
        public let pixels: [UInt8]
        public init(width: Int, height: Int, pixels: [UInt8]) { self.width = width; self.height = height; self.pixels = pixels }
        public var count: Int { pixels.count / (width * height * 3) }

        func pixel(_ frame: Int, _ x: Int, _ y: Int) -> [Double] {
            let i = ((frame * height + y) * width + x) * 3
            return [Double(pixels[i]), Double(pixels[i + 1]), Double(pixels[i + 2])]
        }
    }

    public struct Score: Sendable, Equatable {
        public var color: Bool
        public var motion: Bool
        public var background: Bool
        /// What was seen, for the report: background, object area and centroid travel.
        public var seen: String
        /// How the object travelled against what the prompt asked; nil when the motion names
        /// no direction, the object is missing or the world gives no speed.
        public var travel: Travel?
    }

    /// Tells apart objects that stay put (a small share) from ones that move the wrong way (a
    /// large angle).
    public struct Travel: Sendable, Equatable {
        /// Centroid travel over the travel asked for.
        public var share: Double
        /// Degrees between the travel and the asked direction, 0...180.
        public var angle: Double
    }

    /// A pixel belongs to the object when the named colour is the nearest of all object and
    /// background colours, and near enough.
    static let colorTolerance = 90.0
    /// The object is the largest 4-connected blob of its colour; it must cover at least this
    /// many pixels in at least half of the frames (a small triangle covers about 40). Scattered
    /// pixels of the colour, as in noise, do not make an object.
    static let minimumArea = 15
    /// Centroid travel, in pixels, that counts as moving.
    static let minimumTravel = 6.0

    public func score(_ frames: Frames, against expected: World.Expectation) -> Score {
        let background = dominantBackground(frames)
        let target = world.colors[expected.color]!
        let palette = Array(world.colors.values) + Array(world.backgrounds.values)
        var areas: [Int] = [], centroids: [(Double, Double)?] = []
        for frame in 0..<frames.count {
            var mask = [Bool](repeating: false, count: frames.width * frames.height)
            for y in 0..<frames.height {
                for x in 0..<frames.width {
                    let p = frames.pixel(frame, x, y)
                    let d = distance(p, target)
                    mask[y * frames.width + x] = d < Self.colorTolerance && palette.allSatisfy { distance(p, $0) >= d }
                }
            }
            let blob = Self.largestBlob(mask, width: frames.width, wrapping: world.wraps)
            areas.append(blob.area)
            centroids.append(blob.area >= Self.minimumArea ? blob.centroid : nil)
        }
        let present = centroids.filter { $0 != nil }.count * 2 >= frames.count
        let track = continuous(centroids.compactMap { $0 }, width: frames.width, height: frames.height)
        let motion = present && moves(areas: areas, centroids: track, as: world.motions[expected.motion]!)
        let travel = travel(track)
        return Score(color: present, motion: motion, background: background == expected.background,
                     seen: String(format: "background %@, area %d..%d px, travel (%.1f, %.1f)", background,
                                  areas.min() ?? 0, areas.max() ?? 0, travel.0, travel.1),
                     travel: present ? compare(travel, with: world.motions[expected.motion]!, frames: frames.count) : nil)
    }

    /// `travel` against an object moving as `motion` asks over `frames` frames, whose travel
    /// spans `frames - 3` frames (the last three frames' mean index less the first three's).
    func compare(_ travel: (Double, Double), with motion: World.Motion, frames: Int) -> Travel? {
        guard let direction = motion.direction, let speed = world.speed, frames >= 2 else { return nil }
        let norm = (direction[0] * direction[0] + direction[1] * direction[1]).squareRoot()
        let asked = speed * Double(frames - min(3, frames / 2)) * norm
        let (length, angle) = Self.heading(travel, against: direction)
        return Travel(share: length / asked, angle: angle)
    }

    /// The length of `travel` and its angle in degrees (0...180) off `direction`; 90 when it
    /// did not move at all.
    static func heading(_ travel: (Double, Double), against direction: [Double]) -> (length: Double, angle: Double) {
        let length = (travel.0 * travel.0 + travel.1 * travel.1).squareRoot()
        let norm = (direction[0] * direction[0] + direction[1] * direction[1]).squareRoot()
        let cosine = length > 0 ? (travel.0 * direction[0] + travel.1 * direction[1]) / (length * norm) : 0
        return (length, acos(min(1, max(-1, cosine))) * 180 / Double.pi)
    }

    /// The largest 4-connected component of `mask`: its pixel count and centroid. With
    /// `wrapping`, opposite edges touch, and the centroid is the circular mean of each axis, so
    /// an object across an edge has its centre where the object is.
    static func largestBlob(_ mask: [Bool], width: Int, wrapping: Bool = false) -> (area: Int, centroid: (Double, Double)) {
        let height = mask.count / width
        var seen = [Bool](repeating: false, count: mask.count)
        var best = (area: 0, centroid: (0.0, 0.0))
        for start in mask.indices where mask[start] && !seen[start] {
            var stack = [start], pixels: [(x: Int, y: Int)] = []
            seen[start] = true
            while let i = stack.popLast() {
                let (x, y) = (i % width, i / width)
                pixels.append((x, y))
                for (nx, ny) in [(x, y - 1), (x, y + 1), (x - 1, y), (x + 1, y)] {
                    let (wx, wy) = wrapping ? ((nx + width) % width, (ny + height) % height) : (nx, ny)
                    guard (0..<width).contains(wx), (0..<height).contains(wy) else { continue }
                    let n = wy * width + wx
                    if mask[n] && !seen[n] {
                        seen[n] = true
                        stack.append(n)
                    }
                }
            }
            if pixels.count > best.area {
                let xs = pixels.map { Double($0.x) }, ys = pixels.map { Double($0.y) }
                best = (pixels.count, wrapping ? (circularMean(xs, period: width), circularMean(ys, period: height))
                                               : (xs.reduce(0, +) / Double(xs.count), ys.reduce(0, +) / Double(ys.count)))
            }
        }
        return best
    }

    /// The mean of positions on a circle of `period` pixels, in 0..<period.
    static func circularMean(_ values: [Double], period: Int) -> Double {
        let turn = 2 * Double.pi / Double(period)
        let angle = atan2(values.map { sin($0 * turn) }.reduce(0, +), values.map { cos($0 * turn) }.reduce(0, +))
        let mean = angle / turn
        return mean < 0 ? mean + Double(period) : mean
    }

    /// Centroids as one continuous path. In a wrapping world each step between frames is taken
    /// the short way round, so an object crossing an edge does not jump back a canvas.
    func continuous(_ centroids: [(Double, Double)], width: Int, height: Int) -> [(Double, Double)] {
        guard world.wraps, var previous = centroids.first else { return centroids }
        var position = previous, path = [previous]
        for centroid in centroids.dropFirst() {
            position.0 += Self.shortest(centroid.0 - previous.0, period: Double(width))
            position.1 += Self.shortest(centroid.1 - previous.1, period: Double(height))
            path.append(position)
            previous = centroid
        }
        return path
    }

    /// `step` or the step the other way round a circle of `period`, whichever is shorter.
    static func shortest(_ step: Double, period: Double) -> Double {
        step - period * (step / period).rounded()
    }

    /// The background whose colour is nearest the mean of the border pixels of every frame.
    func dominantBackground(_ frames: Frames) -> String {
        var sum = [0.0, 0.0, 0.0], count = 0.0
        for frame in 0..<frames.count {
            for y in 0..<frames.height {
                for x in 0..<frames.width where x < 2 || y < 2 || x >= frames.width - 2 || y >= frames.height - 2 {
                    let p = frames.pixel(frame, x, y)
                    for c in 0..<3 { sum[c] += p[c] }
                    count += 1
                }
            }
        }
        let mean = sum.map { $0 / count }
        return world.backgrounds.min { distance(mean, $0.value) < distance(mean, $1.value) }!.key
    }

    /// Mean centroid of the last three frames minus that of the first three.
    func travel(_ centroids: [(Double, Double)]) -> (Double, Double) {
        guard centroids.count >= 2 else { return (0, 0) }
        let k = min(3, centroids.count / 2)
        let first = centroids.prefix(k), last = centroids.suffix(k)
        let mean = { (points: ArraySlice<(Double, Double)>) in
            (points.map(\.0).reduce(0, +) / Double(points.count), points.map(\.1).reduce(0, +) / Double(points.count))
        }
        let (a, b) = (mean(first), mean(last))
        return (b.0 - a.0, b.1 - a.1)
    }

    func moves(areas: [Int], centroids: [(Double, Double)], as motion: World.Motion) -> Bool {
        if let direction = motion.direction {
            let (length, angle) = Self.heading(travel(centroids), against: direction)
            return length >= Self.minimumTravel && angle < 22.5  // nearer this direction than either neighbour
        }
        let present = areas.filter { $0 >= Self.minimumArea }
        if let scale = motion.scale, let first = present.first, let last = present.last {
            let ratio = Double(last) / Double(first)
            return scale[1] > scale[0] ? ratio >= 1.5 : ratio <= 1 / 1.5
        }
        if motion.bounce != nil, centroids.count >= 3 {
            // Up and back down: the highest point lies well above both ends.
            let ys = centroids.map(\.1)
            let top = ys.min()!
            return ys.first! - top >= 4 && ys.last! - top >= 2 && abs(travel(centroids).0) < Self.minimumTravel
        }
        return false
    }

    func distance(_ a: [Double], _ b: [Double]) -> Double {
        ((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2])).squareRoot()
    }
}
