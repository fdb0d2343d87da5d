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

/// Makes `ROOT/a/b/...` for `parts` = `[a, b, ...]`: ROOT with its parents if missing (ROOT
/// itself may be a link), then each part below it, 0700, refusing any part that exists as a
/// symbolic link or as something other than a directory: berth never follows a link planted
/// under its root.
pub fn private_dir(root: &Path, parts: &[&str]) -> Result<PathBuf> {
    let builder = {
        let mut b = DirBuilder::new();
        b.mode(0o700);
        b
    };
    if !root.is_dir() {
        let mut parents = DirBuilder::new();
        parents.recursive(true).mode(0o700);
        parents.create(root).map_err(|e| Error::file(root, e))?;
    }
    let mut path = root.to_path_buf();
    for part in parts {
        path.push(part);
        match builder.create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let kind = fs::symlink_metadata(&path)
                    .map_err(|e| Error::file(&path, e))?
                    .file_type();
                if !kind.is_dir() {
                    let what = if kind.is_symlink() {
                        "a symbolic link"
                    } else {
                        "not a directory"
                    };
                    return Err(Error::Invalid(format!(
                        "{} is {what}: berth does not follow links or use other files in its \
                         state directory; remove it",
                        path.display()
                    )));
                }
            }
            Err(e) => return Err(Error::file(&path, e)),
        }
    }
    Ok(path)
}

/// A container's directory under `ROOT/containers/`.
#[derive(Debug)]
pub struct ContainerDir {
    path: PathBuf,
}

impl ContainerDir {
    /// Creates `ROOT/containers/ID` (0700; see [`private_dir`]).
    pub fn create(root: &Path, id: &str) -> Result<Self> {
        let path = private_dir(root, &["containers", id])?;
        Ok(ContainerDir { path })
    }

    /// Writes `name` in the directory, atomically, with `mode`; returns its path.
    pub fn write(&self, name: &str, contents: &[u8], mode: u32) -> Result<PathBuf> {
        let path = self.path.join(name);
        netsetup::write_atomically(&path, contents, mode)?;
        Ok(path)
    }

    /// Writes the state record.
    pub fn write_state(&self, state: &State<'_>) -> Result<()> {
        let json = serde_json::to_vec_pretty(state)
            .map_err(|e| Error::Container(format!("encode state: {e}")))?;
        self.write("state.json", &json, 0o600).map(drop)
    }

    /// Removes the directory and everything in it.
    pub fn remove(&self) -> Result<()> {
        fs::remove_dir_all(&self.path).map_err(|e| Error::file(&self.path, e))
    }
}
