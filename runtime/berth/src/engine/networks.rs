//! The registry of networks: the default `bridge` network, which always exists, and those made
//! by `berth network create`, each a directory `ROOT/networks/NAME` holding its record
//! (`network.json`), its lease file and, for created networks, its members' hosts file.
//!
//! A run holds a shared lock on its network's record for as long as it lives; `network rm`
//! takes an exclusive one without waiting, so a network in use is never removed and no lock is
//! ever left stale by a process that died.

use std::fs::{self, File};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use netsetup::firewall::InstalledNetwork;
use netsetup::{Ipv4Net, Ipv6Net, MemberHosts, NetworkSpec};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::engine::state::private_dir;
use crate::error::{Error, Result};
use berth_state::files::{self, Links};

/// The default network's name.
pub const DEFAULT: &str = "bridge";

/// Names that `--net` gives a meaning of its own.
const RESERVED: [&str; 4] = [DEFAULT, "default", "host", "none"];

/// What a container's record names as its network when it joined a network namespace by path
/// (a bundle's): no network of berth's, so no created network may have this name.
pub const JOINED: &str = "joined";

/// A created network's record, as `network.json` holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The network's name.
    pub name: String,
    /// Its bridge interface.
    pub bridge: String,
    /// Its subnet.
    pub subnet: Ipv4Net,
    /// The bridge's address.
    pub gateway: Ipv4Addr,
    /// No NAT, no default route.
    pub internal: bool,
    /// The IPv6 subnet of a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
    /// When it was made, in seconds since the epoch (0 for the default network).
    pub created: u64,
}

impl Record {
    /// The network as netsetup takes it.
    pub fn spec(&self) -> NetworkSpec {
        NetworkSpec {
            name: self.name.clone(),
            bridge: self.bridge.clone(),
            subnet: self.subnet,
            gateway: self.gateway,
            internal: self.internal,
            masquerade: true,
            subnet6: self.subnet6,
            bridge_is_gateway: true,
        }
    }

    /// Whether this is the default network.
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT
    }

    /// Checks a record read from directory `dir_name`: its name is that directory's, and its
    /// bridge, subnets and gateway are what `network create` would take. So nothing a record
    /// file says reaches netlink or nft unchecked.
    fn check(&self, dir_name: &str) -> std::result::Result<(), String> {
        if self.name != dir_name {
            return Err(format!("it names network {:?}, not {dir_name}", self.name));
        }
        check_bridge_name(&self.bridge)?;
        check_subnet(self.subnet).map_err(|reason| format!("subnet {reason}"))?;
        check_gateway(self.subnet, self.gateway).map_err(|reason| format!("gateway {reason}"))?;
        if let Some(subnet6) = self.subnet6 {
            check_subnet6(self.subnet, subnet6).map_err(|reason| format!("subnet6 {reason}"))?;
        }
        Ok(())
    }

    /// The default network: berth0 and 10.201.0.0/16, with the IPv6 subnet that `network
    /// update` may have recorded for it (its only setting).
    fn default_network(root: &Path) -> Result<Record> {
        let spec = NetworkSpec::default_bridge();
        let settings = read_record(root, DEFAULT)?;
        Ok(Record {
            name: spec.name,
            bridge: spec.bridge,
            subnet: spec.subnet,
            gateway: spec.gateway,
            internal: spec.internal,
            subnet6: settings.and_then(|r| r.subnet6),
            created: 0,
        })
    }
}

/// The directory of network `name`'s state: its record, leases and hosts file (made if
/// missing). `name` is checked first, as by every lookup.
pub fn state_dir(root: &Path, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    Ok(private_dir(root, &["networks", name])?)
}

/// The hosts file shared by the members of created network `name`.
pub fn member_hosts(state_dir: &Path) -> MemberHosts {
    MemberHosts::new(state_dir.join("hosts"))
}

/// `ROOT/networks/NAME`, once `name` is known to be a network's name: every lookup comes
/// through here, so no string (a path, `..`) leads it out of `ROOT/networks`.
fn network_dir(root: &Path, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    Ok(root.join("networks").join(name))
}

