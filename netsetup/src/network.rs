//! A bridge network as netsetup is handed it: the one description its steps, its firewall and
//! its leases share.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::ipam::{self, LeaseFile};
use crate::Result;

/// A bridge network: its name, the bridge interface, the subnet and the gateway on the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// The network's name (`bridge` for the default one).
    pub name: String,
    /// The bridge interface, at most 15 bytes.
    pub bridge: String,
    /// The containers' subnet.
    pub subnet: Ipv4Net,
    /// The bridge's own address in the subnet; the containers' default route unless the
    /// network is internal.
    pub gateway: Ipv4Addr,
    /// An internal network: no NAT, no default route, no traffic in or out of the host.
    pub internal: bool,
    /// Whether what leaves the subnet for elsewhere is masqueraded (berth's networks always
    /// are; a CNI network with `ipMasq: false` is routed as it is). An internal network never
    /// is.
    pub masquerade: bool,
    /// The IPv6 subnet of a dual-stack network.
    pub subnet6: Option<Ipv6Net>,
    /// Whether the bridge holds the gateway address, through which the containers reach the
    /// host and beyond (berth's networks always do; a CNI network with `isGateway: false` is a
    /// segment on which the containers reach only each other).
    pub bridge_is_gateway: bool,
}

impl NetworkSpec {
    /// The default network: bridge `berth0`, 10.201.0.0/16, gateway 10.201.0.1.
    pub fn default_bridge() -> Self {
        NetworkSpec {
            name: "bridge".into(),
            bridge: "berth0".into(),
            subnet: Ipv4Net::new(Ipv4Addr::new(10, 201, 0, 0), 16).expect("a valid prefix"),
            gateway: Ipv4Addr::new(10, 201, 0, 1),
            internal: false,
            masquerade: true,
            subnet6: None,
            bridge_is_gateway: true,
        }
    }

    /// The IPv6 address that goes with `addr` on a dual-stack network: the IPv6 subnet's
    /// prefix with `addr`'s offset in the IPv4 subnet. One lease thus holds both, and the
    /// gateways pair up the same way.
    pub fn ipv6_for(&self, addr: Ipv4Addr) -> Option<Ipv6Net> {
        let subnet6 = self.subnet6?;
        let offset = u32::from(addr).wrapping_sub(u32::from(self.subnet.network()));
        let ip = Ipv6Addr::from(u128::from(subnet6.network()) | u128::from(offset));
        Ipv6Net::new(ip, subnet6.prefix_len()).ok()
    }

    /// The bridge's IPv6 address on a dual-stack network (see [`NetworkSpec::ipv6_for`]).
    pub fn gateway6(&self) -> Option<Ipv6Addr> {
        self.ipv6_for(self.gateway).map(|net| net.addr())
    }

    /// The addresses a container with `addr` gets: its IPv4 one and, on a dual-stack network,
    /// its IPv6 one, each with its subnet's prefix length.
    pub fn container_addresses(&self, addr: Ipv4Addr) -> Vec<IpNet> {
        let mut addresses = vec![IpNet::V4(self.with_prefix(addr))];
        addresses.extend(self.ipv6_for(addr).map(IpNet::V6));
        addresses
    }

    /// The default routes' gateways a container gets: none on an internal network or when the
    /// bridge is not the gateway.
    pub fn container_gateways(&self) -> Vec<IpAddr> {
        if self.internal || !self.bridge_is_gateway {
            return Vec::new();
        }
        let mut gateways = vec![IpAddr::V4(self.gateway)];
        gateways.extend(self.gateway6().map(IpAddr::V6));
        gateways
    }

    /// `addr` with the subnet's prefix length.
    pub fn with_prefix(&self, addr: Ipv4Addr) -> Ipv4Net {
        Ipv4Net::new(addr, self.subnet.prefix_len()).expect("the subnet's prefix is valid")
    }

    /// Checks that `addr` may be given to a container: a host address of the subnet that is not
    /// the gateway.
    pub fn check_address(&self, addr: Ipv4Addr) -> Result<()> {
        ipam::check_address(self.subnet, self.gateway, addr)
    }

    /// The lease file of this network, kept in `state_dir`.
    pub fn lease_file(&self, state_dir: &Path) -> LeaseFile {
        LeaseFile::new(state_dir, self.subnet, self.gateway)
    }
}
