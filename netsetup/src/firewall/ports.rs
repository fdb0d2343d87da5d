//! Published ports: elements of four maps in berth's table, two for each address family,
//! looked up by a fixed handful of rules however many ports are published.
//!
//! - `ports_any` (`inet_proto . inet_service : ipv4_addr . inet_service`): ports published on
//!   every address of the host.
//! - `ports_at` (`ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service`): ports
//!   published on one address.
//! - `ports6_any` and `ports6_at`: the same for IPv6.
//!
//! Each element carries its owner in its comment. Elements are added and removed over
//! netlink, in one transaction per container, without running `nft`.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::nfnl::{
    self, attribute, attributes_of, Message, NFPROTO_INET, NFT_MSG_DELSETELEM, NFT_MSG_GETSETELEM,
    NFT_MSG_NEWSETELEM, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
};
use super::TABLE;
use crate::{Error, Result};

/// The map of ports published on every IPv4 address of the host.
pub const PORTS_ANY: &str = "ports_any";
/// The map of ports published on one IPv4 address.
pub const PORTS_AT: &str = "ports_at";
/// The map of ports published on every IPv6 address of the host.
pub const PORTS6_ANY: &str = "ports6_any";
/// The map of ports published on one IPv6 address.
pub const PORTS6_AT: &str = "ports6_at";
const MAPS: [&str; 4] = [PORTS_ANY, PORTS_AT, PORTS6_ANY, PORTS6_AT];

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_USERDATA: u16 = 6;
const NFTA_DATA_VALUE: u16 = 1;
/// The type of a comment in an element's user data (what `nft` shows as `comment`).
const UDATA_COMMENT: u8 = 0;

/// A transport protocol a port is published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    fn number(self) -> u8 {
        match self {
            Protocol::Tcp => libc::IPPROTO_TCP as u8,
            Protocol::Udp => libc::IPPROTO_UDP as u8,
        }
    }

    fn from_number(number: u8) -> Option<Self> {
        match i32::from(number) {
            libc::IPPROTO_TCP => Some(Protocol::Tcp),
            libc::IPPROTO_UDP => Some(Protocol::Udp),
            _ => None,
        }
    }

    /// `tcp` or `udp`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One published port: what arrives for `host_port` (on `host_ip`, or on any address of the
/// host of `container_ip`'s family when it is `None`) goes to `container_ip:container_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// The protocol.
    pub protocol: Protocol,
    /// The host address it is published on; `None`: every address of the family (127.0.0.1
    /// included, ::1 not).
    pub host_ip: Option<IpAddr>,
    /// The host's port.
    pub host_port: u16,
    /// The container's address.
    pub container_ip: IpAddr,
    /// The container's port.
    pub container_port: u16,
}

impl fmt::Display for PortMapping {
    /// docker's form: `0.0.0.0:8080->80/tcp`, `[::]:8080->80/tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}->{}/{}",
            self.host_address(),
            self.container_port,
            self.protocol
        )
    }
}

impl PortMapping {
    /// `0.0.0.0:8080/tcp`, `[::1]:8080/udp`: the published port as the host sees it.
    pub fn host_side(&self) -> String {
        format!("{}/{}", self.host_address(), self.protocol)
    }

    /// This mapping and the `count - 1` that follow it port by port, in docker's form:
    /// `0.0.0.0:9000-9003->9000-9003/tcp`.
    pub fn describe_run(&self, count: u16) -> String {
        if count <= 1 {
            return self.to_string();
        }
        format!(
            "{}-{}->{}-{}/{}",
            self.host_address(),
            self.host_port.saturating_add(count - 1),
            self.container_port,
            self.container_port.saturating_add(count - 1),
            self.protocol
        )
    }

    /// Whether `next` continues this mapping port by port (a range, one to one).
    pub fn continued_by(&self, next: &PortMapping) -> bool {
        self.protocol == next.protocol
            && self.host_ip == next.host_ip
            && self.container_ip == next.container_ip
            && self.host_port.checked_add(1) == Some(next.host_port)
            && self.container_port.checked_add(1) == Some(next.container_port)
    }

