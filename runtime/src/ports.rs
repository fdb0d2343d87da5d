//! `berth run -p`: what a publish request says, the host ports it holds, and publishing them.
//!
//! A published port is held twice over while its container runs: berth's process keeps a
//! socket bound to it (listening, for TCP), so the host's own programs cannot take it and `ss
//! -ltnp` shows who has it; and an element of a map in berth's nftables table sends what
//! arrives for it to the container.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::ops::RangeInclusive;
use std::path::Path;

use netsetup::{PortMapping, Protocol};

use crate::container::state::{ContainerDir, Status};
use crate::error::{Error, Result};

/// One `-p [HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTOCOL]`, ports or ranges of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest {
    /// The protocol.
    pub protocol: Protocol,
    /// The host address; `None`: every address.
    pub host_ip: Option<Ipv4Addr>,
    /// The host ports; `None`: free ones, picked by the kernel.
    pub host_ports: Option<RangeInclusive<u16>>,
    /// The container's ports.
    pub container_ports: RangeInclusive<u16>,
}

const FORM: &str = "[HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|/udp], each port a number or a range \
                    like 8000-8003";

impl PublishRequest {
    /// Parses docker's `-p` syntax.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |why: &str| {
            Error::Invalid(format!(
                "invalid port mapping '{text}': {why} (expected {FORM})"
            ))
        };
        let (ports, protocol) = match text.rsplit_once('/') {
            Some((ports, "tcp")) => (ports, Protocol::Tcp),
            Some((ports, "udp")) => (ports, Protocol::Udp),
            Some((_, other)) => {
                return Err(invalid(&format!(
                    "unknown protocol '{other}': only tcp and udp ports are published"
                )))
            }
            None => (text, Protocol::Tcp),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let (host_ip, host_ports, container_ports) = match parts[..] {
            [container] => (None, None, container),
            [host, container] => (None, Some(host), container),
            [ip, host, container] => {
                let ip: Ipv4Addr = ip
                    .parse()
                    .map_err(|_| invalid(&format!("'{ip}' is not an IPv4 address")))?;
                (
                    (!ip.is_unspecified()).then_some(ip),
                    (!host.is_empty()).then_some(host),
                    container,
                )
            }
            _ => return Err(invalid("too many ':'")),
        };
        let range = |text: &str, what: &str| -> Result<RangeInclusive<u16>> {
            let port = |p: &str| {
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| invalid(&format!("{what} '{p}' is not a port (1-65535)")))
            };
            match text.split_once('-') {
                None => port(text).map(|p| p..=p),
                Some((first, last)) => {
                    let (first, last) = (port(first)?, port(last)?);
                    if first > last {
                        return Err(invalid(&format!("{what} range {text} runs backwards")));
                    }
                    Ok(first..=last)
                }
            }
        };
        let container_ports = range(container_ports, "container port")?;
        let host_ports = host_ports.map(|h| range(h, "host port")).transpose()?;
        if let Some(host) = &host_ports {
            let (hosts, containers) = (host.len(), container_ports.len());
            if hosts != containers && containers != 1 {
                return Err(invalid(&format!(
                    "{hosts} host ports for {containers} container ports: give as many of \
                     each, or one container port and a range of host ports to pick from"
                )));
            }
        }
        Ok(PublishRequest {
            protocol,
            host_ip,
            host_ports,
            container_ports,
        })
    }
}

/// The host ports a run holds: the sockets, and the mappings they stand for.
#[derive(Debug, Default)]
pub struct Reservation {
    /// What to publish.
    pub mappings: Vec<PortMapping>,
    _sockets: Vec<HeldPort>,
}

