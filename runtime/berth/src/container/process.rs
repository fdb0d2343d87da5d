//! The clone and the two pipes between berth and the child before its exec.
//!
//! `go`: berth → child, one byte once berth has wired the child's network (bridge only); EOF
//! without it tells the child to give up. `report`: child → berth, close-on-exec, so berth reads
//! EOF the moment the exec succeeds, or a report of what failed.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use nix::sys::wait::waitpid;
use nix::unistd::{pipe2, Pid};

use crate::error::{Error, Result};

/// What the child says went wrong before its exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Failure {
    /// Setting up the container failed; a message follows.
    Setup = b'S',
    /// The command was not found in PATH.
    NotFound = b'N',
    /// The command was found but could not be executed; the errno follows.
    NotExecutable = b'X',
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
    pub fn report(&mut self, failure: Failure, errno: i32, message: &str) {
        let mut record = Vec::with_capacity(5 + message.len());
        record.push(failure as u8);
        record.extend_from_slice(&errno.to_ne_bytes());
        record.extend_from_slice(message.as_bytes());
        if let Some(report) = self.report.as_mut() {
            let _ = report.write_all(&record);
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
        let Some((&kind, rest)) = record.split_first() else {
            return Ok(());
        };
        // The child exits right after reporting; reap it so it leaves no zombie.
        let _ = waitpid(self.pid, None);
        self.reaped = true;
        let errno = rest
            .get(..4)
            .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        let message = String::from_utf8_lossy(rest.get(4..).unwrap_or_default()).into_owned();
        Err(match kind {
            k if k == Failure::NotFound as u8 => Error::CommandNotFound(command.into()),
            k if k == Failure::NotExecutable as u8 => Error::NotExecutable {
                command: command.into(),
                source: std::io::Error::from_raw_os_error(errno),
            },
            _ => Error::Container(message),
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
/// must not return (if it does, the child exits 125). With `wait_for_go`, the child gets a pipe to wait on for berth's go-ahead.
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

    // SAFETY: a raw clone(2) without CLONE_VM behaves like fork(2): the child gets a copy of
    // the address space. berth is single-threaded here (no runtime, no helper threads), so
    // no lock can be held by a thread that does not exist in the child, and the child may
    // allocate. The extra arguments are null: no new stack, no tid pointers, no TLS.
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
    match pid {
        -1 => Err(Error::system(
            "clone into new namespaces",
            std::io::Error::last_os_error(),
        )),
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
