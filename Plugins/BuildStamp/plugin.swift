import Foundation
import PackagePlugin

/// Writes the commit a build was made from into the target it is applied to (`BuildStamp.commit`),
/// so that `reel --version`, `reel workers` and /metrics can name the exact build. It runs before
/// every build and rewrites its file only when the commit changes, so an unchanged tree does not
/// recompile. Outside a git checkout the commit is "unknown".
@main
struct BuildStampPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("stamp")
        // $1: the package's folder; $2: the folder to write into. A tree with changes to tracked
        // files is marked "-modified": its binary is not that commit's.
        let script = #"""
            set -e
            mkdir -p "$2"
            commit=$(git -C "$1" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
            if [ "$commit" != unknown ] && ! git -C "$1" diff --quiet HEAD -- 2>/dev/null; then commit="$commit-modified"; fi
            printf '// Written by the BuildStamp plugin.\nenum BuildStamp {\n    static let commit = "%s"\n}\n' "$commit" > "$2/BuildStamp.swift.new"
            if cmp -s "$2/BuildStamp.swift.new" "$2/BuildStamp.swift"; then rm "$2/BuildStamp.swift.new"; else mv "$2/BuildStamp.swift.new" "$2/BuildStamp.swift"; fi
            """#
        return [.prebuildCommand(displayName: "Stamping \(target.name) with the build's commit",
                                 executable: URL(fileURLWithPath: "/bin/sh"),
                                 arguments: ["-c", script, "sh", context.package.directoryURL.path, output.path],
                                 outputFilesDirectory: output)]
    }
}
