/// Which build of Reel this is: `reel --version`, a worker's hello, `reel workers`, the
/// dashboard and the `reel_build_info` metric all say it the same way.
public enum ReelVersion {
    /// The release, in semantic versioning. Until 1.0 its minor number follows the protocol
    /// version, whose changes are the incompatible ones.
    public static let release = "0.9.0"
    /// The commit it was built from (the BuildStamp plugin), "-modified" when the tree had
    /// uncommitted changes, or "unknown" outside a git checkout.
    public static let commit = BuildStamp.commit
    /// Release and commit, as workers announce it: "0.9.0+1a2b3c4d5e6f".
    public static var build: String { "\(release)+\(commit)" }
    /// The line `reel --version` prints.
    public static var line: String { "reel \(build) (protocol \(Envelope.protocolVersion))" }
}