#[derive(Debug)]
enum HeldPort {
    Tcp(#[allow(dead_code)] TcpListener),
    Udp(#[allow(dead_code)] UdpSocket),
}

/// Binds the host ports `requests` ask for (picking free ones where none is given), for the
/// container at `container_ip`. Fails, holding nothing, on a port that is taken: by another
/// container of berth's (named from `root`) or by a process of the host.
pub fn reserve(
    requests: &[PublishRequest],
    container_ip: Ipv4Addr,
    root: &Path,
) -> Result<Reservation> {
    let mut reservation = Reservation::default();
    let mut seen = HashSet::new();
    for request in requests {
        let ip = request.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let mut hold = |host_port: u16, container_port: u16| -> Result<Option<u16>> {
            let held = match bind(request.protocol, SocketAddrV4::new(ip, host_port)) {
                Ok(held) => held,
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => return Ok(None),
                Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
                    return Err(Error::Invalid(format!(
                        "cannot publish on {ip}: it is not an address of this host"
                    )))
                }
                Err(e) => {
                    return Err(Error::system(
                        format!("binding host port {ip}:{host_port}/{}", request.protocol),
                        e,
                    ))
                }
            };
            let port = held.port();
            reservation.mappings.push(PortMapping {
                protocol: request.protocol,
                host_ip: request.host_ip,
                host_port: port,
                container_ip,
                container_port,
            });
            reservation._sockets.push(held);
            Ok(Some(port))
        };
        match &request.host_ports {
            // One container port, a range of host ports: the first free one.
            Some(hosts) if request.container_ports.len() == 1 && hosts.len() > 1 => {
                let container_port = *request.container_ports.start();
                let mut picked = None;
                for host_port in hosts.clone() {
                    if !seen.contains(&(request.protocol, host_port)) {
                        picked = hold(host_port, container_port)?;
                        if picked.is_some() {
                            break;
                        }
                    }
                }
                let Some(port) = picked else {
                    return Err(Error::Invalid(format!(
                        "no free host port in {}-{}/{} on {ip}",
                        hosts.start(),
                        hosts.end(),
                        request.protocol
                    )));
                };
                seen.insert((request.protocol, port));
            }
            Some(hosts) => {
                for (host_port, container_port) in
                    hosts.clone().zip(request.container_ports.clone())
                {
                    if !seen.insert((request.protocol, host_port)) {
                        return Err(Error::Invalid(format!(
                            "host port {host_port}/{} is published twice by this run",
                            request.protocol
                        )));
                    }
                    if hold(host_port, container_port)?.is_none() {
                        return Err(taken(root, request.protocol, ip, host_port));
                    }
                }
            }
            None => {
                for container_port in request.container_ports.clone() {
                    let port = hold(0, container_port)?.ok_or_else(|| {
                        Error::Invalid(format!("no free {} port left on {ip}", request.protocol))
                    })?;
                    seen.insert((request.protocol, port));
                }
            }
        }
    }
    Ok(reservation)
}

impl HeldPort {
    fn port(&self) -> u16 {
        match self {
            HeldPort::Tcp(socket) => socket.local_addr().map_or(0, |a| a.port()),
            HeldPort::Udp(socket) => socket.local_addr().map_or(0, |a| a.port()),
        }
    }
}

/// A socket bound to `addr`: for TCP a listening one (nothing else can bind the port, whatever
/// its options, and a connection in TIME_WAIT on it does not stand in the way); for UDP a
/// plain bound one. Close-on-exec: the workload never sees it.
fn bind(protocol: Protocol, addr: SocketAddrV4) -> std::io::Result<HeldPort> {
    Ok(match protocol {
        Protocol::Tcp => HeldPort::Tcp(TcpListener::bind(addr)?),
        Protocol::Udp => HeldPort::Udp(UdpSocket::bind(addr)?),
    })
}

/// The error for a host port that is taken: by whom, when berth published it.
fn taken(root: &Path, protocol: Protocol, ip: Ipv4Addr, port: u16) -> Error {
    let owner = netsetup::firewall::ports::published()
        .unwrap_or_default()
        .into_iter()
        .find(|p| {
            p.mapping.protocol == protocol
                && p.mapping.host_port == port
                && (p.mapping.host_ip.is_none()
                    || ip.is_unspecified()
                    || p.mapping.host_ip == Some(ip))
        })
        .map(|p| p.owner);
    let port = format!("{ip}:{port}/{protocol}");
    match owner {
        Some(owner) => Error::Invalid(format!(
            "port {port} is already published by container {}: pick another host port",
            container_name(root, &owner)
        )),
        None => Error::Invalid(format!(
            "port {port} is in use by a process of the host (see ss -tulpn): pick another host \
             port"
        )),
    }
}

/// Publishes `mappings` for container `id` in berth's table. An element left by a container
/// of this root whose launcher is gone is taken over.
pub fn publish(root: &Path, id: &str, mappings: &[PortMapping]) -> Result<()> {
    let owner_gone = |owner: &str| {
        ContainerDir::find(root, owner).is_ok_and(|(_, state)| state.status() != Status::Running)
    };
    netsetup::firewall::ports::publish(mappings, id, owner_gone).map_err(|e| match e {
        netsetup::Error::PortPublished { port, owner } => Error::Invalid(format!(
            "port {port} is already published by container {}: pick another host port",
            container_name(root, &owner)
        )),
        other => other.into(),
    })
}

/// Publishes again the ports of every running container of `root` (berth's table was flushed
/// and made anew). Returns how many.
pub fn republish_running(root: &Path) -> Result<usize> {
    let mut count = 0;
    for (_, state) in ContainerDir::list(root)? {
        let Ok(state) = state else { continue };
        if state.ports.is_empty() || state.status() != Status::Running {
            continue;
        }
        publish(root, &state.id, &state.ports)?;
        count += state.ports.len();
    }
    Ok(count)
}

/// `NAME (ID)` of the container with `id` under `root`, or the start of the id.
fn container_name(root: &Path, id: &str) -> String {
    let short: String = id.chars().take(12).collect();
    match ContainerDir::find(root, id) {
        Ok((_, state)) if state.name != short => format!("{} ({short})", state.name),
        _ => short,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> PublishRequest {
        PublishRequest::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn docker_forms_parse() {
        let request = parsed("80");
        assert_eq!(request.host_ports, None);
        assert_eq!(request.container_ports, 80..=80);
        assert_eq!(request.protocol, Protocol::Tcp);
        let request = parsed("127.0.0.1:8080:80/udp");
        assert_eq!(request.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(request.host_ports, Some(8080..=8080));
        assert_eq!(request.protocol, Protocol::Udp);
        let request = parsed("0.0.0.0::53/udp");
        assert_eq!((request.host_ip, request.host_ports), (None, None));
        assert_eq!(parsed("8000-8003:9000-9003").host_ports, Some(8000..=8003));
        assert_eq!(parsed("8000-8010:80").container_ports, 80..=80);
    }

    #[test]
    fn bad_forms_are_refused_with_the_reason() {
        for (text, reason) in [
            ("", "container port '' is not a port"),
            ("0:80", "host port '0'"),
            ("8080:80/sctp", "unknown protocol 'sctp'"),
            ("8003-8000:80", "runs backwards"),
            ("8000-8003:80-81", "4 host ports for 2 container ports"),
            ("localhost:8080:80", "'localhost' is not an IPv4 address"),
            ("1:2:3:4", "too many ':'"),
            ("70000:80", "'70000' is not a port"),
        ] {
            let error = PublishRequest::parse(text).expect_err(text).to_string();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }
}
