//! What berth asks of the host before it makes anything: privileges, the `nft` program, its
//! state's root; and what a dead launcher's container may still hold (its veth, its address).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use caps::{CapSet, Capability};
use netsetup::{Error as NetError, Netlink};

use crate::engine::state::private_dir;
use crate::error::{Error, Result};

/// berth needs CAP_SYS_ADMIN (namespaces, mounts) and CAP_NET_ADMIN (interfaces).
pub fn check_privileges(command: &str) -> Result<()> {
    let has = |cap| caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false);
    let missing: Vec<&str> = [
        (Capability::CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        (Capability::CAP_NET_ADMIN, "CAP_NET_ADMIN"),
    ]
    .into_iter()
    .filter(|(cap, _)| !has(*cap))
    .map(|(_, name)| name)
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Privileges(format!(
        "{command} needs root (missing {}): run berth as root, e.g. with sudo",
        missing.join(" and ")
    )))
}

/// The bridge network needs the `nft` program (the first run creates berth's table with it).
pub fn check_nft_installed() -> Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|dir| is_executable(&dir.join("nft")));
    if found {
        Ok(())
    } else {
        Err(Error::Invalid(
            "nft not found in PATH: the bridge network needs nftables; install it \
             (apt-get install nftables), or use --net none or --net host"
                .into(),
        ))
    }
}

fn is_executable(path: &PathBuf) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The root by its canonical path (made if missing): the bridge records which state
/// directory manages it.
pub fn canonical_root(root: &Path) -> Result<PathBuf> {
    let root = private_dir(root, &[])?;
    std::fs::canonicalize(&root).map_err(|e| Error::file(&root, e))
}

/// How long an allocation waits, at most, for the veths of dead owners' containers to vanish
/// with their namespaces before it counts those containers as still running.
pub const DYING_NAMESPACE_GRACE: Duration = Duration::from_millis(250);

/// Whether `container`, whose launcher is dead, still holds its address: its host veth exists,
/// so its network namespace is alive (processes of it outlived the launcher). A namespace
/// whose last process just died is destroyed asynchronously: its veth gets until `deadline`
/// (one for all the leases a caller looks at) to go.
pub fn container_still_attached(netlink: &mut Netlink, container: &str, deadline: Instant) -> bool {
    let host_end = netsetup::host_interface_name(container);
    loop {
        match netlink.link_by_name(&host_end) {
            Ok(None) => return false,
            _ if Instant::now() >= deadline => return true,
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Says what to do when another table's forward chain drops what berth's table accepts: the
/// containers then reach the host but nothing beyond it.
pub fn warn_about_forward_drops(bridge: &str) {
    for chain in netsetup::firewall::forward_drop_chains(bridge).unwrap_or_default() {
        eprintln!("berth: warning: {}", chain.warning(bridge));
    }
}

/// A corrupt lease file's error, with the way out that berth offers.
pub fn with_repair_hint(error: NetError) -> Error {
    match error {
        e @ NetError::LeaseFileCorrupt { .. } => Error::Invalid(format!(
            "{e}; or run berth gc --repair to rebuild it from the running containers"
        )),
        NetError::SymbolicLink { path } if path.ends_with("leases") => Error::Invalid(format!(
            "{} is a symbolic link: berth does not follow links in its state directory; run \
             berth gc --repair to replace it with a lease file rebuilt from the running \
             containers",
            path.display()
        )),
        e => e.into(),
    }
}
