//! The state a container keeps under `--root`: a directory named by its id, holding its
//! state record and the files bound into it.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// What `berth ps` and `berth gc` will read about a running container.
#[derive(Debug, Serialize)]
pub struct State<'a> {
    /// The container's id.
    pub id: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its hostname.
    pub hostname: &'a str,
    /// The network it joined.
    pub network: &'a str,
    /// Its address on that network, if any.
    pub address: Option<String>,
    /// The host-side veth, if any.
    pub host_interface: Option<String>,
    /// The workload's pid.
    pub pid: i32,
    /// berth's own pid (the supervisor).
    pub launcher_pid: u32,
    /// The command line.
    pub command: String,
    /// Seconds since the epoch when it started.
    pub created: u64,
}

/// Makes `dir` and its parents, each 0700.
pub fn make_private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::file(dir, e))
}

/// A container's directory under `ROOT/containers/`.
#[derive(Debug)]
pub struct ContainerDir {
    path: PathBuf,
}

impl ContainerDir {
    /// Creates `ROOT/containers/ID` (0700).
    pub fn create(root: &Path, id: &str) -> Result<Self> {
        let path = root.join("containers").join(id);
        make_private_dir(&path)?;
        Ok(ContainerDir { path })
    }

    /// Writes `name` in the directory, atomically; returns its path.
    pub fn write(&self, name: &str, contents: &[u8]) -> Result<PathBuf> {
        let path = self.path.join(name);
        netsetup::write_atomically(&path, contents)?;
        Ok(path)
    }

    /// Writes the state record.
    pub fn write_state(&self, state: &State<'_>) -> Result<()> {
        let json = serde_json::to_vec_pretty(state)
            .map_err(|e| Error::Container(format!("encode state: {e}")))?;
        self.write("state.json", &json).map(drop)
    }

    /// Removes the directory and everything in it.
    pub fn remove(&self) -> Result<()> {
        fs::remove_dir_all(&self.path).map_err(|e| Error::file(&self.path, e))
    }
}
