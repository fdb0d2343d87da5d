//! `berth stop`, `berth kill` and `berth rm`.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::engine::state::{release_name, ContainerDir, State, Status};
use crate::error::{Error, Result};

/// Runs `berth stop [-t SECONDS] NAME...`: SIGTERM, then SIGKILL after the grace period.
pub fn stop(root: &Path, names: &[String], grace: u64) -> Result<u8> {
    for name in names {
        let (dir, state) = running(root, name)?;
        signal_workload(&state, Signal::SIGTERM)?;
        if !wait_until_ended(&dir, Duration::from_secs(grace)) {
            signal_workload(&state, Signal::SIGKILL)?;
            if !wait_until_ended(&dir, Duration::from_secs(10)) {
                return Err(Error::Failed(format!(
                    "{name} did not end 10 s after SIGKILL"
                )));
            }
        }
        println!("{name}");
    }
    Ok(0)
}

/// Runs `berth kill [-s SIGNAL] NAME...`.
pub fn kill_containers(root: &Path, names: &[String], signal: &str) -> Result<u8> {
    let signal = parse_signal(signal)?;
    for name in names {
        let (_, state) = running(root, name)?;
        signal_workload(&state, signal)?;
        println!("{name}");
    }
    Ok(0)
}

/// Runs `berth rm NAME...`: removes the records of ended detached containers.
pub fn rm(root: &Path, names: &[String]) -> Result<u8> {
    for name in names {
        let (dir, state) = ContainerDir::find(root, name)?;
        match state.status() {
            Status::Exited(_) => {
                dir.remove()?;
                release_name(root, &state.name, &state.id);
            }
            Status::Running => {
                return Err(Error::Invalid(format!(
                    "{name} is running: stop it first (berth stop {name})"
                )))
            }
            Status::Dead => {
                return Err(Error::Invalid(format!(
                    "{name}'s launcher died: berth gc removes what it left"
                )))
            }
        }
        println!("{name}");
    }
    Ok(0)
}

fn running(root: &Path, name: &str) -> Result<(ContainerDir, State)> {
    let (dir, state) = ContainerDir::find(root, name)?;
    match state.status() {
        Status::Running => Ok((dir, state)),
        status => Err(Error::Invalid(format!("{name} is not running ({status})"))),
    }
}

/// Sends `signal` to the container's workload, if its pid still is the workload (else it
/// ended already and its launcher is finishing the teardown).
fn signal_workload(state: &State, signal: Signal) -> Result<()> {
    if state.pid.is_none() {
        return Err(Error::Invalid(format!(
            "{} has not started yet",
            state.name
        )));
    }
    match state.live_workload() {
        Some(pid) => kill(Pid::from_raw(pid), signal)
            .map_err(|e| Error::system(format!("send {signal} to {}", state.name), e)),
        None => Ok(()),
    }
}

fn wait_until_ended(dir: &ContainerDir, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        // A foreground container's directory goes; a detached one's record says it exited.
        let ended = dir
            .read_state()
            .map_or(true, |s| s.status() != Status::Running);
        if ended {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A signal by name (`TERM`, `SIGTERM`, `term`) or number.
fn parse_signal(text: &str) -> Result<Signal> {
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number)
            .map_err(|_| Error::Invalid(format!("no such signal: {text}")));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse()
        .map_err(|_| Error::Invalid(format!("no such signal: {text}")))
}
