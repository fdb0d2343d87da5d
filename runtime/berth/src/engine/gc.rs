//! Garbage collection: everything whose owner is gone, one sweep per kind of resource, in
//! the order that keeps each safe (a dead container's ports before its address is free, a
//! veth only once no directory accounts for it). A run reclaims stale leases on its own, so gc
//! is needed for tidiness, never for correctness. Each thing removed is reported as it goes.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use netsetup::{Error as NetError, LeaseOwner, Netlink, NetworkSpec};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::engine::host::{container_still_attached, with_repair_hint, DYING_NAMESPACE_GRACE};
use crate::engine::networks;
use crate::engine::state::{release_name, ContainerDir, State};
use crate::error::{Error, Result};
use berth_container::supervise;

/// How old a container directory still being made (`.ID`, no state yet) must be before gc
/// takes it for the leftover of a launcher killed in that instant.
const UNFINISHED_AGE: Duration = Duration::from_secs(60);

/// What a sweep did or passed over, as it happened; its `Display` is the line `berth gc`
/// prints.
#[derive(Debug)]
pub enum Swept {
    /// The directory of a container whose launcher died before it wrote a record.
    Unfinished { short_id: String },
    /// A lease file rebuilt by `--repair` from the records of running containers.
    LeaseFileRebuilt {
        path: PathBuf,
        count: usize,
        had_file: bool,
    },
    /// A process of a dead container, killed.
    Process { pid: i32, short_id: String },
    /// A published port of a dead container (or lease owner), unpublished.
    Port { mapping: String, short_id: String },
    /// A dead container's address, released.
    Address { addr: Ipv4Addr, short_id: String },
    /// A dead container's host veth end, removed.
    Interface { name: String, short_id: String },
    /// A dead container's directory and name, removed.
    Container { short_id: String, name: String },
    /// A host veth end of berth's that no container accounts for, removed.
    StrayInterface { name: String },
    /// A dead member's line in a created network's hosts file, removed.
    HostsLine { addr: Ipv4Addr, network: String },
    /// A temporary file whose writer died before renaming it, removed.
    Temporary { path: PathBuf },
    /// A container directory left alone: its record could not be read.
    Skipped { path: PathBuf, error: String },
}

impl Swept {
    /// Whether it is a warning (for stderr) rather than a thing removed.
    pub fn is_warning(&self) -> bool {
        matches!(self, Swept::Skipped { .. })
    }
}

impl fmt::Display for Swept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Swept::Unfinished { short_id } => write!(f, "removed unfinished container {short_id}"),
            Swept::LeaseFileRebuilt {
                path,
                count,
                had_file,
            } => write!(
                f,
                "rebuilt {} with {count} leases of running containers (the old file{} is \
                 leases.corrupt)",
                path.display(),
                if *had_file { "" } else { ", if any," }
            ),
            Swept::Process { pid, short_id } => {
                write!(f, "killed process {pid} of container {short_id}")
            }
            Swept::Port { mapping, short_id } => {
                write!(f, "unpublished port {mapping} of container {short_id}")
            }
            Swept::Address { addr, short_id } => {
                write!(f, "released address {addr} of container {short_id}")
            }
            Swept::Interface { name, short_id } => {
                write!(f, "removed interface {name} of container {short_id}")
            }
            Swept::Container { short_id, name } => {
                write!(f, "removed container {short_id} ({name})")
            }
            Swept::StrayInterface { name } => write!(f, "removed interface {name}"),
            Swept::HostsLine { addr, network } => {
                write!(f, "removed {addr} from the hosts file of network {network}")
            }
            Swept::Temporary { path } => write!(f, "removed {}", path.display()),
            Swept::Skipped { path, error } => {
                write!(f, "berth: gc: skipping {}: {error}", path.display())
            }
        }
    }
}

/// Removes everything under `root` whose owner is gone (`repair`: rebuilds a lease file that
/// does not parse, or lost running containers' leases); `report` hears of each thing as it
/// goes. One gc runs at a time.
pub fn collect(root: &Path, repair: bool, report: &mut dyn FnMut(Swept)) -> Result<()> {
    let _one_gc_at_a_time = berth_state::lock(&root.join("gc.lock"))?;
    let mut sweep = Sweep::begin(root, report)?;
    sweep.lease_files(repair)?;
    sweep.dead_containers()?;
    sweep.stray_interfaces()?;
    sweep.stale_leases()?;
    Ok(())
}

