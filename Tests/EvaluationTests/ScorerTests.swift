import Evaluation
import Foundation
import Testing

@Suite struct ScorerTests {
    static let world = try! World.load(package: URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("models/reel-shapes").path)

    /// 16 frames of a soft disc of `color` on `background`, centred at path(frame), radius
    /// radius(frame); with `wrapping`, the disc crosses the edges onto the opposite side.
    static func clip(color: String, background: String, path: (Int) -> (Double, Double), radius: (Int) -> Double = { _ in 6 },
                     wrapping: Bool = false) -> Scorer.Frames {
        let fg = world.colors[color]!, bg = world.backgrounds[background]!
        var pixels: [UInt8] = []
        for f in 0..<16 {
            let (cx, cy) = path(f), r = radius(f)
            for y in 0..<64 {
                for x in 0..<64 {
                    var (dx, dy) = (Double(x) + 0.5 - cx, Double(y) + 0.5 - cy)
                    if wrapping { (dx, dy) = (dx - 64 * (dx / 64).rounded(), dy - 64 * (dy / 64).rounded()) }
                    let d = (dx * dx + dy * dy).squareRoot()
                    let cover = min(max(r + 0.5 - d, 0), 1)
                    pixels += (0..<3).map { UInt8((bg[$0] * (1 - cover) + fg[$0] * cover).rounded()) }
                }
            }
        }
        return Scorer.Frames(width: 64, height: 64, pixels: pixels)
    }

    func expect(_ motion: String, color: String = "red", background: String = "black") -> World.Expectation {
        World.Expectation(size: "small", color: color, shape: "circle", motion: motion, background: background)
    }

    @Test func aDiscMovingRightIsRightInEveryAttribute() {
        let frames = Self.clip(color: "red", background: "black", path: { (12 + 2 * Double($0), 32) })
        let scorer = Scorer(world: Self.world)
        let score = scorer.score(frames, against: expect("moving right"))
        #expect(score.color && score.motion && score.background, "\(score.seen)")
        #expect(abs(score.travel!.share - 1) < 0.02 && score.travel!.angle < 1, "moved right at the world's speed: \(score.seen)")
        #expect(abs(scorer.score(frames, against: expect("moving up")).travel!.angle - 90) < 1)
        #expect(abs(scorer.score(frames, against: expect("moving up and left")).travel!.angle - 135) < 1)
        let still = Self.clip(color: "red", background: "black", path: { _ in (32, 32) })
        #expect(scorer.score(still, against: expect("moving right")).travel!.share < 0.02)
        #expect(scorer.score(still, against: expect("growing")).travel == nil, "growing names no direction")
        #expect(!scorer.score(frames, against: expect("moving left")).motion)
        #expect(!scorer.score(frames, against: expect("moving up and right")).motion, "a diagonal is not a straight line")
        #expect(!scorer.score(frames, against: expect("moving right", color: "blue")).color)
        #expect(!scorer.score(frames, against: expect("moving right", background: "gray")).background)
    }

    @Test func diagonalsGrowthAndBouncesAreRecognised() {
        let scorer = Scorer(world: Self.world)
        let diagonal = Self.clip(color: "green", background: "gray", path: { (50 - 1.5 * Double($0), 50 - 1.5 * Double($0)) })
        #expect(scorer.score(diagonal, against: expect("moving up and left", color: "green", background: "gray")).motion)
        let growing = Self.clip(color: "yellow", background: "brown", path: { _ in (32, 32) }, radius: { 3 + 0.6 * Double($0) })
        #expect(scorer.score(growing, against: expect("growing", color: "yellow", background: "brown")).motion)
        #expect(!scorer.score(growing, against: expect("shrinking", color: "yellow", background: "brown")).motion)
        let bouncing = Self.clip(color: "cyan", background: "white", path: { (32, 44 - 14 * abs(sin(Double.pi * Double($0) / 8))) })
        #expect(scorer.score(bouncing, against: expect("bouncing", color: "cyan", background: "white")).motion)
        #expect(!scorer.score(bouncing, against: expect("moving up", color: "cyan", background: "white")).motion)
    }

    @Test func inAWrappingWorldAnObjectCrossingAnEdgeKeepsMovingTheSameWay() {
        var wrapping = Self.world
        wrapping.edges = "wrap"
        // From x = 44 to 74, that is 10 on the far side: out at the right edge, in at the left.
        let crossing = Self.clip(color: "red", background: "black", path: { (44 + 2 * Double($0), 20) }, wrapping: true)
        let score = Scorer(world: wrapping).score(crossing, against: expect("moving right"))
        #expect(score.color && score.motion, "\(score.seen)")
        #expect(abs(score.travel!.share - 1) < 0.02 && score.travel!.angle < 1, "moved right at the world's speed: \(score.seen)")
        let unwrapped = Scorer(world: Self.world).score(crossing, against: expect("moving right"))
        #expect(!unwrapped.motion, "where edges do not wrap, the jump back reads as another motion: \(unwrapped.seen)")
    }

    @Test func noObjectMeansNoColourAndNoMotion() {
        let empty = Self.clip(color: "red", background: "black", path: { _ in (32, 32) }, radius: { _ in 0 })
        let score = Scorer(world: Self.world).score(empty, against: expect("moving right"))
        #expect(!score.color && !score.motion && score.background)
    }

    @Test func noiseHasNoObjectOfAnyColour() {
        var state: UInt64 = 42
        let pixels = (0..<(16 * 64 * 64 * 3)).map { _ -> UInt8 in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        let noise = Scorer.Frames(width: 64, height: 64, pixels: pixels)
        for color in Self.world.colors.keys {
            #expect(!Scorer(world: Self.world).score(noise, against: expect("moving right", color: color)).color, "\(color)")
        }
    }

    @Test func heldOutPromptsParseWithTheWorldsGrammar() throws {
        #expect(Self.world.heldout.count == 64)
        for prompt in Self.world.heldout {
            let e = try Self.world.expectation(of: prompt)
            #expect(Self.world.caption(size: e.size, color: e.color, shape: e.shape, motion: e.motion, background: e.background) == prompt)
        }
        #expect { try Self.world.expectation(of: "a dog on a sofa") } throws: { ($0 as? EvaluationError)?.code == .notACaption }
    }
}
