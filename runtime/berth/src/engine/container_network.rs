//! The container's side of its network, brought up in the child through the mechanism's
//! [`NetworkHook`]: `lo`, and on a bridge network the veth's peer, with its addresses and
//! default routes, configured through a netlink socket opened in the new namespace.

use std::net::IpAddr;

use netsetup::{IpNet, Netlink};

use berth_container::child::NetworkHook;

/// A new network namespace's side: `lo` up, and the interface berth wires, if any.
#[derive(Debug)]
pub struct ContainerNetwork {
    /// The interface berth wires (on a bridge network); `None`: a loopback only.
    pub interface: Option<WiredInterface>,
}

/// The peer of the veth, as the container configures it.
#[derive(Debug)]
pub struct WiredInterface {
    /// Its name inside the container.
    pub name: &'static str,
    /// The container's addresses with their subnets' prefixes.
    pub addresses: Vec<IpNet>,
    /// The default routes' gateways (none on an internal network).
    pub gateways: Vec<IpAddr>,
}

impl NetworkHook for ContainerNetwork {
    fn in_child(&self, go: &mut dyn FnMut() -> bool) -> Result<bool, String> {
        let mut netlink = Netlink::open().map_err(|e| e.to_string())?;
        netsetup::loopback_up(&mut netlink).map_err(|e| e.to_string())?;
        if let Some(interface) = &self.interface {
            // The peer exists in here once berth says so.
            if !go() {
                return Ok(false);
            }
            netsetup::configure_container_interface(
                &mut netlink,
                interface.name,
                &interface.addresses,
                &interface.gateways,
            )
            .map_err(|e| e.to_string())?;
        }
        Ok(true)
    }
}
