//! `berth run -p`: what a publish request says, the host ports it holds, and publishing them.
//!
//! A published port is held twice over while its container runs: berth's process keeps a
//! socket bound to it (listening, for TCP on IPv4), so the host's own programs cannot take it
//! and `ss -ltnp` shows who has it; and an element of a map in berth's nftables table sends
//! what arrives for it to the container.

use std::collections::HashSet;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use netsetup::{PortMapping, Protocol};

use crate::engine::state::{ContainerDir, Status};
use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::Flock;

/// One `-p [HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTOCOL]`, ports or ranges of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest {
    /// The protocol.
    pub protocol: Protocol,
    /// The host address (0.0.0.0 or [::]: every address of that family); `None`: every
    /// address of every family the container has.
    pub host_ip: Option<IpAddr>,
    /// The host ports; `None`: free ones, picked by the kernel.
    pub host_ports: Option<RangeInclusive<u16>>,
    /// The container's ports.
    pub container_ports: RangeInclusive<u16>,
}

const FORM: &str = "[HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|/udp], each port a number or a range \
                    like 8000-8003, an IPv6 HOSTIP in brackets";

impl PublishRequest {
    /// Parses docker's `-p` syntax.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |why: &str| {
            Error::Invalid(format!(
                "invalid port mapping '{text}': {why} (expected {FORM})"
            ))
        };
        let (ports, protocol) = match text.rsplit_once('/') {
            Some((ports, p)) if p.eq_ignore_ascii_case("tcp") => (ports, Protocol::Tcp),
            Some((ports, p)) if p.eq_ignore_ascii_case("udp") => (ports, Protocol::Udp),
            Some((_, other)) => {
                return Err(invalid(&format!(
                    "unknown protocol '{other}': only tcp and udp ports are published"
                )))
            }
            None => (text, Protocol::Tcp),
        };
        // An IPv6 address comes in brackets: [2001:db8::1]:8080:80.
        let (ip, ports) = match ports.strip_prefix('[') {
            Some(rest) => {
                let (ip, rest) = rest.split_once("]:").ok_or_else(|| {
                    invalid(if rest.contains(']') {
                        "a ':' and the ports must follow the IPv6 address in brackets"
                    } else {
                        "the ']' that closes the IPv6 address is missing"
                    })
                })?;
                let ip: Ipv6Addr = ip
                    .parse()
                    .map_err(|_| invalid(&format!("'{ip}' is not an IPv6 address")))?;
                (Some(IpAddr::V6(ip)), rest)
            }
            None => (None, ports),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let one_port_after_an_address = || {
            invalid(
                "an address needs a host port and a container port: IP:HOSTPORT:PORT, or \
                 IP::PORT for a free host port",
            )
        };
        let (host_ip, host_ports, container_ports) = match (ip, &parts[..]) {
            (None, [host, _]) if host.parse::<Ipv4Addr>().is_ok() => {
                return Err(one_port_after_an_address())
            }
            (Some(_), [_]) => return Err(one_port_after_an_address()),
            (None, [container]) => (None, None, *container),
            (None, [host, container]) => (None, Some(*host), *container),
            (None, [ip, host, container]) => {
                let ip: Ipv4Addr = ip.parse().map_err(|_| {
                    invalid(&format!(
                        "'{ip}' is not an IPv4 address (an IPv6 one goes in brackets)"
                    ))
                })?;
                (
                    Some(IpAddr::V4(ip)),
                    (!host.is_empty()).then_some(*host),
                    *container,
                )
            }
            (Some(ip), [host, container]) => {
                (Some(ip), (!host.is_empty()).then_some(*host), *container)
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
    _sockets: Vec<OwnedFd>,
}

/// Where one request is published: the mapping's host address (`None`: any of the family),
/// the address bound on the host, and the container's address of that family.
type Target = (Option<IpAddr>, IpAddr, IpAddr);

/// Binds the host ports `requests` ask for (picking free ones where none is given), for the
/// container at `container_ips` (its IPv4 address, and its IPv6 one on a dual-stack network).
/// Fails, holding nothing, on a port that is taken: by another container of berth's (named
/// from `root`) or by a process of the host.
pub fn reserve(
    requests: &[PublishRequest],
    container_ips: &[IpAddr],
    network: &str,
    root: &Path,
) -> Result<Reservation> {
    let mut reservation = Reservation::default();
    let mut seen = HashSet::new();
    for request in requests {
        let targets = targets(request, container_ips, network)?;
        let protocol = request.protocol;
        let mut hold = |host_port: u16, container_port: u16| {
            hold_all(
                &mut reservation,
                protocol,
                &targets,
                host_port,
                container_port,
            )
        };
        match &request.host_ports {
            // One container port, a range of host ports: the first free one.
            Some(hosts) if request.container_ports.len() == 1 && hosts.len() > 1 => {
                let container_port = *request.container_ports.start();
                let picked = hosts
                    .clone()
                    .filter(|port| !seen.contains(&(protocol, *port)))
                    .find_map(|port| hold(port, container_port).transpose())
                    .transpose()?;
                let Some(port) = picked else {
                    return Err(Error::Invalid(format!(
                        "no free host port in {}-{}/{protocol}",
                        hosts.start(),
                        hosts.end(),
                    )));
                };
                seen.insert((protocol, port));
            }
            Some(hosts) => {
                for (host_port, container_port) in
                    hosts.clone().zip(request.container_ports.clone())
                {
                    if !seen.insert((protocol, host_port)) {
                        return Err(Error::Invalid(format!(
                            "host port {host_port}/{protocol} is published twice by this run"
                        )));
                    }
                    if hold(host_port, container_port)?.is_none() {
                        let busy = busy_address(protocol, &targets, host_port);
                        return Err(taken(root, protocol, busy, host_port));
                    }
                }
            }
            None => {
                for container_port in request.container_ports.clone() {
                    // The kernel picks a port for the first address; the others must take
                    // the same one, which may be busy there: pick again.
                    let port = (0..20)
                        .find_map(|_| hold(0, container_port).transpose())
                        .transpose()?
                        .ok_or_else(|| {
                            Error::Invalid(format!("no free {protocol} port left on the host"))
                        })?;
                    seen.insert((protocol, port));
                }
            }
        }
    }
    Ok(reservation)
}

/// `ip` as it is written before a port: an IPv6 address in brackets.
fn shown(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    }
}

/// Where `request` is published, given the container's addresses (on `network`).
fn targets(
    request: &PublishRequest,
    container_ips: &[IpAddr],
    network: &str,
) -> Result<Vec<Target>> {
    let container_of = |v6: bool| container_ips.iter().copied().find(|ip| ip.is_ipv6() == v6);
    match request.host_ip {
        // Every address of every family the container has.
        None => Ok(container_ips
            .iter()
            .map(|&container| {
                let any = match container {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                };
                (None, any, container)
            })
            .collect()),
        Some(IpAddr::V6(ip)) if ip.is_loopback() => Err(Error::Invalid(
            "cannot publish on ::1: a packet from ::1 cannot be sent on to a container (IPv6 \
             has no route_localnet); publish on 127.0.0.1, or on the host's IPv6 address"
                .into(),
        )),
        Some(ip) => {
            let container = container_of(ip.is_ipv6()).ok_or_else(|| {
                Error::Invalid(format!(
                    "cannot publish on {}: the container has no IPv6 address (network \
                     {network} is IPv4 only: berth network update --ipv6 {network} turns IPv6 \
                     on)",
                    shown(ip)
                ))
            })?;
            Ok(vec![((!ip.is_unspecified()).then_some(ip), ip, container)])
        }
    }
}

/// Holds `host_port` (0: one the kernel picks) on every target and adds the mappings to
/// `reservation`; `None` when it is taken on one of them (then nothing is held).
fn hold_all(
    reservation: &mut Reservation,
    protocol: Protocol,
    targets: &[Target],
    host_port: u16,
    container_port: u16,
) -> Result<Option<u16>> {
    let mut port = host_port;
    let mut held = Vec::new();
    for &(_, bind_ip, _) in targets {
        match bind(protocol, SocketAddr::new(bind_ip, port)) {
            Ok(socket) => {
                port = bound_port(&socket)?;
                held.push(socket);
            }
            Err(Errno::EADDRINUSE) => return Ok(None),
            Err(Errno::EADDRNOTAVAIL) => {
                return Err(Error::Invalid(format!(
                    "cannot publish on {}: it is not an address of this host",
                    shown(bind_ip)
                )))
            }
            Err(e) => {
                return Err(Error::system(
                    format!("binding host port {}:{port}/{protocol}", shown(bind_ip)),
                    e,
                ))
            }
        }
    }
    for &(host_ip, _, container_ip) in targets {
        reservation.mappings.push(PortMapping {
            protocol,
            host_ip,
            host_port: port,
            container_ip,
            container_port,
        });
    }
    reservation._sockets.extend(held);
    Ok(Some(port))
}

/// The first of `targets` on which `port` cannot be bound.
fn busy_address(protocol: Protocol, targets: &[Target], port: u16) -> IpAddr {
    targets
        .iter()
        .map(|&(_, ip, _)| ip)
        .find(|&ip| bind(protocol, SocketAddr::new(ip, port)).is_err())
        .unwrap_or(targets[0].1)
}

/// A socket bound to `addr`, close-on-exec (the workload never sees it). For TCP on IPv4 a
/// listening one: nothing else can bind the port, whatever its options, and a connection in
/// TIME_WAIT on it does not stand in the way. On IPv6 only bound, IPv6 only (its IPv4 twin is
/// another socket), so that the host's connections to [::1], which cannot be sent on to a
/// container, are refused rather than left waiting.
fn bind(protocol: Protocol, addr: SocketAddr) -> nix::Result<OwnedFd> {
    use nix::sys::socket::{
        bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
        SockaddrStorage,
    };
    let family = if addr.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let kind = match protocol {
        Protocol::Tcp => SockType::Stream,
        Protocol::Udp => SockType::Datagram,
    };
    let socket = socket(family, kind, SockFlag::SOCK_CLOEXEC, None)?;
    let listens = protocol == Protocol::Tcp && addr.is_ipv4();
    if addr.is_ipv6() {
        setsockopt(&socket, sockopt::Ipv6V6Only, &true)?;
    }
    if listens {
        setsockopt(&socket, sockopt::ReuseAddr, &true)?;
    }
    bind(socket.as_raw_fd(), &SockaddrStorage::from(addr))?;
    if listens {
        listen(&socket, Backlog::new(16).unwrap_or(Backlog::MAXCONN))?;
    }
    Ok(socket)
}

fn bound_port(socket: &OwnedFd) -> Result<u16> {
    use nix::sys::socket::{getsockname, SockaddrStorage};
    let addr: SockaddrStorage = getsockname(socket.as_raw_fd())
        .map_err(|e| Error::system("reading a held port's number", e))?;
    Ok(addr
        .as_sockaddr_in()
        .map(|a| a.port())
        .or_else(|| addr.as_sockaddr_in6().map(|a| a.port()))
        .unwrap_or(0))
}

/// The error for a host port that is taken: by whom, when berth published it.
fn taken(root: &Path, protocol: Protocol, ip: IpAddr, port: u16) -> Error {
    let owner = netsetup::firewall::ports::published()
        .unwrap_or_default()
        .into_iter()
        .find(|p| {
            p.mapping.protocol == protocol
                && p.mapping.host_port == port
                && p.mapping.container_ip.is_ipv6() == ip.is_ipv6()
                && (p.mapping.host_ip.is_none()
                    || ip.is_unspecified()
                    || p.mapping.host_ip == Some(ip))
        })
        .map(|p| p.owner);
    let port = format!("{}:{port}/{protocol}", shown(ip));
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

/// Serializes the changes to the published ports of `root`'s containers: a run's publish
/// (with its takeovers) and unpublish, a republish after a flush, and gc's removals. Without
/// it, a republish could put back the ports of a container that is being torn down.
pub fn lock(root: &Path) -> Result<Flock<File>> {
    Ok(berth_state::lock(&root.join("ports.lock"))?)
}

/// Publishes again the ports of every running container of `root` whose workload still runs
/// (berth's table was flushed and made anew); a container that fails is reported and the
/// others go on. Returns how many ports.
pub fn republish_running(root: &Path) -> Result<usize> {
    let _lock = lock(root)?;
    let mut count = 0;
    for (_, state) in ContainerDir::list(root)? {
        let Ok(state) = state else { continue };
        // One being torn down has no workload left, and has unpublished (or is about to,
        // once it gets this lock).
        let ports: Vec<PortMapping> = state
            .attachments
            .iter()
            .flat_map(|a| a.ports.iter().cloned())
            .collect();
        if ports.is_empty() || state.status() != Status::Running || state.live_workload().is_none()
        {
            continue;
        }
        match publish(root, &state.id, &ports) {
            Ok(()) => count += ports.len(),
            Err(e) => eprintln!("berth: publishing the ports of {} again: {e}", state.name),
        }
    }
    Ok(count)
}

/// Lets go of berth's netfilter socket without making anyone wait for the kernel: a child
/// process takes it over and releases it [`netsetup::firewall::RELEASE_AFTER`] later, when the
/// release costs nothing (see there). Call it last: the child holds, until it has closed them,
/// every descriptor berth has open.
pub fn release_netfilter_socket() {
    let Some(socket) = netsetup::firewall::take_socket() else {
        return;
    };
    // SAFETY: the child only makes async-signal-safe system calls and exits, without
    // returning into berth or allocating, so a lock that a thread of berth's held at the fork
    // (a terminal or input relay's, which the child does not have) is never waited on.
    if let Ok(nix::unistd::ForkResult::Child) = unsafe { nix::unistd::fork() } {
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: netsetup::firewall::RELEASE_AFTER.as_nanos() as libc::c_long,
        };
        // Every descriptor but the socket (the caller's pipes and locks among them) closed.
        // SAFETY: a forked child, which ends with `_exit` below and so drops no owner.
        let _ = unsafe { berth_container::sys::close_all_but(socket.as_fd()) };
        // SAFETY: as above; `_exit` ends the child without running destructors.
        unsafe {
            // Named for what it is in ps, and ended by any signal.
            libc::prctl(libc::PR_SET_NAME, c"berth-release".as_ptr());
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            libc::nanosleep(&pause, std::ptr::null_mut());
            libc::_exit(0);
        }
    }
    // Not the release: the child holds the socket (if the fork failed, berth waits).
    drop(socket);
}

/// `NAME (ID)` of the container with `id` under `root`, or the start of the id.
fn container_name(root: &Path, id: &str) -> String {
    let short = berth_state::short_id(id).to_owned();
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
        assert_eq!(request.host_ip, Some(Ipv4Addr::LOCALHOST.into()));
        assert_eq!(request.host_ports, Some(8080..=8080));
        assert_eq!(request.protocol, Protocol::Udp);
        let request = parsed("0.0.0.0::53/udp");
        assert_eq!(request.host_ip, Some(Ipv4Addr::UNSPECIFIED.into()));
        assert_eq!(request.host_ports, None);
        let request = parsed("[2001:db8::1]:8080:80");
        assert_eq!(request.host_ip, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(
            parsed("[::]::80").host_ip,
            Some(Ipv6Addr::UNSPECIFIED.into())
        );
        assert_eq!(parsed("8000-8003:9000-9003").host_ports, Some(8000..=8003));
        assert_eq!(parsed("8000-8010:80").container_ports, 80..=80);
        assert_eq!(parsed("53/UDP").protocol, Protocol::Udp);
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
            (
                "[::1:8080:80",
                "the ']' that closes the IPv6 address is missing",
            ),
            ("127.0.0.1:8080", "IP:HOSTPORT:PORT, or IP::PORT"),
            ("[::1]:8080", "IP:HOSTPORT:PORT, or IP::PORT"),
            ("[fe80::zz]:8080:80", "'fe80::zz' is not an IPv6 address"),
            ("1:2:3:4", "too many ':'"),
            ("70000:80", "'70000' is not a port"),
        ] {
            let error = PublishRequest::parse(text).expect_err(text).to_string();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }
}