    fn host_address(&self) -> String {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => format!("[{ip}]:{}", self.host_port),
            Some(IpAddr::V4(ip)) => format!("{ip}:{}", self.host_port),
            None if self.container_ip.is_ipv6() => format!("[::]:{}", self.host_port),
            None => format!("0.0.0.0:{}", self.host_port),
        }
    }

    fn map(&self) -> &'static str {
        match (self.container_ip.is_ipv6(), self.host_ip.is_some()) {
            (false, false) => PORTS_ANY,
            (false, true) => PORTS_AT,
            (true, false) => PORTS6_ANY,
            (true, true) => PORTS6_AT,
        }
    }

    /// The element's key as the kernel holds it: each field of the concatenation in whole
    /// 32-bit registers, in network order.
    fn key(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(24);
        if let Some(ip) = self.host_ip {
            key.extend_from_slice(&octets(ip));
        }
        key.extend_from_slice(&[self.protocol.number(), 0, 0, 0]);
        key.extend_from_slice(&self.host_port.to_be_bytes());
        key.extend_from_slice(&[0, 0]);
        key
    }

    /// The element's data: the container's address and port.
    fn data(&self) -> Vec<u8> {
        let mut data = octets(self.container_ip);
        data.extend_from_slice(&self.container_port.to_be_bytes());
        data.extend_from_slice(&[0, 0]);
        data
    }

    /// The mapping an element of `map` with `key` and `data` stands for.
    fn from_element(map: &str, key: &[u8], data: &[u8]) -> Option<Self> {
        let address_length = if map.starts_with("ports6") { 16 } else { 4 };
        let (host_ip, rest) = match map {
            PORTS_AT | PORTS6_AT => (
                Some(address(key.get(..address_length)?)?),
                &key[address_length..],
            ),
            _ => (None, key),
        };
        if rest.len() != 8 || data.len() != address_length + 4 {
            return None;
        }
        let port = &data[address_length..];
        Some(PortMapping {
            protocol: Protocol::from_number(rest[0])?,
            host_ip,
            host_port: u16::from_be_bytes([rest[4], rest[5]]),
            container_ip: address(&data[..address_length])?,
            container_port: u16::from_be_bytes([port[0], port[1]]),
        })
    }

    /// A set-element message of `kind` for this mapping, with its data and `owner` when given.
    fn message(&self, kind: u16, flags: u16, owner: Option<&str>) -> Message {
        let key = self.key();
        let data = owner.map(|owner| (self.data(), comment(owner)));
        Message::new(kind, flags, NFPROTO_INET)
            .string(NFTA_SET_ELEM_LIST_TABLE, TABLE)
            .string(NFTA_SET_ELEM_LIST_SET, self.map())
            .nested(NFTA_SET_ELEM_LIST_ELEMENTS, |mut list| {
                list.nested(NFTA_LIST_ELEM, |mut element| {
                    element.nested(NFTA_SET_ELEM_KEY, |mut value| {
                        value.attribute(NFTA_DATA_VALUE, &key);
                    });
                    if let Some((data, comment)) = &data {
                        element.nested(NFTA_SET_ELEM_DATA, |mut value| {
                            value.attribute(NFTA_DATA_VALUE, data);
                        });
                        element.attribute(NFTA_SET_ELEM_USERDATA, comment);
                    }
                });
            })
    }
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    }
}

fn address(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(bytes).ok()?,
        ))),
        _ => None,
    }
}

/// `owner` as an element comment (nft's user-data TLV, NUL-terminated, at most 127 bytes).
fn comment(owner: &str) -> Vec<u8> {
    let text = &owner.as_bytes()[..owner.len().min(127)];
    let mut tlv = vec![UDATA_COMMENT, text.len() as u8 + 1];
    tlv.extend_from_slice(text);
    tlv.push(0);
    tlv
}

/// The comment in an element's user data.
fn owner_in(userdata: &[u8]) -> Option<String> {
    let mut rest = userdata;
    while rest.len() >= 2 {
        let (kind, length) = (rest[0], rest[1] as usize);
        let value = rest.get(2..2 + length)?;
        if kind == UDATA_COMMENT {
            return nfnl::c_string(value);
        }
        rest = &rest[2 + length..];
    }
    None
}

