/// What the coordinator refuses or cannot do: a code to match on, and words for the user.
public struct CoordinatorError: Error, CustomStringConvertible, Equatable {
    public enum Code: Sendable, Equatable {
        /// A submission's own fields (its spec's are a `SpecError`'s).
        case idempotencyKeyTooLong, modelNotAPackageName
        /// The client has `maxActiveJobsPerClient` unfinished jobs.
        case tooManyActiveJobs
        /// The input video: missing, or unreadable.
        case inputMissing, inputUnreadable
        /// A job id the requester may not see, or one whose model is missing for now.
        case noSuchJob, jobWaitsForModel
        /// A worker's result that is not what its assignment said it must be.
        case resultMismatch
        /// The data directory cannot be opened, or another coordinator holds it.
        case dataDirectoryUnavailable, dataDirectoryInUse
        /// A pause, resume or retry the job's state does not allow, or an action not known.
        case actionRefused
    }

    public let code: Code
    public let description: String
    public init(_ code: Code, _ description: String) { (self.code, self.description) = (code, description) }
}
