//! The clone and the two pipes between berth and the child before its exec.
//!
//! `go`: berth → child, one byte once berth has wired the child's network (bridge only); EOF
//! without it tells the child to give up. `report`: child → berth, close-on-exec, so berth reads
//! EOF the moment the exec succeeds, or one [`Report`] of what failed.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::wait::waitpid;
use nix::unistd::{pipe2, Pid};

use crate::error::{Error, Result};
use crate::sys;

/// Why the exec of a command failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecFailure {
    /// The command was not found (in PATH, or at the path given).
    NotFound,
    /// The command was found but could not be executed, with the kernel's reason.
    NotExecutable(Errno),
}

/// The child's one message to berth on the report pipe, sent only when something failed
/// before the exec (an exec that succeeds closes the pipe, and berth reads nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Setting up the container failed, for the reason given.
    SetupFailed(String),
    /// The workload's exec failed.
    Exec(ExecFailure),
}

impl Report {
    /// The message as bytes: a kind, then the errno (native order) or the reason.
    fn encode(&self) -> Vec<u8> {
        match self {
            Report::SetupFailed(reason) => [b"S", reason.as_bytes()].concat(),
            Report::Exec(ExecFailure::NotFound) => b"N".to_vec(),
            Report::Exec(ExecFailure::NotExecutable(errno)) => {
                [b"X".as_slice(), &(*errno as i32).to_ne_bytes()].concat()
            }
        }
    }

    /// The message in `bytes`; `None` when there are none (the exec succeeded). What does not
    /// parse is a setup failure with the bytes as its reason.
    fn decode(bytes: &[u8]) -> Option<Report> {
        let (&kind, rest) = bytes.split_first()?;
        Some(match (kind, rest) {
            (b'N', []) => Report::Exec(ExecFailure::NotFound),
            (b'X', &[a, b, c, d]) => Report::Exec(ExecFailure::NotExecutable(Errno::from_raw(
                i32::from_ne_bytes([a, b, c, d]),
            ))),
            (b'S', reason) => Report::SetupFailed(String::from_utf8_lossy(reason).into_owned()),
            _ => Report::SetupFailed(String::from_utf8_lossy(bytes).into_owned()),
        })
    }
}

impl ExecFailure {
    /// The mechanism's error for `command` (exit 127 or 126, as docker's).
    pub fn error(self, command: &str) -> Error {
        match self {
            ExecFailure::NotFound => Error::CommandNotFound(command.into()),
            ExecFailure::NotExecutable(errno) => Error::NotExecutable {
                command: command.into(),
                source: errno.into(),
            },
        }
    }
}

/// The child's ends of the pipes.
pub struct ChildEnds {
    go: Option<File>,
    report: Option<File>,
}

impl ChildEnds {
    /// Waits for berth's go-ahead; `false` when berth gave up instead.
    pub fn wait_for_go(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.go.take() {
            Some(mut go) => matches!(go.read(&mut byte), Ok(1)),
            None => true,
        }
    }

    /// Reports a failure to berth (best effort: berth also sees the child's exit status).
    pub fn report(&mut self, report: &Report) {
        if let Some(pipe) = self.report.as_mut() {
            let _ = pipe.write_all(&report.encode());
        }
    }

    /// Whether berth closed its end of the report pipe (it has ended).
    pub fn reader_gone(&self) -> bool {
        let Some(report) = &self.report else {
            return true;
        };
        let mut fds = [nix::poll::PollFd::new(
            report.as_fd(),
            nix::poll::PollFlags::POLLOUT,
        )];
        nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).is_ok()
            && fds[0]
                .revents()
                .is_some_and(|r| r.contains(nix::poll::PollFlags::POLLERR))
    }

    /// Closes both ends: a process that stays behind (the init) must not keep berth waiting
    /// for the exec's report.
    pub fn close(&mut self) {
        self.go = None;
        self.report = None;
    }
}

/// berth's side of a cloned child.
pub struct Child {
    /// The child's pid, in berth's pid namespace.
    pub pid: Pid,
    go: Option<File>,
    report: File,
    reaped: bool,
}

