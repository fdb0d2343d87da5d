//! berth's one nftables table: masquerade for the subnets it manages, forward accepts,
//! isolation between its networks, and published ports.
//!
//! The table and its networks are installed by a script handed to `nft`; every later run only
//! asks the kernel over netlink whether its network's marker is still there, and adds or
//! removes its published ports as map elements over netlink (see [`ports`]): no process.

use std::collections::HashSet;
use std::io;

use crate::network::NetworkSpec;
use crate::{Error, Ipv4Net, Ipv6Net, Result};

use nfnl::{
    attributes_of, be_u32, c_string, Message, NFPROTO_INET, NFPROTO_IPV4, NFTA_CHAIN_HOOK,
    NFTA_CHAIN_NAME, NFTA_CHAIN_POLICY, NFTA_CHAIN_TABLE, NFTA_HOOK_HOOKNUM, NFT_MSG_GETCHAIN,
    NFT_MSG_GETRULE, NF_DROP, NF_INET_FORWARD,
};

mod nfnl;
pub mod ports;

pub use nfnl::{take_socket, RELEASE_AFTER};

/// The name of berth's table (family `inet`).
pub const TABLE: &str = "berth";

/// A base chain of another table that drops forwarded packets unless a rule accepts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardDrop {
    /// The table's family: `ip`, `ip6` or `inet`.
    pub family: &'static str,
    /// The table.
    pub table: String,
    /// The chain.
    pub chain: String,
}

impl ForwardDrop {
    /// What this chain does to containers on `bridge`, and what to run about it.
    pub fn warning(&self, bridge: &str) -> String {
        format!(
            "chain {} of table {} {} drops forwarded packets by default, so containers on \
             {bridge} cannot reach beyond this host; to let them: {}",
            self.chain,
            self.family,
            self.table,
            self.remedy(bridge)
        )
    }

    /// What to run so that the bridge's traffic passes this chain: what leaves it, the replies,
    /// and connections to its published ports.
    pub fn remedy(&self, bridge: &str) -> String {
        let (family, table, chain) = (self.family, &self.table, &self.chain);
        format!(
            "nft insert rule {family} {table} {chain} iifname {bridge} accept; \
             nft insert rule {family} {table} {chain} oifname {bridge} ct state established,related accept; \
             nft insert rule {family} {table} {chain} oifname {bridge} ct status dnat accept"
        )
    }
}

/// Lists the forward-hook base chains of other `ip` and `inet` tables whose policy is drop
/// (docker's and ufw's `FORWARD DROP` through iptables-nft) and none of whose rules names
/// `bridge`: an accept in berth's table does not override them. One netlink dump when there
/// are none. Not seen: `ip6` tables (whose drop policy a dual-stack network's IPv6 traffic
/// meets), iptables-legacy rules, a final reject rule, accepts in a chain that the forward
/// chain jumps to (a rule that names the bridge counts as handled, whatever it does).
pub fn forward_drop_chains(bridge: &str) -> Result<Vec<ForwardDrop>> {
    dump_forward_drops(bridge).map_err(|source| Error::Netlink {
        op: "list",
        object: "nftables chains".into(),
        source,
    })
}

fn dump_forward_drops(bridge: &str) -> io::Result<Vec<ForwardDrop>> {
    let mut found = Vec::new();
    nfnl::dump(
        Message::new(NFT_MSG_GETCHAIN, 0, 0),
        |family, attributes| {
            found.extend(forward_drop(family, attributes));
        },
    )?;
    // A chain whose rules already name the bridge was taken care of (by berth's remedy, say).
    let mut open = Vec::new();
    for chain in found {
        if !chain_rules_mention(&chain, bridge)? {
            open.push(chain);
        }
    }
    Ok(open)
}

/// Whether any rule of `chain` carries the bytes of `name` (an interface match on it).
fn chain_rules_mention(chain: &ForwardDrop, name: &str) -> io::Result<bool> {
    const NFTA_RULE_TABLE: u16 = 1;
    const NFTA_RULE_CHAIN: u16 = 2;
    let family = if chain.family == "inet" {
        NFPROTO_INET
    } else {
        NFPROTO_IPV4
    };
    let mut found = false;
    let request = Message::new(NFT_MSG_GETRULE, 0, family)
        .string(NFTA_RULE_TABLE, &chain.table)
        .string(NFTA_RULE_CHAIN, &chain.chain);
    nfnl::dump(request, |_, attributes| {
        found |= attributes
            .windows(name.len() + 1)
            .any(|w| &w[..name.len()] == name.as_bytes() && w[name.len()] == 0);
    })?;
    Ok(found)
}

