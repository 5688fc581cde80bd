/// A visible mark: a line of text drawn into each picture's bottom-right corner at the file's
/// own size, white on a dark outline so it reads on any background. Its letters are a 5x7
/// pixel font enlarged to about a fourteenth of the picture's height.
public struct Watermark: Sendable, Equatable {
    public let text: String

    public static let maxCharacters = 64
    /// What a mark may hold, besides letters (drawn as capitals) and digits.
    public static let punctuation = " .,:;-_/()!?'\"@#&+=%*<>"

    /// Checks that every character can be drawn; errors name the first that cannot.
    public init(_ text: String) throws {
        if let problem = Self.problem(with: text) { throw MediaError(.invalidOption, "watermark \(problem)") }
        self.text = text
    }

    /// What is wrong with `text` as a mark, in words that follow the field's name; nil if nothing.
    public static func problem(with text: String) -> String? {
        guard !text.isEmpty, text.count <= maxCharacters else { return "takes 1 to \(maxCharacters) characters; it has \(text.count)" }
        for (offset, character) in text.enumerated() where glyph(character) == nil {
            return "cannot draw \(String(character).debugDescription) (character \(offset + 1)); use letters, digits, spaces and \(punctuation.dropFirst())"
        }
        return nil
    }

    /// Why the mark cannot go on a `width` x `height` picture; nil when it fits.
    public func problem(width: Int, height: Int) -> String? {
        layout(width: width, height: height) == nil ? "\(text.debugDescription) does not fit a \(width)x\(height) video; shorten it or raise the scale" : nil
    }

    /// Where the text goes in a picture: the size of one font pixel, and the top-left corner.
    public struct Layout: Equatable, Sendable {
        public let dot: Int, x: Int, y: Int
        public init(dot: Int, x: Int, y: Int) { self.dot = dot; self.x = x; self.y = y }
    }

    /// The largest dot up to a hundredth of the height (at least 1) at which the text and its
    /// margins fit the width; nil when it does not fit even at 1.
    public func layout(width: Int, height: Int) -> Layout? {
        let columns = text.count * 6 - 1
        var dot = max(1, (height + 50) / 100)
        while dot > 1 && columns * dot + 6 * dot > width { dot -= 1 }
        let margin = 3 * dot
        guard columns * dot + 2 * margin <= width, 7 * dot + 2 * margin <= height else { return nil }
        return Layout(dot: dot, x: width - margin - columns * dot, y: height - margin - 7 * dot)
    }

    /// Draws into a YUV 4:2:0 picture: the outline first, dark, then the letters, white; chroma
    /// under both is neutral, so the mark has no colour of its own.
    public func draw(luma: UnsafeMutablePointer<UInt8>, lumaStride: Int, cb: UnsafeMutablePointer<UInt8>, cr: UnsafeMutablePointer<UInt8>,
              chromaStride: Int, width: Int, height: Int) {
        guard let layout = layout(width: width, height: height) else { return }
        let dot = layout.dot, outline = max(1, dot / 2)
        var dots: [(x: Int, y: Int)] = []
        for (index, character) in text.enumerated() {
            let rows = Self.glyph(character)!
            for (row, bits) in rows.enumerated() {
                for column in 0..<5 where bits & (0x10 >> column) != 0 {
                    dots.append((layout.x + (index * 6 + column) * dot, layout.y + row * dot))
                }
            }
        }
        func fill(x: Int, y: Int, size: Int, grow: Int, luma value: UInt8) {
            for py in max(0, y - grow)..<min(height, y + size + grow) {
                for px in max(0, x - grow)..<min(width, x + size + grow) {
                    luma[py * lumaStride + px] = value
                    cb[(py / 2) * chromaStride + px / 2] = 128
                    cr[(py / 2) * chromaStride + px / 2] = 128
                }
            }
        }
        for point in dots { fill(x: point.x, y: point.y, size: dot, grow: outline, luma: 16) }
        for point in dots { fill(x: point.x, y: point.y, size: dot, grow: 0, luma: 235) }
    }

    /// A character's seven rows, the leftmost of five columns in bit 4.
    static func glyph(_ character: Character) -> [UInt8]? {
        guard let scalar = character.unicodeScalars.first, character.unicodeScalars.count == 1, scalar.isASCII else { return nil }
        let upper = Character(String(scalar).uppercased())
        return font[upper]
    }

    private static let font: [Character: [UInt8]] = [
        "A": [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], "B": [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        "C": [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E], "D": [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        "E": [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F], "F": [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        "G": [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F], "H": [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        "I": [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], "J": [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        "K": [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], "L": [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        "M": [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11], "N": [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        "O": [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], "P": [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        "Q": [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D], "R": [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        "S": [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E], "T": [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        "U": [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], "V": [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        "W": [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A], "X": [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        "Y": [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04], "Z": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        "0": [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], "1": [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        "2": [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], "3": [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        "4": [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], "5": [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        "6": [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], "7": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        "8": [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], "9": [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        " ": [0, 0, 0, 0, 0, 0, 0], ".": [0, 0, 0, 0, 0, 0x0C, 0x0C], ",": [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        ":": [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0], ";": [0, 0x0C, 0x0C, 0, 0x0C, 0x04, 0x08],
        "-": [0, 0, 0, 0x1F, 0, 0, 0], "_": [0, 0, 0, 0, 0, 0, 0x1F], "/": [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        "(": [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02], ")": [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        "!": [0x04, 0x04, 0x04, 0x04, 0x04, 0, 0x04], "?": [0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04],
        "'": [0x0C, 0x04, 0x08, 0, 0, 0, 0], "\"": [0x0A, 0x0A, 0x0A, 0, 0, 0, 0],
        "@": [0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E], "#": [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        "&": [0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D], "+": [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        "=": [0, 0, 0x1F, 0, 0x1F, 0, 0], "%": [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        "*": [0, 0x04, 0x15, 0x0E, 0x15, 0x04, 0], "<": [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
        ">": [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
    ]
}
