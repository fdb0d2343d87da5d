//! IP address management: a human-readable lease file per network, changed only under an
//! exclusive lock and replaced by an atomic rename, so a crash never leaves it torn.
//!
//! Each lease records its owner: the container id, the launcher's pid, that process's start
//! time (from procfs) and the boot id. A lease whose owner is gone is taken over by an
//! allocation that needs its address (asked for, or the subnet otherwise full), and released by
//! `berth gc`, so a launcher killed with SIGKILL never leaks an address for good.
//!
//! A CNI plugin's lease has no process behind it: the plugin exits once ADD is done. Its owner
//! is an attachment, the container id and the interface name (`ADDR container=ID
//! interface=IFNAME boot=BOOT_ID`), and it lives until a DEL or a GC of the plugin releases
//! it, or the machine reboots (the boot id differs, so the namespace is gone for sure). A
//! dead-owner check (a takeover, `berth gc`) thus never reclaims a live attachment.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use berth_state::{boot_id, lock, process_alive, write_atomically, ProcessIdentity};
use ipnet::Ipv4Net;
use nix::fcntl::Flock;

use crate::{Error, Result};

/// The holder of a lease: a process (berth's launcher), identified so that a reused pid is not
/// mistaken for it, or an attachment (a CNI plugin's: a container's interface), which has no
/// process and lives until it is released by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOwner {
    /// The container the address belongs to.
    pub container: String,
    /// The pid of the process that keeps the lease (berth's launcher); 0 for an attachment.
    pub pid: u32,
    /// That process's start time in clock ticks after boot (field 22 of /proc/PID/stat); 0 for
    /// an attachment.
    pub start: u64,
    /// The boot id of the machine when the lease was taken.
    pub boot: String,
    /// For an attachment, the container's interface: the lease is the attachment's
    /// (container id and interface name) and has no owning process.
    pub interface: Option<String>,
}

impl LeaseOwner {
    /// The calling process as the owner of `container`'s lease.
    pub fn this_process(container: &str) -> Result<Self> {
        let me = ProcessIdentity::this_process()?;
        Ok(LeaseOwner {
            container: container.into(),
            pid: me.pid,
            start: me.start,
            boot: me.boot,
            interface: None,
        })
    }

    /// The attachment of `container`'s interface `interface` as the owner of its lease (a CNI
    /// plugin's: no process keeps it).
    pub fn attachment(container: &str, interface: &str) -> Result<Self> {
        Ok(LeaseOwner {
            container: container.into(),
            pid: 0,
            start: 0,
            boot: boot_id()?.into(),
            interface: Some(interface.into()),
        })
    }

    /// Whether the owner is still there: for a process, same boot, same pid, same start time;
    /// for an attachment, same boot (it lives until released).
    pub fn is_alive(&self) -> bool {
        match self.interface {
            Some(_) => boot_id().is_ok_and(|b| b == self.boot),
            None => process_alive(self.pid, self.start, &self.boot),
        }
    }
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

    /// Checks that `addr` may be leased at all: a host address of the subnet that is not its
    /// network, broadcast or gateway address.
    pub fn check_address(&self, addr: Ipv4Addr) -> Result<()> {
        check_address(self.subnet, self.gateway, addr)
    }

