//! `run -d`: once the spec is checked, berth splits in two. The caller waits on a pipe for the
//! supervisor's word, prints the container's id (or the error) and returns; the supervisor, in
//! a session of its own, runs the container with its output going to the container's log.

use std::fs::File;
use std::io::{Read, Write};

use nix::unistd::{fork, pipe, setsid, ForkResult};

use crate::error::{Error, Result};
use berth_container::sys;
use std::os::fd::AsFd;

/// Which side of the split this process is on.
pub enum Side {
    /// The caller, done: its exit code.
    Caller(u8),
    /// The supervisor, which tells the caller how the start went.
    Supervisor(Notifier),
}

/// The supervisor's end of the pipe to the caller.
pub struct Notifier {
    pipe: Option<File>,
}

impl Notifier {
    /// Tells the caller the workload runs.
    pub fn started(&mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.write_all(b"ok");
        }
    }

    /// Tells the caller why the container did not start.
    pub fn failed(&mut self, error: &Error) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = write!(pipe, "{}{error}", error.exit_code() as u8 as char);
        }
    }
}

/// Splits berth into the caller and the supervisor of container `id`.
pub fn split(id: &str) -> Result<Side> {
    let (read, write) = pipe().map_err(|e| Error::system("create a pipe", e))?;
    berth_container::sys::check_single_threaded()
        .map_err(|e| Error::system("fork the supervisor", e))?;
    // SAFETY: berth has one thread (checked just above), so the child may go on as a full
    // process.
    match unsafe { fork() }.map_err(|e| Error::system("fork the supervisor", e))? {
        ForkResult::Parent { .. } => {
            drop(write);
            let mut word = Vec::new();
            let _ = File::from(read).read_to_end(&mut word);
            Ok(Side::Caller(match word.split_first() {
                Some((b'o', _)) => {
                    println!("{id}");
                    0
                }
                Some((&code, message)) => {
                    eprintln!("berth: {}", String::from_utf8_lossy(message));
                    code
                }
                None => {
                    eprintln!("berth: the supervisor of {id} ended before the container started");
                    125
                }
            }))
        }
        ForkResult::Child => {
            drop(read);
            // Off the caller's terminal and process group: the caller's Ctrl-C is not ours.
            setsid().map_err(|e| Error::system("start a session", e))?;
            // Nothing of the caller's stays open for the container's lifetime (its locks,
            // pipes, directories): only the pipe back to it.
            // SAFETY: a freshly forked child of a process with one thread, which owns no
            // descriptor beyond stdio and this pipe here: the split comes before a run opens
            // anything, and `read` was dropped above.
            unsafe { sys::close_all_from(3, &[write.as_fd()]) }
                .map_err(|e| Error::system("close the caller's descriptors", e))?;
            let null = File::open("/dev/null").map_err(|e| Error::file("/dev/null", e))?;
            // Until the container's log exists, the caller reports what goes wrong (through
            // the pipe): the supervisor's own output would say it twice.
            for fd in 0..=2 {
                sys::redirect(null.as_fd(), fd).map_err(|e| Error::system("redirect output", e))?;
            }
            Ok(Side::Supervisor(Notifier {
                pipe: Some(File::from(write)),
            }))
        }
    }
}
