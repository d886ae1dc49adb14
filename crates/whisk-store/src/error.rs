//! The one error type every store operation returns, whatever the backend.

/// What went wrong in a store operation.
///
/// The variants are the distinctions callers act on: the controller maps
/// `AlreadyExists`/`Conflict` to 409, `NotFound` to 404, and everything else
/// to a server error, so backends must classify their failures accordingly.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The id (or name, or credential uuid) being created is already taken.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// An update or delete named a revision that is no longer current.
    #[error("revision conflict: {0}")]
    Conflict(String),
    /// The record an operation needs to exist does not.
    #[error("not found: {0}")]
    NotFound(String),
    /// The caller passed something the store cannot hold (e.g. inconsistent ids).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A stored record could not be decoded; the data needs repair, retrying will not help.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The database was written by a newer whisk-rs than this one understands.
    #[error(
        "database schema version {found} is newer than the newest version this build supports ({supported}); upgrade whisk-rs"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    /// The backend could not be reached or is shutting down; retrying later may help.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Any other backend failure.
    #[error("store backend error: {0}")]
    Backend(String),
}

/// Shorthand used throughout the store traits.
pub type StoreResult<T> = Result<T, StoreError>;
