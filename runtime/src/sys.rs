//! The raw system calls that neither std nor nix wraps, each with its kernel ABI, in one place.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// openat2(2)'s `resolve` flags (linux/openat2.h).
pub mod resolve {
    /// No magic links (/proc/PID/root, /proc/PID/fd/N, ...).
    pub const NO_MAGICLINKS: u64 = 0x02;
    /// The starting directory is `/` for the lookup: `..` and absolute links stay in it.
    pub const IN_ROOT: u64 = 0x10;
}

/// struct open_how (linux/openat2.h).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// openat2(2): opens `path` relative to `dir` with open(2) `flags` (O_CLOEXEC is added) and
/// the `resolve` restrictions.
pub fn openat2(dir: BorrowedFd<'_>, path: &CStr, flags: i32, resolve: u64) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: openat2(2) reads the NUL-terminated path and `size` bytes of `how`, both valid
    // for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Marks every descriptor from `first` on close-on-exec (close_range(2) with
/// CLOSE_RANGE_CLOEXEC): they stay usable here and vanish at the next exec.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors.
    let done = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if done < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Closes every descriptor from `first` on but those in `keep`.
pub fn close_all_from(first: u32, keep: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut kept: Vec<u32> = keep.iter().map(|fd| fd.as_raw_fd() as u32).collect();
    kept.sort_unstable();
    let mut from = first;
    for fd in kept.into_iter().filter(|&fd| fd >= first) {
        if fd > from {
            close_range(from, fd - 1)?;
        }
        from = fd + 1;
    }
    close_range(from, libc::c_uint::MAX)
}

fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: close_range(2) closes descriptors only; the callers own every one in the range
    // (nothing else in the process holds them: berth is single-threaded where this is used).
    let done = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if done < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
