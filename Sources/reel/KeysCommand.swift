import ArgumentParser
import Coordinator
import Foundation
import Wire

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create CURVE key pairs, enroll public keys on a coordinator, and list them.",
        discussion: """
            A farm is encrypted and closed by default. On the coordinator's machine, its \
            own pair is made on first start (DATA-DIR/keys/coordinator.key; hand out \
            coordinator.pub). Each worker or user makes a pair where it runs, and its \
            public key is enrolled on the coordinator's machine:
              reel keys new alice                    (writes alice.key and alice.pub)
              reel keys enroll client alice.pub --data-dir DATA-DIR
              reel submit … --key alice.key --coordinator-key coordinator.pub
            A worker key can only work and a client key can only submit and ask.
            """,
        subcommands: [New.self, Enroll.self, List.self])

    struct New: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key pair: NAME.key (secret, mode 600) and NAME.pub.")

        @Argument(help: "The key's name: letters, digits, '.', '_' or '-'.")
        var name: String

        @Option(help: "Directory to write into.")
        var dir: String = "."

        func run() throws {
            let (secret, publicPath) = try KeyFile.create(try CurveKeyPair.generate(), name: name, in: dir)
            print("wrote \(secret) (keep it secret) and \(publicPath) (enroll it on the coordinator)")
        }
    }

    struct Enroll: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Allow a public key to connect, as a worker or as a client.",
            discussion: "Takes effect at the key's next connection; the coordinator need not restart.")

        @Argument(help: "worker or client.")
        var role: String

        @Argument(help: "The .pub file (or the 40-character key itself).")
        var publicKey: String

        @Option(help: "Name it is enrolled under (default: the file's name without .pub).")
        var name: String?

        @Option(help: "The coordinator's data directory.")
        var dataDir: String = "reel-data"

        func run() throws {
            guard let kind = PeerRole(rawValue: role) else { throw UserError("role \(role.debugDescription): use worker or client") }
            let key = try KeyFile.publicKey(publicKey)
            let enrolledName = name ?? URL(fileURLWithPath: publicKey).deletingPathExtension().lastPathComponent
            try KeyDirectory(dataDirectory: dataDir).enroll(key, name: enrolledName, as: kind)
            print("enrolled \(role) \(enrolledName) (\(key)) in \(dataDir)/keys")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the coordinator's key and the enrolled keys.")

        @Option(help: "The coordinator's data directory.")
        var dataDir: String = "reel-data"

        func run() throws {
            let keys = KeyDirectory(dataDirectory: dataDir)
            if let own = try? KeyFile.publicKey(keys.coordinatorPublicKeyPath) {
                print("coordinator\t-\t\(own)")
            }
            for entry in keys.enrolled() { print("\(entry.role.rawValue)\t\(entry.name)\t\(entry.publicKey)") }
        }
    }
}
