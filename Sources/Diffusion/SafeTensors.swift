import Foundation

/// A problem with a safetensors file, naming the tensor or byte offset involved.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable {
    public enum Code: Sendable, Equatable {
        /// The file ends before its header or a tensor's data does.
        case truncated
        /// The header is not a JSON object.
        case corruptHeader
        /// A tensor's entry lacks fields, or its shape and offsets disagree.
        case malformedEntry
        case missingTensor, wrongShape, unsupportedDType
        /// The file cannot be opened, sized or mapped.
        case cannotRead
    }

    public let code: Code
    public let path: String
    public let description: String

    init(_ code: Code, _ path: String, _ message: String) {
        self.code = code
        self.path = path
        description = "\(path): \(message)"
    }
}

/// Read-only, memory-mapped safetensors file (the format of Hugging Face's `safetensors`):
/// an 8-byte little-endian header length, a JSON header of name -> {dtype, shape, data_offsets},
/// then the raw tensor bytes. Tensors are read by name and shape-checked on the way out.
public final class SafeTensorsFile: @unchecked Sendable {
    public struct Entry: Sendable {
        public let dtype: String
        public let shape: [Int]
        /// Byte range relative to the start of the data region.
        public let offsets: Range<Int>

        public var count: Int { shape.reduce(1, *) }
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
            throw SafeTensorsError(.truncated, path, "file is \(bytes.count) bytes, too short for the 8-byte header length; the file is truncated")
        }
        let declared = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard let headerLength = Int(exactly: declared), headerLength <= bytes.count - 8 else {
            throw SafeTensorsError(.truncated, path, "header declares \(declared) bytes at byte offset 8, but the file has only \(bytes.count - 8) after it; the file is truncated or corrupt")
        }
        dataStart = 8 + headerLength
        let headerData = Data(bytes: bytes.baseAddress! + 8, count: headerLength)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerData)
        } catch {
            throw SafeTensorsError(.corruptHeader, path, "header at bytes 8..<\(dataStart) is not valid JSON (\(Self.reason(error))); the file is corrupt")
        }
        guard let header = json as? [String: Any] else {
            throw SafeTensorsError(.corruptHeader, path, "header at bytes 8..<\(dataStart) is not a JSON object; the file is corrupt")
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
            throw SafeTensorsError(.malformedEntry, path, "tensor '\(name)' has a malformed header entry (needs dtype, shape and two data_offsets)")
        }
        guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1] else {
            throw SafeTensorsError(.malformedEntry, path, "tensor '\(name)' has a negative dimension or inverted data_offsets \(offsets)")
        }
        guard offsets[1] <= dataLength else {
            throw SafeTensorsError(.truncated, path, "tensor '\(name)' data ends at byte offset \(dataStart + offsets[1]) but the file ends at \(dataStart + dataLength); the file is truncated")
        }
        // The element count (and 8 bytes per element) must fit in an Int, so that later
        // arithmetic on it cannot overflow; a count beyond the file is refused when read.
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow, product <= Int.max / 8 else {
                throw SafeTensorsError(.malformedEntry, path, "tensor '\(name)' has shape \(shape), more elements than any file holds; the file is corrupt")
            }
            count = product
        }
        return Entry(dtype: dtype, shape: shape, offsets: offsets[0]..<offsets[1])
    }

    private static func reason(_ error: Error) -> String {
        let ns = error as NSError
        return (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
    }

    public var names: [String] { entries.keys.sorted() }

    /// The tensor called `name` as float32, checked against `shape` when one is given. F16 and
    /// BF16 are widened exactly; I32 and I64 are converted (reference files hold token ids).
    public func tensor(_ name: String, shape expected: [Int]? = nil) throws -> Tensor {
        let stored = try stored(name, shape: expected)
        let count = stored.count
        let scalars = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            stored.widen(into: buffer.baseAddress!, range: 0..<count)
            initialized = count
        }
        return Tensor(shape: stored.shape, scalars: scalars)
    }

    /// The integers of an I64 or I32 tensor (token ids, masks).
    public func integers(_ name: String) throws -> [Int] {
        let stored = try stored(name, shape: nil)
        guard !stored.dtype.isFloat else {
            throw SafeTensorsError(.unsupportedDType, path, "tensor '\(name)' has dtype \(stored.dtype.rawValue); expected I64 or I32")
        }
        return (0..<stored.count).map { stored.integer(at: $0) }
    }

    /// The tensor called `name` as stored, without copying: the caller widens what it needs
    /// when it needs it, so a BF16 model never exists whole in f32.
    public func stored(_ name: String, shape expected: [Int]? = nil) throws -> StoredTensor {
        guard let entry = entries[name] else {
            throw SafeTensorsError(.missingTensor, path, "missing tensor '\(name)'; the model file does not match its config.json")
        }
        if let expected, expected != entry.shape {
            throw SafeTensorsError(.wrongShape, path, "tensor '\(name)' has shape \(entry.shape), expected \(expected) from config.json")
        }
        guard let dtype = StoredTensor.DType(rawValue: entry.dtype) else {
            throw SafeTensorsError(.unsupportedDType, path, "tensor '\(name)' has dtype \(entry.dtype); Reel reads F32, F16, BF16, I32 and I64")
        }
        let (bytes, overflow) = entry.count.multipliedReportingOverflow(by: dtype.size)
        guard !overflow, entry.offsets.count == bytes else {
            throw SafeTensorsError(.malformedEntry, path, "tensor '\(name)' of shape \(entry.shape) in \(entry.dtype) needs \(bytes) bytes but data_offsets span \(entry.offsets.count)")
        }
        return StoredTensor(dtype: dtype, shape: entry.shape, base: mapping.bytes.baseAddress! + dataStart + entry.offsets.lowerBound,
                            owner: self)
    }

    /// Writes `tensors` as a safetensors file of float32 (or `dtype`: F16, BF16 round to nearest
    /// even), atomically: to a temporary name beside `path`, then renamed over it.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:],
                             dtype: StoredTensor.DType = .f32, to path: String) throws {
        precondition(dtype.isFloat, "only float tensors are written")
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let tensor = tensors[name]!
            header[name] = ["dtype": dtype.rawValue, "shape": tensor.shape,
                            "data_offsets": [offset, offset + tensor.count * dtype.size]] as [String: Any]
            offset += tensor.count * dtype.size
        }
        var headerBytes = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }

        var file = Data(capacity: 8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(headerBytes)
        for name in names {
            tensors[name]!.scalars.withUnsafeBufferPointer { buffer in
                switch dtype {
                case .f32:
                    for value in buffer { withUnsafeBytes(of: value.bitPattern.littleEndian) { file.append(contentsOf: $0) } }
                case .bf16:
                    for value in buffer { withUnsafeBytes(of: StoredTensor.bfloat16(value).littleEndian) { file.append(contentsOf: $0) } }
                default:
                    for value in buffer { withUnsafeBytes(of: Float16(value).bitPattern.littleEndian) { file.append(contentsOf: $0) } }
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
            throw SafeTensorsError(.cannotRead, path, "cannot open (\(String(cString: strerror(errno))))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw SafeTensorsError(.cannotRead, path, "cannot stat (\(String(cString: strerror(errno))))")
        }
        let size = Int(info.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw SafeTensorsError(.cannotRead, path, "cannot map into memory (\(String(cString: strerror(errno))))")
        }
        bytes = UnsafeRawBufferPointer(start: base, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

/// One tensor of a mapped safetensors file, in its stored element type. It keeps the file mapped
/// while it lives.
public struct StoredTensor: @unchecked Sendable {
    public enum DType: String, Sendable {
        case f32 = "F32", f16 = "F16", bf16 = "BF16", i32 = "I32", i64 = "I64"

        public var size: Int {
            switch self {
            case .f16, .bf16: 2
            case .f32, .i32: 4
            case .i64: 8
            }
        }

        public var isFloat: Bool { self == .f32 || self == .f16 || self == .bf16 }
    }

    public let dtype: DType
    public let shape: [Int]
    let base: UnsafeRawPointer
    let owner: AnyObject

    public var count: Int { shape.reduce(1, *) }

    /// The same bytes seen with another shape of the same element count (a Conv3d kernel as a matrix).
    public func reshaped(_ newShape: [Int]) -> StoredTensor {
        precondition(newShape.reduce(1, *) == count, "reshape \(shape) to \(newShape) changes the element count")
        return StoredTensor(dtype: dtype, shape: newShape, base: base, owner: owner)
    }

    /// The f32 data itself when it is stored as aligned f32; nil when it must be widened.
    public var float32Pointer: UnsafePointer<Float>? {
        guard dtype == .f32, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 else { return nil }
        return base.assumingMemoryBound(to: Float.self)
    }

    /// Writes elements `range` as f32 to `out` (F16 and BF16 widen exactly).
    public func widen(into out: UnsafeMutablePointer<Float>, range: Range<Int>) {
        var o = out
        switch dtype {
        case .f32:
            for i in range { o.pointee = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))); o += 1 }
        case .bf16:
            for i in range { o.pointee = Float(bitPattern: UInt32(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) << 16); o += 1 }
        case .f16:
            for i in range { o.pointee = Float(Float16(bitPattern: UInt16(littleEndian: base.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))); o += 1 }
        case .i32, .i64:
            for i in range { o.pointee = Float(integer(at: i)); o += 1 }
        }
    }

    func integer(at i: Int) -> Int {
        switch dtype {
        case .i64: Int(Int64(littleEndian: base.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)))
        case .i32: Int(Int32(littleEndian: base.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))
        default: 0
        }
    }

    /// Drops this tensor's pages from the process (they stay in the page cache, and are read
    /// again if the tensor is used again): for weights that were copied out, such as quantised
    /// ones, so that their mapping stops counting in the resident set.
    package func releasePages() {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = Int(bitPattern: base), end = start + count * dtype.size
        // Only whole pages inside the tensor: its neighbours may still be in use.
        let first = (start + page - 1) / page * page, last = end / page * page
        guard last > first, let pointer = UnsafeMutableRawPointer(bitPattern: first) else { return }
        madvise(pointer, last - first, MADV_DONTNEED)
    }

    /// All elements as f32.
    public func floats() -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            widen(into: buffer.baseAddress!, range: 0..<count)
            initialized = count
        }
    }

    /// Runs `body` on the elements as f32: the mapped data itself for aligned F32, else a copy
    /// widened by all the compute threads that lives only for the call.
    public func withFloats<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        if let direct = float32Pointer { return try body(direct) }
        let count = count
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, count))
        defer { scratch.deallocate() }
        let chunk = 1 << 16
        ComputeThreads.forEachSlice(of: (count + chunk - 1) / chunk, parts: ComputeThreads.count) { slice in
            for c in slice { widen(into: scratch + c * chunk, range: (c * chunk)..<min(count, (c + 1) * chunk)) }
        }
        return try body(scratch)
    }

    /// f32 to bfloat16, rounding to nearest even (NaN stays NaN).
    package static func bfloat16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(bits >> 16) | 0x40 }
        let rounding = 0x7FFF + ((bits >> 16) & 1)
        return UInt16((bits &+ rounding) >> 16)
    }
}
