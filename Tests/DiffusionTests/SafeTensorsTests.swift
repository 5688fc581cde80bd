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
    }

    @Test func wrongShapeNamesTheTensorAndBothShapes() throws {
        let file = try SafeTensorsFile(path: try writeSample())
        let text = errorText { _ = try file.tensor("norm.bias", shape: [5]) }
        #expect(text.contains("'norm.bias'") && text.contains("[4]") && text.contains("[5]"))
    }

    @Test func truncatedDataNamesTheTensorAndOffset() throws {
        let raw = bytes(try writeSample())
        let text = errorText { _ = try SafeTensorsFile(path: write(Array(raw.dropLast(3)))) }
        #expect(text.contains("'norm.bias'") && text.contains("truncated") && text.contains("\(raw.count)"))
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
    }

    @Test func offsetsOutsideTheFileAreCorrupt() throws {
        let header = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4000]}}"#
        var raw = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
        raw += Array(header.utf8) + [UInt8](repeating: 0, count: 8)
        let text = errorText { _ = try SafeTensorsFile(path: write(raw)) }
        #expect(text.contains("'w'") && text.contains("truncated"))
    }

    @Test func otherDtypesAreRefusedByName() throws {
        let header = #"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#
        var raw = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
        raw += Array(header.utf8) + [0, 0, 0, 0]
        let file = try SafeTensorsFile(path: write(raw))
        #expect(errorText { _ = try file.tensor("h", shape: [2]) }.contains("'h' has dtype F16"))
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
