import Foundation
import Wire

/// The enrolled keys as the coordinator last read them. ZAP judges a key only at its
/// connection's handshake, so a key revoked while its connection is open would go on working;
/// the coordinator reads the keys again once a second and checks every message against them.
public final class EnrollmentWatch {
    static let interval = Duration.seconds(1)

    let keys: KeyDirectory
    private(set) var userIDs: Set<String>
    /// Ids looked up and not found since the last read: their messages are refused without
    /// reading the keys again, so a revoked peer that keeps sending costs no disk reads.
    private var missing: Set<String> = []
    private let clock: any FarmClock
    private var readAt: ContinuousClock.Instant
    /// How many times the key directory was read (a figure for tests).
    public private(set) var reads = 0

    public init(keys: KeyDirectory, clock: any FarmClock = SystemClock()) {
        self.keys = keys
        self.clock = clock
        userIDs = []
        readAt = clock.now
        read()
    }

    /// Reads the keys again when a second has passed since the last read; true when it did.
    @discardableResult
    public func refreshIfDue() -> Bool {
        guard clock.now - readAt >= Self.interval else { return false }
        read()
        return true
    }

    /// Whether the key behind `userID` (a ZAP user id, `ROLE:NAME:PUBLICKEY`) is still
    /// enrolled. An id not seen at the last read is looked up again at once, so a key enrolled a
    /// moment ago is not taken for a revoked one; once per read, so a revoked one costs one read.
    public func isEnrolled(_ userID: String) -> Bool {
        if userIDs.contains(userID) { return true }
        if missing.contains(userID) { return false }
        read()
        if userIDs.contains(userID) { return true }
        missing.insert(userID)
        return false
    }

    private func read() {
        userIDs = keys.userIDs()
        missing = []
        readAt = clock.now
        reads += 1
    }
}

extension CoordinatorServer {
    /// Once a second: a worker whose key was revoked is told to go and forgotten, and its
    /// shard goes back to its job, even if it sends nothing more.
    func closeRevokedWorkers() {
        guard let enrollment, enrollment.refreshIfDue() else { return }
        for worker in workers.all {
            let identity = worker.identity
            guard let userID = worker.userID, !enrollment.userIDs.contains(userID),
                  let peer = PeerRole.parse(userID) else { continue }
            refuseRevoked(.heartbeat, from: identity, peer)
        }
    }

    /// A message over a connection whose key has been revoked since its handshake: a worker is
    /// told to go (reconnecting, its handshake is refused) and dropped; a client's request is
    /// answered with an error.
    func refuseRevoked(_ kind: MessageKind, from identity: Data, _ peer: (role: PeerRole, name: String)) {
        let reason = "the key of \(peer.role.rawValue) \(peer.name) was revoked on the coordinator"
        switch peer.role {
        case .worker:
            send(.disconnect, Reel_V1_Disconnect.with { $0.reason = reason }, to: identity)
            drop(identity, .revoked(name: peer.name))
        case .client, .admin:
            logger.warning("refused \(kind) from \(peer.role.rawValue) \(peer.name): \(reason)")
            send(.error, Reel_V1_ErrorReply.with { $0.message = "\(reason); its operator can enroll a new one (`reel keys enroll \(peer.role.rawValue)`)" }, to: identity)
        }
    }
}