fn record_path(root: &Path, name: &str) -> Result<PathBuf> {
    Ok(network_dir(root, name)?.join("network.json"))
}

/// Network `name`: the default one, or a created one; a clear error for any other.
pub fn find(root: &Path, name: &str) -> Result<Record> {
    if name == DEFAULT || name == "default" {
        return Record::default_network(root);
    }
    if name == "host" || name == "none" {
        return Err(Error::Invalid(format!(
            "network {name} is built in: it has no bridge, subnet or containers' leases of its \
             own to change or remove"
        )));
    }
    read_record(root, name)?.ok_or_else(|| {
        Error::Invalid(format!(
            "no such network: {name} (berth network ls lists them; berth network create \
             {name} makes one)"
        ))
    })
}

/// The record of network `name`, if there is one: a small regular file (no link, FIFO or
/// device), checked whole (see [`Record::check`]).
fn read_record(root: &Path, name: &str) -> Result<Option<Record>> {
    let path = record_path(root, name)?;
    let bytes = match files::read_regular(&path, files::CONFIG_LIMIT, Links::Refuse) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(crate::engine::state::root_only(root))
        }
        Err(e) => return Err(Error::file(&path, e)),
    };
    let record: Record = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    record.check(name).map_err(|reason| {
        Error::Invalid(format!(
            "{}: {reason}; berth uses no network of such a record (remove {} if berth did not \
             make it)",
            path.display(),
            path.parent().unwrap_or(&path).display()
        ))
    })?;
    Ok(Some(record))
}

/// Every network, the default one first, then the created ones by name.
pub fn list(root: &Path) -> Result<Vec<Record>> {
    let mut records = vec![Record::default_network(root)?];
    let dir = root.join("networks");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(records),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(crate::engine::state::root_only(root))
        }
        Err(e) => return Err(Error::file(&dir, e)),
    };
    let has_record = |name: &str| record_path(root, name).is_ok_and(|path| path.exists());
    // Only directories with a network's name: anything else there is not berth's.
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name != DEFAULT && has_record(name))
        .collect();
    names.sort();
    for name in names {
        match find(root, &name) {
            Ok(record) => records.push(record),
            Err(Error::Invalid(_)) if !has_record(&name) => {} // Just removed.
            Err(e) => return Err(e),
        }
    }
    Ok(records)
}

/// Every network, as netsetup takes them (none when the registry cannot be read).
pub fn specs(root: &Path) -> Vec<NetworkSpec> {
    list(root)
        .unwrap_or_default()
        .iter()
        .map(Record::spec)
        .collect()
}

/// A run's hold on its network: while it lives, `network rm` refuses the network.
#[derive(Debug)]
pub struct InUse {
    _lock: Option<Flock<File>>,
}

impl InUse {
    /// Holds network `network` for a run. A network removed, or removed and made anew, since
    /// it was looked up is an error.
    pub fn hold(root: &Path, network: &NetworkSpec) -> Result<InUse> {
        let name = network.name.as_str();
        let path = record_path(root, name)?;
        let changed = || {
            Error::Invalid(format!(
                "network {name} was changed, or removed and made anew, while berth started: run \
                 again"
            ))
        };
        // A record replaced meanwhile (`network update` renames a new one over it) is opened
        // again.
        for _ in 0..3 {
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && name == DEFAULT => {
                    // The default network as built in: nothing to hold, but it must still be
                    // the one this run set out on.
                    if find(root, name)?.spec() != *network {
                        return Err(changed());
                    }
                    return Ok(InUse { _lock: None });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::Invalid(format!("network {name} was removed")))
                }
                Err(e) => return Err(Error::file(&path, e)),
            };
            let lock = Flock::lock(file, FlockArg::LockShared)
                .map_err(|(_, errno)| Error::file(&path, errno.into()))?;
            // `network rm` unlinks the record while it holds the exclusive lock, `network
            // update` replaces it.
            if lock.metadata().map_err(|e| Error::file(&path, e))?.nlink() == 0 {
                continue;
            }
            if find(root, name)?.spec() != *network {
                return Err(changed());
            }
            return Ok(InUse { _lock: Some(lock) });
        }
        Err(changed())
    }
}

