import Foundation
import Logging

/// Log lines as one JSON object each on stderr, for log shippers (`--log-format json`): time
/// (RFC 3339, UTC, milliseconds), level, logger (its label), message, source, and metadata
/// when there is any. Each line is one write, so lines from several threads do not interleave.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
             file: String, function: String, line: UInt) {
        Self.write(Self.line(time: Date(), level: level, label: label, message: "\(message)", source: source,
                             metadata: metadata.merging(explicit ?? [:]) { $1 }))
    }

    static func line(time: Date, level: Logger.Level, label: String, message: String, source: String, metadata: Logger.Metadata) -> Data {
        var object: [String: Any] = ["time": time.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true)),
                                     "level": level.rawValue, "logger": label, "message": message, "source": source]
        if !metadata.isEmpty { object["metadata"] = metadata.mapValues { "\($0)" } }
        var data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        data.append(0x0A)
        return data
    }

    static func write(_ line: Data) { FileHandle.standardError.write(line) }
}