/// Publishes `mappings` for `owner`, in one transaction: all or none; publishing again what
/// `owner` published is no change. A port that another owner has published is refused
/// ([`Error::PortPublished`]) unless `owner_gone` says that owner is gone for good, in which
/// case its element is replaced.
pub fn publish(
    mappings: &[PortMapping],
    owner: &str,
    mut owner_gone: impl FnMut(&str) -> bool,
) -> Result<()> {
    let mut replaced = Vec::new();
    // Each round either succeeds, fails, or takes over one more element.
    for _ in 0..=mappings.len() + 1 {
        let mut messages = Vec::new();
        let mut creations = Vec::new();
        for (index, mapping) in mappings.iter().enumerate() {
            if replaced.contains(&index) {
                messages.push(mapping.message(NFT_MSG_DELSETELEM, 0, None));
            }
            creations.push(messages.len());
            messages.push(mapping.message(
                NFT_MSG_NEWSETELEM,
                NLM_F_CREATE | NLM_F_EXCL,
                Some(owner),
            ));
        }
        let outcomes = match nfnl::transact(messages) {
            Ok(outcomes) => outcomes,
            Err(error) => {
                // The kernel may have applied the batch before the answer went missing: take
                // back whatever of `owner`'s it holds.
                let _ = unpublish_owned_by(&[owner]);
                return Err(publish_error(error, mappings));
            }
        };
        let Some((failed, error)) = outcomes
            .into_iter()
            .enumerate()
            .find_map(|(index, outcome)| outcome.err().map(|e| (index, e)))
        else {
            forget_udp_flows(mappings, Flows::Untranslated);
            return Ok(());
        };
        let Some(index) = creations.iter().position(|&m| m == failed) else {
            // A takeover's deletion: the element went meanwhile (gc, say). Try again.
            if error.raw_os_error() == Some(libc::ENOENT) {
                if let Some(gone) = creations.iter().position(|&m| m == failed + 1) {
                    replaced.retain(|&r| r != gone);
                    continue;
                }
            }
            return Err(publish_error(error, mappings));
        };
        if error.raw_os_error() != Some(libc::EEXIST) {
            return Err(publish_error(error, &mappings[index..=index]));
        }
        let mapping = &mappings[index];
        match owner_of(mapping)? {
            // Removed meanwhile: try again.
            None => {}
            // Its own already (published again after a flush), or a dead owner's.
            Some(other) if other == owner || owner_gone(&other) => replaced.push(index),
            Some(other) => {
                return Err(Error::PortPublished {
                    port: mapping.host_side(),
                    owner: other,
                })
            }
        }
    }
    Err(Error::Nftables(
        "the published ports kept changing while berth added its own; try again".into(),
    ))
}

fn publish_error(source: io::Error, mappings: &[PortMapping]) -> Error {
    let map = mappings.first().map_or(PORTS_ANY, PortMapping::map);
    if source.raw_os_error() == Some(libc::ENOENT) {
        return Error::Nftables(format!(
            "table inet {TABLE} has no map {map} (made by an older berth?): run berth network reload"
        ));
    }
    Error::Netlink {
        op: "add elements to",
        object: format!("inet {TABLE} {map}"),
        source,
    }
}

/// The owner of the element that publishes `mapping`'s host port, if there is one.
fn owner_of(mapping: &PortMapping) -> Result<Option<String>> {
    let found = nfnl::get(mapping.message(NFT_MSG_GETSETELEM, 0, None)).map_err(|source| {
        Error::Netlink {
            op: "look up an element of",
            object: format!("inet {TABLE} {}", mapping.map()),
            source,
        }
    })?;
    Ok(found.map(|attributes| {
        elements(&attributes)
            .next()
            .and_then(|(_, _, owner)| owner)
            .unwrap_or_default()
    }))
}

/// The elements in a set-element message: key, data and owner.
fn elements(attributes: &[u8]) -> impl Iterator<Item = (&[u8], &[u8], Option<String>)> {
    let list = attribute(attributes, NFTA_SET_ELEM_LIST_ELEMENTS).unwrap_or_default();
    attributes_of(list)
        .filter(|(kind, _)| *kind == NFTA_LIST_ELEM)
        .map(|(_, element)| {
            let value = |kind| {
                attribute(element, kind)
                    .and_then(|nested| attribute(nested, NFTA_DATA_VALUE))
                    .unwrap_or_default()
            };
            let owner = attribute(element, NFTA_SET_ELEM_USERDATA).and_then(owner_in);
            (value(NFTA_SET_ELEM_KEY), value(NFTA_SET_ELEM_DATA), owner)
        })
}

/// Removes `mappings` (those already gone are skipped): one transaction.
///
/// The kernel frees removed elements one RCU grace period later, and the release of a
/// netfilter socket waits until it has: see [`super::take_socket`] for a caller in a hurry.
pub fn unpublish(mappings: &[PortMapping]) -> Result<()> {
    let mut left: Vec<&PortMapping> = mappings.iter().collect();
    // A transaction fails whole when one element is missing: leave those out and go again.
    while !left.is_empty() {
        let messages = left
            .iter()
            .map(|mapping| mapping.message(NFT_MSG_DELSETELEM, 0, None))
            .collect();
        let outcomes = nfnl::transact(messages).map_err(|source| Error::Netlink {
            op: "remove elements from",
            object: format!("inet {TABLE} {}", left[0].map()),
            source,
        })?;
        let mut missing = Vec::new();
        for (index, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => missing.push(index),
                Err(source) => {
                    return Err(Error::Netlink {
                        op: "remove elements from",
                        object: format!("inet {TABLE} {}", left[index].map()),
                        source,
                    })
                }
                Ok(()) => {}
            }
        }
        if missing.is_empty() {
            forget_udp_flows(mappings, Flows::Translated);
            return Ok(());
        }
        left = left
            .into_iter()
            .enumerate()
            .filter(|(index, _)| !missing.contains(index))
            .map(|(_, mapping)| mapping)
            .collect();
    }
    forget_udp_flows(mappings, Flows::Translated);
    Ok(())
}

