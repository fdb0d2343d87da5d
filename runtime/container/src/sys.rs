//! The raw system calls that neither std nor nix wraps, each with its kernel ABI, in one place,
//! and the one check that the SAFETY argument of every fork rests on (one thread).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::mount::MsFlags;

/// MS_NOSYMFOLLOW (linux/mount.h), which nix does not name.
pub const NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

/// openat2(2)'s `resolve` flags (linux/openat2.h).
pub mod resolve {
    /// No crossing into another mount (bind mounts of the same filesystem included).
    pub const NO_XDEV: u64 = 0x01;
    /// No magic links (/proc/PID/root, /proc/PID/fd/N, ...).
    pub const NO_MAGICLINKS: u64 = 0x02;
    /// No symbolic links at all (magic ones included), the last component too.
    pub const NO_SYMLINKS: u64 = 0x04;
    /// The lookup may not leave the starting directory (`..`, absolute links: EXDEV).
    pub const BENEATH: u64 = 0x08;
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
    new_fd(fd)
}

/// Opens `path` inside this process's root, as a process of it would see it: links followed
/// inside the root, magic ones (/proc/PID/root, /proc/PID/fd/N) never (`flags` as open(2)'s).
pub fn open_in_root(path: &CStr, flags: i32) -> io::Result<OwnedFd> {
    let root = std::fs::File::open("/")?;
    openat2(
        root.as_fd(),
        path,
        flags,
        resolve::IN_ROOT | resolve::NO_MAGICLINKS,
    )
}

/// A descriptor returned by a raw system call, or its error.
fn new_fd(returned: libc::c_long) -> io::Result<OwnedFd> {
    if returned < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(returned as i32) })
}

/// A raw system call's result, without a value.
fn done(returned: libc::c_long) -> io::Result<()> {
    if returned < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The new mount API's flags and mount attributes (linux/mount.h).
mod mount_api {
    pub const OPEN_TREE_CLONE: libc::c_uint = 1;
    pub const AT_RECURSIVE: libc::c_uint = 0x8000;
    pub const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
    pub const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    pub const FSOPEN_CLOEXEC: libc::c_uint = 1;
    pub const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    pub const FSCONFIG_SET_FLAG: libc::c_uint = 0;
    pub const FSCONFIG_SET_STRING: libc::c_uint = 1;
    pub const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    pub const MOUNT_ATTR_RDONLY: u64 = 0x01;
    pub const MOUNT_ATTR_NOSUID: u64 = 0x02;
    pub const MOUNT_ATTR_NODEV: u64 = 0x04;
    pub const MOUNT_ATTR_NOEXEC: u64 = 0x08;
    pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
    pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
    /// The access-time setting, one of three (relatime is 0).
    pub const MOUNT_ATTR_ATIME: u64 = 0x70;
    pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
    pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;
}
use mount_api::*;

/// struct mount_attr (linux/mount.h): what mount_setattr(2) sets and clears.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

impl MountAttr {
    /// The mount attributes of `flags`: read-only, nosuid, nodev, noexec, nosymfollow,
    /// nodiratime and the access-time setting (noatime, strictatime; else left as it is).
    pub fn from_flags(flags: MsFlags) -> Self {
        let mut attr = MountAttr::default();
        for (flag, attribute) in [
            (MsFlags::MS_RDONLY, MOUNT_ATTR_RDONLY),
            (MsFlags::MS_NOSUID, MOUNT_ATTR_NOSUID),
            (MsFlags::MS_NODEV, MOUNT_ATTR_NODEV),
            (MsFlags::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
            (MsFlags::MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
            (NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW),
        ] {
            if flags.contains(flag) {
                attr.attr_set |= attribute;
            }
        }
        if flags.contains(MsFlags::MS_NOATIME) {
            attr.attr_set |= MOUNT_ATTR_NOATIME;
            attr.attr_clr |= MOUNT_ATTR_ATIME;
        } else if flags.contains(MsFlags::MS_STRICTATIME) {
            attr.attr_set |= MOUNT_ATTR_STRICTATIME;
            attr.attr_clr |= MOUNT_ATTR_ATIME;
        }
        attr
    }

    /// A propagation change (MS_PRIVATE, MS_SLAVE, MS_SHARED or MS_UNBINDABLE) alone.
    pub fn propagation(propagation: MsFlags) -> Self {
        MountAttr {
            propagation: (propagation & !MsFlags::MS_REC).bits(),
            ..MountAttr::default()
        }
    }

    /// The attributes as fsmount(2) takes them (set only, atime included).
    fn fsmount_flags(&self) -> libc::c_uint {
        self.attr_set as libc::c_uint
    }
}

/// open_tree(2) with OPEN_TREE_CLONE: a detached copy of the mount at `path` (relative to
/// `dir`, the working directory if `None`; the descriptor itself if `path` is empty), with
/// the mounts below it if `recursive`.
pub fn clone_tree(
    dir: Option<BorrowedFd<'_>>,
    path: &CStr,
    recursive: bool,
) -> io::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    if path.is_empty() {
        flags |= libc::AT_EMPTY_PATH as libc::c_uint;
    }
    let dir = dir.map_or(libc::AT_FDCWD, |fd| fd.as_raw_fd());
    // SAFETY: open_tree(2) reads the NUL-terminated path and returns a new descriptor or -1.
    new_fd(unsafe { libc::syscall(libc::SYS_open_tree, dir, path.as_ptr(), flags) })
}

/// move_mount(2) from descriptor to descriptor: attaches the mount `from` (detached, or
/// attached elsewhere) on the file or directory `to`.
pub fn move_mount(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: move_mount(2) reads the two empty NUL-terminated paths and touches no other
    // memory.
    done(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
}

/// mount_setattr(2) on the mount of `mount` (and every mount below it if `recursive`).
pub fn mount_setattr(mount: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: mount_setattr(2) reads the empty NUL-terminated path and `size` bytes of
    // `attr`, both valid for the call.
    done(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
}

/// fsopen(2): a new filesystem context of type `kind`, to configure and create.
pub fn fsopen(kind: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: fsopen(2) reads the NUL-terminated name and returns a new descriptor or -1.
    new_fd(unsafe { libc::syscall(libc::SYS_fsopen, kind.as_ptr(), FSOPEN_CLOEXEC) })
}

/// fsconfig(2): sets `key` to `value` in the context `fs`, or the flag `key` if `value` is
/// `None`.
pub fn fsconfig_set(fs: BorrowedFd<'_>, key: &CStr, value: Option<&CStr>) -> io::Result<()> {
    let (command, value) = match value {
        Some(value) => (FSCONFIG_SET_STRING, value.as_ptr()),
        None => (FSCONFIG_SET_FLAG, std::ptr::null()),
    };
    // SAFETY: fsconfig(2) reads the NUL-terminated key and value (or no value: NULL, for a
    // flag) and touches no other memory.
    done(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            command,
            key.as_ptr(),
            value,
            0,
        )
    })
}

/// fsconfig(2) FSCONFIG_CMD_CREATE: makes the filesystem of the configured context `fs`.
pub fn fsconfig_create(fs: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: with FSCONFIG_CMD_CREATE, fsconfig(2) takes no key or value (NULL).
    done(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })
}

/// fsmount(2): a detached mount of the filesystem created in `fs`, with `attr`.
pub fn fsmount(fs: BorrowedFd<'_>, attr: &MountAttr) -> io::Result<OwnedFd> {
    // SAFETY: fsmount(2) takes integers only and returns a new descriptor or -1.
    new_fd(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attr.fsmount_flags(),
        )
    })
}

