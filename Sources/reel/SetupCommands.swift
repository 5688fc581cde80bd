import ArgumentParser
import Coordinator
import Diffusion
import Foundation
import Wire

/// `reel login`: remembers a coordinator and keys in the config file, once they work.
struct Login: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remember a coordinator and this machine's keys, so that later commands need no connection flags.",
        discussion: """
            Checks that the coordinator answers with these keys, then writes them to \
            $REEL_CONFIG, else $XDG_CONFIG_HOME/reel/config.yaml, else ~/.config/reel/config.yaml \
            (mode 600; key paths made absolute). Flags and REEL_COORDINATOR, REEL_KEY and \
            REEL_COORDINATOR_KEY still override it. Workers read it too.
            """)

    @Option(help: "The coordinator's endpoint, HOST:PORT or tcp://HOST:PORT.")
    var coordinator: String

    @OptionGroup var keys: PeerKeyOptions

    @Option(help: "Seconds to wait for the coordinator's answer.")
    var timeout: Double = 10

    func run() throws {
        let absolute = { (path: String) in
            CurveKey.isValid(path) ? path : URL(fileURLWithPath: path).standardizedFileURL.path
        }
        let environment = ProcessInfo.processInfo.environment
        let insecure = keys.insecure
        var config = ClientConfig(coordinator: try ConnectionOptions.endpoint(coordinator), insecure: insecure)
        if !insecure {
            guard let key = keys.key ?? environment["REEL_KEY"], let coordinatorKey = keys.coordinatorKey ?? environment["REEL_COORDINATOR_KEY"] else {
                throw UserError("give --key (this machine's .key) and --coordinator-key (the coordinator's coordinator.pub), or --insecure on a trusted network")
            }
            _ = try KeyFile.readPair(key)
            _ = try KeyFile.publicKey(coordinatorKey)
            config.key = absolute(key)
            config.coordinatorKey = absolute(coordinatorKey)
        }
        let security: SocketSecurity = insecure ? .plaintext
            : .curveClient(try KeyFile.readPair(config.key!), serverPublicKey: try KeyFile.publicKey(config.coordinatorKey!))
        let client = try FarmClient(context: try ZMQContext(), endpoint: config.coordinator!, timeoutSeconds: timeout, security: security)
        let jobs = try client.status()
        let path = ClientConfig.path
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path,
                                                withIntermediateDirectories: true)
        try AtomicFile.write(Data(config.yaml.utf8), to: path)
        chmod(path, 0o600)
        print("the coordinator at \(config.coordinator!) answered (\(jobs.count) job(s) of yours); wrote \(path)")
    }
}

/// `reel init`: a farm's keys made and enrolled, and the lines to start it.
struct FarmInit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Set up a farm on this (the coordinator's) machine: its keys, a worker key and a client key, enrolled, and the exact commands for each machine.",
        discussion: """
            Makes the coordinator's key pair in DATA-DIR/keys if it has none, makes a worker \
            key and a client key in --out, enrolls both, copies coordinator.pub beside them, \
            and prints the commands to run: the coordinator here, a worker on each worker \
            machine, `reel login` on a client machine. Run it again with other --worker and \
            --client names for more keys.
            """)

    @Option(help: "The coordinator's data directory.")
    var dataDir: String = "reel-data"

    @Option(help: "HOST:PORT at which workers and clients reach this machine.")
    var address: String

    @Option(help: "Folder for the keys to hand out.")
    var out: String = "reel-keys"

    @Option(help: "Name of the worker key.")
    var worker: String = "worker"

    @Option(help: "Name of the client key.")
    var client: String = "client"

    func run() throws {
        let endpoint = try ConnectionOptions.endpoint(address)
        guard let port = endpoint.split(separator: ":").last.flatMap({ Int($0) }), (1...65535).contains(port) else {
            throw UserError("--address \(address): give HOST:PORT, for example coordinator.example:5555")
        }
        let keys = KeyDirectory(dataDirectory: dataDir)
        _ = try keys.coordinatorKeys()
        let coordinatorPublic = try KeyFile.publicKey(keys.coordinatorPublicKeyPath)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try KeyFile.writePublic(coordinatorPublic, name: "coordinator", to: "\(out)/coordinator.pub")
        for (name, role) in [(worker, PeerRole.worker), (client, PeerRole.client)] {
            let (_, publicPath) = try KeyFile.create(try CurveKeyPair.generate(), name: name, in: out)
            try keys.enroll(try KeyFile.publicKey(publicPath), name: name, as: role)
        }
        print("""
            Keys are in \(out)/: \(worker).key for workers, \(client).key for a client, coordinator.pub for both.

            On this machine, the coordinator:
              reel coordinator --bind tcp://*:\(port) --data-dir \(dataDir)

            On each worker machine, with \(worker).key and coordinator.pub copied into the current folder:
              reel worker --connect \(endpoint) --key \(worker).key --coordinator-key coordinator.pub

            On a client machine, with \(client).key and coordinator.pub copied into the current folder:
              reel login --coordinator \(endpoint) --key \(client).key --coordinator-key coordinator.pub
              reel submit "a red circle moving right on a black background" --wait -o circle.mp4
            """)
    }
}