/// One gc's view of the root: the networks it holds, the links and containers it listed.
struct Sweep<'a> {
    root: &'a Path,
    netlink: Netlink,
    /// The networks, each held as a run holds it, so that none is removed (and its
    /// directory then made anew by gc) meanwhile.
    networks: Vec<NetworkSpec>,
    _holds: Vec<networks::InUse>,
    /// Link names, listed before the containers.
    links: Vec<String>,
    /// Every container directory's id.
    dir_ids: HashSet<String>,
    /// Running containers, and the kept records of ended detached ones.
    live: Vec<State>,
    /// Containers whose launcher is gone.
    dead: Vec<(ContainerDir, State)>,
    report: &'a mut dyn FnMut(Swept),
}

impl<'a> Sweep<'a> {
    /// Holds the networks, then lists the links, then the containers: a run makes its
    /// directory before its veth, so every veth of a live or starting container has a
    /// directory in the listing that follows. A directory being made is left alone; one
    /// left unfinished for a minute is removed.
    fn begin(root: &'a Path, report: &'a mut dyn FnMut(Swept)) -> Result<Self> {
        let mut netlink = Netlink::open()?;
        // One removed since it was listed is skipped.
        let mut networks: Vec<NetworkSpec> = Vec::new();
        let mut holds = Vec::new();
        for record in networks::list(root)? {
            if let Ok(hold) = networks::InUse::hold(root, &record.spec()) {
                holds.push(hold);
                networks.push(record.spec());
            }
        }
        let links = netlink.link_names()?;
        let mut dir_ids = HashSet::new();
        let mut live = Vec::new();
        let mut dead = Vec::new();
        for (dir, state) in ContainerDir::list(root)? {
            let Some(name) = dir.path().file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let id = name.trim_start_matches('.').to_owned();
            dir_ids.insert(id.clone());
            let skipped = |e: &dyn fmt::Display| Swept::Skipped {
                path: dir.path().to_path_buf(),
                error: e.to_string(),
            };
            match state {
                // Running containers, and the kept records of ended detached ones (berth rm's).
                Ok(state) if state.exit_code.is_some() || state.launcher_alive() => {
                    live.push(state)
                }
                // A launcher that ended just after the listing read its record wrote its last
                // word first: read it again before taking the container for a dead one's.
                Ok(_) => match dir.read_settled_state() {
                    Ok(state) if state.exit_code.is_some() => live.push(state),
                    Ok(state) => dead.push((dir, state)),
                    Err(e) => report(skipped(&e)),
                },
                Err(_) if !dir.path().exists() => {} // It ended meanwhile.
                Err(_) if name.starts_with('.') && older_than(dir.path(), UNFINISHED_AGE) => {
                    remove(&dir)?;
                    report(Swept::Unfinished {
                        short_id: berth_state::short_id(&id).to_owned(),
                    });
                }
                Err(_) if name.starts_with('.') => {} // Being made right now.
                // Being removed right now: its state goes first.
                Err(Error::File { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => report(skipped(&e)),
            }
        }
        Ok(Sweep {
            root,
            netlink,
            networks,
            _holds: holds,
            links,
            dir_ids,
            live,
            dead,
            report,
        })
    }

    /// A lease file that does not parse or is a link: refused, or with `repair` rebuilt from
    /// what is alive. `repair` also puts back the leases of running containers that the file
    /// lost (it was removed, say).
    fn lease_files(&mut self, repair: bool) -> Result<()> {
        for network in &self.networks {
            let state_dir = networks::state_dir(self.root, &network.name)?;
            let leases = network.lease_file(&state_dir);
            let live = live_leases(&self.live, &network.name);
            let had_file = match leases.leases() {
                Ok(on_file) if repair && live.keys().any(|a| !on_file.contains_key(a)) => false,
                Ok(_) => continue,
                Err(NetError::LeaseFileCorrupt { .. } | NetError::SymbolicLink { .. })
                    if repair =>
                {
                    true
                }
                Err(e) => return Err(with_repair_hint(e)),
            };
            let count = leases.repair(&live)?;
            (self.report)(Swept::LeaseFileRebuilt {
                path: leases.path().to_path_buf(),
                count,
                had_file,
            });
        }
        Ok(())
    }

    /// Containers whose launcher is gone: their processes, published ports, leases, veth and
    /// directory. A port is theirs while its element names them (another container may have
    /// taken it over since).
    fn dead_containers(&mut self) -> Result<()> {
        if self.dead.is_empty() {
            return Ok(());
        }
        let _ports_lock = crate::engine::ports::lock(self.root)?;
        // Their ports, all in one transaction; a run that took one over owns it now (its
        // element names it), and the lock keeps others from doing so meanwhile.
        let dead_ids: Vec<&str> = self
            .dead
            .iter()
            .map(|(_, state)| state.id.as_str())
            .collect();
        let unpublished = netsetup::firewall::ports::unpublish_owned_by(&dead_ids)?;
        for (dir, state) in &self.dead {
            let short_id = || state.short_id().to_owned();
            if let Some(namespace) = state.mount_namespace {
                for pid in
                    supervise::processes_of_container(namespace, state.network_namespace, &state.id)
                {
                    if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                        (self.report)(Swept::Process {
                            pid,
                            short_id: short_id(),
                        });
                    }
                }
            }
            for port in unpublished.iter().filter(|p| p.owner == state.id) {
                (self.report)(Swept::Port {
                    mapping: port.mapping.to_string(),
                    short_id: short_id(),
                });
            }
            for network in &self.networks {
                let state_dir = networks::state_dir(self.root, &network.name)?;
                for addr in network.lease_file(&state_dir).release(&state.id)? {
                    (self.report)(Swept::Address {
                        addr,
                        short_id: short_id(),
                    });
                }
            }
            for attachment in &state.attachments {
                let interface = &attachment.host_interface;
                if self.netlink.delete_link(interface)? {
                    (self.report)(Swept::Interface {
                        name: interface.clone(),
                        short_id: short_id(),
                    });
                }
            }
            remove(dir)?;
            release_name(self.root, &state.name, &state.id);
            (self.report)(Swept::Container {
                short_id: short_id(),
                name: state.name.clone(),
            });
        }
        Ok(())
    }

    /// Host veth ends of berth's that no container directory accounts for, once those of
    /// namespaces the kernel is still destroying have had their moment to go.
    fn stray_interfaces(&mut self) -> Result<()> {
        let deadline = Instant::now() + DYING_NAMESPACE_GRACE;
        for name in self.links.iter().filter(|name| is_berth_veth(name)) {
            let id12 = &name[3..];
            if self.dir_ids.iter().any(|id| id.starts_with(id12)) {
                continue;
            }
            while Instant::now() < deadline
                && matches!(self.netlink.link_by_name(name), Ok(Some(_)))
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            if self.netlink.delete_link(name)? {
                (self.report)(Swept::StrayInterface { name: name.clone() });
            }
        }
        Ok(())
    }

    /// Leases whose owner is gone and whose container's veth went with it: first the ports
    /// of every dead owner, while their addresses are still leased (none may lead to an
    /// address that is free again), then the leases, then their lines in a created network's
    /// hosts file; last the network's stray temporary files.
    fn stale_leases(&mut self) -> Result<()> {
        for network in &self.networks {
            let state_dir = networks::state_dir(self.root, &network.name)?;
            let leases = network.lease_file(&state_dir);
            let deadline = Instant::now() + DYING_NAMESPACE_GRACE;
            let dead_owners: Vec<String> = leases
                .leases()
                .map_err(with_repair_hint)?
                .into_values()
                .filter(|owner| !owner.is_alive())
                .map(|owner| owner.container)
                .collect();
            if !dead_owners.is_empty() {
                let _lock = crate::engine::ports::lock(self.root)?;
                for port in netsetup::firewall::ports::unpublish_owned_by(&dead_owners)? {
                    (self.report)(Swept::Port {
                        mapping: port.mapping.to_string(),
                        short_id: berth_state::short_id(&port.owner).to_owned(),
                    });
                }
            }
            let netlink = &mut self.netlink;
            let reclaimed = leases.reclaim(|c| container_still_attached(netlink, c, deadline))?;
            for (addr, owner) in reclaimed {
                (self.report)(Swept::Address {
                    addr,
                    short_id: berth_state::short_id(&owner.container).to_owned(),
                });
            }
            if network.name != networks::DEFAULT {
                // Under the lease lock: a member that just took an address has its line kept.
                let hosts = networks::member_hosts(&state_dir);
                let removed =
                    leases.while_locked(|leased| hosts.retain(|a| leased.contains_key(&a)))?;
                for addr in removed {
                    (self.report)(Swept::HostsLine {
                        addr,
                        network: network.name.clone(),
                    });
                }
            }
            for path in remove_stray_temporaries(&state_dir) {
                (self.report)(Swept::Temporary { path });
            }
        }
        Ok(())
    }
}

/// The leases the running containers of `network` hold, by their own records.
fn live_leases(live: &[State], network: &str) -> BTreeMap<Ipv4Addr, LeaseOwner> {
    live.iter()
        .filter(|s| s.exit_code.is_none())
        .filter_map(|s| {
            let on_it = s.attachments.iter().find(|a| a.network == network)?;
            let addr = on_it.address.parse().ok()?;
            let owner = LeaseOwner {
                container: s.id.clone(),
                pid: s.launcher_pid,
                start: s.launcher_start,
                boot: s.boot_id.clone(),
                interface: None,
            };
            Some((addr, owner))
        })
        .collect()
}

/// Removes a container directory; one that is gone already is fine.
fn remove(dir: &ContainerDir) -> Result<()> {
    match dir.remove() {
        Err(Error::File { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn older_than(path: &Path, age: Duration) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| SystemTime::now().duration_since(t).is_ok_and(|d| d > age))
}

/// A name berth gives host veth ends: `bth` and 12 hex digits.
fn is_berth_veth(name: &str) -> bool {
    name.strip_prefix("bth")
        .is_some_and(|rest| rest.len() == 12 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Removes temporary files (`NAME.tmpPID`) whose writer died before renaming them; returns
/// their paths.
fn remove_stray_temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.rsplit_once(".tmp"))
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if berth_state::start_time(pid).is_none() && fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thing_swept_is_one_line_in_gcs_words() {
        let short_id = || "d232337070d6".to_owned();
        let addr = Ipv4Addr::new(10, 201, 0, 2);
        let lines = [
            (
                Swept::Unfinished {
                    short_id: short_id(),
                },
                "removed unfinished container d232337070d6",
            ),
            (
                Swept::LeaseFileRebuilt {
                    path: "/run/berth/l".into(),
                    count: 2,
                    had_file: false,
                },
                "rebuilt /run/berth/l with 2 leases of running containers (the old file, if any, \
                 is leases.corrupt)",
            ),
            (
                Swept::LeaseFileRebuilt {
                    path: "/run/berth/l".into(),
                    count: 0,
                    had_file: true,
                },
                "rebuilt /run/berth/l with 0 leases of running containers (the old file is \
                 leases.corrupt)",
            ),
            (
                Swept::Process {
                    pid: 7,
                    short_id: short_id(),
                },
                "killed process 7 of container d232337070d6",
            ),
            (
                Swept::Port {
                    mapping: "0.0.0.0:8080->80/tcp".into(),
                    short_id: short_id(),
                },
                "unpublished port 0.0.0.0:8080->80/tcp of container d232337070d6",
            ),
            (
                Swept::Address {
                    addr,
                    short_id: short_id(),
                },
                "released address 10.201.0.2 of container d232337070d6",
            ),
            (
                Swept::Interface {
                    name: "bthd232337070d6".into(),
                    short_id: short_id(),
                },
                "removed interface bthd232337070d6 of container d232337070d6",
            ),
            (
                Swept::Container {
                    short_id: short_id(),
                    name: "web".into(),
                },
                "removed container d232337070d6 (web)",
            ),
            (
                Swept::StrayInterface {
                    name: "bthd232337070d6".into(),
                },
                "removed interface bthd232337070d6",
            ),
            (
                Swept::HostsLine {
                    addr,
                    network: "appnet".into(),
                },
                "removed 10.201.0.2 from the hosts file of network appnet",
            ),
            (
                Swept::Temporary {
                    path: "/run/berth/x.tmp7".into(),
                },
                "removed /run/berth/x.tmp7",
            ),
            (
                Swept::Skipped {
                    path: "/run/berth/containers/x".into(),
                    error: "bad".into(),
                },
                "berth: gc: skipping /run/berth/containers/x: bad",
            ),
        ];
        for (swept, line) in lines {
            assert_eq!(swept.to_string(), line);
            assert_eq!(swept.is_warning(), line.starts_with("berth:"), "{line}");
        }
    }
}