/// The chain described by `attributes` (of a table of `family`), if it is a forward-hook base
/// chain with a drop policy in a table other than berth's.
fn forward_drop(family: u8, attributes: &[u8]) -> Option<ForwardDrop> {
    // `inet` and `ip` tables only: an `ip6` table's drop policy, which a dual-stack network's
    // IPv6 traffic meets, is not reported (yet).
    let family = match family {
        NFPROTO_INET => "inet",
        NFPROTO_IPV4 => "ip",
        _ => return None,
    };
    let (mut table, mut chain, mut hook, mut policy) = (None, None, None, None);
    for (kind, value) in attributes_of(attributes) {
        match kind {
            NFTA_CHAIN_TABLE => table = c_string(value),
            NFTA_CHAIN_NAME => chain = c_string(value),
            NFTA_CHAIN_POLICY => policy = be_u32(value),
            NFTA_CHAIN_HOOK => {
                hook = attributes_of(value)
                    .find(|(kind, _)| *kind == NFTA_HOOK_HOOKNUM)
                    .and_then(|(_, v)| be_u32(v))
            }
            _ => {}
        }
    }
    let table = table?;
    (hook? == NF_INET_FORWARD && policy? == NF_DROP && !(family == "inet" && table == TABLE)).then(
        || ForwardDrop {
            family,
            table,
            chain: chain.unwrap_or_default(),
        },
    )
}

/// Whether `network` is installed in berth's table (its marker chain exists, and so its set
/// elements, which come in the same transaction). One netlink round trip, no process.
pub fn installed(network: &NetworkSpec) -> Result<bool> {
    let marker = InstalledNetwork::of(network).marker();
    let request = Message::new(NFT_MSG_GETCHAIN, 0, NFPROTO_INET)
        .string(NFTA_CHAIN_TABLE, TABLE)
        .string(NFTA_CHAIN_NAME, &marker);
    exists(
        request,
        "look up nftables chain",
        &format!("inet {TABLE} {marker}"),
    )
}

/// Whether the nftables object that `request` asks for exists (`op` and `object` name it in
/// an error).
fn exists(request: Message, op: &'static str, object: &str) -> Result<bool> {
    nfnl::get(request)
        .map(|found| found.is_some())
        .map_err(|source| Error::Netlink {
            op,
            object: object.to_owned(),
            source,
        })
}

/// Installs `networks` in berth's table, making the table if it is missing: one transaction,
/// idempotent, and safe when many callers race. The table's rules are a fixed handful that
/// look networks up in sets; a network is only elements of those sets:
///
/// - `bridges`: every berth bridge. Forwarded packets from one to another are dropped (networks
///   are isolated), those from a bridge out are accepted, and replies back in.
/// - `same_bridge`: `bridge . bridge` pairs, accepted before that drop (hairpin traffic).
/// - `internal`: bridges of internal networks, whose traffic never leaves the host.
/// - `segments`: bridges that hold no address of the host's (a CNI network with
///   `isGateway: false`): what comes in from one for the host itself is dropped. They are not
///   in `bridges`, whose source check would drop what br_netfilter hands the inet hooks from
///   one container to another (the host has no route back to a segment), but in `internal`
///   and `same_bridge`, so nothing is routed in or out.
/// - `masq_subnets` and `masq_subnets6`: the IPv4 and IPv6 subnets whose traffic is
///   masqueraded when it leaves by another interface.
///
/// An empty chain named after the network's subnets, kind and bridge (see
/// [`InstalledNetwork::marker`]) marks it as installed (see [`installed`]) and says which
/// elements are its own.
pub fn install(networks: &[&NetworkSpec]) -> Result<()> {
    apply(&table_script(networks, false))
}

