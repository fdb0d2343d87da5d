//! The one netlink wrapper: a synchronous rtnetlink socket and the few requests berth makes.
//!
//! A socket is bound to the network namespace of the thread that opened it, so the container's
//! side is configured through a `Netlink` opened inside the container's namespace.

use std::io;
use std::net::IpAddr;

use ipnet::IpNet;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoKind, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use std::os::fd::{AsFd, BorrowedFd};

use nix::sched::{setns, CloneFlags};

use crate::{Error, Result};

/// What berth needs to know of an existing interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The interface index.
    pub index: u32,
    /// The `IFLA_INFO_KIND` ("bridge", "veth", ...), or "device" for a physical one.
    pub kind: String,
    /// Whether the interface is administratively up.
    pub up: bool,
    /// Its alias (`ip link set NAME alias TEXT`), if any.
    pub alias: Option<String>,
    /// Its hardware address (empty when it has none).
    pub mac: Vec<u8>,
    /// The index of the bridge it is a port of, if any.
    pub controller: Option<u32>,
}

/// A synchronous rtnetlink socket in the namespace it was opened in.
pub struct Netlink {
    socket: Socket,
    sequence: u32,
    send_buffer: Vec<u8>,
}

impl Netlink {
    /// Opens a route netlink socket in the network namespace `namespace` (a namespace file):
    /// the thread enters it, opens the socket and returns to its own. The socket stays bound
    /// to `namespace`. Only for a single-threaded caller or a thread of its own.
    pub fn open_in(namespace: BorrowedFd<'_>) -> Result<Self> {
        let fail = |op, source: nix::Error| Error::Netlink {
            op,
            object: "a network namespace".into(),
            source: source.into(),
        };
        let own = std::fs::File::open("/proc/thread-self/ns/net").map_err(|e| Error::Netlink {
            op: "open",
            object: "this thread's network namespace".into(),
            source: e,
        })?;
        setns(namespace, CloneFlags::CLONE_NEWNET).map_err(|e| fail("enter", e))?;
        let opened = Netlink::open();
        setns(own.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| fail("return from", e))?;
        opened
    }

    /// Opens a route netlink socket in the calling thread's network namespace.
    pub fn open() -> Result<Self> {
        let fail = |source| Error::Netlink {
            op: "open",
            object: "a netlink socket".into(),
            source,
        };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(fail)?;
        socket.bind_auto().map_err(fail)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(fail)?;
        Ok(Netlink {
            socket,
            sequence: 0,
            send_buffer: Vec::with_capacity(256),
        })
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        self.send_buffer.resize(packet.buffer_len(), 0);
        packet.serialize(&mut self.send_buffer);
        self.socket.send(&self.send_buffer, 0)?;
        Ok(self.sequence)
    }

