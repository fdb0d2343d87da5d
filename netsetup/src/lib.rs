//! netsetup: berth's network library.
//!
//! It knows networks, not processes: the bridge and its gateway address, berth's nftables
//! table, IP leases, veth pairs, the container side of an interface, and the resolv.conf and
//! hosts files. It is handed a network namespace (a pid or an fd) and a spec, and gives back
//! what it made; it never forks, never reads a container's state and never prints, so the
//! same functions serve `berth run` and a CNI plugin.

mod dns;
mod error;
pub mod firewall;
mod ipam;
pub mod netlink;
mod network;
mod veth;

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

pub use ipnet::{IpNet, Ipv4Net, Ipv6Net};

pub use dns::{container_resolv_conf, hosts_file, internal_resolv_conf, MemberHosts};
pub use error::{Error, Result};
pub use firewall::ports::{PortMapping, Protocol};
pub use ipam::{LeaseFile, LeaseOwner};
pub use netlink::{Link, Netlink};
pub use network::NetworkSpec;
pub use veth::{is_network_namespace, mac_for, Namespace};

/// Makes sure `network` is ready for containers: the bridge exists, carries the gateway
/// addresses (a segment's bridge none) and is up; forwarding and the bridge's route_localnet
/// are on where the network needs them (IPv6 forwarding too on a dual-stack network); the
/// network is installed in berth's nftables table. Cheap when all is in place (a few netlink
/// round trips and sysctl reads), idempotent, and safe when many callers race.
///
/// When the network is not installed (the first run, or a firewall reload flushed berth's
/// table), every network that `every_network` lists is installed with it, in one
/// transaction: a flushed table comes back whole, never with one network in it and the
/// others' isolation gone.
///
/// The bridge's alias names the state directory whose lease file hands out its addresses; a
/// bridge that another state directory manages is refused, since two lease files would hand
/// out the same addresses.
pub fn ensure_network(
    netlink: &mut Netlink,
    network: &NetworkSpec,
    state_dir: &Path,
    every_network: impl FnOnce() -> Vec<NetworkSpec>,
) -> Result<Bridge> {
    let owner = bridge_alias(state_dir);
    let bridge = match netlink.link_by_name(&network.bridge)? {
        Some(link) => link,
        None => {
            netlink.create_bridge(&network.bridge, mac_for(network.gateway), &owner)?;
            netlink
                .link_by_name(&network.bridge)?
                .ok_or_else(|| Error::Netlink {
                    op: "look up interface",
                    object: network.bridge.clone(),
                    source: std::io::Error::from_raw_os_error(libc::ENODEV),
                })?
        }
    };
    if bridge.kind != "bridge" {
        return Err(Error::NotABridge {
            name: network.bridge.clone(),
            kind: bridge.kind,
        });
    }
    if let Some(other) = bridge
        .alias
        .as_deref()
        .and_then(|a| a.strip_prefix("berth:"))
    {
        if other != state_dir.display().to_string() {
            // The alias names ROOT/networks/NAME; the user knows ROOT.
            let other = Path::new(other);
            let root = other
                .parent()
                .filter(|p| p.ends_with("networks"))
                .and_then(Path::parent)
                .unwrap_or(other);
            return Err(Error::BridgeOwnedElsewhere {
                bridge: network.bridge.clone(),
                root: root.display().to_string(),
            });
        }
    }
    if network.subnet6.is_some() {
        prepare_ipv6(&network.bridge)?;
    }
    if network.bridge_is_gateway {
        for addr in network.container_addresses(network.gateway) {
            netlink.add_address(bridge.index, &network.bridge, addr)?;
        }
    } else {
        keep_host_off_segment(netlink, bridge.index, &network.bridge)?;
    }
    if !bridge.up {
        netlink.set_up(bridge.index, &network.bridge)?;
    }
    if network.bridge_is_gateway {
        enable_forwarding()?;
        if !network.internal {
            enable_route_localnet(&network.bridge)?;
        }
    }
    // The host heeds no router advertisement from a container (CVE-2020-13401), on any
    // network: one could take over its IPv6 routing. No such file: no IPv6 on this host.
    let accept_ra = format!("/proc/sys/net/ipv6/conf/{}/accept_ra", network.bridge);
    match set_sysctl(&accept_ra, b'0') {
        Err(Error::File { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        other => other?,
    }
    let freshly_installed = !firewall::installed(network)?;
    if freshly_installed {
        if network.bridge_is_gateway {
            // The bridge may have been a segment's (see keep_host_off_segment).
            set_sysctl(&arp_ignore(&network.bridge), b'0')?;
        }
        let mut networks = every_network();
        networks.retain(|other| other.bridge != network.bridge);
        networks.push(network.clone());
        firewall::install(&networks.iter().collect::<Vec<_>>())?;
    }
    Ok(Bridge {
        index: bridge.index,
        freshly_installed,
    })
}

/// A bridge made ready by [`ensure_network`].
#[derive(Debug, Clone, Copy)]
pub struct Bridge {
    /// Its interface index.
    pub index: u32,
    /// Whether the network was (re)installed just now (its first use, or a firewall reload
    /// flushed berth's table, which another user of the table may have made anew since): the
    /// ports that running containers published may be gone and must be published again.
    pub freshly_installed: bool,
}

/// Undoes [`ensure_network`] for a network being removed: its elements leave berth's table,
/// and its bridge is deleted (with any veth still on it) if `state_dir` manages it.
pub fn remove_network(
    netlink: &mut Netlink,
    network: &NetworkSpec,
    state_dir: &Path,
) -> Result<()> {
    firewall::uninstall(&network.bridge)?;
    let ours = netlink
        .link_by_name(&network.bridge)?
        .is_some_and(|link| link.alias.as_deref() == Some(bridge_alias(state_dir).as_str()));
    if ours {
        netlink.delete_link(&network.bridge)?;
    }
    Ok(())
}

/// The alias of a bridge whose addresses the lease file in `state_dir` hands out.
fn bridge_alias(state_dir: &Path) -> String {
    format!("berth:{}", state_dir.display())
}

fn enable_forwarding() -> Result<()> {
    switch_on("/proc/sys/net/ipv4/ip_forward")
}

/// Readies the host for a dual-stack network on `bridge`: IPv6 on for the bridge, and IPv6
/// forwarding on. Turning forwarding on makes the kernel drop the default routes it learned
/// from router advertisements and ignore new ones on every interface whose `accept_ra` is 1:
/// those are set to 2 (accept them even when forwarding) first, so that the host keeps its
/// IPv6 route.
fn prepare_ipv6(bridge: &str) -> Result<()> {
    const CONF: &str = "/proc/sys/net/ipv6/conf";
    if !Path::new(CONF).exists() {
        return Err(Error::Ipv6Unavailable);
    }
    set_sysctl(&format!("{CONF}/{bridge}/disable_ipv6"), b'0')?;
    let forwarding = format!("{CONF}/all/forwarding");
    if fs::read(&forwarding)
        .map_err(|e| Error::file(&forwarding, e))?
        .first()
        == Some(&b'1')
    {
        return Ok(());
    }
    let entries = fs::read_dir(CONF).map_err(|e| Error::file(CONF, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name == "all" || name == "lo" || name.as_encoded_bytes() == bridge.as_bytes() {
            continue;
        }
        let accept_ra = entry.path().join("accept_ra");
        if fs::read(&accept_ra).is_ok_and(|v| v.first() == Some(&b'1')) {
            fs::write(&accept_ra, b"2").map_err(|e| Error::file(&accept_ra, e))?;
        }
    }
    switch_on(&forwarding)
}

/// Writes `value` (one digit) to a sysctl unless it holds it already.
fn set_sysctl(path: &str, value: u8) -> Result<()> {
    let current = fs::read(path).map_err(|e| Error::file(path, e))?;
    if current.first() != Some(&value) {
        fs::write(path, [value]).map_err(|e| Error::file(path, e))?;
    }
    Ok(())
}

/// Keeps the host off a segment's bridge: it holds no address (those an earlier configuration
/// left go, and it makes no IPv6 link-local one), and answers no ARP request for the host's
/// other addresses.
fn keep_host_off_segment(netlink: &mut Netlink, index: u32, bridge: &str) -> Result<()> {
    netlink.no_ipv6_link_local(index, bridge)?;
    for addr in netlink.addresses(index, bridge)? {
        netlink.delete_address(index, bridge, addr)?;
    }
    set_sysctl(&arp_ignore(bridge), b'8')
}

/// The sysctl that says which ARP requests arriving on `bridge` the host answers.
fn arp_ignore(bridge: &str) -> String {
    format!("/proc/sys/net/ipv4/conf/{bridge}/arp_ignore")
}

/// Lets the bridge carry packets from 127.0.0.1: the host's own connections to a port
/// published on its loopback are sent on to a container (and masqueraded on the way).
/// berth's table drops packets for 127.0.0.0/8 that arrive on a bridge.
fn enable_route_localnet(bridge: &str) -> Result<()> {
    switch_on(&format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"))
}

/// Writes 1 to a boolean sysctl unless it is 1 already.
fn switch_on(path: &str) -> Result<()> {
    set_sysctl(path, b'1')
}

/// The host-side name of a container's veth: `bth` and the first 12 characters of its id.
pub fn host_interface_name(container_id: &str) -> String {
    let short: String = container_id.chars().take(12).collect();
    format!("bth{short}")
}

/// The host-side name of the veth of an attachment (a CNI plugin's: a container's interface):
/// `bcni` and 11 hex digits of a hash of the container id and the interface name. Another
/// prefix than [`host_interface_name`]'s, so that `berth gc`, which removes `bth*` veths that
/// no container of its own accounts for, never takes one.
pub fn attachment_host_interface(container: &str, interface: &str) -> String {
    // FNV-1a, 64 bits: stable across builds and machines (the name must be found again by DEL).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in container.bytes().chain([b'/']).chain(interface.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("bcni{:011x}", hash >> 20)
}

/// Wires a container into the network: a veth pair whose host end `host_name` is on the bridge
/// and up, and whose peer is born in `namespace` as `container_interface`, with the MAC derived
/// from `addr`. The peer is configured from inside by [`configure_container_interface`].
pub fn attach(
    netlink: &mut Netlink,
    bridge_index: u32,
    host_name: &str,
    container_interface: &str,
    addr: Ipv4Addr,
    namespace: Namespace<'_>,
) -> Result<()> {
    veth::create_pair(
        netlink,
        host_name,
        bridge_index,
        container_interface,
        mac_for(addr),
        namespace,
    )
}

/// Brings `lo` up; `netlink` must have been opened inside the namespace.
pub fn loopback_up(netlink: &mut Netlink) -> Result<()> {
    // `lo` is always interface 1 of a network namespace.
    netlink.set_up(1, "lo")
}

/// Configures a container's interface from inside its namespace (`netlink` opened there): no
/// IPv6 link-local address (see [`Netlink::no_ipv6_link_local`]), up, its addresses, and a
/// default route through each of `gateways`. (Router advertisements that other containers
/// forge never reach it: berth's `bridge` table drops them.)
pub fn configure_container_interface(
    netlink: &mut Netlink,
    interface: &str,
    addresses: &[IpNet],
    gateways: &[IpAddr],
) -> Result<()> {
    // Looked up over `netlink`, so that the interface is found in the socket's namespace
    // whichever namespace the calling thread is in.
    let index = netlink
        .link_by_name(interface)?
        .ok_or_else(|| Error::Netlink {
            op: "look up interface",
            object: interface.into(),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        })?
        .index;
    netlink.no_ipv6_link_local(index, interface)?;
    netlink.set_up(index, interface)?;
    for addr in addresses {
        netlink.add_address(index, interface, *addr)?;
    }
    for gateway in gateways {
        netlink.add_default_route(index, interface, *gateway)?;
    }
    Ok(())
}

/// Checks a container's interface from inside its namespace (`netlink` opened there): it
/// exists and is up, holds each of `addresses`, and has a default route through each of
/// `gateways` (what [`configure_container_interface`] made). The error names what is wrong.
pub fn check_container_interface(
    netlink: &mut Netlink,
    interface: &str,
    addresses: &[IpNet],
    gateways: &[IpAddr],
) -> Result<()> {
    let wrong = |what: String| Error::AttachmentWrong {
        interface: interface.into(),
        what,
    };
    let link = netlink
        .link_by_name(interface)?
        .ok_or_else(|| wrong("there is no such interface".into()))?;
    if !link.up {
        return Err(wrong("it is down".into()));
    }
    let held = netlink.addresses(link.index, interface)?;
    for addr in addresses {
        if !held.contains(addr) {
            return Err(wrong(format!("address {addr} is missing")));
        }
    }
    let routes = netlink.default_gateways(link.index, interface)?;
    for gateway in gateways {
        if !routes.contains(gateway) {
            return Err(wrong(format!("the default route via {gateway} is missing")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_names_fit_and_differ() {
        let a = attachment_host_interface("c1", "eth0");
        assert_eq!(a.len(), 15, "{a}");
        assert!(a.starts_with("bcni"));
        assert_eq!(a, attachment_host_interface("c1", "eth0"));
        assert_ne!(a, attachment_host_interface("c1", "eth1"));
        assert_ne!(a, attachment_host_interface("c2", "eth0"));
    }
}