/// What `berth network create` asks for.
#[derive(Debug)]
pub struct Request<'a> {
    /// The name.
    pub name: &'a str,
    /// The subnet, or the first free /16 of 10.202.0.0 to 10.254.0.0.
    pub subnet: Option<Ipv4Net>,
    /// The gateway, or the subnet's first host address.
    pub gateway: Option<Ipv4Addr>,
    /// The bridge, or the first free `berthN`.
    pub bridge: Option<&'a str>,
    /// No NAT, no route out.
    pub internal: bool,
    /// Dual stack: an IPv6 subnet too (`subnet6`, or the first free /64 of fd62:6572:7468::/48).
    pub ipv6: bool,
    /// The IPv6 subnet.
    pub subnet6: Option<Ipv6Net>,
}

/// Where the IPv6 subnets of created networks are taken from when none is given: a unique
/// local /48 ("berth" in hex), one /64 per network.
const DEFAULT_SUBNET6_BASE: Ipv6Addr = Ipv6Addr::new(0xfd62, 0x6572, 0x7468, 0, 0, 0, 0, 0);

/// Checks a request for a new network against the others and settles its subnet, gateway and
/// bridge; nothing is written. `existing_links` are the host's interface names, which a new
/// bridge must not take; `installed` are the networks in berth's nftables table (see
/// [`netsetup::firewall::installed_networks`]), whose subnets and bridges it must not take
/// either when they are not this root's (berth-cni's, another root's). The caller holds the
/// registry's lock, makes the bridge and firewall entries, and then [`record`]s the network,
/// last, so that a half-made one is never seen.
pub fn plan(
    root: &Path,
    request: &Request<'_>,
    existing_links: &[String],
    installed: &[InstalledNetwork],
) -> Result<Record> {
    check_network_name(request.name)?;
    if request.gateway.is_some() && request.subnet.is_none() {
        return Err(Error::Invalid(
            "--gateway needs --subnet: give the subnet the gateway is in".into(),
        ));
    }
    let records = list(root)?;
    if records.iter().any(|n| n.name == request.name) {
        return Err(Error::Invalid(format!(
            "network {} already exists",
            request.name
        )));
    }
    let others = neighbours(&records, installed);
    let subnet = match request.subnet {
        Some(subnet) => {
            check_subnet(subnet).map_err(|reason| Error::Invalid(format!("--subnet {reason}")))?;
            if let Some(other) = others.iter().find(|n| overlaps(n.subnet(), subnet)) {
                return Err(Error::Invalid(format!(
                    "--subnet {subnet} overlaps {}",
                    other.describe(other.subnet())
                )));
            }
            subnet
        }
        None => (202..=254)
            .map(|octet| Ipv4Net::new(Ipv4Addr::new(10, octet, 0, 0), 16).expect("a /16"))
            .find(|candidate| !others.iter().any(|n| overlaps(n.subnet(), *candidate)))
            .ok_or_else(|| {
                Error::Invalid("no free 10.x.0.0/16 subnet is left: give one with --subnet".into())
            })?,
    };
    let gateway = match request.gateway {
        Some(gateway) => {
            check_gateway(subnet, gateway)
                .map_err(|reason| Error::Invalid(format!("--gateway {reason}")))?;
            gateway
        }
        None => subnet.hosts().next().expect("a /29 or larger has hosts"),
    };
    let on_bridge = |bridge: &str| others.iter().find(|n| n.bridge() == bridge);
    let is_link = |bridge: &str| existing_links.iter().any(|l| l == bridge);
    let taken = |bridge: &str| on_bridge(bridge).is_some() || is_link(bridge);
    let bridge = match request.bridge {
        Some(bridge) => {
            check_bridge_name(bridge).map_err(Error::Invalid)?;
            match on_bridge(bridge) {
                // A network still installed on a bridge that is gone.
                Some(Neighbour::Installed(network)) if !is_link(bridge) => {
                    return Err(Error::Invalid(format!(
                        "--bridge {bridge}: nftables table inet {} holds network {} on it for \
                         berth-cni or another berth root (marker {}); name another bridge",
                        netsetup::firewall::TABLE,
                        network.subnet,
                        network.marker()
                    )))
                }
                _ if taken(bridge) => {
                    return Err(Error::Invalid(format!(
                        "--bridge {bridge}: an interface of that name exists already"
                    )))
                }
                _ => bridge.to_owned(),
            }
        }
        None => (1..)
            .map(|n| format!("berth{n}"))
            .find(|name| !taken(name))
            .expect("some berthN is free"),
    };
    let subnet6 = settle_subnet6(&others, subnet, request.ipv6, request.subnet6)?;
    Ok(Record {
        name: request.name.to_owned(),
        bridge,
        subnet,
        gateway,
        internal: request.internal,
        subnet6,
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}

/// A network whose subnets and bridge a new one must keep clear of.
#[derive(Debug, Clone, Copy)]
enum Neighbour<'a> {
    /// One of this root's.
    Created(&'a Record),
    /// One that berth's nftables table holds for someone else: berth-cni, another root.
    Installed(&'a InstalledNetwork),
}

impl Neighbour<'_> {
    fn subnet(&self) -> Ipv4Net {
        match self {
            Neighbour::Created(record) => record.subnet,
            Neighbour::Installed(network) => network.subnet,
        }
    }

    fn subnet6(&self) -> Option<Ipv6Net> {
        match self {
            Neighbour::Created(record) => record.subnet6,
            Neighbour::Installed(network) => network.subnet6,
        }
    }

    fn bridge(&self) -> &str {
        match self {
            Neighbour::Created(record) => &record.bridge,
            Neighbour::Installed(network) => &network.bridge,
        }
    }

    /// The network, for a message, by its subnet `net` (IPv4 or IPv6).
    fn describe(&self, net: impl std::fmt::Display) -> String {
        match self {
            Neighbour::Created(record) => format!("network {} ({net})", record.name),
            Neighbour::Installed(network) => format!(
                "network {net} on bridge {}, installed in nftables table inet {} by berth-cni or \
                 another berth root (marker {})",
                network.bridge,
                netsetup::firewall::TABLE,
                network.marker()
            ),
        }
    }
}

/// This root's networks `records`, and the networks of berth's table on other bridges.
fn neighbours<'a>(records: &'a [Record], installed: &'a [InstalledNetwork]) -> Vec<Neighbour<'a>> {
    let ours = |network: &InstalledNetwork| records.iter().any(|r| r.bridge == network.bridge);
    records
        .iter()
        .map(Neighbour::Created)
        .chain(
            installed
                .iter()
                .filter(|n| !ours(n))
                .map(Neighbour::Installed),
        )
        .collect()
}

/// Writes a planned network's record: from here on, runs find it.
pub fn record(root: &Path, record: &Record) -> Result<()> {
    let dir = state_dir(root, &record.name)?;
    let json = serde_json::to_vec_pretty(record).expect("a record serializes");
    Ok(berth_state::write_atomically(
        &dir.join("network.json"),
        &json,
        0o644,
    )?)
}

/// Network `record` with IPv6 turned on (`subnet6`, or with `ipv6` the first free /64) or,
/// when neither is given, off; checked against the other networks, this root's and those
/// `installed` in berth's table.
pub fn with_ipv6(
    root: &Path,
    record: &Record,
    ipv6: bool,
    subnet6: Option<Ipv6Net>,
    installed: &[InstalledNetwork],
) -> Result<Record> {
    let records: Vec<Record> = list(root)?
        .into_iter()
        .filter(|other| other.name != record.name)
        .collect();
    // The network's own marker is not another's.
    let installed: Vec<InstalledNetwork> = installed
        .iter()
        .filter(|n| n.bridge != record.bridge)
        .cloned()
        .collect();
    let others = neighbours(&records, &installed);
    Ok(Record {
        subnet6: settle_subnet6(&others, record.subnet, ipv6, subnet6)?,
        ..record.clone()
    })
}

/// Removes the default network's record of settings: it is as built in again.
pub fn forget_settings(root: &Path) -> Result<()> {
    let path = record_path(root, DEFAULT)?;
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::file(&path, e)),
        _ => Ok(()),
    }
}

