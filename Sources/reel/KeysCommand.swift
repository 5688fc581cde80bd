import ArgumentParser
import Coordinator
import Foundation
import Provenance
import Wire

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create CURVE key pairs, enroll public keys on a coordinator, list and revoke them; print the key that signs videos.",
        discussion: """
            A farm is encrypted and closed by default. On the coordinator's machine, its \
            own pair is made on first start (DATA-DIR/keys/coordinator.key; hand out \
            coordinator.pub). Each worker or user makes a pair where it runs, and its \
            public key is enrolled on the coordinator's machine:
              reel keys new alice                    (writes alice.key and alice.pub)
              reel keys enroll client alice.pub --data-dir DATA-DIR
              reel submit … --key alice.key --coordinator-key coordinator.pub
            A worker key can only work and a client key can only submit and ask. \
            `reel keys revoke worker w7 --data-dir DATA-DIR` takes a key back; a running \
            coordinator closes its connections within a second. `reel keys export-signing \
            --data-dir DATA-DIR` prints the public key that signs the farm's videos \
            (docs/provenance.md), to publish.
            """,
        subcommands: [New.self, Enroll.self, List.self, Revoke.self, ExportSigning.self])

    struct ExportSigning: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export-signing",
            abstract: "Print the public half of the key that signs videos' manifests, to publish.",
            discussion: """
                A coordinator signs each video's manifest with DATA-DIR/keys/signing.key, an \
                Ed25519 key made beside its CURVE keys (here, if the data directory has none \
                yet). `reel render` signs with this user's own key (--local). Publish the \
                printed key where viewers find it; `reel verify FILE --key KEY` checks a video \
                against it.
                """)

        @Option(help: "The coordinator's data directory.")
        var dataDir: String = "reel-data"

        @Flag(help: "This user's key, which `reel render` signs with (\(SigningKey.localPath)).")
        var local = false

        func run() throws {
            let path = local ? SigningKey.localPath : SigningKey.farmPath(dataDirectory: dataDir)
            if !local && !FileManager.default.fileExists(atPath: "\(dataDir)/keys") {
                throw UserError("--data-dir \(dataDir) has no keys folder: give the --data-dir the coordinator runs on, or --local for the key `reel render` signs with")
            }
            do {
                print(try SigningKey.loadOrCreate(path).publicText)
            } catch {
                throw UserError("\(error)")
            }
        }
    }

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
            abstract: "Allow a public key to connect, as a worker, a client or an admin.",
            discussion: """
                Takes effect at the key's next connection; the coordinator need not restart. A client \
                sees and cancels only the jobs it submitted; an admin is a client that sees and \
                cancels every job.
                """)

        @Argument(help: "worker, client or admin.")
        var role: String

        @Argument(help: "The .pub file (or the 40-character key itself).")
        var publicKey: String

        @Option(help: "Name it is enrolled under (default: the file's name without .pub).")
        var name: String?

        @Option(help: "The coordinator's data directory.")
        var dataDir: String = "reel-data"

        func run() throws {
            guard let kind = PeerRole(rawValue: role) else { throw UserError("role \(role.debugDescription): use worker, client or admin") }
            if KeyFile.holdsSecretKey(publicKey) {
                throw UserError("\(publicKey) holds a secret key: enroll its .pub (the public half), and keep the .key on its own machine")
            }
            // Enrolled where no coordinator keeps its keys, a key lets nobody in.
            guard FileManager.default.fileExists(atPath: "\(dataDir)/keys/coordinator.key") else {
                throw UserError("--data-dir \(dataDir) holds no coordinator key (\(dataDir)/keys/coordinator.key): give the --data-dir the coordinator runs on, or start the coordinator there once first")
            }
            let key = try KeyFile.publicKey(publicKey)
            let enrolledName = name ?? URL(fileURLWithPath: publicKey).deletingPathExtension().lastPathComponent
            try KeyDirectory(dataDirectory: dataDir).enroll(key, name: enrolledName, as: kind)
            print("enrolled \(role) \(enrolledName) (\(key)) in \(dataDir)/keys")
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take back an enrolled key, as a worker, a client or an admin.",
            discussion: """
                Its public key is removed from DATA-DIR/keys. A coordinator running on that data \
                directory refuses new connections with it at once and closes open ones within \
                a second: a worker is told to go and its shard is handed to another; a client's \
                requests are answered with an error.
                """)

        @Argument(help: "worker, client or admin.")
        var role: String

        @Argument(help: "The name it was enrolled under (`reel keys list`).")
        var name: String

        @Option(help: "The coordinator's data directory.")
        var dataDir: String = "reel-data"

        func run() throws {
            guard let kind = PeerRole(rawValue: role) else { throw UserError("role \(role.debugDescription): use worker, client or admin") }
            try KeyDirectory(dataDirectory: dataDir).revoke(name, as: kind)
            print("revoked \(role) \(name) in \(dataDir)/keys")
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
