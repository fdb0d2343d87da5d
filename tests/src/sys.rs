//! Thin wrappers over the system calls the harness needs: the pieces that run between fork and
//! exec (namespaces, parent-death signal, loopback up, credentials), a wait with a deadline, and
//! reading `/proc`.
//!
//! Everything called from a `pre_exec` closure here is a plain system call: no allocation, no
//! lock, as required in the child of a multi-threaded process.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Ask for SIGKILL when the thread that spawned us ends, and fail if it already has.
/// `parent` is the pid of the test process, taken before the fork.
pub fn die_with_parent(parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) })?;
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

pub fn setns(fd: RawFd, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: setns on a descriptor we own; failure is reported through errno.
    check(unsafe { libc::setns(fd, nstype) })
}

pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare with flags only.
    check(unsafe { libc::unshare(flags) })
}

/// mount(2) with optional C strings; `None` becomes NULL.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
) -> io::Result<()> {
    let p = |s: Option<&CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is NULL or a NUL-terminated string that outlives the call.
    check(unsafe { libc::mount(p(source), target.as_ptr(), p(fstype), flags, std::ptr::null()) })
}

/// Bring `lo` up in the calling process's network namespace (SIOCSIFFLAGS).
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket(2); the descriptor is closed below on every path.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: ioctl on our socket with a properly sized ifreq.
    let mut res = check(unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) });
    if res.is_ok() {
        // SAFETY: SIOCGIFFLAGS filled in the flags member of the union.
        unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        // SAFETY: as above.
        res = check(unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr) });
    }
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(fd) };
    res
}

/// Drop to an unprivileged user and group (all supplementary groups cleared).
pub fn become_user(uid: libc::uid_t, gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: credential system calls with plain integers.
    check(unsafe { libc::setgroups(0, std::ptr::null()) })?;
    // SAFETY: as above.
    check(unsafe { libc::setgid(gid) })?;
    // SAFETY: as above.
    check(unsafe { libc::setuid(uid) })
}

/// Capability numbers (linux/capability.h).
pub const CAP_NET_ADMIN: libc::c_int = 12;
pub const CAP_SYS_ADMIN: libc::c_int = 21;

/// Remove capabilities from the bounding set (and the ambient set), so that a root process
/// exec'd afterwards does not get them.
pub fn drop_bounding_caps(caps: &[libc::c_int]) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) })?;
    for &cap in caps {
        // SAFETY: as above.
        check(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) })?;
    }
    Ok(())
}

/// Send a signal to one process, by pid.
pub fn kill(pid: u32, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) on an explicit positive pid; never 0 or -1.
    check(unsafe { libc::kill(pid as libc::pid_t, sig) })
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) with a pid and no flags.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just handed us this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Wait for a child with a deadline; `None` if it is still running afterwards.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    if let Some(status) = child.try_wait()? {
        return Ok(Some(status));
    }
    let deadline = Instant::now() + timeout;
    let pidfd = pidfd_open(child.id()).ok();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        match &pidfd {
            Some(fd) => {
                let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                let ms = left.as_millis().clamp(1, 1000) as libc::c_int;
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, ms) };
            }
            None => std::thread::sleep(left.min(Duration::from_millis(2))),
        }
    }
}

/// Field 22 of /proc/PID/stat: the start time in clock ticks since boot.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Fields after the command name start at field 3 (state).
    after_comm.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// The process state letter from /proc/PID/stat (R, S, Z, ...), `None` if gone.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// True while the process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}

pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("read /proc/sys/kernel/random/boot_id")
        .trim()
        .to_string()
}

/// Pids of live processes whose argv is exactly `argv`.
pub fn pids_with_argv(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline")).ok()
            == Some(want.clone())
            && alive(pid)
        {
            out.push(pid);
        }
    }
    out
}

/// Pids of live processes (other than this one) that have a file descriptor or their working
/// directory under `dir`: the world's stray processes, recognised by the files it gave them.
pub fn pids_using(dir: &Path) -> Vec<u32> {
    let me = std::process::id();
    // A child another test thread has forked but not yet exec'd is still this test binary, and
    // holds copies of every descriptor: never one of ours to end.
    let this_binary = std::fs::read_link("/proc/self/exe").ok();
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me || !alive(pid) {
            continue;
        }
        if this_binary.is_some()
            && std::fs::read_link(format!("/proc/{pid}/exe")).ok() == this_binary
        {
            continue;
        }
        let base = entry.path();
        let uses = |p: &Path| std::fs::read_link(p).is_ok_and(|t| t.starts_with(dir));
        let by_fd = std::fs::read_dir(base.join("fd"))
            .map(|fds| fds.flatten().any(|fd| uses(&fd.path())))
            .unwrap_or(false);
        if by_fd || uses(&base.join("cwd")) {
            out.push(pid);
        }
    }
    out
}