/// Removes network `name`'s state directory (record, leases, hosts file), whether or not it
/// was recorded.
pub fn forget(root: &Path, name: &str) -> Result<()> {
    let dir = network_dir(root, name)?;
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::file(&dir, e)),
        _ => Ok(()),
    }
}

/// Exclusive hold on a created network: no run holds it, and none can start on it while this
/// lives. Refused at once, naming `users()`, while runs hold it.
pub fn hold_exclusively(
    root: &Path,
    record: &Record,
    users: impl FnOnce() -> Vec<String>,
) -> Result<Flock<File>> {
    let path = record_path(root, &record.name)?;
    let file = File::open(&path).map_err(|e| Error::file(&path, e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(in_use(&record.name, &users())),
        Err((_, errno)) => Err(Error::file(&path, errno.into())),
    }
}

/// The error for network `name` in use by containers `users`.
pub fn in_use(name: &str, users: &[String]) -> Error {
    Error::InUse(match users {
        [] => format!(
            "network {name} is in use by a container that is starting: try again in a moment"
        ),
        [one] => format!("network {name} is in use by {one}: stop it first"),
        many => format!(
            "network {name} is in use by {}: stop them first",
            many.join(", ")
        ),
    })
}

/// Removes a held network's record (first, so that a run that opened it before sees it gone)
/// and the rest of its state.
pub fn remove(root: &Path, record: &Record, _held: &Flock<File>) -> Result<()> {
    let path = record_path(root, &record.name)?;
    fs::remove_file(&path).map_err(|e| Error::file(&path, e))?;
    forget(root, &record.name)
}

/// The IPv6 subnet of a network with IPv4 `subnet`: `subnet6` checked (see [`check_subnet6`];
/// not overlapping `others`), or with `ipv6` the first free /64 of fd62:6572:7468::/48, or
/// none.
fn settle_subnet6(
    others: &[Neighbour<'_>],
    subnet: Ipv4Net,
    ipv6: bool,
    subnet6: Option<Ipv6Net>,
) -> Result<Option<Ipv6Net>> {
    let overlaps6 = |a: Ipv6Net, b: &Ipv6Net| a.contains(b) || b.contains(&a);
    Ok(match subnet6 {
        Some(subnet6) => {
            check_subnet6(subnet, subnet6)
                .map_err(|reason| Error::Invalid(format!("--subnet6 {reason}")))?;
            let overlapping = others
                .iter()
                .find_map(|n| Some((n, n.subnet6().filter(|o| overlaps6(*o, &subnet6))?)));
            if let Some((other, theirs)) = overlapping {
                return Err(Error::Invalid(format!(
                    "--subnet6 {subnet6} overlaps {}",
                    other.describe(theirs)
                )));
            }
            Some(subnet6)
        }
        None if ipv6 => Some(
            (1..=u16::MAX)
                .map(|n| {
                    let prefix = u128::from(DEFAULT_SUBNET6_BASE) | (u128::from(n) << 64);
                    Ipv6Net::new(prefix.into(), 64).expect("a /64")
                })
                .find(|candidate| {
                    !others
                        .iter()
                        .any(|n| n.subnet6().is_some_and(|o| overlaps6(o, candidate)))
                })
                .ok_or_else(|| Error::Invalid("no free IPv6 /64 left: give --subnet6".into()))?,
        ),
        None => None,
    })
}

/// Checks a network's IPv4 subnet: no host bits, a /29 or larger (a gateway and at least one
/// container), and clear of the ranges no container's address may be in. The reason starts
/// with the subnet.
fn check_subnet(subnet: Ipv4Net) -> std::result::Result<(), String> {
    if subnet.addr() != subnet.network() {
        return Err(format!(
            "{subnet} has host bits set; did you mean {}?",
            subnet.trunc()
        ));
    }
    if subnet.prefix_len() > 29 {
        return Err(format!(
            "{subnet} is too small: a network needs a /29 or larger (a gateway and at least one \
             container)"
        ));
    }
    if let Some((range, what)) = SPECIAL_RANGES
        .iter()
        .map(|(range, what)| (range.parse::<Ipv4Net>().expect("a subnet"), what))
        .find(|(range, _)| overlaps(*range, subnet))
    {
        return Err(format!(
            "{subnet} overlaps {range}, {what}: no container can use such addresses; give a \
             private range, such as 10.30.0.0/24"
        ));
    }
    Ok(())
}

/// The IPv4 ranges that a network's subnet may not overlap (RFC 6890), and what each is.
const SPECIAL_RANGES: [(&str, &str); 5] = [
    ("0.0.0.0/8", "\"this network\""),
    ("127.0.0.0/8", "the loopback range"),
    ("169.254.0.0/16", "the link-local range"),
    ("224.0.0.0/4", "the multicast range"),
    (
        "240.0.0.0/4",
        "the reserved range (with the broadcast address)",
    ),
];

/// Checks that `gateway` is a host address of `subnet`. The reason starts with the gateway.
fn check_gateway(subnet: Ipv4Net, gateway: Ipv4Addr) -> std::result::Result<(), String> {
    if !subnet.contains(&gateway) || gateway == subnet.network() || gateway == subnet.broadcast() {
        return Err(format!("{gateway} is not a host address of {subnet}"));
    }
    Ok(())
}

/// Checks the IPv6 subnet of a network with IPv4 `subnet`: no host bits, a unique local or
/// global unicast prefix no shorter than a /48, and large enough to pair every IPv4 address.
/// The reason starts with the IPv6 subnet.
fn check_subnet6(subnet: Ipv4Net, subnet6: Ipv6Net) -> std::result::Result<(), String> {
    if subnet6.addr() != subnet6.network() {
        return Err(format!(
            "{subnet6} has host bits set; did you mean {}?",
            subnet6.trunc()
        ));
    }
    // A unicast prefix of berth's own: unique local (fc00::/7) or global (2000::/3), and no
    // shorter than a /48, so that it cannot take over the host's routes.
    let first = subnet6.network().segments()[0];
    let unicast = first & 0xfe00 == 0xfc00 || first & 0xe000 == 0x2000;
    if !unicast {
        return Err(format!(
            "{subnet6} is not a unique local (fc00::/7) or global unicast (2000::/3) prefix"
        ));
    }
    if subnet6.prefix_len() < 48 {
        return Err(format!(
            "{subnet6} is larger than a /48: its route would take over the host's own; give a \
             /48 to /64 or smaller, such as fd00:1::/64"
        ));
    }
    // Each container's IPv6 address is its IPv4 one's offset in the IPv6 subnet.
    let needed = 32 - subnet.prefix_len();
    if 128 - subnet6.prefix_len() < needed {
        return Err(format!(
            "{subnet6} is too small for {subnet}: give a /{} or larger (a /64 is usual)",
            128 - needed
        ));
    }
    Ok(())
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// A name for a new network: not one of the built-in ones, and a network's name (see
/// [`check_name`]).
fn check_network_name(name: &str) -> Result<()> {
    if RESERVED.contains(&name) {
        return Err(Error::Invalid(format!(
            "network name {name} is reserved (bridge, default, host and none are built in)"
        )));
    }
    if name == JOINED {
        return Err(Error::Invalid(format!(
            "network name {JOINED} is reserved (a container that joined a network namespace by \
             path is on record as on network {JOINED})"
        )));
    }
    check_name(name)
}

/// A network's name, as every lookup checks it before the name goes near a path: letters,
/// digits, '_', '.', '-', starting with a letter or digit, at most 64.
fn check_name(name: &str) -> Result<()> {
    if is_plain_name(name, 64, u8::is_ascii_alphanumeric) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid network name {name:?}: use letters, digits, '_', '.' and '-', starting \
             with a letter or digit, at most 64 characters"
        )))
    }
}