    /// Receives the answers to request `sequence` until its acknowledgement, its end of dump,
    /// or (for a plain get) its one reply.
    fn receive(&mut self, sequence: u32, single: bool) -> io::Result<Vec<RouteNetlinkMessage>> {
        let mut replies = Vec::new();
        loop {
            let (datagram, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while offset < datagram.len() {
                let packet =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[offset..])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let length = packet.header.length as usize;
                if length == 0 {
                    break;
                }
                offset += length.next_multiple_of(4);
                if packet.header.sequence_number != sequence {
                    continue;
                }
                match packet.payload {
                    NetlinkPayload::Error(error) if error.code.is_some() => {
                        return Err(error.to_io())
                    }
                    NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(message) => {
                        replies.push(message);
                        if single {
                            return Ok(replies);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Sends a request that changes something and waits for the kernel's acknowledgement.
    pub fn execute(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        let sequence = self.send(message, flags | NLM_F_ACK)?;
        self.receive(sequence, false).map(drop)
    }

    /// Looks an interface up by name; `None` when there is none.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        let mut request = LinkMessage::default();
        request
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        let answer = self
            .send(RouteNetlinkMessage::GetLink(request), 0)
            .and_then(|sequence| self.receive(sequence, true));
        let replies = match answer {
            Ok(replies) => replies,
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
            Err(source) => {
                return Err(Error::Netlink {
                    op: "look up interface",
                    object: name.into(),
                    source,
                })
            }
        };
        Ok(replies.into_iter().find_map(|reply| match reply {
            RouteNetlinkMessage::NewLink(link) => Some(link_summary(&link)),
            _ => None,
        }))
    }

    /// Creates a bridge with a fixed MAC address (without one, the bridge takes its ports'
    /// lowest MAC and changes it when that port leaves, which stales every neighbour's ARP
    /// entry for the gateway) and an alias; `Ok(false)` when an interface of that name exists.
    pub fn create_bridge(&mut self, name: &str, mac: [u8; 6], alias: &str) -> Result<bool> {
        let mut request = LinkMessage::default();
        request.attributes.push(LinkAttribute::IfName(name.into()));
        request
            .attributes
            .push(LinkAttribute::Address(mac.to_vec()));
        request
            .attributes
            .push(LinkAttribute::IfAlias(alias.into()));
        request
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        match self.execute(
            RouteNetlinkMessage::NewLink(request),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Ok(false),
            Err(source) => {
                return Err(Error::Netlink {
                    op: "create bridge",
                    object: name.into(),
                    source,
                })
            }
        }
        // The kernel takes an alias only on an existing link.
        let mut request = LinkMessage::default();
        request.attributes.push(LinkAttribute::IfName(name.into()));
        request
            .attributes
            .push(LinkAttribute::IfAlias(alias.into()));
        self.execute(RouteNetlinkMessage::SetLink(request), 0)
            .map_err(|source| Error::Netlink {
                op: "set the alias of",
                object: name.into(),
                source,
            })?;
        Ok(true)
    }

    /// Brings an interface up.
    pub fn set_up(&mut self, index: u32, name: &str) -> Result<()> {
        let mut request = LinkMessage::default();
        request.header.index = index;
        request.header.flags = LinkFlags::Up;
        request.header.change_mask = LinkFlags::Up;
        self.execute(RouteNetlinkMessage::SetLink(request), 0)
            .map_err(|source| Error::Netlink {
                op: "bring up",
                object: name.into(),
                source,
            })
    }

    /// Keeps the kernel from giving an interface an IPv6 link-local address (addrgenmode
    /// none). berth's containers need none: berth configures their addresses (IPv6 ones on a
    /// dual-stack network) and routes itself. A link-local address would only make every new
    /// interface send duplicate address detection, router solicitation and MLD packets, which
    /// a bridge floods to every one of its ports: with a thousand containers, that flood is
    /// most of what a start costs. Must come before the interface has carrier.
    /// `index` 0 looks the interface up by `name`.
    pub fn no_ipv6_link_local(&mut self, index: u32, name: &str) -> Result<()> {
        let mut request = LinkMessage::default();
        request.header.index = index;
        if index == 0 {
            request.attributes.push(LinkAttribute::IfName(name.into()));
        }
        request
            .attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
            )]));
        match self.execute(RouteNetlinkMessage::SetLink(request), 0) {
            // A kernel without IPv6 (ipv6.disable=1) gives no link-local address anyway.
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => Ok(()),
            other => other,
        }
        .map_err(|source| Error::Netlink {
            op: "turn off IPv6 link-local addressing on",
            object: name.into(),
            source,
        })
    }

    /// Adds an address with its prefix route (an IPv6 one without duplicate address detection);
    /// an address already there is left alone.
    pub fn add_address(&mut self, index: u32, name: &str, addr: IpNet) -> Result<()> {
        let mut request = address_message(index, addr);
        let ip = addr.addr();
        match addr {
            IpNet::V4(v4) => {
                request.attributes.push(AddressAttribute::Local(ip));
                request.attributes.push(AddressAttribute::Address(ip));
                if v4.prefix_len() < 31 {
                    request
                        .attributes
                        .push(AddressAttribute::Broadcast(v4.broadcast()));
                }
            }
            IpNet::V6(_) => {
                // Usable at once: duplicate address detection would hold it back for a second.
                request.attributes.push(AddressAttribute::Address(ip));
                request
                    .attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
        }
        match self.execute(
            RouteNetlinkMessage::NewAddress(request),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() != Some(libc::EEXIST) => Err(Error::Netlink {
                op: "add address",
                object: format!("{addr} on {name}"),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Removes an address; one that is not there is no error.
    pub fn delete_address(&mut self, index: u32, name: &str, addr: IpNet) -> Result<()> {
        let mut request = address_message(index, addr);
        request
            .attributes
            .push(AddressAttribute::Address(addr.addr()));
        match self.execute(RouteNetlinkMessage::DelAddress(request), 0) {
            Err(e) if e.raw_os_error() != Some(libc::EADDRNOTAVAIL) => Err(Error::Netlink {
                op: "delete address",
                object: format!("{addr} on {name}"),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Adds a default route through `gateway` out of interface `index`.
    pub fn add_default_route(&mut self, index: u32, name: &str, gateway: IpAddr) -> Result<()> {
        let mut request = RouteMessage::default();
        request.header.address_family = match gateway {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        request.header.table = libc::RT_TABLE_MAIN;
        request.header.protocol = RouteProtocol::Boot;
        request.header.scope = RouteScope::Universe;
        request.header.kind = RouteType::Unicast;
        request
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
        request.attributes.push(RouteAttribute::Oif(index));
        self.execute(
            RouteNetlinkMessage::NewRoute(request),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map_err(|source| Error::Netlink {
            op: "add default route",
            object: format!("via {gateway} on {name}"),
            source,
        })
    }

    /// Takes interface `index` off the bridge it is a port of: nothing it sends reaches the
    /// bridge any more.
    pub fn leave_bridge(&mut self, index: u32, name: &str) -> Result<()> {
        let mut request = LinkMessage::default();
        request.header.index = index;
        request.attributes.push(LinkAttribute::Controller(0));
        self.execute(RouteNetlinkMessage::SetLink(request), 0)
            .map_err(|source| Error::Netlink {
                op: "take off its bridge",
                object: name.into(),
                source,
            })
    }

    /// Sets an interface's MTU; `index` 0 looks the interface up by `name`.
    pub fn set_mtu(&mut self, index: u32, name: &str, mtu: u32) -> Result<()> {
        let mut request = LinkMessage::default();
        request.header.index = index;
        if index == 0 {
            request.attributes.push(LinkAttribute::IfName(name.into()));
        }
        request.attributes.push(LinkAttribute::Mtu(mtu));
        self.execute(RouteNetlinkMessage::SetLink(request), 0)
            .map_err(|source| Error::Netlink {
                op: "set the MTU of",
                object: name.into(),
                source,
            })
    }

    /// The replies to a dump `request`; `op` and `object` name it in an error.
    fn dump(
        &mut self,
        request: RouteNetlinkMessage,
        op: &'static str,
        object: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let fail = |source| Error::Netlink {
            op,
            object: object.into(),
            source,
        };
        let sequence = self.send(request, NLM_F_DUMP).map_err(fail)?;
        self.receive(sequence, false).map_err(fail)
    }

    /// The addresses of interface `index`, with their prefix lengths.
    pub fn addresses(&mut self, index: u32, name: &str) -> Result<Vec<IpNet>> {
        let request = RouteNetlinkMessage::GetAddress(AddressMessage::default());
        Ok(self
            .dump(request, "list the addresses of", name)?
            .into_iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                    let ip = a.attributes.iter().find_map(|attribute| match attribute {
                        AddressAttribute::Address(ip) => Some(*ip),
                        _ => None,
                    })?;
                    IpNet::new(ip, a.header.prefix_len).ok()
                }
                _ => None,
            })
            .collect())
    }

    /// The gateways of the default routes (main table) out of interface `index`.
    pub fn default_gateways(&mut self, index: u32, name: &str) -> Result<Vec<IpAddr>> {
        let mut gateways = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut request = RouteMessage::default();
            request.header.address_family = family;
            let request = RouteNetlinkMessage::GetRoute(request);
            for reply in self.dump(request, "list the routes of", name)? {
                let RouteNetlinkMessage::NewRoute(route) = reply else {
                    continue;
                };
                if route.header.destination_prefix_length != 0
                    || route.header.table != libc::RT_TABLE_MAIN
                {
                    continue;
                }
                let mut oif = None;
                let mut gateway = None;
                for attribute in &route.attributes {
                    match attribute {
                        RouteAttribute::Oif(i) => oif = Some(*i),
                        RouteAttribute::Gateway(RouteAddress::Inet(ip)) => {
                            gateway = Some(IpAddr::V4(*ip))
                        }
                        RouteAttribute::Gateway(RouteAddress::Inet6(ip)) => {
                            gateway = Some(IpAddr::V6(*ip))
                        }
                        _ => {}
                    }
                }
                if let (Some(i), Some(gateway)) = (oif, gateway) {
                    if i == index {
                        gateways.push(gateway);
                    }
                }
            }
        }
        Ok(gateways)
    }

    /// Lists the names of every interface in this namespace.
    pub fn link_names(&mut self) -> Result<Vec<String>> {
        let request = RouteNetlinkMessage::GetLink(LinkMessage::default());
        Ok(self
            .dump(request, "list", "interfaces")?
            .into_iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewLink(link) => {
                    link.attributes.into_iter().find_map(|a| match a {
                        LinkAttribute::IfName(name) => Some(name),
                        _ => None,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// Deletes an interface by name; `Ok(false)` when there is none.
    pub fn delete_link(&mut self, name: &str) -> Result<bool> {
        self.delete_link_at(0, name)
    }

    /// Deletes interface `index` (`name` for messages; 0 looks it up by `name`); `Ok(false)`
    /// when there is none. An index names one interface for good: one made anew under the
    /// same name meanwhile has another.
    pub fn delete_link_at(&mut self, index: u32, name: &str) -> Result<bool> {
        let mut request = LinkMessage::default();
        request.header.index = index;
        if index == 0 {
            request.attributes.push(LinkAttribute::IfName(name.into()));
        }
        match self.execute(RouteNetlinkMessage::DelLink(request), 0) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(source) => Err(Error::Netlink {
                op: "delete interface",
                object: name.into(),
                source,
            }),
        }
    }

    /// Sends a prepared link creation request (used for the veth pair).
    pub(crate) fn create_link(&mut self, request: LinkMessage, what: &str) -> Result<()> {
        self.execute(
            RouteNetlinkMessage::NewLink(request),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map_err(|source| Error::Netlink {
            op: "create",
            object: what.into(),
            source,
        })
    }
}

fn link_summary(link: &LinkMessage) -> Link {
    let kind = link
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|info| match info {
                LinkInfo::Kind(kind) => Some(kind.to_string()),
                _ => None,
            }),
            _ => None,
        })
        .unwrap_or_else(|| "device".into());
    let alias = link
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::IfAlias(alias) => Some(alias.clone()),
            _ => None,
        });
    let mac = link
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::Address(mac) => Some(mac.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let controller = link
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::Controller(index) => Some(*index),
            _ => None,
        });
    Link {
        index: link.header.index,
        kind,
        up: link.header.flags.contains(LinkFlags::Up),
        alias,
        mac,
        controller,
    }
}

/// An address message for `addr` on interface `index`: its family and prefix length set.
fn address_message(index: u32, addr: IpNet) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.index = index;
    message.header.prefix_len = addr.prefix_len();
    message.header.family = match addr {
        IpNet::V4(_) => AddressFamily::Inet,
        IpNet::V6(_) => AddressFamily::Inet6,
    };
    message
}
