//! The veth pair: one netlink message creates both ends, the host end already on the bridge
//! and up, the peer born inside the container's namespace under its final name.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};

use crate::netlink::Netlink;
use crate::Result;

/// Where the container end of a veth pair is created.
#[derive(Debug, Clone, Copy)]
pub enum Namespace<'fd> {
    /// The network namespace of a process.
    Pid(u32),
    /// A network namespace file (`/proc/PID/ns/net`, a bind-mounted netns, ...).
    File(BorrowedFd<'fd>),
}

/// Whether `fd` is a network namespace (a namespace file, `/proc/PID/ns/net` or one bound
/// elsewhere, of type CLONE_NEWNET): anything else (a FIFO, a regular file, another kind of
/// namespace) must never be handed to setns or to the kernel as a veth's namespace.
pub fn is_network_namespace(fd: BorrowedFd<'_>) -> bool {
    use nix::sys::statfs::{fstatfs, NSFS_MAGIC};
    if !fstatfs(fd).is_ok_and(|fs| fs.filesystem_type() == NSFS_MAGIC) {
        return false;
    }
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the descriptor, which is open.
    let kind = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE) };
    kind == libc::CLONE_NEWNET
}

/// The MAC address berth gives an interface with `addr`: docker's 02:42 prefix and the address,
/// so that a neighbour's ARP entry stays right when the address is handed out again.
pub fn mac_for(addr: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = addr.octets();
    [0x02, 0x42, a, b, c, d]
}

/// Creates a veth pair: `host_name` in the caller's namespace, attached to bridge `bridge_index`
/// and up; `peer_name` in `namespace` with `peer_mac`, down (a veth whose peer lives in another
/// namespace cannot be created up there: the container brings it up itself).
pub fn create_pair(
    netlink: &mut Netlink,
    host_name: &str,
    bridge_index: u32,
    peer_name: &str,
    peer_mac: [u8; 6],
    namespace: Namespace<'_>,
) -> Result<()> {
    let mut peer = LinkMessage::default();
    peer.attributes
        .push(LinkAttribute::IfName(peer_name.into()));
    peer.attributes
        .push(LinkAttribute::Address(peer_mac.to_vec()));
    peer.attributes.push(match namespace {
        Namespace::Pid(pid) => LinkAttribute::NetNsPid(pid),
        Namespace::File(fd) => LinkAttribute::NetNsFd(fd.as_raw_fd()),
    });

    let mut host = LinkMessage::default();
    host.header.flags = LinkFlags::Up;
    host.header.change_mask = LinkFlags::Up;
    host.attributes
        .push(LinkAttribute::IfName(host_name.into()));
    host.attributes
        .push(LinkAttribute::Controller(bridge_index));
    host.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    netlink.create_link(host, &format!("veth pair {host_name} / {peer_name}"))?;
    // Before the peer comes up, so before the host end has carrier.
    netlink.no_ipv6_link_local(0, host_name)
}
