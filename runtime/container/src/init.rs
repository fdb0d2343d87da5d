//! `--init`: PID 1 of a private PID namespace. The kernel drops signals to PID 1 that it has
//! no handler for, and orphans of the namespace are reparented to it; so a workload run as
//! PID 1 ignores `berth stop` and leaves zombies. The init forks the workload, forwards every
//! signal it gets to it, reaps whatever ends, and exits with the workload's status when it
//! ends (the kernel then kills what is left in the namespace).

use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::process::{exit_now, ChildEnds};

/// Forks: returns in the child, which goes on to exec the workload; the parent stays the
/// namespace's init and never returns. Every signal must be blocked on entry (the child
/// restores its mask before the exec).
pub fn fork_workload(ends: &mut ChildEnds) {
    // SAFETY: the process is the child of a clone, which has one thread and starts none, so
    // fork(2) leaves no lock held by a vanished thread.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {}
        Ok(ForkResult::Parent { child }) => {
            // The init keeps no descriptor beyond stdio: not the report pipe (berth waits for
            // its end at the exec), nor any pipe a caller waits on.
            ends.close();
            // SAFETY: the init is the clone's child, with one thread, and never returns
            // (`serve` ends with an exit): no owner of a closed descriptor is dropped.
            let _ = unsafe { crate::sys::close_all_from(3, &[]) };
            serve(child)
        }
        Err(_) => exit_now(125),
    }
}

fn serve(workload: Pid) -> ! {
    // Its name in the container's `ps` (the command line stays berth's).
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"berth-init".as_ptr(), 0, 0, 0) };
    let all = SigSet::all();
    loop {
        let signal = match all.wait() {
            Ok(signal) => signal,
            Err(_) => continue,
        };
        if signal != Signal::SIGCHLD {
            // The workload may have ended; then there is no one to forward to.
            let _ = kill(workload, signal);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == workload => exit_now(code),
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == workload => {
                    exit_now(128 + signal as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(_) | Err(_) => {}
            }
        }
    }
}
