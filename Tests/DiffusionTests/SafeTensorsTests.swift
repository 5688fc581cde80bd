import Diffusion
import TestSupport
import Foundation
import Testing

@Suite struct SafeTensorsTests {
    let tensors = [
        "blocks.0.attn.qkv.weight": Tensor(shape: [3, 2], scalars: [1, -2, 3.5, 0, .leastNonzeroMagnitude, -1e30]),
        "norm.bias": Tensor(shape: [4], scalars: [0.25, 0.5, 0.75, 1]),
    ]

    func writeSample() throws -> String {
        let path = TestModels.temporaryPath("sample.safetensors")
        try SafeTensorsFile.write(tensors, metadata: ["format": "pt"], to: path)
        return path
    }

    func bytes(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path)!) }

    func write(_ bytes: [UInt8]) -> String {
        let path = TestModels.temporaryPath("broken.safetensors")
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    func errorText(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    func errorCode(_ body: () throws -> Void) -> SafeTensorsError.Code? {
        do { try body(); return nil } catch { return (error as? SafeTensorsError)?.code }
    }

    @Test func roundTripKeepsNamesShapesValuesAndMetadata() throws {
        let path = try writeSample()
        let file = try SafeTensorsFile(path: path)
        #expect(file.names == tensors.keys.sorted())
        #expect(file.metadata == ["format": "pt"])
        for (name, tensor) in tensors {
            #expect(try file.tensor(name, shape: tensor.shape) == tensor)
        }
        let raw = bytes(path)
        let headerLength = raw[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(headerLength % 8 == 0, "header padded to 8 bytes")
        #expect(raw.count == 8 + headerLength + (6 + 4) * 4)
    }

    @Test func missingTensorIsNamed() throws {
        let file = try SafeTensorsFile(path: try writeSample())
        let text = errorText { _ = try file.tensor("blocks.1.mlp.fc1.weight", shape: [2, 2]) }
        #expect(text.contains("missing tensor 'blocks.1.mlp.fc1.weight'"))
        #expect(errorCode { _ = try file.tensor("blocks.1.mlp.fc1.weight", shape: [2, 2]) } == .missingTensor)
    }

    @Test func wrongShapeNamesTheTensorAndBothShapes() throws {
        let file = try SafeTensorsFile(path: try writeSample())
        let text = errorText { _ = try file.tensor("norm.bias", shape: [5]) }
        #expect(text.contains("'norm.bias'") && text.contains("[4]") && text.contains("[5]"))
        #expect(errorCode { _ = try file.tensor("norm.bias", shape: [5]) } == .wrongShape)
    }

    @Test func truncatedDataNamesTheTensorAndOffset() throws {
        let raw = bytes(try writeSample())
        let text = errorText { _ = try SafeTensorsFile(path: write(Array(raw.dropLast(3)))) }
        #expect(text.contains("'norm.bias'") && text.contains("truncated") && text.contains("\(raw.count)"))
        #expect(errorCode { _ = try SafeTensorsFile(path: write(Array(raw.dropLast(3)))) } == .truncated)
    }

    @Test func truncatedHeaderNamesTheOffset() throws {
        let raw = bytes(try writeSample())
        let text = errorText { _ = try SafeTensorsFile(path: write(Array(raw.prefix(20)))) }
        #expect(text.contains("byte offset 8") && text.contains("truncated"))
        let tiny = errorText { _ = try SafeTensorsFile(path: write([1, 2, 3])) }
        #expect(tiny.contains("too short"))
    }

    @Test func corruptHeaderIsReportedWithItsByteRange() throws {
        var raw = bytes(try writeSample())
        raw[8] = UInt8(ascii: "#")
        let text = errorText { _ = try SafeTensorsFile(path: write(raw)) }
        #expect(text.contains("not valid JSON") && text.contains("bytes 8..<"))
        #expect(errorCode { _ = try SafeTensorsFile(path: write(raw)) } == .corruptHeader)
    }

    @Test func offsetsOutsideTheFileAreCorrupt() throws {
        let header = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4000]}}"#
        var raw = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
        raw += Array(header.utf8) + [UInt8](repeating: 0, count: 8)
        let text = errorText { _ = try SafeTensorsFile(path: write(raw)) }
        #expect(text.contains("'w'") && text.contains("truncated"))
    }

    /// A header length past Int.max (found by `make fuzz`'s safetensors target) is refused, not trapped on.
    @Test func aHeaderLengthPastIntMaxIsCorrupt() throws {
        let raw: [UInt8] = [0x00, 0x3B, 0xA3, 0xA3, 0xA3, 0xA3, 0xA3, 0xA3, 0xA3, 0xA3]
        #expect(errorText { _ = try SafeTensorsFile(path: write(raw)) }.contains("truncated or corrupt"))
    }

    @Test func aShapeWhoseElementCountOverflowsIsCorrupt() throws {
        let header = #"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#
        var raw = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
        raw += Array(header.utf8) + [0, 0, 0, 0]
        let text = errorText { _ = try SafeTensorsFile(path: write(raw)) }
        #expect(text.contains("'w'") && text.contains("corrupt"), "\(text)")
        #expect(errorCode { _ = try SafeTensorsFile(path: write(raw)) } == .malformedEntry)
    }

    @Test func unknownDtypesAreRefusedByName() throws {
        let header = #"{"h":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}"#
        var raw = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
        raw += Array(header.utf8) + [0, 0]
        let file = try SafeTensorsFile(path: write(raw))
        #expect(errorText { _ = try file.tensor("h", shape: [2]) }.contains("'h' has dtype F8_E4M3"))
        #expect(errorCode { _ = try file.tensor("h", shape: [2]) } == .unsupportedDType)
    }

    /// F16 and BF16 widen to f32 exactly; I64 and I32 read as integers; a size that does not
    /// match the dtype is refused.
    @Test func narrowAndIntegerDtypesRead() throws {
        func file(_ dtype: String, _ payload: [UInt8], count: Int = 2) throws -> SafeTensorsFile {
            let header = #"{"h":{"dtype":"\#(dtype)","shape":[\#(count)],"data_offsets":[0,\#(payload.count)]}}"#
            var raw = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
            raw += Array(header.utf8) + payload
            return try SafeTensorsFile(path: write(raw))
        }
        // 1.5 and -2 in each format, little-endian.
        #expect(try file("F16", [0x00, 0x3E, 0x00, 0xC0]).tensor("h").scalars == [1.5, -2])
        #expect(try file("BF16", [0xC0, 0x3F, 0x00, 0xC0]).tensor("h").scalars == [1.5, -2])
        #expect(try file("I64", [5, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).integers("h") == [5, -1])
        #expect(try file("I32", [7, 0, 0, 0, 0xFE, 0xFF, 0xFF, 0xFF]).integers("h") == [7, -2])
        #expect(errorText { _ = try file("BF16", [0, 0, 0]).tensor("h") }.contains("needs 4 bytes"))
    }

    /// Writing as BF16 rounds to nearest even and halves the file; reading widens it back.
    @Test func writesBF16() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bf16-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let values: [Float] = [1, -0.5, 3.14159, 1e-3, 65504]
        try SafeTensorsFile.write(["w": Tensor(shape: [5], scalars: values)], dtype: .bf16, to: path)
        let file = try SafeTensorsFile(path: path)
        #expect(file.entries["w"]?.dtype == "BF16" && file.entries["w"]?.offsets.count == 10)
        let read = try file.tensor("w").scalars
        #expect(read[0] == 1 && read[1] == -0.5)
        for (a, b) in zip(read, values) { #expect(abs(a - b) <= abs(b) / 256) }
    }

    @Test func modelLoadingReportsAMissingTensorByName() throws {
        let (directory, _) = try TestModels.makePackage()
        let file = try SafeTensorsFile(path: "\(directory)/model.safetensors")
        var kept: [String: Tensor] = [:]
        for name in file.names where name != "blocks.1.cross.kv.weight" { kept[name] = try file.tensor(name) }
        try SafeTensorsFile.write(kept, to: "\(directory)/model.safetensors")
        let text = errorText { _ = try Model(directory: directory) }
        #expect(text.contains("missing tensor 'blocks.1.cross.kv.weight'"))
    }
}