/// The messages the kernel logged in the filesystem context `fs` (why a parameter or the
/// creation failed), joined; empty if none.
pub fn fs_messages(fs: BorrowedFd<'_>) -> String {
    let mut messages = Vec::new();
    let mut buffer = [0u8; 512];
    loop {
        // SAFETY: read(2) writes at most `buffer.len()` bytes into the buffer.
        let n = unsafe { libc::read(fs.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
        if n <= 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buffer[..n as usize]);
        // Each message starts with its kind: "e " error, "w " warning, "i " information.
        messages.push(line.get(2..).unwrap_or_default().trim().to_owned());
    }
    messages.join("; ")
}

/// Marks every descriptor from `first` on close-on-exec (close_range(2) with
/// CLOSE_RANGE_CLOEXEC): they stay usable here and vanish at the next exec.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors.
    done(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    })
}

/// Closes every descriptor from `first` on but those in `keep`.
///
/// # Safety
///
/// No other thread may be using a descriptor it closes, and the caller must not use, or
/// drop, an owner (`File`, `OwnedFd`) of one afterwards: a number it closed may be reused.
/// Call it in a freshly forked child, or in a process that is about to exec.
pub unsafe fn close_all_from(first: u32, keep: &[BorrowedFd<'_>]) -> io::Result<()> {
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

/// Closes every descriptor but `keep`, allocating nothing: for a forked child, which may only
/// make async-signal-safe calls while a thread of berth's relays a terminal.
///
/// # Safety
///
/// As [`close_all_from`]: nothing may use or drop an owner of a closed descriptor afterwards.
pub unsafe fn close_all_but(keep: BorrowedFd<'_>) -> io::Result<()> {
    let fd = keep.as_raw_fd() as u32;
    if fd > 0 {
        close_range(0, fd - 1)?;
    }
    close_range(fd + 1, libc::c_uint::MAX)
}

fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: close_range(2) closes descriptors only; what the closed numbers owned is the
    // contract of its callers, `close_all_from` and `close_all_but`.
    done(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) })
}