/// Replaces berth's table by a fresh one holding `networks` (after a firewall reload flushed
/// it, say), in one transaction. Networks installed on other bridges (a CNI plugin's, which
/// `networks` does not know) are kept, and so are the ports whose owner starts with
/// `keep_owners`.
pub fn reinstall(networks: &[&NetworkSpec], keep_owners: &str) -> Result<()> {
    let bridges: Vec<&str> = networks.iter().map(|n| n.bridge.as_str()).collect();
    let others: Vec<InstalledNetwork> = markers()?
        .iter()
        .filter_map(|marker| InstalledNetwork::from_marker(marker))
        .filter(|other| !bridges.contains(&other.bridge.as_str()))
        .collect();
    let mut kept_ports: Vec<(String, Vec<ports::PortMapping>)> = Vec::new();
    for port in ports::published()? {
        if !port.owner.starts_with(keep_owners) {
            continue;
        }
        match kept_ports
            .iter_mut()
            .find(|(owner, _)| *owner == port.owner)
        {
            Some((_, mappings)) => mappings.push(port.mapping),
            None => kept_ports.push((port.owner, vec![port.mapping])),
        }
    }
    let mut script = table_script(networks, true);
    for other in &others {
        script += &installed_script(other);
    }
    apply(&script)?;
    for (owner, mappings) in kept_ports {
        ports::publish(&mappings, &owner, |_| false)?;
    }
    Ok(())
}

/// Removes from berth's table every network installed on `bridge` (its elements and marker),
/// whatever its subnet; nothing to do when there is none. An element that a network on
/// another bridge also accounts for (the masquerade element of a subnet that two networks
/// share, say, a berth-cni one among them) stays.
pub fn uninstall(bridge: &str) -> Result<()> {
    let networks: Vec<(InstalledNetwork, String)> = markers()?
        .into_iter()
        .filter_map(|marker| Some((InstalledNetwork::from_marker(&marker)?, marker)))
        .collect();
    let mut kept: HashSet<(&str, String)> = networks
        .iter()
        .filter(|(network, _)| network.bridge != bridge)
        .flat_map(|(network, _)| network.elements())
        .collect();
    let mut script = String::new();
    for (network, marker) in networks.iter().filter(|(n, _)| n.bridge == bridge) {
        for (set, element) in network.elements() {
            // Each once, though two markers (an old berth's and this one's) name it.
            if kept.insert((set, element.clone())) {
                script += &format!("delete element inet {TABLE} {set} {{ {element} }}\n");
            }
        }
        script += &format!("delete chain inet {TABLE} {marker}\n");
    }
    if script.is_empty() {
        return Ok(());
    }
    apply(&script)
}

/// The networks installed in berth's table, by their markers (none when there is no table).
/// One netlink dump, no process.
pub fn installed_networks() -> Result<Vec<InstalledNetwork>> {
    Ok(markers()?
        .iter()
        .filter_map(|marker| InstalledNetwork::from_marker(marker))
        .collect())
}

/// The names of the marker chains in berth's table (none when there is no table).
fn markers() -> Result<Vec<String>> {
    let mut names = Vec::new();
    let listed = nfnl::dump(
        Message::new(NFT_MSG_GETCHAIN, 0, NFPROTO_INET).string(NFTA_CHAIN_TABLE, TABLE),
        |_, attributes| {
            let (mut table, mut name) = (None, None);
            for (kind, value) in attributes_of(attributes) {
                match kind {
                    NFTA_CHAIN_TABLE => table = c_string(value),
                    NFTA_CHAIN_NAME => name = c_string(value),
                    _ => {}
                }
            }
            if let (Some(TABLE), Some(name)) = (table.as_deref(), name) {
                if MARKER_PREFIXES.iter().any(|p| name.starts_with(p)) {
                    names.push(name);
                }
            }
        },
    );
    match listed {
        Ok(()) => Ok(names),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(Vec::new()),
        Err(source) => Err(Error::Netlink {
            op: "list",
            object: format!("chains of inet {TABLE}"),
            source,
        }),
    }
}

/// The prefix of this version's network markers: a table whose rules an older berth made
/// lacks them, and so is made anew (its base chains refilled) by the first run.
const MARKER_PREFIX: &str = "net2/";
/// The prefixes of the markers this version and older ones made: all are read back (by
/// [`uninstall`], [`reinstall`] and [`installed_networks`]), though only this version's counts
/// for [`installed`].
const MARKER_PREFIXES: [&str; 2] = [MARKER_PREFIX, "net/"];