impl Child {
    /// Lets the child go on past its network setup.
    pub fn go(&mut self) -> Result<()> {
        if let Some(mut go) = self.go.take() {
            go.write_all(b"G")
                .map_err(|e| Error::system("signal the container to start", e))?;
        }
        Ok(())
    }

    /// Waits until the child has exec'd its workload, or reports why it could not.
    pub fn wait_for_exec(&mut self, command: &str) -> Result<()> {
        self.go = None;
        let mut record = Vec::new();
        self.report
            .read_to_end(&mut record)
            .map_err(|e| Error::system("read the container's start report", e))?;
        let Some(report) = Report::decode(&record) else {
            return Ok(());
        };
        // The child exits right after reporting; reap it so it leaves no zombie.
        let _ = waitpid(self.pid, None);
        self.reaped = true;
        Err(match report {
            Report::Exec(failure) => failure.error(command),
            Report::SetupFailed(reason) => Error::ChildSetup(reason),
        })
    }
}

impl Child {
    /// Kills the child and reaps it, unless it was reaped already (its pid may then belong to
    /// another process).
    pub fn kill_and_reap(self) {
        if !self.reaped {
            let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

/// Clones a child into new namespaces (`flags`: CLONE_NEW*) and runs `child` in it; `child`
/// must not return (if it does, the child exits 125). With `wait_for_go`, the child gets a pipe
/// to wait on for berth's go-ahead.
pub fn clone_into_namespaces(
    flags: libc::c_int,
    wait_for_go: bool,
    child: impl FnOnce(ChildEnds),
) -> Result<Child> {
    let (report_read, report_write) = pipe()?;
    let (go_read, go_write) = if wait_for_go {
        let (read, write) = pipe()?;
        (Some(read), Some(write))
    } else {
        (None, None)
    };

    sys::check_single_threaded().map_err(|e| Error::system("clone into new namespaces", e))?;
    // SAFETY: berth has one thread (checked just above), so the child may run any code: no
    // lock can be held by a thread it lacks.
    let pid = unsafe { sys::clone_process(flags) };
    match pid.map_err(|e| Error::system("clone into new namespaces", e))? {
        0 => {
            drop(report_read);
            drop(go_write);
            // A panic must not unwind into the copy of berth's stack (whose destructors would
            // release the parent's lease and files).
            let ends = ChildEnds {
                go: go_read,
                report: Some(report_write),
            };
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child(ends)));
            exit_now(125)
        }
        pid => Ok(Child {
            pid: Pid::from_raw(pid as libc::pid_t),
            go: go_write,
            report: report_read,
            reaped: false,
        }),
    }
}

fn pipe() -> Result<(File, File)> {
    let (read, write): (OwnedFd, OwnedFd) =
        pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::system("create a pipe", e))?;
    Ok((File::from(read), File::from(write)))
}

/// Ends the calling process at once, without running exit handlers: the right way out of a
/// forked child, whose buffers and handlers are copies of berth's.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) ends the process; it has no preconditions.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_travel_whole() {
        for report in [
            Report::SetupFailed("mount /x on /y: Permission denied".into()),
            Report::SetupFailed(String::new()),
            Report::Exec(ExecFailure::NotFound),
            Report::Exec(ExecFailure::NotExecutable(Errno::EACCES)),
        ] {
            assert_eq!(Report::decode(&report.encode()), Some(report));
        }
        assert_eq!(Report::decode(b""), None);
        // A kind berth does not know is said as it came.
        assert_eq!(
            Report::decode(b"Zzz"),
            Some(Report::SetupFailed("Zzz".into()))
        );
    }

    #[test]
    fn exec_failures_keep_docker_exit_codes() {
        assert_eq!(ExecFailure::NotFound.error("x").exit_code(), 127);
        let denied = ExecFailure::NotExecutable(Errno::EACCES).error("/etc/passwd");
        assert_eq!(denied.exit_code(), 126);
        assert_eq!(
            denied.to_string(),
            "/etc/passwd: cannot execute: Permission denied (os error 13)"
        );
    }
}
