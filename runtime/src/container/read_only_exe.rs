//! berth's binary out of a container's reach (the CVE-2019-5736 class).
//!
//! A process that enters a container (`berth exec`, and the child of a run with a root of its
//! own) execs a command the container chose. If that command is a script whose interpreter is
//! `#!/proc/self/exe`, the kernel runs berth's own binary inside the container, and a process
//! of the container can open it through `/proc/PID/exe` and, once no process runs it any more,
//! write through that descriptor: the next `berth` the administrator runs is the container's
//! code. So berth first execs itself again from a read-only view of its binary: a detached
//! clone of the mount it lives on (open_tree), made read-only (mount_setattr) and executed by
//! descriptor (execveat). `/proc/PID/exe` then leads to a file on a read-only mount that is
//! attached nowhere, which no one can remount (the mount dissolves when the descriptor closes
//! at the exec), so every open for writing fails with EROFS, from any namespace.
//!
//! The exec costs about a millisecond, so only the commands that need it pay: `run` with a
//! root filesystem of its own, and `exec` into a container that has one. A container in the
//! host's root shares the host's files anyway (it could write the binary by its path), so
//! there is nothing to hide from it.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;

use nix::mount::MsFlags;
use nix::sys::statvfs::{fstatvfs, FsFlags};

use crate::error::{Error, Result};
use crate::sys;

/// Returns at once if berth already runs from a read-only mount; otherwise execs berth again,
/// with the same arguments and environment, from a read-only view of its binary, and so
/// returns only on failure. Call it before anything is made or any thread starts.
pub fn ensure() -> Result<()> {
    let exe =
        std::fs::File::open("/proc/self/exe").map_err(|e| Error::file("/proc/self/exe", e))?;
    let flags = fstatvfs(&exe).map_err(|e| Error::system("stat berth's own binary", e))?;
    if flags.flags().contains(FsFlags::ST_RDONLY) {
        return Ok(());
    }
    let view = sys::clone_tree(Some(exe.as_fd()), c"", false)
        .map_err(|e| Error::system("take a view of berth's own binary", e))?;
    let read_only = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    sys::mount_setattr(view.as_fd(), false, &sys::MountAttr::from_flags(read_only))
        .map_err(|e| Error::system("make the view of berth's binary read-only", e))?;
    drop(exe);
    let argv = c_strings(std::env::args_os().map(|arg| arg.as_bytes().to_vec()))?;
    let envp = c_strings(std::env::vars_os().map(|(key, value)| {
        let mut entry = key.as_bytes().to_vec();
        entry.push(b'=');
        entry.extend_from_slice(value.as_bytes());
        entry
    }))?;
    let error = sys::execveat_fd(view.as_raw_fd(), &argv, &envp);
    Err(Error::system(
        "exec berth from a read-only view of its binary",
        error,
    ))
}

fn c_strings(items: impl Iterator<Item = Vec<u8>>) -> Result<Vec<CString>> {
    items
        .map(|item| {
            CString::new(item).map_err(|_| Error::Invalid("an argument holds a NUL byte".into()))
        })
        .collect()
}
