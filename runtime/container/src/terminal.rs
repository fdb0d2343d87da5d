//! An OCI config's `process.terminal`: the workload gets a pseudo-terminal of its own as its
//! controlling terminal and stdio, and berth relays between it and its own stdin and stdout
//! (in raw mode when berth's stdin is a terminal, restored at the end).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::thread::JoinHandle;

use nix::pty::{openpty, Winsize};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

use crate::error::{Error, Result};
use crate::sys;

/// The pseudo-terminal of a container.
pub struct Terminal {
    /// berth's end.
    pub master: OwnedFd,
    /// The workload's end (becomes its stdin, stdout, stderr and controlling terminal).
    pub slave: OwnedFd,
}

impl Terminal {
    /// Opens a pseudo-terminal, as large as berth's own terminal, else `size` (rows, columns).
    pub fn open(size: Option<(u16, u16)>) -> Result<Self> {
        let size = sys::window_size(std::io::stdin().as_fd()).ok().or_else(|| {
            size.map(|(rows, cols)| Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            })
        });
        let pty =
            openpty(size.as_ref(), None).map_err(|e| Error::system("open a pseudo-terminal", e))?;
        Ok(Terminal {
            master: pty.master,
            slave: pty.slave,
        })
    }
}

/// In the child, which leads a session of its own: makes `slave` its controlling terminal,
/// and stdin, stdout and stderr.
pub fn take_as_controlling(slave: RawFd) -> std::result::Result<(), String> {
    // SAFETY: the plan's terminal stays open in the child until its exec.
    let slave_fd = unsafe { BorrowedFd::borrow_raw(slave) };
    sys::take_controlling_terminal(slave_fd).map_err(|e| format!("take the terminal: {e}"))?;
    for target in 0..=2 {
        // SAFETY: dup2(2) on descriptors the child owns.
        if unsafe { libc::dup2(slave, target) } < 0 {
            return Err(format!(
                "use the terminal as descriptor {target}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// The relay between berth's stdio and the terminal; drop it (after the workload ended) to
/// wait for the last output and restore berth's terminal.
pub struct Relay {
    output: Option<JoinHandle<()>>,
    saved: Option<Termios>,
}

impl Relay {
    /// Starts relaying: the terminal's output to berth's stdout, berth's stdin to the
    /// terminal.
    pub fn start(master: OwnedFd) -> Result<Self> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok();
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            cfmakeraw(&mut raw);
            let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        }
        let mut from = File::from(
            master
                .try_clone()
                .map_err(|e| Error::system("share the terminal", e))?,
        );
        let output = std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            let mut out = std::io::stdout().lock();
            // EIO: every process that had the terminal open has ended.
            while let Ok(n @ 1..) = from.read(&mut buffer) {
                if out
                    .write_all(&buffer[..n])
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    break;
                }
            }
        });
        forward_input(File::from(master));
        Ok(Relay {
            output: Some(output),
            saved,
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(output) = self.output.take() {
            let _ = output.join();
        }
        if let Some(saved) = &self.saved {
            let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

/// Copies berth's stdin to `to` on a thread of its own, until either ends. Not joined: it
/// ends with berth, blocked in a read of berth's stdin. From here on berth has more than one
/// thread: a later fork's child may only make async-signal-safe calls (a fork whose child does
/// more calls `sys::check_single_threaded` first, which then refuses).
fn forward_input(mut to: File) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        let mut input = std::io::stdin().lock();
        while let Ok(n @ 1..) = input.read(&mut buffer) {
            if to.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
    });
}

/// Whether berth's stdin is a terminal.
pub fn stdin_is_a_terminal() -> bool {
    nix::unistd::isatty(std::io::stdin()).unwrap_or(false)
}

/// A workload's stdin when berth's is a terminal and the workload gets no terminal of its own:
/// a pipe that berth fills from the terminal. The workload, in a session of its own, never
/// reads the terminal itself, so the terminal's job control holds for berth: a berth in the
/// background that reads it is stopped (SIGTTIN), and no keystroke meant for the shell goes
/// to a container.
pub struct InputPipe {
    /// The workload's end, to become its stdin.
    pub workload: OwnedFd,
    berth: OwnedFd,
}

impl InputPipe {
    /// A pipe, close-on-exec at both ends.
    pub fn new() -> Result<Self> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::system("create a pipe for the workload's input", e))?;
        Ok(InputPipe {
            workload: read,
            berth: write,
        })
    }

    /// Starts filling the pipe from berth's stdin (once the workload runs); the workload's end
    /// is closed here, so the workload sees the end of its input when berth's ends.
    pub fn start(self) {
        drop(self.workload);
        forward_input(File::from(self.berth));
    }
}
