/// Defaults of the job fields no model sets: the one table. A model's config.json sets the
/// others (frames, canvas, fps, steps, sampler, guidance, shift, window, overlap, layout
/// strength); a field a request leaves unset takes its default when the spec is resolved
/// (Coordinator's SpecResolver), on whichever machine that is.
public enum JobDefaults {
    public static let seed: UInt64 = 0
    /// Steps between fusions of neighbouring chunks and tiles.
    public static let syncInterval = 1
    /// Times each frame is enlarged in the file.
    public static let outputScale = 4
    /// SDEdit strength of a job with an input video: how much of it is redone.
    public static let strength: Float = 0.6
    public static let priority = 0
}