/// Whether `name` is 1 to `max` letters, digits, '_', '.' and '-', whose first byte passes
/// `first`.
fn is_plain_name(name: &str, max: usize, first: fn(&u8) -> bool) -> bool {
    name.as_bytes().first().is_some_and(first)
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// A bridge's name: one the kernel takes and nft prints plainly (at most 15 bytes of letters,
/// digits, '_', '.' and '-'), and none of berth's container interfaces (`bth*`).
fn check_bridge_name(name: &str) -> std::result::Result<(), String> {
    if !is_plain_name(name, 15, u8::is_ascii_alphabetic) {
        return Err(format!(
            "invalid bridge name {name:?}: at most 15 letters, digits, '_', '.' and '-', \
             starting with a letter"
        ));
    }
    if name.starts_with("bth") {
        return Err(format!(
            "invalid bridge name {name}: names starting with bth are berth's container \
             interfaces"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry root of its own under the temporary directory, removed when dropped.
    struct TempRoot(PathBuf);

    impl TempRoot {
        fn new(test: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("berth-plan-{test}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            TempRoot(path)
        }
    }

    impl Drop for TempRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn request(name: &str) -> Request<'_> {
        Request {
            name,
            subnet: None,
            gateway: None,
            bridge: None,
            internal: false,
            ipv6: false,
            subnet6: None,
        }
    }

    #[test]
    fn network_records_of_earlier_releases_are_read() {
        // tests/fixtures/: written by that build of berth, as it is.
        let record: Record = serde_json::from_str(include_str!(
            "../../../../tests/fixtures/9563353/network-appnet.json"
        ))
        .unwrap();
        assert_eq!(
            (record.name.as_str(), record.bridge.as_str()),
            ("appnet", "berth1")
        );
        assert_eq!(record.subnet.to_string(), "10.202.0.0/16");
        assert_eq!(record.subnet6, None);
        assert!(!record.internal);
    }

    #[test]
    fn a_plan_takes_the_first_free_subnet_gateway_and_bridge() {
        let root = TempRoot::new("first-free");
        let first = plan(&root.0, &request("a"), &[], &[]).unwrap();
        // The default network holds 10.201.0.0/16 and berth0.
        assert_eq!(first.subnet.to_string(), "10.202.0.0/16");
        assert_eq!(first.gateway.to_string(), "10.202.0.1");
        assert_eq!(first.bridge, "berth1");
        assert_eq!(first.subnet6, None);
        record(&root.0, &first).unwrap();
        // The next one steps past the recorded network, and past a host interface's name.
        let second = plan(&root.0, &request("b"), &["berth2".into()], &[]).unwrap();
        assert_eq!(second.subnet.to_string(), "10.203.0.0/16");
        assert_eq!(second.bridge, "berth3");
        let again = plan(&root.0, &request("a"), &[], &[]).unwrap_err();
        assert_eq!(again.to_string(), "network a already exists");
    }

    #[test]
    fn a_plan_refuses_what_another_network_holds() {
        let root = TempRoot::new("refuses");
        let subnet = |text: &str| Request {
            subnet: Some(text.parse().unwrap()),
            ..request("n")
        };
        let overlap = plan(&root.0, &subnet("10.201.128.0/17"), &[], &[]).unwrap_err();
        assert!(
            overlap
                .to_string()
                .starts_with("--subnet 10.201.128.0/17 overlaps "),
            "{overlap}"
        );
        let gateway_alone = Request {
            gateway: Some(Ipv4Addr::new(10, 9, 0, 1)),
            ..request("n")
        };
        assert_eq!(
            plan(&root.0, &gateway_alone, &[], &[])
                .unwrap_err()
                .to_string(),
            "--gateway needs --subnet: give the subnet the gateway is in"
        );
        let outside = Request {
            gateway: Some(Ipv4Addr::new(10, 9, 0, 1)),
            ..subnet("10.8.0.0/16")
        };
        assert!(plan(&root.0, &outside, &[], &[])
            .unwrap_err()
            .to_string()
            .starts_with("--gateway "));
        let taken_bridge = Request {
            bridge: Some("eth0"),
            ..request("n")
        };
        assert_eq!(
            plan(&root.0, &taken_bridge, &["eth0".into()], &[])
                .unwrap_err()
                .to_string(),
            "--bridge eth0: an interface of that name exists already"
        );
        let default_bridge = Request {
            bridge: Some("berth0"),
            ..request("n")
        };
        assert!(plan(&root.0, &default_bridge, &[], &[]).is_err());
        assert!(plan(&root.0, &request("../x"), &[], &[]).is_err());
    }

    #[test]
    fn a_dual_stack_plan_takes_a_free_unique_local_64() {
        let root = TempRoot::new("ipv6");
        let dual = |name| Request {
            ipv6: true,
            ..request(name)
        };
        let first = plan(&root.0, &dual("a"), &[], &[]).unwrap();
        let subnet6 = first
            .subnet6
            .expect("a dual-stack network has an IPv6 subnet");
        assert_eq!(subnet6.prefix_len(), 64);
        assert_eq!(subnet6.addr().segments()[..3], [0xfd62, 0x6572, 0x7468]);
        record(&root.0, &first).unwrap();
        let second = plan(&root.0, &dual("b"), &[], &[]).unwrap();
        assert_ne!(second.subnet6, first.subnet6);
        let clash = Request {
            subnet6: Some(subnet6),
            ..dual("c")
        };
        assert!(plan(&root.0, &clash, &[], &[]).is_err());
    }

    #[test]
    fn only_network_names_are_looked_up() {
        let long = "n".repeat(65);
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "/some/dir",
            "a/b",
            "-x",
            "a b",
            long.as_str(),
        ] {
            assert!(network_dir(Path::new("/r"), bad).is_err(), "{bad:?}");
        }
        for good in ["app", "bridge", "my.net_1-2"] {
            assert_eq!(
                network_dir(Path::new("/r"), good).unwrap(),
                Path::new("/r/networks").join(good)
            );
        }
    }

    #[test]
    fn subnets_touching_special_ranges_are_refused() {
        for bad in [
            "127.0.0.0/24",
            "96.0.0.0/3",
            "0.0.0.0/0",
            "169.254.8.0/24",
            "232.0.0.0/8",
        ] {
            let reason = check_subnet(bad.parse().unwrap()).unwrap_err();
            assert!(reason.contains("overlaps"), "{bad}: {reason}");
        }
        for good in [
            "10.30.0.0/24",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "128.0.0.0/29",
        ] {
            assert_eq!(check_subnet(good.parse().unwrap()), Ok(()), "{good}");
        }
    }

    #[test]
    fn a_record_is_checked_as_create_checks_a_request() {
        let good = Record {
            name: "app".into(),
            bridge: "berth1".into(),
            subnet: "10.30.0.0/24".parse().unwrap(),
            gateway: "10.30.0.1".parse().unwrap(),
            internal: false,
            subnet6: Some("fd00:1::/64".parse().unwrap()),
            created: 0,
        };
        assert_eq!(good.check("app"), Ok(()));
        assert!(good.check("other").is_err());
        let bad = [
            Record {
                bridge: "br\"x".into(),
                ..good.clone()
            },
            Record {
                bridge: "bth0123456789ab".into(),
                ..good.clone()
            },
            Record {
                subnet: "127.0.0.0/24".parse().unwrap(),
                ..good.clone()
            },
            Record {
                gateway: "10.30.0.255".parse().unwrap(),
                ..good.clone()
            },
            Record {
                subnet6: Some("fe80::/64".parse().unwrap()),
                ..good.clone()
            },
        ];
        for record in bad {
            assert!(record.check("app").is_err(), "{record:?}");
        }
    }
}