/// Which flows [`forget_udp_flows`] forgets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flows {
    /// Those to a port just published that reached the host untranslated.
    Untranslated,
    /// Those translated to a container whose port was just unpublished.
    Translated,
}

/// Forgets the kernel's connection-tracking entries of UDP flows to the host ports of
/// `mappings`, so that their next packets are translated afresh: a client that keeps sending
/// from one port would otherwise keep the translation its first packet got (none, before the
/// port was published; the old container's address, after). Only flows addressed to the host
/// itself are touched: never the host's own outgoing ones, nor those it forwards. TCP needs
/// none of this: a new connection is a new flow. Best effort: a kernel without ctnetlink
/// keeps its entries.
fn forget_udp_flows(mappings: &[PortMapping], which: Flows) {
    const IPCTNL_MSG_CT_GET: u16 = 1;
    const IPCTNL_MSG_CT_DELETE: u16 = 2;
    const CTA_TUPLE_ORIG: u16 = 1;
    const CTA_TUPLE_REPLY: u16 = 2;
    const CTA_TUPLE_IP: u16 = 1;
    const CTA_TUPLE_PROTO: u16 = 2;
    const CTA_PROTO_NUM: u16 = 1;
    const CTA_PROTO_SRC_PORT: u16 = 2;
    const CTA_PROTO_DST_PORT: u16 = 3;
    let udp: Vec<&PortMapping> = mappings
        .iter()
        .filter(|m| m.protocol == Protocol::Udp)
        .collect();
    if udp.is_empty() {
        return;
    }
    // The host's own addresses: an untranslated flow to one of them was the host's to take.
    let local: Vec<IpAddr> = match which {
        Flows::Untranslated => nix::ifaddrs::getifaddrs()
            .map(|addresses| {
                addresses
                    .filter_map(|a| a.address)
                    .filter_map(|a| {
                        a.as_sockaddr_in()
                            .map(|v4| IpAddr::V4(v4.ip()))
                            .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Flows::Translated => Vec::new(),
    };
    // A tuple's (source, destination) addresses, protocol and (source, destination) ports.
    let tuple = |raw: &[u8]| {
        let ip = attribute(raw, CTA_TUPLE_IP).unwrap_or_default();
        let mut addresses = attributes_of(ip).filter_map(|(_, v)| address(v));
        let proto = attribute(raw, CTA_TUPLE_PROTO).unwrap_or_default();
        let port = |kind| {
            attribute(proto, kind).and_then(|v| Some(u16::from_be_bytes([*v.first()?, *v.get(1)?])))
        };
        (
            addresses.next(),
            addresses.next(),
            attribute(proto, CTA_PROTO_NUM).and_then(|v| v.first().copied()),
            port(CTA_PROTO_SRC_PORT),
            port(CTA_PROTO_DST_PORT),
        )
    };
    for (family, v6) in [(libc::AF_INET as u8, false), (libc::AF_INET6 as u8, true)] {
        if !udp.iter().any(|m| m.container_ip.is_ipv6() == v6) {
            continue;
        }
        // The original tuples (as raw attributes) of the flows to go.
        let mut doomed: Vec<Vec<u8>> = Vec::new();
        let listed = nfnl::dump(
            Message::conntrack(IPCTNL_MSG_CT_GET, 0, family),
            |_, attributes| {
                let (Some(original), Some(reply)) = (
                    attribute(attributes, CTA_TUPLE_ORIG),
                    attribute(attributes, CTA_TUPLE_REPLY),
                ) else {
                    return;
                };
                let (_, destination, number, _, port) = tuple(original);
                let (answerer, _, _, answer_port, _) = tuple(reply);
                if number != Some(Protocol::Udp.number()) {
                    return;
                }
                let matches = udp.iter().any(|m| {
                    let to_its_port = m.container_ip.is_ipv6() == v6
                        && port == Some(m.host_port)
                        && m.host_ip.is_none_or(|ip| destination == Some(ip));
                    to_its_port
                        && match which {
                            Flows::Untranslated => {
                                answerer == destination
                                    && destination.is_some_and(|d| local.contains(&d))
                            }
                            Flows::Translated => {
                                answerer == Some(m.container_ip)
                                    && answer_port == Some(m.container_port)
                            }
                        }
                });
                if matches {
                    let mut raw = Vec::new();
                    raw.extend_from_slice(&((4 + original.len()) as u16).to_ne_bytes());
                    raw.extend_from_slice(&(CTA_TUPLE_ORIG | 0x8000).to_ne_bytes());
                    raw.extend_from_slice(original);
                    doomed.push(raw);
                }
            },
        );
        if listed.is_err() {
            continue;
        }
        for tuple in doomed {
            // Each on its own: one that ended meanwhile (ENOENT) is no matter.
            let request =
                Message::conntrack(IPCTNL_MSG_CT_DELETE, NLM_F_ACK, family).raw_attributes(&tuple);
            let _ = nfnl::get(request);
        }
    }
}

/// Removes every port that any of `owners` published, in one transaction; returns them.
pub fn unpublish_owned_by<S: AsRef<str>>(owners: &[S]) -> Result<Vec<Published>> {
    let theirs: Vec<Published> = published()?
        .into_iter()
        .filter(|p| owners.iter().any(|o| o.as_ref() == p.owner))
        .collect();
    if !theirs.is_empty() {
        unpublish(&theirs.iter().map(|p| p.mapping).collect::<Vec<_>>())?;
    }
    Ok(theirs)
}

/// A port published in berth's table, and who published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The port.
    pub mapping: PortMapping,
    /// Its owner, as given to [`publish`].
    pub owner: String,
}

/// Every published port (none when berth's table or its maps are missing).
pub fn published() -> Result<Vec<Published>> {
    let mut all = Vec::new();
    for map in MAPS {
        let request = Message::new(NFT_MSG_GETSETELEM, 0, NFPROTO_INET)
            .string(NFTA_SET_ELEM_LIST_TABLE, TABLE)
            .string(NFTA_SET_ELEM_LIST_SET, map);
        let listed = nfnl::dump(request, |_, attributes| {
            for (key, data, owner) in elements(attributes) {
                if let Some(mapping) = PortMapping::from_element(map, key, data) {
                    all.push(Published {
                        mapping,
                        owner: owner.unwrap_or_default(),
                    });
                }
            }
        });
        match listed {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(source) => {
                return Err(Error::Netlink {
                    op: "list",
                    object: format!("inet {TABLE} {map}"),
                    source,
                })
            }
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(host_ip: Option<IpAddr>) -> PortMapping {
        PortMapping {
            protocol: Protocol::Udp,
            host_ip,
            host_port: 8080,
            container_ip: Ipv4Addr::new(10, 201, 0, 2).into(),
            container_port: 53,
        }
    }

    #[test]
    fn keys_and_data_are_laid_out_in_registers() {
        let at = mapping(Some(Ipv4Addr::LOCALHOST.into()));
        assert_eq!(at.key(), [127, 0, 0, 1, 17, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(at.data(), [10, 201, 0, 2, 0, 53, 0, 0]);
        assert_eq!(mapping(None).key(), [17, 0, 0, 0, 0x1f, 0x90, 0, 0]);
    }

    #[test]
    fn elements_read_back_as_they_were_written() {
        let v6 = PortMapping {
            host_ip: Some("2001:db8::1".parse().unwrap()),
            container_ip: "fd00::2".parse().unwrap(),
            ..mapping(None)
        };
        assert_eq!(v6.key().len(), 24);
        assert_eq!(v6.to_string(), "[2001:db8::1]:8080->53/udp");
        let v6_any = PortMapping {
            host_ip: None,
            ..v6
        };
        for m in [
            mapping(None),
            mapping(Some(Ipv4Addr::new(192, 0, 2, 7).into())),
            v6,
            v6_any,
        ] {
            assert_eq!(
                PortMapping::from_element(m.map(), &m.key(), &m.data()),
                Some(m)
            );
        }
        assert_eq!(owner_in(&comment("abc")), Some("abc".into()));
        let first = mapping(None);
        let next = PortMapping {
            host_port: 8081,
            container_port: 54,
            ..first
        };
        assert!(first.continued_by(&next) && !next.continued_by(&first));
        assert_eq!(first.describe_run(2), "0.0.0.0:8080-8081->53-54/udp");
        assert_eq!(mapping(None).to_string(), "0.0.0.0:8080->53/udp");
    }
}
