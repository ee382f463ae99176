/// A spool operation that failed; the message names the path and the system error.
package struct SpoolError: Error, Sendable, CustomStringConvertible, Hashable {
    package enum Kind: String, Sendable, Hashable {
        /// The spool cannot take the message (disk full, I/O error, read-only, fsync failed).
        case write
        /// No such entry.
        case notFound = "not-found"
        /// Another process or thread is delivering this entry right now.
        case locked
        /// The entry's file is damaged (not a spool entry, truncated, checksum mismatch).
        case damaged
        /// The entry could not be read right now (an I/O error); it may read fine later.
        case unreadable
        /// The spool directory is missing or unusable.
        case unavailable
        /// The spool or entry was written by a newer lmtphook, in a format this one does not read;
        /// it is left exactly as it is.
        case newerFormat = "newer-format"
    }

    package var kind: Kind
    package var description: String

    package init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}
