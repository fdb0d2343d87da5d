//! IP address management: a human-readable lease file per network, changed only under an
//! exclusive lock and replaced by an atomic rename, so a crash never leaves it torn.
//!
//! Each lease records its owner: the container id, the launcher's pid, that process's start
//! time (from procfs) and the boot id. A lease whose owner is gone is reclaimed by the next
//! allocation, so a launcher killed with SIGKILL never leaks an address for good.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ipnet::Ipv4Net;
use nix::fcntl::{Flock, FlockArg};

use crate::{Error, Result};

/// The process that holds a lease, identified so that a reused pid is not mistaken for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOwner {
    /// The container the address belongs to.
    pub container: String,
    /// The pid of the process that keeps the lease (berth's launcher).
    pub pid: u32,
    /// That process's start time in clock ticks after boot (field 22 of /proc/PID/stat).
    pub start: u64,
    /// The boot id of the machine when the lease was taken.
    pub boot: String,
}

impl LeaseOwner {
    /// The calling process as the owner of `container`'s lease.
    pub fn this_process(container: &str) -> Result<Self> {
        let pid = std::process::id();
        let start = start_time(pid).ok_or_else(|| Error::Proc("/proc/self/stat".into()))?;
        Ok(LeaseOwner {
            container: container.into(),
            pid,
            start,
            boot: boot_id()?.into(),
        })
    }

    /// Whether the owning process still runs: same boot, same pid, same start time.
    pub fn is_alive(&self) -> bool {
        process_alive(self.pid, self.start, &self.boot)
    }

    /// A cheap [`LeaseOwner::is_alive`] for the allocation path: one system call instead of
    /// reading /proc. A reused pid counts as alive, which only keeps a dead owner's lease until
    /// `berth gc` (which checks the start time) or a later allocation finds the pid free.
    pub fn may_be_alive(&self) -> bool {
        let Ok(pid) = i32::try_from(self.pid) else {
            return self.is_alive();
        };
        pid > 0
            && boot_id().is_ok_and(|b| b == self.boot)
            && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                != Err(nix::errno::Errno::ESRCH)
    }
}

/// Whether process `pid`, started at `start` (clock ticks after boot) during boot `boot`, still
/// runs; a reused pid has another start time.
pub fn process_alive(pid: u32, start: u64, boot: &str) -> bool {
    boot_id().is_ok_and(|b| b == boot) && start_time(pid) == Some(start)
}

/// The start time of process `pid` in clock ticks after boot (field 22 of /proc/PID/stat),
/// or `None` when there is no such process.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past its last ')'.
    let after_name = stat.iter().rposition(|&b| b == b')')? + 1;
    let fields = std::str::from_utf8(&stat[after_name..]).ok()?;
    // Field 3 is the first after the name, so field 22 is the 20th.
    fields.split_whitespace().nth(19)?.parse().ok()
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

/// The lease file of one network, with its lock beside it.
#[derive(Debug, Clone)]
pub struct LeaseFile {
    path: PathBuf,
    lock_path: PathBuf,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
}

impl LeaseFile {
    /// The lease file `leases` in `dir` for a network with `subnet` and `gateway`.
    pub fn new(dir: &Path, subnet: Ipv4Net, gateway: Ipv4Addr) -> Self {
        LeaseFile {
            path: dir.join("leases"),
            lock_path: dir.join("leases.lock"),
            subnet,
            gateway,
        }
    }

    /// The path of the lease file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that `addr` may be leased at all (see [`check_address`]).
    pub fn check_address(&self, addr: Ipv4Addr) -> Result<()> {
        check_address(self.subnet, self.gateway, addr)
    }

    /// Leases an address to `owner`: `requested` if given and free, else the lowest free one.
    /// Leases of dead owners are dropped on the way, unless `still_attached(container)` says
    /// the container still holds its address (processes of it outlived the owner).
    pub fn allocate(
        &self,
        owner: &LeaseOwner,
        requested: Option<Ipv4Addr>,
        mut still_attached: impl FnMut(&str) -> bool,
    ) -> Result<Ipv4Addr> {
        if let Some(addr) = requested {
            self.check_address(addr)?;
        }
        let _lock = self.lock()?;
        let mut leases = self.read()?;
        leases.retain(|_, holder| holder.may_be_alive() || still_attached(&holder.container));
        let addr = match requested {
            Some(addr) => match leases.get(&addr) {
                Some(holder) => {
                    return Err(Error::AddressInUse {
                        addr,
                        container: holder.container.clone(),
                    })
                }
                None => addr,
            },
            None => self.lowest_free(&leases)?,
        };
        leases.insert(addr, owner.clone());
        self.write(&leases)?;
        Ok(addr)
    }

