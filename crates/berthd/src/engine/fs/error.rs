//! What can go wrong reading or writing an archive, told apart the way
//! the API answers it: the client's archive (400) or our storage (500).

use std::io;

use crate::engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive tries to escape the destination.
    #[error("{0}")]
    Unsafe(String),
    /// The stream is not a valid (compressed) tar.
    #[error("{0}")]
    Malformed(String),
    /// A local file-system operation failed.
    #[error("{0}")]
    Io(String),
}

impl From<ArchiveError> for EngineError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::Unsafe(m) | ArchiveError::Malformed(m) => {
                EngineError::InvalidParameter(m)
            }
            ArchiveError::Io(m) => EngineError::Internal(m),
        }
    }
}

pub type AResult<T> = Result<T, ArchiveError>;

/// A failed read of the archive: malformed input, unless what failed is
/// our own storage (the input is often teed into the content store, so a
/// full disk shows up as a read error) — that is ours, not the archive's.
pub(crate) fn read_err(msg: String, e: &io::Error) -> ArchiveError {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let errno = err
            .downcast_ref::<io::Error>()
            .and_then(|i| i.raw_os_error());
        if matches!(
            errno,
            Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EIO) | Some(libc::EROFS)
        ) {
            return ArchiveError::Io(format!("storing the archive: {err}"));
        }
        cur = err.source();
    }
    ArchiveError::Malformed(msg)
}

pub(crate) fn io_err(what: impl std::fmt::Display, e: io::Error) -> ArchiveError {
    ArchiveError::Io(format!("{what}: {e}"))
}