/// A network installed in berth's table, as its marker chain says (made by berth, by another
/// berth root, or by berth-cni): its bridge, its subnets and the elements that are its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledNetwork {
    /// Its bridge.
    pub bridge: String,
    /// Its IPv4 subnet.
    pub subnet: Ipv4Net,
    kind: Kind,
    /// Its IPv6 subnet, on a dual-stack network.
    pub subnet6: Option<Ipv6Net>,
}

/// How a network's traffic is treated, a letter in its marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `x`: what leaves the host is masqueraded.
    Masqueraded,
    /// `i`: nothing is routed in or out; the bridge is the containers' gateway.
    Internal,
    /// `r`: routed as it is, not masqueraded.
    Routed,
    /// `s`: the bridge holds no address of the host's; the containers reach only each other.
    Segment,
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::Masqueraded,
        Kind::Internal,
        Kind::Routed,
        Kind::Segment,
    ];

    fn of(network: &NetworkSpec) -> Kind {
        if !network.bridge_is_gateway {
            Kind::Segment
        } else if network.internal {
            Kind::Internal
        } else if network.masquerade {
            Kind::Masqueraded
        } else {
            Kind::Routed
        }
    }

    fn letter(self) -> &'static str {
        match self {
            Kind::Masqueraded => "x",
            Kind::Internal => "i",
            Kind::Routed => "r",
            Kind::Segment => "s",
        }
    }

    fn from_letter(letter: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.letter() == letter)
    }
}

impl InstalledNetwork {
    fn of(network: &NetworkSpec) -> Self {
        InstalledNetwork {
            bridge: network.bridge.clone(),
            subnet: network.subnet,
            kind: Kind::of(network),
            subnet6: network.subnet6,
        }
    }

    /// The name of its marker chain: `net2/SUBNET/PREFIX/x|i|r|s/BRIDGE`, or on a dual-stack
    /// network `net2/SUBNET/PREFIX/x|i|r|s/SUBNET6/PREFIX6/BRIDGE` with SUBNET6 in 32 hex
    /// digits (nft's names take no ':'), the letter its kind. A bridge name holds no '/', so it
    /// can come last.
    pub fn marker(&self) -> String {
        let ipv6 = self.subnet6.map_or(String::new(), |net| {
            format!("{:032x}/{}/", u128::from(net.network()), net.prefix_len())
        });
        format!(
            "{MARKER_PREFIX}{}/{}/{}/{ipv6}{}",
            self.subnet.network(),
            self.subnet.prefix_len(),
            self.kind.letter(),
            self.bridge
        )
    }

    fn from_marker(name: &str) -> Option<Self> {
        let rest = MARKER_PREFIXES.iter().find_map(|p| name.strip_prefix(p))?;
        let mut parts = rest.splitn(4, '/');
        let addr: std::net::Ipv4Addr = parts.next()?.parse().ok()?;
        let prefix: u8 = parts.next()?.parse().ok()?;
        let kind = Kind::from_letter(parts.next()?)?;
        let rest: Vec<&str> = parts.next()?.split('/').collect();
        let (subnet6, bridge) = match rest[..] {
            [bridge] => (None, bridge),
            [hex, prefix6, bridge] => {
                let addr6 = std::net::Ipv6Addr::from(u128::from_str_radix(hex, 16).ok()?);
                (
                    Some(Ipv6Net::new(addr6, prefix6.parse().ok()?).ok()?),
                    bridge,
                )
            }
            _ => return None,
        };
        Some(InstalledNetwork {
            subnet: Ipv4Net::new(addr, prefix).ok()?,
            kind,
            subnet6,
            bridge: bridge.to_owned(),
        })
    }

    /// The set elements that stand for the network in berth's table.
    fn elements(&self) -> Vec<(&'static str, String)> {
        let bridge = format!("\"{}\"", self.bridge);
        let mut elements = vec![("same_bridge", format!("{bridge} . {bridge}"))];
        match self.kind {
            Kind::Segment => {
                elements.push(("internal", bridge.clone()));
                elements.push(("segments", bridge));
            }
            Kind::Internal => {
                elements.push(("bridges", bridge.clone()));
                elements.push(("internal", bridge));
            }
            Kind::Routed => elements.push(("bridges", bridge)),
            Kind::Masqueraded => {
                elements.push(("bridges", bridge));
                elements.push(("masq_subnets", self.subnet.trunc().to_string()));
                if let Some(subnet6) = self.subnet6 {
                    elements.push(("masq_subnets6", subnet6.trunc().to_string()));
                }
            }
        }
        elements
    }
}

