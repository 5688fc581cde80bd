import Foundation
import Wire
import Yams

/// Where clients and workers find their coordinator and keys when no flag or environment
/// variable says: a YAML file written by `reel login`. Its path is $REEL_CONFIG, else
/// $XDG_CONFIG_HOME/reel/config.yaml, else ~/.config/reel/config.yaml. A flag overrides the
/// variable (REEL_COORDINATOR, REEL_KEY, REEL_COORDINATOR_KEY), which overrides the file.
struct ClientConfig: Equatable {
    var coordinator: String?
    var key: String?
    var coordinatorKey: String?
    var insecure = false

    static let fields = ["coordinator", "key", "coordinator_key", "insecure"]

    static var path: String {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["REEL_CONFIG"], !path.isEmpty { return path }
        let base = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory() + "/.config"
        return base + "/reel/config.yaml"
    }

    /// The file at `path`, or an empty config when there is none; a file that does not parse
    /// is an error naming it, rather than a farm silently reached without its keys.
    static func load(from path: String = ClientConfig.path) throws -> ClientConfig {
        guard let data = FileManager.default.contents(atPath: path) else { return ClientConfig() }
        let problem = { (what: String) in UserError("\(path): \(what); `reel login` writes this file anew") }
        guard let node = try? Yams.compose(yaml: String(decoding: data, as: UTF8.self)) else { throw problem("not YAML") }
        guard let mapping = node.mapping else { throw problem("not a mapping of \(fields.joined(separator: ", "))") }
        var config = ClientConfig()
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        for (keyNode, value) in mapping {
            let field = keyNode.string ?? ""
            // Key paths are kept as written, relative ones read from the file's folder.
            let text = { () throws -> String in
                guard let text = value.string, !text.isEmpty else { throw problem("\(field) is not a string") }
                return text
            }
            switch field {
            case "coordinator": config.coordinator = try text()
            case "key": config.key = Self.resolve(try text(), in: folder)
            case "coordinator_key": config.coordinatorKey = Self.resolve(try text(), in: folder)
            case "insecure":
                guard let flag = value.bool else { throw problem("insecure is not true or false") }
                config.insecure = flag
            default: throw problem("\(field.debugDescription) is not a field; the fields are \(fields.joined(separator: ", "))")
            }
        }
        return config
    }

    private static func resolve(_ path: String, in folder: String) -> String {
        path.hasPrefix("/") || CurveKey.isValid(path) ? path : "\(folder)/\(path)"
    }

    /// The file's text: every field set, with a comment on where it came from.
    var yaml: String {
        var lines = ["# Written by `reel login`. Flags and REEL_* variables override these."]
        if let coordinator { lines.append("coordinator: \(Self.quoted(coordinator))") }
        if let key { lines.append("key: \(Self.quoted(key))") }
        if let coordinatorKey { lines.append("coordinator_key: \(Self.quoted(coordinatorKey))") }
        if insecure { lines.append("insecure: true") }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