    /// Leases an address to `owner`: `requested` if given and free, else the lowest address
    /// that is not leased. A lease whose owner is dead is taken over only when it stands in the
    /// way (its address is requested, or every other address is leased), and only if
    /// `still_attached(container)` says its container no longer holds the address (processes
    /// of it can outlive the owner). So an allocation reads no process's state while there is
    /// room, however many leases there are; `berth gc` reclaims the rest.
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
        // The file is read and written once, its lines kept as text: with a thousand leases
        // this is the difference between a tenth of a millisecond and a whole one.
        let text = self.read_text()?;
        let mut lines = self.parse_lines(&text)?;
        if let Some(interface) = owner.interface.as_deref() {
            // An attachment asked for again (a repeated CNI ADD) keeps its address.
            let same = |line: &&Line<'_>| {
                line.container == owner.container && line.interface == Some(interface)
            };
            if let Some(at) = lines.iter().position(|line| same(&line)) {
                let addr = lines[at].addr;
                if lines[at].alive() {
                    return Ok(addr);
                }
                // Of an earlier boot (a runtime that reuses container ids): the lease is made
                // this boot's, or it would count as dead and be given to another.
                lines.remove(at);
                self.write_with(&lines, addr, owner)?;
                return Ok(addr);
            }
        }
        // Owners are checked lazily: only a lease that stands in the way is looked at.
        let mut gone = |line: &Line<'_>| !line.alive() && !still_attached(line.container);
        let addr = match requested {
            Some(addr) => match lines.iter().position(|line| line.addr == addr) {
                Some(held) if !gone(&lines[held]) => {
                    return Err(Error::AddressInUse {
                        addr,
                        container: lines[held].container.chars().take(12).collect(),
                    })
                }
                Some(held) => {
                    lines.remove(held);
                    addr
                }
                None => addr,
            },
            None => match self.lowest_free(lines.iter().map(|line| line.addr)) {
                Ok(addr) => addr,
                Err(Error::SubnetExhausted { .. }) => {
                    lines.retain(|line| !gone(line));
                    self.lowest_free(lines.iter().map(|line| line.addr))?
                }
                Err(e) => return Err(e),
            },
        };
        self.write_with(&lines, addr, owner)?;
        Ok(addr)
    }

    /// Writes the file: `lines` as they are, with `owner`'s lease of `addr` in its place.
    fn write_with(&self, lines: &[Line<'_>], addr: Ipv4Addr, owner: &LeaseOwner) -> Result<()> {
        let new = format_lease(addr, owner);
        let at = lines.partition_point(|line| line.addr < addr);
        let texts = lines.iter().map(|line| line.text);
        self.write_lines(
            texts
                .clone()
                .take(at)
                .chain([new.as_str()])
                .chain(texts.skip(at)),
        )
    }

    /// Releases every lease of `container`; returns the addresses released.
    pub fn release(&self, container: &str) -> Result<Vec<Ipv4Addr>> {
        self.release_where(container, |_| true)
    }

    /// Releases the lease of the attachment of `container`'s interface `interface` (see
    /// [`LeaseOwner::attachment`]); returns the address released, if it had one.
    pub fn release_attachment(&self, container: &str, interface: &str) -> Result<Option<Ipv4Addr>> {
        let released = self.release_where(container, |line| line.interface == Some(interface))?;
        Ok(released.first().copied())
    }

    /// Releases the attachments' leases for which `keep(container, interface)` is false (a CNI
    /// GC); returns them. Leases of processes are left alone.
    pub fn release_attachments_but(
        &self,
        mut keep: impl FnMut(&str, &str) -> bool,
    ) -> Result<Vec<(Ipv4Addr, LeaseOwner)>> {
        let _lock = self.lock()?;
        let text = self.read_text()?;
        let lines = self.parse_lines(&text)?;
        let (dropped, kept): (Vec<_>, Vec<_>) = lines.iter().partition(|line| {
            line.interface
                .is_some_and(|interface| !keep(line.container, interface))
        });
        if !dropped.is_empty() {
            self.write_lines(kept.iter().map(|line| line.text))?;
        }
        Ok(dropped
            .iter()
            .map(|line| (line.addr, line.owner()))
            .collect())
    }

    /// Releases the leases of `container` for which `matches` holds.
    fn release_where(
        &self,
        container: &str,
        matches: impl Fn(&Line<'_>) -> bool,
    ) -> Result<Vec<Ipv4Addr>> {
        let _lock = self.lock()?;
        let text = self.read_text()?;
        // Only the lines that hold the container's id are parsed; the others are copied as they
        // are (a release never makes a file worse: a broken line is the next allocation's to
        // report).
        let mut released = Vec::new();
        let mut kept = String::with_capacity(text.len());
        let mut copied = 0;
        for (at, _) in text.match_indices(container) {
            let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = text[at..].find('\n').map_or(text.len(), |i| at + i + 1);
            match parse_lease(text[start..end].trim(), 0) {
                Ok(lease) if lease.container == container && matches(&lease) && start >= copied => {
                    kept.push_str(&text[copied..start]);
                    copied = end;
                    released.push(lease.addr);
                }
                _ => {}
            }
        }
        kept.push_str(&text[copied..]);
        if !released.is_empty() {
            write_atomically(&self.path, kept.as_bytes(), 0o600)?;
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
        // A link planted as the lease file is not read through: it is moved aside like a
        // corrupt file. Bytes that are not UTF-8 spoil only their own lines.
        let bytes = match self.read_bytes() {
            Ok(bytes) => bytes,
            Err(Error::SymbolicLink { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut leases: BTreeMap<Ipv4Addr, LeaseOwner> = text
            .lines()
            .filter_map(|line| parse_lease(line.trim(), 0).ok())
            .map(|line| (line.addr, line.owner()))
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

    /// The lowest address that is neither the gateway nor among `leased` (in ascending order).
    fn lowest_free(&self, leased: impl Iterator<Item = Ipv4Addr>) -> Result<Ipv4Addr> {
        let mut leased = leased.peekable();
        let mut count = 0;
        for addr in self.subnet.hosts().filter(|addr| *addr != self.gateway) {
            while leased.next_if(|taken| *taken < addr).is_some() {}
            if leased.next_if_eq(&addr).is_some() {
                count += 1;
                continue;
            }
            return Ok(addr);
        }
        Err(Error::SubnetExhausted {
            subnet: self.subnet,
            count,
        })
    }

    fn lock(&self) -> Result<Flock<File>> {
        Ok(lock(&self.lock_path)?)
    }

    fn read(&self) -> Result<BTreeMap<Ipv4Addr, LeaseOwner>> {
        self.parse(&self.read_text()?)
    }

    /// The file's text; empty when there is no file yet. A file that is not UTF-8 does not
    /// parse, and is reported so (naming the line), like any other.
    fn read_text(&self) -> Result<String> {
        String::from_utf8(self.read_bytes()?).map_err(|e| {
            let bytes = e.as_bytes();
            let valid = e.utf8_error().valid_up_to();
            let line = 1 + bytes[..valid].iter().filter(|&&b| b == b'\n').count();
            Error::LeaseFileCorrupt {
                path: self.path.clone(),
                line,
                reason: "not UTF-8 text".into(),
            }
        })
    }

    /// The file's bytes; none when there is no file yet.
    fn read_bytes(&self) -> Result<Vec<u8>> {
        // O_NONBLOCK: a FIFO planted as the file reads as empty instead of hanging.
        let bytes = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(&self.path)
            .and_then(|mut file| {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut file, &mut bytes).map(|_| bytes)
            });
        match bytes {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::file(&self.path, e)),
        }
    }

    /// Parses the text of a lease file; any line that is not a valid lease is an error.
    pub fn parse(&self, text: &str) -> Result<BTreeMap<Ipv4Addr, LeaseOwner>> {
        Ok(self
            .parse_lines(text)?
            .iter()
            .map(|line| (line.addr, line.owner()))
            .collect())
    }

    /// The leases of a lease file's text, in ascending order of address, borrowed from it;
    /// any line that is not a valid lease, and an address leased twice, is an error.
    fn parse_lines<'a>(&self, text: &'a str) -> Result<Vec<Line<'a>>> {
        let corrupt = |line: usize, reason: String| Error::LeaseFileCorrupt {
            path: self.path.clone(),
            line,
            reason,
        };
        let mut lines = Vec::new();
        for (index, text) in text.lines().enumerate() {
            let text = text.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let line = parse_lease(text, index + 1).map_err(|e| corrupt(index + 1, e))?;
            self.check_address(line.addr)
                .map_err(|e| corrupt(index + 1, format!("invalid lease: {e}")))?;
            lines.push(line);
        }
        // berth writes the lines in order; one edited by hand may not be.
        if !lines.is_sorted_by_key(|line| line.addr) {
            lines.sort_by_key(|line| line.addr);
        }
        if let Some(pair) = lines.windows(2).find(|pair| pair[0].addr == pair[1].addr) {
            let later = pair[0].number.max(pair[1].number);
            let addr = pair[0].addr;
            return Err(corrupt(later, format!("address {addr} is leased twice")));
        }
        Ok(lines)
    }

    fn write(&self, leases: &BTreeMap<Ipv4Addr, LeaseOwner>) -> Result<()> {
        let lines: Vec<String> = leases
            .iter()
            .map(|(addr, owner)| format_lease(*addr, owner))
            .collect();
        self.write_lines(lines.iter().map(String::as_str))
    }

    /// Replaces the file with a header and `lines`, which must be in ascending order.
    fn write_lines<'a>(&self, lines: impl Iterator<Item = &'a str>) -> Result<()> {
        let mut text = format!(
            "# berth leases for {} (gateway {}), one per line:\n\
             # ADDRESS container=ID pid=PID start=TICKS boot=BOOT_ID\n\
             # ADDRESS container=ID interface=IFNAME boot=BOOT_ID (an attachment's)\n",
            self.subnet, self.gateway
        );
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        Ok(write_atomically(&self.path, text.as_bytes(), 0o600)?)
    }
}

/// One lease as its line in the file says it, borrowed from the file's text.
struct Line<'a> {
    addr: Ipv4Addr,
    container: &'a str,
    pid: u32,
    start: u64,
    boot: &'a str,
    /// An attachment's interface; `None` for a process's lease.
    interface: Option<&'a str>,
    /// The whole line.
    text: &'a str,
    /// Its number in the file, from 1.
    number: usize,
}

