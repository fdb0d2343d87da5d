//! Supervision: berth waits for its workload, forwarding signals, then kills what the
//! workload left behind.

use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// The signals berth passes on to its workload.
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// The forwarded signals and SIGCHLD, blocked so that berth takes them with sigwaitinfo(2);
/// blocked before the clone, so that none is lost while the workload starts.
pub struct BlockedSignals {
    set: SigSet,
    /// The mask berth had before; the child restores it before its exec.
    pub original: SigSet,
}

impl BlockedSignals {
    /// Blocks the forwarded signals and SIGCHLD, after restoring their default dispositions: an
    /// ignored signal is discarded even while blocked (a script's `berth run ... &` starts with
    /// SIGINT and SIGQUIT ignored), and an ignored SIGCHLD would reap the workload unseen. The
    /// workload inherits the defaults, as a container started by docker does.
    pub fn block() -> Result<Self> {
        let mut set = SigSet::empty();
        for signal in FORWARDED.into_iter().chain([Signal::SIGCHLD]) {
            // SAFETY: installing the default disposition installs no handler.
            unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl) }
                .map_err(|e| Error::system(format!("reset {signal}"), e))?;
            set.add(signal);
        }
        let mut original = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut original))
            .map_err(|e| Error::system("block signals", e))?;
        Ok(BlockedSignals { set, original })
    }
}

/// Makes berth the reaper of every orphan its workload leaves, so that none escapes teardown.
pub fn become_subreaper() -> Result<()> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes an integer flag and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(Error::system("become a child subreaper", Errno::last()));
    }
    Ok(())
}

/// Forwards signals to `workload` until it ends; returns its exit code, or 128+N when
/// signal N killed it (docker's convention).
pub fn supervise(workload: Pid, signals: &BlockedSignals) -> Result<i32> {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for the kernel to overwrite.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t and `info` a writable siginfo_t for the call.
        let signo = unsafe { libc::sigwaitinfo(signals.set.as_ref(), &mut info) };
        if signo < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                errno => return Err(Error::system("wait for signals", errno)),
            }
        }
        if signo == libc::SIGCHLD {
            if let Some(code) = reap(workload)? {
                return Ok(code);
            }
            continue;
        }
        // A signal the kernel sent to the whole foreground process group (Ctrl-C, a window
        // resize, a hangup) has reached the workload already if it is still in berth's group:
        // do not send it twice.
        if info.si_code == libc::SI_KERNEL
            && nix::unistd::getpgid(Some(workload)) == Ok(nix::unistd::getpgrp())
        {
            continue;
        }
        if let Ok(signal) = Signal::try_from(signo) {
            let _ = kill(workload, signal);
        }
    }
}

/// Reaps every child that has ended; returns the workload's code if it was among them.
fn reap(workload: Pid) -> Result<Option<i32>> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == workload => return Ok(Some(code)),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == workload => {
                return Ok(Some(128 + signal as i32))
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return Ok(None),
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(errno) => return Err(Error::system("wait for the workload", errno)),
        }
    }
}

/// Kills every process the workload left behind (orphans reparented to berth, their
/// children, ...) and reaps them, so nothing keeps the container's namespaces alive.
pub fn kill_leftovers() {
    let children = format!("/proc/self/task/{}/children", std::process::id());
    // Each round kills every current child; their own children are reparented to berth
    // before the reap returns, and are found by the next round.
    for _ in 0..10_000 {
        let Ok(list) = std::fs::read_to_string(&children) else {
            return;
        };
        let pids: Vec<Pid> = list
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .map(Pid::from_raw)
            .collect();
        if pids.is_empty() {
            return;
        }
        for &pid in &pids {
            let _ = kill(pid, Signal::SIGKILL);
        }
        for &pid in &pids {
            let _ = waitpid(pid, None);
        }
    }
}
