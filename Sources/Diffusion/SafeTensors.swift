import Foundation

/// A problem with a safetensors file, naming the tensor or byte offset involved.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let description: String

    init(_ path: String, _ message: String) {
        self.path = path
        description = "\(path): \(message)"
    }
}

/// Read-only, memory-mapped safetensors file (the format of Hugging Face's `safetensors`):
/// an 8-byte little-endian header length, a JSON header of name -> {dtype, shape, data_offsets},
/// then the raw tensor bytes. Tensors are read by name and shape-checked on the way out.
public final class SafeTensorsFile {
    public struct Entry: Sendable {
        public let dtype: String
        public let shape: [Int]
        /// Byte range relative to the start of the data region.
        public let offsets: Range<Int>
    }

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let mapping: MemoryMappedFile
    private let dataStart: Int

    public init(path: String) throws {
        self.path = path
        mapping = try MemoryMappedFile(path: path)
        let bytes = mapping.bytes
        guard bytes.count >= 8 else {
            throw SafeTensorsError(path, "file is \(bytes.count) bytes, too short for the 8-byte header length; the file is truncated")
        }
        let headerLength = Int(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)))
        guard headerLength <= bytes.count - 8 else {
            throw SafeTensorsError(path, "header declares \(headerLength) bytes at byte offset 8, but the file has only \(bytes.count - 8) after it; the file is truncated or corrupt")
        }
        dataStart = 8 + headerLength
        let headerData = Data(bytes: bytes.baseAddress! + 8, count: headerLength)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerData)
        } catch {
            throw SafeTensorsError(path, "header at bytes 8..<\(dataStart) is not valid JSON (\(Self.reason(error))); the file is corrupt")
        }
        guard let header = json as? [String: Any] else {
            throw SafeTensorsError(path, "header at bytes 8..<\(dataStart) is not a JSON object; the file is corrupt")
        }
        let dataLength = bytes.count - dataStart
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            entries[name] = try Self.parseEntry(name: name, value: value, dataLength: dataLength, dataStart: dataStart, path: path)
        }
        self.entries = entries
        self.metadata = metadata
    }

    private static func parseEntry(name: String, value: Any, dataLength: Int, dataStart: Int, path: String) throws -> Entry {
        guard let fields = value as? [String: Any],
              let dtype = fields["dtype"] as? String,
              let shape = fields["shape"] as? [Int],
              let offsets = fields["data_offsets"] as? [Int], offsets.count == 2
        else {
            throw SafeTensorsError(path, "tensor '\(name)' has a malformed header entry (needs dtype, shape and two data_offsets)")
        }
        guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1] else {
            throw SafeTensorsError(path, "tensor '\(name)' has a negative dimension or inverted data_offsets \(offsets)")
        }
        guard offsets[1] <= dataLength else {
            throw SafeTensorsError(path, "tensor '\(name)' data ends at byte offset \(dataStart + offsets[1]) but the file ends at \(dataStart + dataLength); the file is truncated")
        }
        return Entry(dtype: dtype, shape: shape, offsets: offsets[0]..<offsets[1])
    }

    private static func reason(_ error: Error) -> String {
        let ns = error as NSError
        return (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
    }

    public var names: [String] { entries.keys.sorted() }

    /// The float32 tensor called `name`, checked against `shape` when one is given.
    public func tensor(_ name: String, shape expected: [Int]? = nil) throws -> Tensor {
        guard let entry = entries[name] else {
            throw SafeTensorsError(path, "missing tensor '\(name)'; the model file does not match its config.json")
        }
        if let expected, expected != entry.shape {
            throw SafeTensorsError(path, "tensor '\(name)' has shape \(entry.shape), expected \(expected) from config.json")
        }
        guard entry.dtype == "F32" else {
            throw SafeTensorsError(path, "tensor '\(name)' has dtype \(entry.dtype); Reel reads F32 only")
        }
        let count = entry.shape.reduce(1, *)
        guard entry.offsets.count == count * 4 else {
            throw SafeTensorsError(path, "tensor '\(name)' of shape \(entry.shape) needs \(count * 4) bytes but data_offsets span \(entry.offsets.count)")
        }
        let source = mapping.bytes.baseAddress! + dataStart + entry.offsets.lowerBound
        let scalars = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count {
                let bits = UInt32(littleEndian: UnsafeRawPointer(source).loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                buffer[i] = Float(bitPattern: bits)
            }
            initialized = count
        }
        return Tensor(shape: entry.shape, scalars: scalars)
    }

    /// Writes `tensors` as a float32 safetensors file, atomically: to a temporary name beside
    /// `path`, then renamed over it.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to path: String) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let tensor = tensors[name]!
            header[name] = ["dtype": "F32", "shape": tensor.shape, "data_offsets": [offset, offset + tensor.count * 4]] as [String: Any]
            offset += tensor.count * 4
        }
        var headerBytes = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }

        var file = Data(capacity: 8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(headerBytes)
        for name in names {
            tensors[name]!.scalars.withUnsafeBufferPointer { buffer in
                for value in buffer {
                    withUnsafeBytes(of: value.bitPattern.littleEndian) { file.append(contentsOf: $0) }
                }
            }
        }
        try AtomicFile.write(file, to: path)
    }
}

/// A whole file mapped read-only into memory, unmapped when the owner goes away.
final class MemoryMappedFile {
    let bytes: UnsafeRawBufferPointer

    init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw SafeTensorsError(path, "cannot open (\(String(cString: strerror(errno))))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw SafeTensorsError(path, "cannot stat (\(String(cString: strerror(errno))))")
        }
        let size = Int(info.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw SafeTensorsError(path, "cannot map into memory (\(String(cString: strerror(errno))))")
        }
        bytes = UnsafeRawBufferPointer(start: base, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}