/// berth's table: its sets, maps, chains and the fixed handful of rules. Adding a set, map
/// or chain that exists keeps it (and its elements); the base chains are flushed and refilled,
/// so the rules never double.
const TABLE_SCRIPT: &str = r#"
add table inet berth
add set inet berth bridges { type ifname; }
add set inet berth same_bridge { type ifname . ifname; }
add set inet berth internal { type ifname; }
add set inet berth segments { type ifname; }
add set inet berth masq_subnets { type ipv4_addr; flags interval; }
add set inet berth masq_subnets6 { type ipv6_addr; flags interval; }
add map inet berth ports_any { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet berth ports_at { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet berth ports6_any { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet berth ports6_at { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }

add chain inet berth guard { type filter hook prerouting priority -300; policy accept; }
add chain inet berth prerouting { type nat hook prerouting priority -100; policy accept; }
add chain inet berth output { type nat hook output priority -100; policy accept; }
add chain inet berth postrouting { type nat hook postrouting priority 100; policy accept; }
add chain inet berth forward { type filter hook forward priority 0; policy accept; }
add chain inet berth input { type filter hook input priority 0; policy accept; }
flush chain inet berth guard
flush chain inet berth prerouting
flush chain inet berth output
flush chain inet berth postrouting
flush chain inet berth forward
flush chain inet berth input

# berth's bridges take packets for 127.0.0.0/8 (route_localnet, so that the host's own
# connections to 127.0.0.1 reach published ports): none may come in from a container, to or
# from such an address.
add rule inet berth guard iifname @bridges ip daddr 127.0.0.0/8 drop
add rule inet berth guard iifname @bridges ip saddr 127.0.0.0/8 drop
# Nor may a container send from an address that does not lead back to its bridge (a forged
# source, or IPv6 from a network that has none).
add rule inet berth guard iifname @bridges fib saddr . iif oif missing drop

# Published ports. Packets for 127.0.0.0/8 from outside are never translated (moby#41872): a
# port published on the loopback is the host's own.
add rule inet berth prerouting ip daddr 127.0.0.0/8 return
add rule inet berth prerouting fib daddr type local dnat ip to meta l4proto . th dport map @ports_any
add rule inet berth prerouting fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @ports_at
add rule inet berth output fib daddr type local dnat ip to meta l4proto . th dport map @ports_any
add rule inet berth output fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @ports_at
# The same for IPv6, but for ::1: a packet from ::1 cannot leave the host (IPv6 has no
# route_localnet), so the host reaches its IPv6 published ports on its other addresses.
add rule inet berth prerouting ip6 daddr ::1 return
add rule inet berth prerouting fib daddr type local dnat ip6 to meta l4proto . th dport map @ports6_any
add rule inet berth prerouting fib daddr type local dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports6_at
add rule inet berth output ip6 daddr ::1 return
add rule inet berth output fib daddr type local dnat ip6 to meta l4proto . th dport map @ports6_any
add rule inet berth output fib daddr type local dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports6_at

# What leaves a masqueraded subnet by an interface that is not a berth bridge.
add rule inet berth postrouting ip saddr @masq_subnets oifname != @bridges masquerade
add rule inet berth postrouting ip6 saddr @masq_subnets6 oifname != @bridges masquerade
# The host's connections from 127.0.0.1 to a published port: a container cannot answer those.
add rule inet berth postrouting oifname @bridges ip saddr 127.0.0.0/8 masquerade
# A container's connection to a published port (hairpin): the answer must come back through
# the host, not straight from the container that publishes it.
add rule inet berth postrouting ct status dnat oifname @bridges ip saddr @masq_subnets masquerade
add rule inet berth postrouting ct status dnat oifname @bridges ip6 saddr @masq_subnets6 masquerade

# Routed within one bridge (hairpin): allowed.
add rule inet berth forward iifname . oifname @same_bridge accept
# In or out of an internal network: dropped.
add rule inet berth forward iifname @internal drop
add rule inet berth forward oifname @internal drop
# To a published port: allowed from anywhere, other networks included.
add rule inet berth forward oifname @bridges ct status dnat accept
# From one network to another: dropped.
add rule inet berth forward iifname @bridges oifname @bridges drop
# Out of a network, and the replies back in.
add rule inet berth forward iifname @bridges accept
add rule inet berth forward oifname @bridges ct state established,related accept
# Nothing else gets in: not even a neighbour that routes a subnet through the host
# (moby#45610); containers are reached through published ports.
add rule inet berth forward oifname @bridges drop

# A segment's containers reach each other, never the host.
add rule inet berth input iifname @segments drop

# Between containers on one bridge, frames reach the inet hooks only through br_netfilter
# (where `same_bridge` accepts them). Here a container may not send router advertisements
# or redirects to the others (CVE-2020-13401), whatever its capabilities, nor VLAN-tagged
# frames (which would carry them past these rules).
add table bridge berth
add chain bridge berth forward { type filter hook forward priority 0; policy accept; }
flush chain bridge berth forward
add rule bridge berth forward iifname "bth*" ether type { 8021q, 8021ad } drop
add rule bridge berth forward iifname "bth*" icmpv6 type { nd-router-advert, nd-redirect } drop
add rule bridge berth forward iifname "bth*" icmp type redirect drop
# The same for the veths of berth-cni's attachments.
add rule bridge berth forward iifname "bcni*" ether type { 8021q, 8021ad } drop
add rule bridge berth forward iifname "bcni*" icmpv6 type { nd-router-advert, nd-redirect } drop
add rule bridge berth forward iifname "bcni*" icmp type redirect drop
"#;

/// The script that makes (or with `replace`, remakes) berth's table and installs `networks`
/// in it, as one transaction.
fn table_script(networks: &[&NetworkSpec], replace: bool) -> String {
    let mut script = String::new();
    if replace {
        // `add` then `delete` works whether or not the table exists.
        for family in ["inet", "bridge"] {
            script += &format!("add table {family} {TABLE}\ndelete table {family} {TABLE}\n");
        }
    }
    script += TABLE_SCRIPT;
    for network in networks {
        script += &installed_script(&InstalledNetwork::of(network));
    }
    script
}

/// The lines that install one network: its elements and its marker.
fn installed_script(installed: &InstalledNetwork) -> String {
    let mut script = String::new();
    for (set, element) in installed.elements() {
        script += &format!("add element inet {TABLE} {set} {{ {element} }}\n");
    }
    script + &format!("add chain inet {TABLE} {}\n", installed.marker())
}

/// Hands a script to `nft -f -` (one transaction) and returns nft's own message when it
/// refuses.
///
/// Text, not nft's JSON: nft 1.0.6 (Debian 12) crashes on a JSON rule that looks up a map
/// whose data is a concatenation, which the published ports need.
fn apply(script: &str) -> Result<()> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut nft = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Nftables(format!("cannot run nft: {e}; install nftables")))?;
    let written = nft
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(script.as_bytes()));
    let output = nft
        .wait_with_output()
        .map_err(|e| Error::Nftables(format!("nft: {e}")))?;
    if let Some(Err(e)) = written {
        return Err(Error::Nftables(format!("writing to nft: {e}")));
    }
    if output.status.success() {
        return Ok(());
    }
    let message = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    // A kernel without nf_tables' NAT refuses the masquerade rule with one of these.
    let hint = if message.contains("No such file or directory") || message.contains("not supported")
    {
        " (does the kernel have nf_tables with NAT: modprobe nft_masq?)"
    } else {
        ""
    };
    Err(Error::Nftables(format!(
        "nft could not change table inet {TABLE}: {message}{hint}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_marker_reads_back_as_written() {
        for kind in Kind::ALL {
            for subnet6 in [None, Some("fd00:1::/64".parse().unwrap())] {
                let installed = InstalledNetwork {
                    bridge: "br-x.1".into(),
                    subnet: "10.9.0.0/24".parse().unwrap(),
                    kind,
                    subnet6,
                };
                let read = InstalledNetwork::from_marker(&installed.marker()).expect("a marker");
                assert_eq!(read.marker(), installed.marker());
                assert_eq!(read.kind, kind);
                assert_eq!(read.elements(), installed.elements());
            }
        }
        // Only a segment's bridge is left out of `bridges`.
        let segment = InstalledNetwork::from_marker("net2/10.9.0.0/24/s/seg0").expect("a marker");
        let sets: Vec<&str> = segment.elements().iter().map(|(set, _)| *set).collect();
        assert_eq!(sets, ["same_bridge", "internal", "segments"]);
    }
}