impl Line<'_> {
    fn owner(&self) -> LeaseOwner {
        LeaseOwner {
            container: self.container.to_owned(),
            pid: self.pid,
            start: self.start,
            boot: self.boot.to_owned(),
            interface: self.interface.map(str::to_owned),
        }
    }

    /// Whether its owner is still there (see [`LeaseOwner::is_alive`]).
    fn alive(&self) -> bool {
        match self.interface {
            Some(_) => boot_id().is_ok_and(|b| b == self.boot),
            None => process_alive(self.pid, self.start, self.boot),
        }
    }
}

fn format_lease(addr: Ipv4Addr, owner: &LeaseOwner) -> String {
    match &owner.interface {
        Some(interface) => format!(
            "{addr} container={} interface={interface} boot={}",
            owner.container, owner.boot
        ),
        None => format!(
            "{addr} container={} pid={} start={} boot={}",
            owner.container, owner.pid, owner.start, owner.boot
        ),
    }
}

fn parse_lease(text: &str, number: usize) -> std::result::Result<Line<'_>, String> {
    let mut fields = text.split_ascii_whitespace();
    let addr_text = fields.next().unwrap_or_default();
    let addr: Ipv4Addr = addr_text
        .parse()
        .map_err(|_| format!("{addr_text:?} is not an IPv4 address"))?;
    let (mut container, mut pid, mut start, mut boot) = (None, None, None, None);
    let mut interface = None;
    for field in fields {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("{field:?} is not KEY=VALUE"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{key}={v:?} is not a number"))
        };
        match key {
            "container" if !value.is_empty() => container = Some(value),
            "pid" => pid = Some(u32::try_from(number(value)?).map_err(|e| e.to_string())?),
            "start" => start = Some(number(value)?),
            "boot" if !value.is_empty() => boot = Some(value),
            "interface" if !value.is_empty() => interface = Some(value),
            _ => return Err(format!("unexpected field {field:?}")),
        }
    }
    match (container, interface, pid, start, boot) {
        (Some(container), None, Some(pid), Some(start), Some(boot)) => Ok(Line {
            addr,
            container,
            pid,
            start,
            boot,
            interface: None,
            text,
            number,
        }),
        (Some(container), Some(interface), None, None, Some(boot)) => Ok(Line {
            addr,
            container,
            pid: 0,
            start: 0,
            boot,
            interface: Some(interface),
            text,
            number,
        }),
        _ => Err(
            "a lease needs container=, pid=, start= and boot=, or (an attachment's) \
                  container=, interface= and boot="
                .into(),
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file_in(dir: &Path) -> LeaseFile {
        LeaseFile::new(
            dir,
            "10.201.0.0/16".parse().unwrap(),
            Ipv4Addr::new(10, 201, 0, 1),
        )
    }

    #[test]
    fn lease_files_of_earlier_releases_are_read() {
        // tests/fixtures/: written by those builds of berth, as they are.
        for text in [
            include_str!("../../tests/fixtures/a93e1a0/leases"),
            include_str!("../../tests/fixtures/9563353/leases"),
        ] {
            let leases = file().parse(text).unwrap();
            let owner = &leases[&Ipv4Addr::new(10, 201, 0, 2)];
            assert_eq!(owner.container.len(), 64);
            assert!(owner.pid > 0 && owner.start > 0 && owner.interface.is_none());
            // Its launcher is gone (it ran in another boot, or long ended).
            assert!(!owner.is_alive());
        }
    }

    fn file() -> LeaseFile {
        LeaseFile::new(
            Path::new("/nonexistent"),
            "10.201.0.0/16".parse().unwrap(),
            Ipv4Addr::new(10, 201, 0, 1),
        )
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
    fn dead_leases_are_taken_over_only_when_in_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let leases = LeaseFile::new(
            dir.path(),
            "10.9.0.0/29".parse().unwrap(),
            "10.9.0.3".parse().unwrap(),
        );
        let me = LeaseOwner::this_process("x").unwrap();
        let dead = |container: &str| LeaseOwner {
            container: container.into(),
            pid: me.pid,
            start: me.start + 1,
            boot: me.boot.clone(),
            interface: None,
        };
        // .1 held by a dead owner; the gateway is .3.
        leases
            .allocate(&dead("gone"), Some("10.9.0.1".parse().unwrap()), |_| false)
            .unwrap();
        let next = |c: &str| {
            leases.allocate(
                &LeaseOwner {
                    container: c.into(),
                    ..me.clone()
                },
                None,
                |_| false,
            )
        };
        let given: Vec<Ipv4Addr> = ["a", "b", "c", "d"]
            .iter()
            .map(|c| next(c).unwrap())
            .collect();
        assert_eq!(
            given,
            ["10.9.0.2", "10.9.0.4", "10.9.0.5", "10.9.0.6"]
                .map(|a| a.parse::<Ipv4Addr>().unwrap())
        );
        // Full but for the dead lease: it is taken over; then the subnet is exhausted.
        assert_eq!(next("e").unwrap(), "10.9.0.1".parse::<Ipv4Addr>().unwrap());
        assert!(matches!(
            next("f"),
            Err(Error::SubnetExhausted { count: 5, .. })
        ));
        // A dead lease whose container is still attached is not taken.
        leases.release("e").unwrap();
        leases
            .allocate(
                &dead("lingering"),
                Some("10.9.0.1".parse().unwrap()),
                |_| false,
            )
            .unwrap();
        let attached = |c: &str| c == "lingering";
        let g = LeaseOwner {
            container: "g".into(),
            ..me.clone()
        };
        let full = leases.allocate(&g, None, attached);
        assert!(
            matches!(full, Err(Error::SubnetExhausted { .. })),
            "{full:?}"
        );
        let requested = leases.allocate(&me, Some("10.9.0.1".parse().unwrap()), attached);
        assert!(
            matches!(requested, Err(Error::AddressInUse { .. })),
            "{requested:?}"
        );
    }

    #[test]
    fn attachments_are_keyed_by_interface_and_never_reclaimed() {
        let dir = tempfile::tempdir().unwrap();
        let leases = file_in(dir.path());
        let eth0 = LeaseOwner::attachment("c1", "eth0").unwrap();
        let net1 = LeaseOwner::attachment("c1", "net1").unwrap();
        let a = leases.allocate(&eth0, None, |_| false).unwrap();
        let b = leases.allocate(&net1, None, |_| false).unwrap();
        assert_ne!(a, b);
        // Asked for again: the same address.
        assert_eq!(leases.allocate(&eth0, None, |_| false).unwrap(), a);
        let text = fs::read_to_string(leases.path()).unwrap();
        assert!(
            text.contains(&format!("{a} container=c1 interface=eth0 boot=")),
            "{text}"
        );
        // No process owns them, yet they are alive: a dead-owner sweep keeps them.
        assert!(leases.reclaim(|_| false).unwrap().is_empty());
        assert_eq!(leases.leases().unwrap()[&a], eth0);
        // From another boot: gone.
        let old = LeaseOwner {
            boot: "another-boot".into(),
            ..LeaseOwner::attachment("old", "eth0").unwrap()
        };
        assert!(!old.is_alive());
        assert_eq!(leases.release_attachment("c1", "net1").unwrap(), Some(b));
        assert_eq!(leases.release_attachment("c1", "net1").unwrap(), None);
        let gone = leases.release_attachments_but(|_, _| false).unwrap();
        assert_eq!(gone, vec![(a, eth0)]);
        assert!(leases.leases().unwrap().is_empty());
    }

    #[test]
    fn an_attachment_asked_for_again_after_a_reboot_is_made_this_boots() {
        let dir = tempfile::tempdir().unwrap();
        let leases = file_in(dir.path());
        let earlier = LeaseOwner {
            boot: "an-earlier-boot".into(),
            ..LeaseOwner::attachment("c1", "eth0").unwrap()
        };
        let a = leases.allocate(&earlier, None, |_| false).unwrap();
        let now = LeaseOwner::attachment("c1", "eth0").unwrap();
        assert_eq!(leases.allocate(&now, None, |_| false).unwrap(), a);
        assert_eq!(
            leases.leases().unwrap()[&a],
            now,
            "the lease is this boot's"
        );
        assert_eq!(leases.leases().unwrap().len(), 1);
    }

    #[test]
    fn a_hand_edited_lease_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let leases = file_in(dir.path());
        let text = "# edited\r\n10.201.0.2\tpid=1 start=2 boot=b container=abc\n  10.201.0.3 container=abcd pid=1 start=2 boot=b  \n";
        fs::write(leases.path(), text).unwrap();
        assert_eq!(
            leases.release("abc").unwrap(),
            ["10.201.0.2".parse::<Ipv4Addr>().unwrap()]
        );
        let left = fs::read_to_string(leases.path()).unwrap();
        assert!(
            left.contains("container=abcd") && !left.contains("10.201.0.2"),
            "{left}"
        );
        assert_eq!(leases.release("abc").unwrap(), Vec::<Ipv4Addr>::new());
    }

    #[test]
    fn a_file_that_is_not_utf8_is_corrupt_and_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let leases = file_in(dir.path());
        let me = LeaseOwner::this_process("live").unwrap();
        let mut bytes = format_lease(Ipv4Addr::new(10, 201, 0, 2), &me).into_bytes();
        bytes.extend_from_slice(b"\n10.201.0.3 container=\xff\xfe pid=1 start=1 boot=b\n");
        fs::write(leases.path(), &bytes).unwrap();
        let error = leases.leases().unwrap_err().to_string();
        assert!(error.contains(":2: not UTF-8 text"), "{error}");
        assert_eq!(leases.repair(&BTreeMap::new()).unwrap(), 1);
        let repaired = leases.leases().unwrap();
        assert_eq!(repaired.len(), 1);
        assert_eq!(repaired[&Ipv4Addr::new(10, 201, 0, 2)], me);
        let aside = fs::read(dir.path().join("leases.corrupt")).unwrap();
        assert_eq!(aside, bytes, "the broken file is kept as it was");
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
        let attachment = leases
            .parse("10.201.0.3 container=abc interface=eth0 boot=b-1")
            .unwrap();
        let owner = &attachment[&Ipv4Addr::new(10, 201, 0, 3)];
        assert_eq!((owner.pid, owner.interface.as_deref()), (0, Some("eth0")));
        // An attachment has no process, and a process's lease no interface.
        assert!(leases
            .parse("10.201.0.3 container=abc interface=eth0 pid=1 start=2 boot=b")
            .is_err());
        assert!(leases
            .parse("10.201.0.3 container=abc interface= boot=b")
            .is_err());
        assert!(leases
            .parse("10.201.0.1 container=a pid=1 start=1 boot=b")
            .is_err());
    }
}
