//! The engine's typed errors. The HTTP layer maps each kind to a status in
//! one place (`server/error.rs`); the engine never speaks HTTP.

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// 404: no such object.
    #[error("{0}")]
    NotFound(String),
    /// 400: the request is malformed or names something invalid.
    #[error("{0}")]
    InvalidParameter(String),
    /// 409: the object is in a state that forbids the operation.
    #[error("{0}")]
    Conflict(String),
    /// 304: nothing to do (already started, already stopped).
    #[error("{0}")]
    NotModified(String),
    /// 403: refused by policy.
    #[error("{0}")]
    Forbidden(String),
    /// 401: the registry refused the credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 503: a subsystem is not available on this node (swarm).
    #[error("{0}")]
    Unavailable(String),
    /// 501: not implemented by berth.
    #[error("{0}")]
    NotImplemented(String),
    /// 500: anything else.
    #[error("{0}")]
    Internal(String),
    /// A container's process could not be started; `kind` says why and
    /// sets the exit code recorded (127, 126, 128): 400 when the command
    /// is at fault, 500 otherwise.
    #[error("{msg}")]
    StartFailed {
        kind: berth_api::shim::ErrorKind,
        msg: String,
    },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// A refused image reference is a bad request, worded as Docker words it.
impl From<berth_api::reference::ReferenceError> for EngineError {
    fn from(e: berth_api::reference::ReferenceError) -> Self {
        Self::invalid(e.to_string())
    }
}

impl EngineError {
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::NotFound(m.into())
    }
    pub fn invalid(m: impl Into<String>) -> Self {
        Self::InvalidParameter(m.into())
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::Conflict(m.into())
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::Internal(m.into())
    }
}

impl From<std::io::Error> for EngineError {
    fn from(e: std::io::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<redb::Error> for EngineError {
    fn from(e: redb::Error) -> Self {
        Self::Internal(format!("metadata store: {e}"))
    }
}

macro_rules! redb_into {
    ($($t:ty),*) => {$(
        impl From<$t> for EngineError {
            fn from(e: $t) -> Self {
                Self::Internal(format!("metadata store: {e}"))
            }
        }
    )*};
}
redb_into!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<serde_json::Error> for EngineError {
    fn from(e: serde_json::Error) -> Self {
        Self::Internal(format!("encoding: {e}"))
    }
}

impl From<berth_api::filters::FilterError> for EngineError {
    fn from(e: berth_api::filters::FilterError) -> Self {
        Self::InvalidParameter(e.to_string())
    }
}
