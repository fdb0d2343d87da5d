//! `berth gc`: removes everything whose owner is gone. A run reclaims stale leases on its own,
//! so gc is needed for tidiness, never for correctness. It prints one line per thing removed.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use netsetup::{Error as NetError, LeaseOwner, Netlink, NetworkSpec};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cli::GcArgs;
use crate::engine::host::{
    canonical_root, check_privileges, container_still_attached, with_repair_hint,
    DYING_NAMESPACE_GRACE,
};
use crate::engine::networks;
use crate::engine::state::{release_name, ContainerDir, State};
use crate::error::{Error, Result};
use berth_container::supervise;

/// How old a container directory still being made (`.ID`, no state yet) must be before gc
/// takes it for the leftover of a launcher killed in that instant.
const UNFINISHED_AGE: Duration = Duration::from_secs(60);

/// Runs `berth gc`.
pub fn gc(root: &Path, args: GcArgs) -> Result<u8> {
    check_privileges("gc")?;
    let root = &canonical_root(root)?;
    let _one_gc_at_a_time = berth_state::lock(&root.join("gc.lock"))?;
    let mut netlink = Netlink::open()?;
    // Each network is held as a run holds it, so that none is removed (and its directory then
    // made anew by gc) meanwhile; one removed since it was listed is skipped.
    let mut networks: Vec<NetworkSpec> = Vec::new();
    let mut _holds = Vec::new();
    for record in networks::list(root)? {
        if let Ok(hold) = networks::InUse::hold(root, &record.spec()) {
            _holds.push(hold);
            networks.push(record.spec());
        }
    }

    // The links first, then the containers: a run makes its directory before its veth, so
    // every veth of a live or starting container has a directory in the listing that follows.
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
        match state {
            // Running containers, and the kept records of ended detached ones (berth rm's).
            Ok(state) if state.exit_code.is_some() || state.launcher_alive() => live.push(state),
            // A launcher that ended just after the listing read its record wrote its last word
            // first: read it again before taking the container for a dead one's.
            Ok(_) => match dir.read_settled_state() {
                Ok(state) if state.exit_code.is_some() => live.push(state),
                Ok(state) => dead.push((dir, state)),
                Err(e) => eprintln!("berth: gc: skipping {}: {e}", dir.path().display()),
            },
            Err(_) if !dir.path().exists() => {} // It ended meanwhile.
            Err(_) if name.starts_with('.') && older_than(dir.path(), UNFINISHED_AGE) => {
                remove(&dir)?;
                println!(
                    "removed unfinished container {}",
                    berth_state::short_id(&id)
                );
            }
            Err(_) if name.starts_with('.') => {} // Being made right now.
            // Being removed right now: its state goes first.
            Err(Error::File { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("berth: gc: skipping {}: {e}", dir.path().display()),
        }
    }

    // A lease file that does not parse or is a link: refused, or with --repair rebuilt from
    // what is alive. --repair also puts back the leases of running containers that the file
    // lost (it was removed, say).
    for network in &networks {
        let state_dir = networks::state_dir(root, &network.name)?;
        let leases = network.lease_file(&state_dir);
        let live = live_leases(&live, &network.name);
        match leases.leases() {
            Ok(on_file) if args.repair && live.keys().any(|a| !on_file.contains_key(a)) => {
                let count = leases.repair(&live)?;
                println!(
                    "rebuilt {} with {count} leases of running containers (the old file, if \
                     any, is leases.corrupt)",
                    leases.path().display()
                );
            }
            Ok(_) => {}
            Err(NetError::LeaseFileCorrupt { .. } | NetError::SymbolicLink { .. })
                if args.repair =>
            {
                let count = leases.repair(&live)?;
                println!(
                    "rebuilt {} with {count} leases of running containers (the old file is \
                     leases.corrupt)",
                    leases.path().display()
                );
            }
            Err(e) => return Err(with_repair_hint(e)),
        }
    }

    // Containers whose launcher is gone: their processes, published ports, leases, veth and
    // directory. A port is theirs while its element names them (another container may have
    // taken it over since).
    let ports_lock = if dead.is_empty() {
        None
    } else {
        Some(crate::engine::ports::lock(root)?)
    };
    // Their ports, all in one transaction; a run that took one over owns it now (its element
    // names it), and the lock keeps others from doing so meanwhile.
    let dead_ids: Vec<&str> = dead.iter().map(|(_, state)| state.id.as_str()).collect();
    let unpublished = if dead_ids.is_empty() {
        Vec::new()
    } else {
        netsetup::firewall::ports::unpublish_owned_by(&dead_ids)?
    };
    for (dir, state) in &dead {
        let short = state.short_id();
        if let Some(namespace) = state.mount_namespace {
            for pid in
                supervise::processes_of_container(namespace, state.network_namespace, &state.id)
            {
                if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                    println!("killed process {pid} of container {short}");
                }
            }
        }
        for port in unpublished.iter().filter(|p| p.owner == state.id) {
            println!("unpublished port {} of container {short}", port.mapping);
        }
        for network in &networks {
            let state_dir = networks::state_dir(root, &network.name)?;
            for addr in network.lease_file(&state_dir).release(&state.id)? {
                println!("released address {addr} of container {short}");
            }
        }
        if let Some(interface) = &state.host_interface {
            if netlink.delete_link(interface)? {
                println!("removed interface {interface} of container {short}");
            }
        }
        remove(dir)?;
        release_name(root, &state.name, &state.id);
        println!("removed container {short} ({})", state.name);
    }
    drop(ports_lock);

    // Host veth ends of berth's that no container directory accounts for, once those of
    // namespaces the kernel is still destroying have had their moment to go.
    let deadline = Instant::now() + DYING_NAMESPACE_GRACE;
    for name in links.iter().filter(|name| is_berth_veth(name)) {
        let id12 = &name[3..];
        if dir_ids.iter().any(|id| id.starts_with(id12)) {
            continue;
        }
        while Instant::now() < deadline && matches!(netlink.link_by_name(name), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(2));
        }
        if netlink.delete_link(name)? {
            println!("removed interface {name}");
        }
    }

    // Leases whose owner is gone and whose container's veth went with it.
    for network in &networks {
        let state_dir = networks::state_dir(root, &network.name)?;
        let leases = network.lease_file(&state_dir);
        let deadline = Instant::now() + DYING_NAMESPACE_GRACE;
        // First the ports of every dead owner, while their addresses are still leased: none
        // may lead to an address that is free again.
        let dead_owners: Vec<String> = leases
            .leases()
            .map_err(with_repair_hint)?
            .into_values()
            .filter(|owner| !owner.is_alive())
            .map(|owner| owner.container)
            .collect();
        if !dead_owners.is_empty() {
            let _lock = crate::engine::ports::lock(root)?;
            for port in netsetup::firewall::ports::unpublish_owned_by(&dead_owners)? {
                println!(
                    "unpublished port {} of container {}",
                    port.mapping,
                    berth_state::short_id(&port.owner)
                );
            }
        }
        let reclaimed = leases.reclaim(|c| container_still_attached(&mut netlink, c, deadline))?;
        for (addr, owner) in reclaimed {
            println!(
                "released address {addr} of container {}",
                berth_state::short_id(&owner.container)
            );
        }
        if network.name != networks::DEFAULT {
            // Under the lease lock: a member that just took an address has its line kept.
            let hosts = networks::member_hosts(&state_dir);
            let removed =
                leases.while_locked(|leased| hosts.retain(|a| leased.contains_key(&a)))?;
            for addr in removed {
                println!(
                    "removed {addr} from the hosts file of network {}",
                    network.name
                );
            }
        }
        remove_stray_temporaries(&state_dir);
    }
    Ok(0)
}

/// The leases the running containers of `network` hold, by their own records.
fn live_leases(live: &[State], network: &str) -> BTreeMap<Ipv4Addr, LeaseOwner> {
    live.iter()
        .filter(|s| s.network == network && s.exit_code.is_none())
        .filter_map(|s| {
            let addr = s.address.as_deref()?.parse().ok()?;
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

/// Removes temporary files (`NAME.tmpPID`) whose writer died before renaming them.
fn remove_stray_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
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
            println!("removed {}", entry.path().display());
        }
    }
}
