//! The one error type of the berth crate, and how each kind maps to docker's exit codes.

use std::io;
use std::path::PathBuf;

/// Everything that makes berth itself fail (exit 125), or the workload fail to start
/// (126, 127).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or the spec asks for something invalid.
    #[error("{0}")]
    Invalid(String),
    /// A network cannot be removed while containers use it.
    #[error("{0}")]
    InUse(String),
    /// berth lacks the privileges it needs.
    #[error("{0}")]
    Privileges(String),
    /// A record of berth's state could not be kept.
    #[error(transparent)]
    State(berth_state::Error),
    /// A network step failed.
    #[error(transparent)]
    Network(#[from] netsetup::Error),
    /// A system call failed.
    #[error("{what}: {source}")]
    System {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A file of berth's state could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Another step failed, for the reason given (a record that did not encode, a workload
    /// that a stop did not end).
    #[error("{0}")]
    Failed(String),
    /// The workload did not start: the child's own report of its setup, or a command not
    /// found or not executable (the mechanism's words and exit codes, 125, 127, 126).
    #[error(transparent)]
    Workload(berth_container::Error),
}

impl From<berth_state::Error> for Error {
    /// A file's failure stays one (callers tell a vanished file by it); a directory of the
    /// state that is a link or a file is invalid, as the user must remove it.
    fn from(error: berth_state::Error) -> Self {
        match error {
            berth_state::Error::File { path, source } => Error::File { path, source },
            e @ berth_state::Error::NotADirectory { .. } => Error::Invalid(e.to_string()),
            e => Error::State(e),
        }
    }
}

impl From<berth_container::Error> for Error {
    /// The kinds both crates have become berth's own (callers tell a vanished file by
    /// `Error::File`); the workload's failures to start stay the mechanism's.
    fn from(error: berth_container::Error) -> Self {
        use berth_container::Error as Mechanism;
        match error {
            Mechanism::Invalid(text) => Error::Invalid(text),
            Mechanism::System { what, source } => Error::System { what, source },
            Mechanism::File { path, source } => Error::File { path, source },
            Mechanism::Failed(text) => Error::Failed(text),
            e @ (Mechanism::ChildSetup(_)
            | Mechanism::CommandNotFound(_)
            | Mechanism::NotExecutable { .. }) => Error::Workload(e),
        }
    }
}

/// berth's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// docker's exit codes: 127 command not found, 126 not executable, 125 berth failed.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Workload(e) => e.exit_code(),
            _ => 125,
        }
    }

    /// A failed system call, with what was being done.
    pub fn system(what: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::System {
            what: what.into(),
            source: source.into(),
        }
    }

    /// A failed file operation on `path`.
    pub fn file(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::File {
            path: path.into(),
            source,
        }
    }
}
