/// Where a coordinator keeps each job's files in its data directory: the one place the paths are made.
public struct JobFiles: Sendable {
    public let dataDirectory: String

    public init(dataDirectory: String) { self.dataDirectory = dataDirectory }

    /// The folder of every job's files.
    public var directory: String { "\(dataDirectory)/jobs" }

    /// A finished job's video.
    public func video(_ id: String) -> String { "\(directory)/\(id).mp4" }

    /// The input video a job re-renders.
    public func input(_ id: String) -> String { "\(directory)/\(id).input" }

    /// A running job's last checkpoint.
    public func checkpoint(_ id: String) -> String { "\(directory)/\(id).checkpoint" }
}
