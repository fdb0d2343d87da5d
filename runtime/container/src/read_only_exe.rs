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
//! at the exec), so every open for writing fails with EROFS, from any namespace. (Being
//! non-dumpable is no defence on its own: a process of the container can open
//! `/proc/PID/exe` in the moment between the exec and berth's first step.)
//!
//! The exec costs about a millisecond, so only the commands that need it pay: `run` with a
//! root filesystem of its own, and `exec` into a container that has one. A container in the
//! host's root shares the host's files anyway (it could write the binary by its path), so
//! there is nothing to hide from it.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;

use nix::mount::MsFlags;

use crate::error::{Error, Result};
use crate::sys;

/// Returns at once if berth already runs from a detached view of its binary; otherwise execs
/// berth again,
/// with the same arguments and environment, from a read-only view of its binary, and so
/// returns only on failure. Call it before anything is made or any thread starts.
pub fn ensure() -> Result<()> {
    let exe =
        std::fs::File::open("/proc/self/exe").map_err(|e| Error::file("/proc/self/exe", e))?;
    if runs_from_a_detached_view(&exe)? {
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

/// Whether `exe` (berth's binary) lies on a mount that is attached nowhere in berth's mount
/// namespace: the view this module made, dissolved once the exec closed its descriptor. A
/// binary on a read-only mount gets a view too: whoever can remount that mount read-write
/// (an update of the system's image, say) would make it writable again through a descriptor
/// a container opened meanwhile.
fn runs_from_a_detached_view(exe: &std::fs::File) -> Result<bool> {
    let fdinfo = format!("/proc/self/fdinfo/{}", exe.as_raw_fd());
    let info = std::fs::read_to_string(&fdinfo).map_err(|e| Error::file(&fdinfo, e))?;
    let mount_id = info
        .lines()
        .find_map(|line| line.strip_prefix("mnt_id:"))
        .map(str::trim)
        .ok_or_else(|| Error::Invalid(format!("{fdinfo} names no mount")))?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::file("/proc/self/mountinfo", e))?;
    Ok(!mounts
        .lines()
        .any(|line| line.split(' ').next() == Some(mount_id)))
}

fn c_strings(items: impl Iterator<Item = Vec<u8>>) -> Result<Vec<CString>> {
    items
        .map(|item| {
            CString::new(item).map_err(|_| Error::Invalid("an argument holds a NUL byte".into()))
        })
        .collect()
}
