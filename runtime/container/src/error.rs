//! The one error type of the mechanism.

use std::io;
use std::path::PathBuf;

/// What makes a container fail to be made or its workload fail to start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plan asks for something invalid.
    #[error("{0}")]
    Invalid(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    System {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Preparing the container failed inside the child, before the exec: its own report.
    #[error("{0}")]
    ChildSetup(String),
    /// Another step failed, for the reason given.
    #[error("{0}")]
    Failed(String),
    /// The workload's command was not found.
    #[error("{0}: command not found")]
    CommandNotFound(String),
    /// The workload's command exists but cannot be executed.
    #[error("{command}: cannot execute: {source}")]
    NotExecutable {
        command: String,
        #[source]
        source: io::Error,
    },
}

/// The mechanism's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// docker's exit codes: 127 command not found, 126 not executable, 125 any other failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::CommandNotFound(_) => 127,
            Error::NotExecutable { .. } => 126,
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
