//! Who owns a record: a process, named so that a reused pid is not mistaken for it (its start
//! time differs) and a record from an earlier boot is known as stale (the boot id differs).

use std::fs;
use std::sync::OnceLock;

use crate::{Error, Result};

/// A process as the owner of a record: pid, start time and boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessIdentity {
    /// The process id.
    pub pid: u32,
    /// Its start time in clock ticks after boot (field 22 of /proc/PID/stat).
    pub start: u64,
    /// The boot id of the machine it runs on.
    pub boot: String,
}

impl ProcessIdentity {
    /// The calling process.
    pub fn this_process() -> Result<Self> {
        let pid = std::process::id();
        let start = start_time(pid).ok_or_else(|| Error::Proc("/proc/self/stat".into()))?;
        Ok(ProcessIdentity {
            pid,
            start,
            boot: boot_id()?.into(),
        })
    }

    /// Whether the process still runs: same boot, same pid, same start time.
    pub fn is_alive(&self) -> bool {
        process_alive(self.pid, self.start, &self.boot)
    }
}

/// Whether process `pid`, started at `start` (clock ticks after boot) during boot `boot`, still
/// runs; a reused pid has another start time.
pub fn process_alive(pid: u32, start: u64, boot: &str) -> bool {
    boot_id().is_ok_and(|b| b == boot) && start_time(pid) == Some(start)
}

/// The start time of process `pid` in clock ticks after boot (field 22 of /proc/PID/stat),
/// or `None` when there is no such process, or it has ended and awaits its parent (a zombie).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = ProcStat::of(pid)?;
    if matches!(stat.field(3), Some("Z" | "X")) {
        return None;
    }
    stat.field(22)?.parse().ok()
}

/// /proc/PROCESS/stat, read once, its fields numbered as proc(5) numbers them.
#[derive(Debug, Clone)]
pub struct ProcStat {
    /// What follows the command name: field 3 on.
    after_name: String,
}

impl ProcStat {
    /// The stat of `process` (a pid, or `self`); `None` when there is no such process.
    pub fn of(process: impl std::fmt::Display) -> Option<Self> {
        // One read: the kernel writes the whole line at once, and it fits in a page (52
        // numbers and a 16-byte name). fs::read would first ask for the size (which procfs
        // gives as 0) and then read in steps: four system calls more, per process, for ps.
        let mut file = fs::File::open(format!("/proc/{process}/stat")).ok()?;
        let mut buffer = [0u8; 4096];
        let length = loop {
            match std::io::Read::read(&mut file, &mut buffer) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                read => break read.ok()?,
            }
        };
        let stat = &buffer[..length];
        // The command name (field 2) may hold spaces and parentheses: skip past its last ')'.
        let after_name = stat.iter().rposition(|&b| b == b')')? + 1;
        let after_name = String::from_utf8(stat[after_name..].to_vec()).ok()?;
        Some(ProcStat { after_name })
    }

    /// Field `number` (3 for the state, 22 for the start time, ...), if there is one.
    pub fn field(&self, number: usize) -> Option<&str> {
        self.after_name
            .split_whitespace()
            .nth(number.checked_sub(3)?)
    }
}

/// This boot's id (/proc/sys/kernel/random/boot_id).
pub fn boot_id() -> Result<&'static str> {
    const PATH: &str = "/proc/sys/kernel/random/boot_id";
    static BOOT_ID: OnceLock<String> = OnceLock::new();
    if let Some(id) = BOOT_ID.get() {
        return Ok(id);
    }
    let id = fs::read_to_string(PATH).map_err(|e| Error::file(PATH, e))?;
    Ok(BOOT_ID.get_or_init(|| id.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_changed_identity_is_not() {
        let me = ProcessIdentity::this_process().unwrap();
        assert!(me.is_alive());
        let restarted = ProcessIdentity {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(!restarted.is_alive());
        let other_boot = ProcessIdentity {
            boot: "00000000-0000-0000-0000-000000000000".into(),
            ..me
        };
        assert!(!other_boot.is_alive());
    }

    #[test]
    fn start_time_reads_past_a_command_name_with_parentheses() {
        // A name such as "a) b (c" must not shift the fields: our own stat parses to the same
        // value as reading field 22 by hand after the last ')'.
        let stat = fs::read_to_string("/proc/self/stat").unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let expected: u64 = after.split(' ').nth(19).unwrap().parse().unwrap();
        assert_eq!(start_time(std::process::id()), Some(expected));
        assert_eq!(start_time(u32::MAX), None);
        // Fields as proc(5) numbers them: 4 is the parent, 22 the start time.
        let stat = ProcStat::of("self").unwrap();
        assert_eq!(stat.field(22), Some(expected.to_string().as_str()));
        assert_eq!(
            stat.field(4),
            Some(std::os::unix::process::parent_id().to_string().as_str())
        );
        assert_eq!(stat.field(2), None);
    }
}