    /// Releases every lease of `container`; returns the addresses released.
    pub fn release(&self, container: &str) -> Result<Vec<Ipv4Addr>> {
        let _lock = self.lock()?;
        let mut leases = self.read()?;
        let released: Vec<Ipv4Addr> = leases
            .iter()
            .filter(|(_, holder)| holder.container == container)
            .map(|(addr, _)| *addr)
            .collect();
        if !released.is_empty() {
            leases.retain(|_, holder| holder.container != container);
            self.write(&leases)?;
        }
        Ok(released)
    }

    /// Drops the leases whose owner is dead, unless `still_attached(container)`; returns them.
    pub fn reclaim(
        &self,
        mut still_attached: impl FnMut(&str) -> bool,
    ) -> Result<Vec<(Ipv4Addr, LeaseOwner)>> {
        let _lock = self.lock()?;
        let leases = self.read()?;
        let (kept, dropped): (BTreeMap<_, _>, BTreeMap<_, _>) = leases
            .into_iter()
            .partition(|(_, holder)| holder.is_alive() || still_attached(&holder.container));
        if !dropped.is_empty() {
            self.write(&kept)?;
        }
        Ok(dropped.into_iter().collect())
    }

    /// Rebuilds a lease file that does not parse: keeps every line that does parse and whose
    /// owner is alive, adds `live` (the running containers' own records), and keeps the broken
    /// file beside it as `leases.corrupt`. All under the lock, so no allocation runs meanwhile.
    /// Returns how many leases the new file holds.
    pub fn repair(&self, live: &BTreeMap<Ipv4Addr, LeaseOwner>) -> Result<usize> {
        let _lock = self.lock()?;
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::file(&self.path, e)),
        };
        let mut leases: BTreeMap<Ipv4Addr, LeaseOwner> = text
            .lines()
            .filter_map(|line| parse_lease(line.trim()).ok())
            .filter(|(addr, owner)| self.check_address(*addr).is_ok() && owner.is_alive())
            .collect();
        for (addr, owner) in live {
            leases.entry(*addr).or_insert_with(|| owner.clone());
        }
        let aside = self.path.with_file_name("leases.corrupt");
        if let Err(e) = fs::rename(&self.path, &aside) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(Error::file(&self.path, e));
            }
        }
        self.write(&leases)?;
        Ok(leases.len())
    }

    /// The current leases, as the file holds them (including dead owners').
    pub fn leases(&self) -> Result<BTreeMap<Ipv4Addr, LeaseOwner>> {
        let _lock = self.lock()?;
        self.read()
    }

    /// Calls `with` on the leases while the file stays locked, so that no address is given
    /// or released meanwhile.
    pub fn while_locked<T>(
        &self,
        with: impl FnOnce(&BTreeMap<Ipv4Addr, LeaseOwner>) -> Result<T>,
    ) -> Result<T> {
        let _lock = self.lock()?;
        with(&self.read()?)
    }

    fn lowest_free(&self, leases: &BTreeMap<Ipv4Addr, LeaseOwner>) -> Result<Ipv4Addr> {
        self.subnet
            .hosts()
            .find(|addr| *addr != self.gateway && !leases.contains_key(addr))
            .ok_or(Error::SubnetExhausted {
                subnet: self.subnet,
                count: leases.len(),
            })
    }

    fn lock(&self) -> Result<Flock<File>> {
        lock(&self.lock_path)
    }

    fn read(&self) -> Result<BTreeMap<Ipv4Addr, LeaseOwner>> {
        let text = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.path)
            .and_then(std::io::read_to_string);
        match text {
            Ok(text) => self.parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::file(&self.path, e)),
        }
    }

    /// Parses the text of a lease file; any line that is not a valid lease is an error.
    pub fn parse(&self, text: &str) -> Result<BTreeMap<Ipv4Addr, LeaseOwner>> {
        let mut leases = BTreeMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let corrupt = |reason: String| Error::LeaseFileCorrupt {
                path: self.path.clone(),
                line: number + 1,
                reason,
            };
            let (addr, owner) = parse_lease(line).map_err(corrupt)?;
            self.check_address(addr)
                .map_err(|e| corrupt(format!("invalid lease: {e}")))?;
            if leases.insert(addr, owner).is_some() {
                return Err(corrupt(format!("address {addr} is leased twice")));
            }
        }
        Ok(leases)
    }

    fn write(&self, leases: &BTreeMap<Ipv4Addr, LeaseOwner>) -> Result<()> {
        let mut text = format!(
            "# berth leases for {} (gateway {}), one per line:\n\
             # ADDRESS container=ID pid=PID start=TICKS boot=BOOT_ID\n",
            self.subnet, self.gateway
        );
        for (addr, owner) in leases {
            let _ = writeln!(
                text,
                "{addr} container={} pid={} start={} boot={}",
                owner.container, owner.pid, owner.start, owner.boot
            );
        }
        write_atomically(&self.path, text.as_bytes(), 0o600)
    }
}

