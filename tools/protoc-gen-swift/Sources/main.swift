// Depending on protoc-gen-swift makes SwiftPM build it; this target itself does nothing.
