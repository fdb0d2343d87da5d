//! The one error type of berth-state.

use std::io;
use std::path::PathBuf;

/// A record could not be kept: each variant names the file it failed on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A record or lock is a symbolic link, which berth never follows.
    #[error("{} is a symbolic link: berth does not follow links in its state directory; remove it", path.display())]
    SymbolicLink { path: PathBuf },
    /// A directory of berth's state is a link or another kind of file.
    #[error("{} is {what}: berth does not follow links or use other files in its state directory; remove it", path.display())]
    NotADirectory { path: PathBuf, what: &'static str },
    /// A process-information lookup in /proc failed.
    #[error("cannot read {0}")]
    Proc(String),
}

/// berth-state's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A failed operation on a file opened with O_NOFOLLOW, where ELOOP means a planted link.
    pub fn file(path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if source.raw_os_error() == Some(libc::ELOOP) {
            return Error::SymbolicLink { path };
        }
        Error::File { path, source }
    }
}