fn parse_lease(line: &str) -> std::result::Result<(Ipv4Addr, LeaseOwner), String> {
    let mut fields = line.split_whitespace();
    let addr_text = fields.next().unwrap_or_default();
    let addr: Ipv4Addr = addr_text
        .parse()
        .map_err(|_| format!("{addr_text:?} is not an IPv4 address"))?;
    let (mut container, mut pid, mut start, mut boot) = (None, None, None, None);
    for field in fields {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("{field:?} is not KEY=VALUE"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{key}={v:?} is not a number"))
        };
        match key {
            "container" if !value.is_empty() => container = Some(value.to_owned()),
            "pid" => pid = Some(u32::try_from(number(value)?).map_err(|e| e.to_string())?),
            "start" => start = Some(number(value)?),
            "boot" if !value.is_empty() => boot = Some(value.to_owned()),
            _ => return Err(format!("unexpected field {field:?}")),
        }
    }
    match (container, pid, start, boot) {
        (Some(container), Some(pid), Some(start), Some(boot)) => Ok((
            addr,
            LeaseOwner {
                container,
                pid,
                start,
                boot,
            },
        )),
        _ => Err("a lease needs container=, pid=, start= and boot=".into()),
    }
}

/// Checks that `addr` may be given to a container in `subnet`: a host address that is not the
/// network, broadcast or gateway address. Needs no lock; call it before anything is created.
pub fn check_address(subnet: Ipv4Net, gateway: Ipv4Addr, addr: Ipv4Addr) -> Result<()> {
    let reserved = |what| Err(Error::ReservedAddress { addr, subnet, what });
    if !subnet.contains(&addr) {
        Err(Error::OutsideSubnet { addr, subnet })
    } else if addr == subnet.network() && subnet.prefix_len() < 31 {
        reserved("network")
    } else if addr == subnet.broadcast() && subnet.prefix_len() < 31 {
        reserved("broadcast")
    } else if addr == gateway {
        reserved("gateway")
    } else {
        Ok(())
    }
}

/// Takes an exclusive lock on the file at `path`, creating it (0600) if needed; the lock lasts
/// as long as the returned guard.
pub fn lock(path: &Path) -> Result<Flock<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::file(path, e))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| Error::file(path, errno.into()))
}

/// Replaces `path` with `contents` (file mode `mode`) by writing a temporary file beside it and
/// renaming it over, so readers and crashes see the old file or the new one, never a part. Links
/// are never followed: a link at `path` is replaced, not written through.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let written = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&temporary)
        .and_then(|mut file| file.write_all(contents))
        .and_then(|()| fs::rename(&temporary, path));
    written.map_err(|e| {
        let _ = fs::remove_file(&temporary);
        Error::file(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> LeaseFile {
        LeaseFile::new(
            Path::new("/nonexistent"),
            "10.201.0.0/16".parse().unwrap(),
            Ipv4Addr::new(10, 201, 0, 1),
        )
    }

    #[test]
    fn start_time_tells_this_process_from_none() {
        let mine = start_time(std::process::id()).expect("this process has a start time");
        assert!(mine > 0);
        assert_eq!(start_time(u32::MAX), None);
    }

    #[test]
    fn reserved_addresses_are_refused() {
        let leases = file();
        for addr in ["10.201.0.0", "10.201.0.1", "10.201.255.255", "10.202.0.2"] {
            assert!(
                leases.check_address(addr.parse().unwrap()).is_err(),
                "{addr}"
            );
        }
        assert!(leases.check_address("10.201.0.2".parse().unwrap()).is_ok());
    }

    #[test]
    fn parse_round_trips_and_rejects_duplicates() {
        let leases = file();
        let line = "10.201.0.2 container=abc pid=12 start=34 boot=b-1";
        let parsed = leases.parse(line).unwrap();
        assert_eq!(parsed[&Ipv4Addr::new(10, 201, 0, 2)].pid, 12);
        let twice = format!("{line}\n{line}\n");
        let error = leases.parse(&twice).unwrap_err().to_string();
        assert!(
            error.contains(":2: address 10.201.0.2 is leased twice"),
            "{error}"
        );
        assert!(leases.parse("10.201.0.2 container=abc").is_err());
        assert!(leases
            .parse("10.201.0.1 container=a pid=1 start=1 boot=b")
            .is_err());
    }
}