/// The number of threads of this process (field 20 of /proc/self/stat).
pub fn thread_count() -> io::Result<usize> {
    berth_state::ProcStat::of("self")
        .and_then(|stat| stat.field(20)?.parse().ok())
        .ok_or_else(|| io::Error::other("/proc/self/stat has no thread count"))
}

/// Fails unless this process has one thread. A forked child of a single-threaded process may
/// run any code (no lock can be held by a thread it lacks); the SAFETY argument of each fork
/// that lets its child allocate rests on this check, made just before it (a few microseconds).
pub fn check_single_threaded() -> io::Result<()> {
    match thread_count()? {
        1 => Ok(()),
        n => Err(io::Error::other(format!(
            "berth runs {n} threads here, and forks only with one (a bug of berth's)"
        ))),
    }
}

/// clone(2) as fork(2), into the new namespaces that `flags` asks for (CLONE_NEW*), with
/// SIGCHLD to the parent when the child ends: the child's pid in the parent, 0 in the child.
///
/// # Safety
///
/// As fork(2): the child gets a copy of the address space and one thread. It may run any code
/// only if the caller has one thread (see [`check_single_threaded`]); else only
/// async-signal-safe calls until it execs or exits.
pub unsafe fn clone_process(flags: libc::c_int) -> io::Result<libc::pid_t> {
    // SAFETY: without CLONE_VM the kernel copies the address space, so no stack is handed in;
    // the other arguments (parent and child tid pointers, TLS) are null, as nothing asks for
    // them. What the child may do is the caller's contract, above.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid as libc::pid_t)
}

/// The window size of the terminal at `fd` (TIOCGWINSZ).
pub fn window_size(fd: BorrowedFd<'_>) -> io::Result<libc::winsize> {
    let mut size = std::mem::MaybeUninit::<libc::winsize>::zeroed();
    // SAFETY: TIOCGWINSZ writes one winsize into the pointed-to memory, which is large enough.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, size.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the ioctl succeeded, so the kernel filled it in.
    Ok(unsafe { size.assume_init() })
}

/// Makes the terminal at `fd` the controlling terminal of the calling session's leader
/// (TIOCSCTTY, without stealing it from another session).
pub fn take_controlling_terminal(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal) and touches no memory.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Execs the program open at `fd` (execveat(2) with AT_EMPTY_PATH); returns only its error.
pub fn execveat_fd(fd: i32, argv: &[std::ffi::CString], envp: &[std::ffi::CString]) -> io::Error {
    let pointers = |strings: &[std::ffi::CString]| -> Vec<*const libc::c_char> {
        strings
            .iter()
            .map(|s| s.as_ptr())
            .chain([std::ptr::null()])
            .collect()
    };
    let (argv, envp) = (pointers(argv), pointers(envp));
    // SAFETY: argv and envp are null-terminated arrays of NUL-terminated strings that outlive
    // the call; the path is the empty string, as AT_EMPTY_PATH asks.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

/// Makes descriptor `fd` (0, 1 or 2) a copy of `file` (dup2).
pub fn redirect(file: BorrowedFd<'_>, fd: i32) -> io::Result<()> {
    // SAFETY: dup2 on two descriptors this process owns; it touches no memory.
    if unsafe { libc::dup2(file.as_raw_fd(), fd) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Replaces this process's command line, which every user may read in /proc/PID/cmdline for
/// as long as the supervisor lives, with `title`: the caller's line holds its `-e` values.
///
/// # Safety
///
/// Nothing may read the process's arguments afterwards (`std::env::args` would see the
/// title), nor while it writes: call it with one thread, once the arguments are parsed.
pub unsafe fn hide_command_line(title: &str) {
    let Some(stat) = berth_state::ProcStat::of("self") else {
        return;
    };
    // Where the argument area starts and ends: arg_start and arg_end.
    let bound = |field: usize| stat.field(field).and_then(|f| f.parse::<usize>().ok());
    let (Some(start), Some(end)) = (bound(48), bound(49)) else {
        return;
    };
    let Some(length) = end.checked_sub(start).filter(|&n| n > 0) else {
        return;
    };
    let mut line = title.as_bytes().to_vec();
    line.truncate(length - 1);
    line.resize(length, 0);
    // SAFETY: [start, end) is this process's own argument area, on its initial stack, which
    // it may write; that nothing reads it meanwhile or again is the caller's contract.
    unsafe { std::ptr::copy_nonoverlapping(line.as_ptr(), start as *mut u8, length) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_thread_is_counted_and_refused() {
        let (started, release) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                started.wait();
                release.wait();
            });
            started.wait();
            // This test's thread and the one it started, at least (other tests' may run too).
            assert!(thread_count().unwrap() >= 2);
            let refused = check_single_threaded().unwrap_err().to_string();
            assert!(refused.starts_with("berth runs "), "{refused}");
            release.wait();
        });
    }
}
