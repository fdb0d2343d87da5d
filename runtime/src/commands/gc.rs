//! `berth gc`: removes everything whose owner is gone. A run reclaims stale leases on its own,
//! so gc is needed for tidiness, never for correctness. It prints one line per thing removed;
//! a second gc in a row removes nothing and prints nothing.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use netsetup::{Error as NetError, LeaseOwner, Netlink, NetworkSpec};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cli::GcArgs;
use crate::commands::run::{canonical_root, check_privileges, container_still_attached};
use crate::container::state::{private_dir, ContainerDir, State};
use crate::error::{Error, Result};

/// Runs `berth gc`.
pub fn gc(root: &Path, args: GcArgs) -> Result<u8> {
    check_privileges("gc")?;
    let root = &canonical_root(root)?;
    let mut netlink = Netlink::open()?;
    let networks = [NetworkSpec::default_bridge()];
    let mut states = Vec::new();

    // Containers whose launcher is gone: their processes, leases, veth and directory.
    for (dir, state) in ContainerDir::list(root)? {
        let state = match state {
            Ok(state) => state,
            Err(e) => {
                eprintln!("berth: gc: skipping {}: {e}", dir.path().display());
                continue;
            }
        };
        // Running containers, and the kept records of ended detached ones (berth rm's).
        if state.exit_code.is_some() || state.launcher_alive() {
            states.push(state);
            continue;
        }
        let short = state.short_id().to_owned();
        if let Some(namespace) = state.mount_namespace {
            for pid in processes_of_container(namespace, &state.id) {
                if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                    println!("killed process {pid} of container {short}");
                }
            }
        }
        for network in &networks {
            let state_dir = private_dir(root, &["networks", &network.name])?;
            for addr in lease_file_or_repair(network, &state_dir, args.repair, &states)?
                .release(&state.id)?
            {
                println!("released address {addr} of container {short}");
            }
        }
        if let Some(interface) = &state.host_interface {
            if netlink.delete_link(interface)? {
                println!("removed interface {interface} of container {short}");
            }
        }
        dir.remove()?;
        println!("removed container {short} ({})", state.name);
    }

    // Leases whose owner is gone and whose container's veth went with it.
    for network in &networks {
        let state_dir = private_dir(root, &["networks", &network.name])?;
        let leases = lease_file_or_repair(network, &state_dir, args.repair, &states)?;
        for (addr, owner) in leases.reclaim(|c| container_still_attached(&mut netlink, c))? {
            println!(
                "released address {addr} of container {}",
                short(&owner.container)
            );
        }
        remove_stray_temporaries(&state_dir);
    }

    // Host veth ends of berth's that no container owns any more.
    let owned: HashSet<String> = states
        .iter()
        .filter_map(|s| s.host_interface.clone())
        .collect();
    for name in netlink.link_names()? {
        if is_berth_veth(&name) && !owned.contains(&name) && netlink.delete_link(&name)? {
            println!("removed interface {name}");
        }
    }
    Ok(0)
}

/// The lease file of `network`; with `repair`, one that does not parse is rebuilt from the
/// live containers' state (the broken one is kept as `leases.corrupt`).
fn lease_file_or_repair(
    network: &NetworkSpec,
    state_dir: &Path,
    repair: bool,
    live: &[State],
) -> Result<netsetup::LeaseFile> {
    let leases = network.lease_file(state_dir);
    match leases.leases() {
        Ok(_) => Ok(leases),
        Err(NetError::LeaseFileCorrupt { .. }) if repair => {
            let mut rebuilt = BTreeMap::new();
            for state in live.iter().filter(|s| s.network == network.name) {
                let Some(addr) = state
                    .address
                    .as_deref()
                    .and_then(|a| a.parse::<Ipv4Addr>().ok())
                else {
                    continue;
                };
                rebuilt.insert(
                    addr,
                    LeaseOwner {
                        container: state.id.clone(),
                        pid: state.launcher_pid,
                        start: state.launcher_start,
                        boot: state.boot_id.clone(),
                    },
                );
            }
            leases.rebuild(&rebuilt)?;
            println!(
                "rebuilt {} from {} running containers (the old file is leases.corrupt)",
                leases.path().display(),
                rebuilt.len()
            );
            Ok(leases)
        }
        Err(e) => Err(with_repair_hint(e)),
    }
}

/// A corrupt lease file's error, with the way out that berth offers.
pub fn with_repair_hint(error: NetError) -> Error {
    match error {
        e @ NetError::LeaseFileCorrupt { .. } => Error::Invalid(format!(
            "{e}; or run berth gc --repair to rebuild it from the running containers"
        )),
        e => e.into(),
    }
}

/// Every process of container `id`, whose mount namespace had inode `namespace`. The kernel
/// reuses a namespace's inode number once it is gone, so a process in a namespace of that
/// number counts only if its mount table also holds the container's own binds (their source
/// paths name the container's id).
fn processes_of_container(namespace: u64, id: &str) -> Vec<i32> {
    let marker = format!("/containers/{id}/");
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/mnt")).is_ok_and(|m| m.ino() == namespace)
        })
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/mountinfo"))
                .is_ok_and(|mounts| mounts.contains(&marker))
        })
        .collect()
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
        if netsetup::start_time(pid).is_none() && fs::remove_file(entry.path()).is_ok() {
            println!("removed {}", entry.path().display());
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
