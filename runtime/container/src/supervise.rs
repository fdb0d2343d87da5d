//! Supervision: berth waits for its workload, forwarding signals, then kills what the
//! workload left behind.

use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::AsFd;

use crate::error::{Error, Result};
use crate::log;
use crate::namespaces::namespace_inode;

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

/// A terminal's job control, which berth carries out for its workload (in a session of its
/// own, the workload is out of the terminal's reach): Ctrl-Z stops both, `fg` or `bg`
/// continues both.
const JOB_CONTROL: [Signal; 2] = [Signal::SIGTSTP, Signal::SIGCONT];

/// The forwarded signals, job control and SIGCHLD, blocked so that berth takes them from a
/// signalfd; blocked before the clone, so that none is lost while the workload starts.
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
        for signal in FORWARDED
            .into_iter()
            .chain(JOB_CONTROL)
            .chain([Signal::SIGCHLD])
        {
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

    /// A descriptor to take the blocked signals from (close-on-exec). Made before the
    /// workload starts, so that the descriptors berth holds while it runs stay the same.
    pub fn listen(&self) -> Result<SignalFd> {
        SignalFd::with_flags(&self.set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| Error::system("wait for signals", e))
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

/// Forwards signals to `workload` until it ends, and moves its output into its log (`log`, a
/// detached container's) meanwhile; returns its exit code, or 128+N when signal N killed it
/// (docker's convention).
pub fn supervise(
    workload: Pid,
    signal_fd: &SignalFd,
    mut log: Option<&mut log::Relay>,
) -> Result<i32> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    // A workload that still runs after a second is a long-lived one: berth then lets go of
    // the memory its setup touched (see `trim_memory`). Short runs never pay for it.
    let mut trim_at = Some(std::time::Instant::now() + std::time::Duration::from_secs(1));
    loop {
        // The time left until the trim: signals in between do not put it off.
        let timeout = match trim_at {
            Some(at) => {
                let left = at.saturating_duration_since(std::time::Instant::now());
                PollTimeout::from(left.as_millis().min(1000) as u16)
            }
            None => PollTimeout::NONE,
        };
        let (ready, pipes_ready) = {
            let mut fds = vec![PollFd::new(signal_fd.as_fd(), PollFlags::POLLIN)];
            let mut indexes = Vec::new();
            if let Some(relay) = log.as_deref() {
                for (index, fd) in relay.open_pipes() {
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                    indexes.push(index);
                }
            }
            match poll(&mut fds, timeout) {
                Ok(0) => (0, Vec::new()),
                Ok(n) => {
                    let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
                    let pipes: Vec<usize> = fds[1..]
                        .iter()
                        .zip(&indexes)
                        .filter(|(fd, _)| ready(fd))
                        .map(|(_, &index)| index)
                        .collect();
                    (n, pipes)
                }
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(Error::system("wait for signals", errno)),
            }
        };
        if ready == 0 {
            if trim_at.take().is_some() {
                trim_memory();
            }
            continue;
        }
        if let Some(relay) = log.as_deref_mut() {
            for index in pipes_ready {
                relay.pump(index);
            }
        }
        while let Ok(Some(info)) = signal_fd.read_signal() {
            let signo = info.ssi_signo as i32;
            // What a terminal sends (Ctrl-C, Ctrl-Z, a hangup, a resize) goes to the whole
            // foreground process group: berth passes it on to the workload's group (it leads
            // one, in its own session), as if the workload were still in the terminal's
            // foreground; what a process sends berth goes to the workload alone. Job control
            // stops and continues the group, whoever asks.
            let group =
                info.ssi_code == libc::SI_KERNEL || JOB_CONTROL.iter().any(|s| *s as i32 == signo);
            let target = if group {
                Pid::from_raw(-workload.as_raw())
            } else {
                workload
            };
            if signo == libc::SIGCHLD {
                if let Some(code) = reap(workload)? {
                    return Ok(code);
                }
            } else if signo == libc::SIGTSTP {
                let _ = kill(target, Signal::SIGSTOP);
                let _ = nix::sys::signal::raise(Signal::SIGSTOP);
            } else if let Ok(signal) = Signal::try_from(signo) {
                let _ = kill(target, signal);
            }
        }
    }
}

/// Gives back what a waiting supervisor no longer needs: free heap, and the pages of code and
/// read-only data that setup touched (how much, and whose: ARCHITECTURE.md, "Where the time
/// goes"). Only file-backed, non-writable mappings that hold no private page are dropped.
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
        // nothing: they are read back from the file on the next touch, by this thread or a
        // relay thread (a terminal's, or the input's) that touches them meanwhile; the range
        // was read from /proc/self/smaps just now, and berth maps nothing new while it waits.
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

/// Every process of container `id`: those in its mount namespace (inode `mount_namespace`)
/// or its network namespace (`network_namespace`, when it has one of its own). The kernel
/// reuses a namespace's inode number once it is gone, so a process counts only if its mount
/// table also holds the container's own binds (their source paths name the container's id).
pub fn processes_of_container(
    mount_namespace: u64,
    network_namespace: Option<u64>,
    id: &str,
) -> Vec<i32> {
    let marker = format!("/containers/{id}/");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    let in_namespace = |pid: i32, kind: &str, inode: u64| namespace_inode(pid, kind) == Some(inode);
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            in_namespace(pid, "mnt", mount_namespace)
                || network_namespace.is_some_and(|inode| in_namespace(pid, "net", inode))
        })
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
                .is_ok_and(|mounts| mounts.contains(&marker))
        })
        .collect()
}

/// Kills every process of container `id` (see [`processes_of_container`]), however it was
/// started (`berth exec`), until none is left (`true`), or for about a second (`false`: some
/// resisted, in an uninterruptible sleep, say): nothing may go on using the container's
/// address once its lease is released.
pub fn kill_container_processes(
    mount_namespace: u64,
    network_namespace: Option<u64>,
    id: &str,
) -> bool {
    for _ in 0..1000 {
        let pids = processes_of_container(mount_namespace, network_namespace, id);
        if pids.is_empty() {
            return true;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        // Killed processes leave their namespaces as they exit.
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    false
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
