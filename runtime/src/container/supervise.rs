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
    // A workload that still runs after a second is a long-lived one: berth then lets go of
    // the memory its setup touched (see `trim_memory`). Short runs never pay for it.
    let mut trim_at = Some(std::time::Instant::now() + std::time::Duration::from_secs(1));
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for the kernel to overwrite.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // The time left until the trim: signals in between do not put it off.
        let trim_after = trim_at.map(|at| {
            let left = at.saturating_duration_since(std::time::Instant::now());
            libc::timespec {
                tv_sec: left.as_secs() as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            }
        });
        let timeout = trim_after
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const _);
        // SAFETY: `set` is a valid sigset_t, `info` a writable siginfo_t and `timeout` null
        // or a valid timespec for the call.
        let signo = unsafe { libc::sigtimedwait(signals.set.as_ref(), &mut info, timeout) };
        if signo < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                Errno::EAGAIN => {
                    trim_at = None;
                    trim_memory();
                    continue;
                }
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

/// Gives back what a waiting supervisor no longer needs: free heap to the system, and the
/// pages of the program's code and read-only data that setup touched (about 2 MiB of berth's
/// and libc's text, shared with every other berth, so this is mostly what VmRSS attributes to
/// the supervisor rather than memory the machine gets back). Only file-backed mappings that are
/// not writable and hold no private page at all (none resident, none swapped out, no huge
/// page) are dropped: their pages come back from the page cache, unchanged, when touched again.
/// What stays resident is the little that waiting and teardown use.
fn trim_memory() {
    // SAFETY: malloc_trim only returns free memory of the allocator to the system.
    unsafe { libc::malloc_trim(0) };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let droppable = clean_read_only_mappings(&smaps);
    drop(smaps);
    for (start, end) in droppable {
        // SAFETY: the range is a mapping of this process that is file-backed, not writable and
        // holds no private page (resident, swapped or huge), so dropping its pages loses
        // nothing: they are read back from the file on the next touch. berth is
        // single-threaded: nothing maps, writes or faults meanwhile.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// The address ranges of the mappings in `smaps` (the text of /proc/self/smaps) that are
/// file-backed, not writable, and hold no private page.
fn clean_read_only_mappings(smaps: &str) -> Vec<(usize, usize)> {
    // Fields that must all be 0 kB for a mapping to hold no page of its own: a page written
    // through a private mapping becomes anonymous (counted in Anonymous while resident, in
    // Swap once swapped out). Private_Dirty is no guide: it also counts the page cache's own
    // dirty pages of a file just written.
    const PRIVATE: [&str; 4] = ["Anonymous:", "Swap:", "Private_Hugetlb:", "Shared_Hugetlb:"];
    let mut found = Vec::new();
    // The mapping being read: its range, and how many of PRIVATE were seen at 0.
    let mut current: Option<((usize, usize), usize)> = None;
    let mut finish = |current: Option<((usize, usize), usize)>| {
        if let Some((range, clean)) = current {
            if clean == PRIVATE.len() {
                found.push(range);
            }
        }
    };
    for line in smaps.lines() {
        let mut fields = line.split_ascii_whitespace();
        let first = fields.next().unwrap_or_default();
        if let Some((start, end)) = first.split_once('-') {
            // A mapping's header: range, permissions, offset, device, inode, path.
            finish(current.take());
            let perms = fields.next().unwrap_or_default();
            let inode = fields.nth(2).unwrap_or("0");
            let range = usize::from_str_radix(start, 16)
                .ok()
                .zip(usize::from_str_radix(end, 16).ok());
            current = range
                .filter(|_| inode != "0" && !perms.contains('w'))
                .map(|range| (range, 0));
        } else if PRIVATE.contains(&first) && fields.next() == Some("0") {
            if let Some((_, clean)) = current.as_mut() {
                *clean += 1;
            }
        }
    }
    finish(current);
    found
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

#[cfg(test)]
mod trim_tests {
    use super::clean_read_only_mappings;

    #[test]
    fn only_clean_read_only_file_mappings_are_dropped() {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let found = clean_read_only_mappings(&smaps);
        // This test binary's own code is such a mapping; its stack and heap are not.
        let code = only_clean_read_only_file_mappings_are_dropped as *const () as usize;
        assert!(
            found
                .iter()
                .any(|&(start, end)| (start..end).contains(&code)),
            "{found:x?}"
        );
        let stack = &found as *const _ as usize;
        assert!(!found
            .iter()
            .any(|&(start, end)| (start..end).contains(&stack)));
        // A read-only mapping with one private page is kept.
        let text = "7f00-7f10 r--p 00000000 fe:00 12 /lib/x\nAnonymous:  4 kB\nPrivate_Dirty: 4 kB\nSwap: 0 kB\nPrivate_Hugetlb: 0 kB\nShared_Hugetlb: 0 kB\n\\
                    7f20-7f30 r--p 00000000 fe:00 12 /lib/x\nAnonymous:  0 kB\nPrivate_Dirty: 0 kB\nSwap: 8 kB\nPrivate_Hugetlb: 0 kB\nShared_Hugetlb: 0 kB\n\\
                    7f40-7f50 r-xp 00000000 fe:00 12 /lib/x\nAnonymous:  0 kB\nPrivate_Dirty: 0 kB\nSwap: 0 kB\nPrivate_Hugetlb: 0 kB\nShared_Hugetlb: 0 kB\n";
        assert_eq!(clean_read_only_mappings(text), [(0x7f40, 0x7f50)]);
    }
}
