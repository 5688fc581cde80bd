import Foundation

/// The world a model was trained on, read from its package's world.json: the same definition
/// the trainer draws clips from.
public struct World: Decodable, Sendable {
    public struct Motion: Decodable, Sendable {
        public var direction: [Double]?
        public var bounce: Double?
        public var scale: [Double]?
    }

    public struct Grammar: Decodable, Sendable {
        public var object: String
        public var clip: String
        public var join: String
    }

    public var canvas: Int
    public var frames: Int
    public var fps: Int
    public var colors: [String: [Double]]
    public var backgrounds: [String: [Double]]
    public var shapes: [String]
    public var sizes: [String: Double]
    /// Pixels a frame a moving object travels along each axis its direction names.
    public var speed: Double?
    public var motions: [String: Motion]
    /// What the canvas edges do: "wrap" brings an object leaving one edge back at the opposite
    /// one (so a render many windows long can keep moving one way); "span" keeps objects on the
    /// canvas and a travelling one crosses it once over a long video; otherwise objects stay on
    /// the canvas for the world's clip length. Only wrapping changes how frames are scored.
    public var edges: String?
    public var wraps: Bool { edges == "wrap" }
    public var grammar: Grammar
    public var heldout: [String]

    public static func load(package directory: String) throws -> World {
        let path = "\(directory)/world.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EvaluationError(.missingWorld, "\(path): missing; a model evaluated with reel eval needs the world it was trained on")
        }
        do { return try JSONDecoder().decode(World.self, from: data) } catch {
            throw EvaluationError(.invalidWorld, "\(path): \(error)")
        }
    }

    /// What a single-object prompt asks for, parsed with the world's grammar.
    public struct Expectation: Sendable, Equatable {
        public var size: String
        public var color: String
        public var shape: String
        public var motion: String
        public var background: String

        public init(size: String, color: String, shape: String, motion: String, background: String) {
            self.size = size; self.color = color; self.shape = shape; self.motion = motion; self.background = background
        }
    }

    public func expectation(of prompt: String) throws -> Expectation {
        for size in sizes.keys { for color in colors.keys { for shape in shapes { for motion in motions.keys { for background in backgrounds.keys {
            if caption(size: size, color: color, shape: shape, motion: motion, background: background) == prompt {
                return Expectation(size: size, color: color, shape: shape, motion: motion, background: background)
            }
        } } } } }
        throw EvaluationError(.notACaption, "'\(prompt)' is not a one-object caption of this world")
    }

    public func caption(size: String, color: String, shape: String, motion: String, background: String) -> String {
        let object = grammar.object.replacingOccurrences(of: "{size}", with: size).replacingOccurrences(of: "{color}", with: color)
            .replacingOccurrences(of: "{shape}", with: shape).replacingOccurrences(of: "{motion}", with: motion)
        return grammar.clip.replacingOccurrences(of: "{objects}", with: object).replacingOccurrences(of: "{background}", with: background)
    }
}

/// A model's world that cannot be evaluated against.
public struct EvaluationError: Error, CustomStringConvertible, Equatable {
    public enum Code: Sendable, Equatable {
        /// world.json is missing, or does not parse.
        case missingWorld, invalidWorld
        /// A prompt outside the world's one-object captions.
        case notACaption
    }

    public let code: Code
    public let description: String
    public init(_ code: Code, _ description: String) { (self.code, self.description) = (code, description) }
}
