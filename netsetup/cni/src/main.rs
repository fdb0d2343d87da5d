//! berth-cni: netsetup as a CNI plugin (specification 1.1.0; configurations of 0.4.0, 1.0.0
//! and 1.1.0).
//!
//! The runtime names the command and the container in environment variables (CNI_COMMAND,
//! CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH) and hands the network
//! configuration on stdin; the result, or the error, is JSON on stdout. An attachment (the
//! container id and the interface name) is made by the same netsetup steps as a `berth run`:
//! the bridge and berth's table ([`netsetup::ensure_network`]), a lease ([`netsetup::LeaseFile`],
//! its owner the attachment), the veth ([`netsetup::attach`]), the container's side
//! ([`netsetup::configure_container_interface`]) and the published ports
//! ([`netsetup::firewall::ports`]).

mod config;
mod error;

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Read as _;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use netsetup::firewall::ports;
use netsetup::{IpNet, LeaseFile, LeaseOwner, Namespace, Netlink, NetworkSpec};
use serde_json::{json, Value};

use config::{Attachment, Config, SUPPORTED_VERSIONS};
use error::{CniError, INVALID_ENV, NETSETUP, NOT_AVAILABLE};

/// The newest version of the specification, the one VERSION answers in.
const SPEC_VERSION: &str = "1.1.0";

/// The longest CNI_CONTAINERID taken. Neither the specification nor libcni sets a limit;
/// containerd sends up to 153 characters (its namespace, '-', its id). An id goes whole into
/// the attachment's lease line, and hashed into its veth's name and, past an element
/// comment's 127 bytes, its ports' owner.
const MAX_CONTAINER_ID: usize = 1024;

/// Where `nft` is looked for when the runtime gives no PATH.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn main() {
    let mut input = String::new();
    let read = std::io::stdin().read_to_string(&mut input);
    // Errors are given in the configuration's version when it has a supported one.
    let version = config::version_of(&input)
        .map(|(_, version)| version)
        .unwrap_or_else(|_| SPEC_VERSION.into());
    let outcome = match read {
        Ok(_) => run(&input),
        Err(e) => Err(CniError::new(
            error::DECODE,
            "cannot read the network configuration from stdin",
            e.to_string(),
        )),
    };
    match outcome {
        Ok(Some(result)) => println!("{result}"),
        Ok(None) => {}
        Err(error) => {
            println!("{}", error.to_json(&version));
            std::process::exit(1);
        }
    }
}

/// The environment of one call.
struct Call {
    command: String,
    container: String,
    netns: String,
    ifname: String,
}

impl Call {
    fn from_env() -> Result<Call, CniError> {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        let call = Call {
            command: var("CNI_COMMAND"),
            container: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
        };
        if call.command.is_empty() {
            return Err(CniError::new(INVALID_ENV, "CNI_COMMAND is not set", ""));
        }
        Ok(call)
    }

    /// Checks the variables that name an attachment: CNI_CONTAINERID, CNI_IFNAME and, when
    /// `needs_netns`, CNI_NETNS.
    fn check_attachment(&self, needs_netns: bool) -> Result<(), CniError> {
        let invalid = |msg: String| Err(CniError::new(INVALID_ENV, msg, ""));
        let id = &self.container;
        if id.is_empty()
            || id.len() > MAX_CONTAINER_ID
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return invalid(format!(
                "CNI_CONTAINERID {id:?} must be 1 to {MAX_CONTAINER_ID} characters of a-z, A-Z, \
                 0-9, _ . -"
            ));
        }
        let ifname = &self.ifname;
        if ifname.is_empty()
            || ifname.len() > 15
            || ifname == "."
            || ifname == ".."
            || ifname.contains(['/', ':', '='])
            || ifname
                .chars()
                .any(|c| c.is_ascii_whitespace() || c.is_control())
        {
            return invalid(format!("CNI_IFNAME {ifname:?} is not an interface name"));
        }
        if needs_netns && self.netns.is_empty() {
            return invalid("CNI_NETNS is not set".into());
        }
        Ok(())
    }

    /// The owner of the attachment's port map elements: `cni:NETWORK/CONTAINER/IFNAME`.
    fn port_owner(&self, network: &str) -> String {
        port_owner(network, &self.container, &self.ifname)
    }
}

/// `cni:NETWORK/CONTAINER/IFNAME`, or when that is longer than an element's comment can be
/// (127 bytes), `cni:NETWORK/` and the attachment's host interface name (a hash of the two).
fn port_owner(network: &str, container: &str, ifname: &str) -> String {
    let full = format!("cni:{network}/{container}/{ifname}");
    if full.len() <= 127 {
        return full;
    }
    format!(
        "cni:{network}/{}",
        netsetup::attachment_host_interface(container, ifname)
    )
}

fn run(input: &str) -> Result<Option<String>, CniError> {
    if std::env::var_os("PATH").is_none() {
        std::env::set_var("PATH", DEFAULT_PATH);
    }
    let call = Call::from_env()?;
    if call.command == "VERSION" {
        return Ok(Some(version()));
    }
    let config = Config::parse(input)?;
    match call.command.as_str() {
        "ADD" => {
            call.check_attachment(true)?;
            add(&call, &config).map(Some)
        }
        "DEL" => {
            call.check_attachment(false)?;
            del(&call, &config).map(|()| None)
        }
        "CHECK" => {
            call.check_attachment(true)?;
            check(&call, &config).map(|()| None)
        }
        "GC" => gc(&config).map(|()| None),
        "STATUS" => status(&config).map(|()| None),
        other => Err(CniError::new(
            INVALID_ENV,
            format!("CNI_COMMAND {other:?} is not one of ADD, DEL, CHECK, VERSION, GC, STATUS"),
            "",
        )),
    }
}

fn version() -> String {
    json!({"cniVersion": SPEC_VERSION, "supportedVersions": SUPPORTED_VERSIONS}).to_string()
}

/// The network's state directory, made if need be (0700), and its lease file.
fn leases(config: &Config, network: &NetworkSpec) -> Result<LeaseFile, CniError> {
    let dir = config.state_dir();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| {
            CniError::new(
                NETSETUP,
                format!("cannot make the data directory {}: {e}", dir.display()),
                "",
            )
        })?;
    Ok(network.lease_file(&dir))
}

/// Opens CNI_NETNS, `path`, and checks that it is a network namespace and not berth-cni's
/// own (the host's, which ADD would configure as a container's). Opened without blocking, so
/// that a FIFO cannot hang the call.
fn open_netns(path: &str) -> Result<File, CniError> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            CniError::new(
                NETSETUP,
                format!("cannot open the network namespace {path}: {e}"),
                "",
            )
        })?;
    let invalid = |what: &str| CniError::new(INVALID_ENV, format!("CNI_NETNS {path} {what}"), "");
    if !netsetup::is_network_namespace(file.as_fd()) {
        return Err(invalid("is not a network namespace"));
    }
    let own = fs::metadata("/proc/self/ns/net").map_err(|e| {
        CniError::new(
            NETSETUP,
            format!("cannot look at berth-cni's own network namespace: {e}"),
            "",
        )
    })?;
    let given = file.metadata().map_err(|e| {
        CniError::new(
            NETSETUP,
            format!("cannot look at the network namespace {path}: {e}"),
            "",
        )
    })?;
    if (given.dev(), given.ino()) == (own.dev(), own.ino()) {
        return Err(invalid(
            "is berth-cni's own network namespace, the host's: a container needs one of its own",
        ));
    }
    Ok(file)
}

/// ADD: a lease for the attachment, the network made ready, the veth, the container's side,
/// the ports; on any failure, what was made is undone.
fn add(call: &Call, config: &Config) -> Result<String, CniError> {
    let network = config.network();
    if !network.bridge_is_gateway && !config.mappings(network.gateway)?.is_empty() {
        return Err(CniError::new(
            error::INVALID_CONFIG,
            "portMappings need isGateway true: without an address on the bridge the host \
             cannot reach the containers",
            "",
        ));
    }
    let netns = open_netns(&call.netns)?;
    let leases = leases(config, &network)?;
    let owner = LeaseOwner::attachment(&call.container, &call.ifname)?;
    let mut netlink = Netlink::open()?;
    // A dead owner's lease (one of an earlier boot) stands in the way only when the subnet is
    // full: its namespace went with that boot.
    let addr = leases.allocate(&owner, None, |_| false)?;
    let made = wire(call, config, &network, &mut netlink, &netns, addr);
    match made {
        Ok(result) => Ok(result),
        Err(error) => {
            // What was made goes, the lease last.
            let _ = ports::unpublish_owned_by(&[call.port_owner(&config.name)]);
            let host = netsetup::attachment_host_interface(&call.container, &call.ifname);
            let _ = netlink.delete_link(&host);
            let _ = leases.release_attachment(&call.container, &call.ifname);
            Err(error)
        }
    }
}

fn wire(
    call: &Call,
    config: &Config,
    network: &NetworkSpec,
    netlink: &mut Netlink,
    netns: &File,
    addr: Ipv4Addr,
) -> Result<String, CniError> {
    let state_dir = config.state_dir();
    // One ADD at a time looks at the bridge and makes it ready: the kernel takes a new bridge's
    // alias only after the bridge exists, so a concurrent ADD could see it without one, and one
    // ADD's removal of a stale table could take another's fresh one.
    let network_lock =
        berth_state::lock(&state_dir.join("network.lock")).map_err(netsetup::Error::from)?;
    // A bridge that berth did not make (another plugin's cni0, docker0, a LAN bridge) is not
    // taken over: berth's table, sysctls and GC would change what it is for.
    if let Some(existing) = netlink.link_by_name(&network.bridge)? {
        if !existing
            .alias
            .as_deref()
            .is_some_and(|a| a.starts_with("berth:"))
        {
            return Err(CniError::new(
                error::INVALID_CONFIG,
                format!(
                    "bridge {} exists and was not made by berth; name another bridge",
                    network.bridge
                ),
                "",
            ));
        }
    }
    // A network whose settings changed (ipMasq, say) leaves no entries of the old ones.
    if !netsetup::firewall::installed(network)? {
        netsetup::firewall::uninstall(&network.bridge)?;
    }
    let bridge = netsetup::ensure_network(netlink, network, &state_dir, Vec::new)?;
    drop(network_lock);
    let host = netsetup::attachment_host_interface(&call.container, &call.ifname);
    // A repeated ADD makes the attachment anew: the old veth (and its peer) goes first.
    netlink.delete_link(&host)?;
    netsetup::attach(
        netlink,
        bridge.index,
        &host,
        &call.ifname,
        addr,
        Namespace::File(netns.as_fd()),
    )?;
    let mut inside = Netlink::open_in(netns.as_fd())?;
    if let Some(mtu) = config.mtu {
        netlink.set_mtu(0, &host, mtu)?;
        inside.set_mtu(0, &call.ifname, mtu)?;
    }
    let addresses = network.container_addresses(addr);
    let gateways = network.container_gateways();
    netsetup::configure_container_interface(&mut inside, &call.ifname, &addresses, &gateways)?;
    let mappings = config.mappings(addr)?;
    if !mappings.is_empty() {
        ports::publish(&mappings, &call.port_owner(&config.name), |_| false)?;
    }
    let host_mac = netlink
        .link_by_name(&host)?
        .map(|link| link.mac)
        .unwrap_or_default();
    let ours = result(
        &config.cni_version,
        network,
        &host,
        &host_mac,
        call,
        addr,
        config.dns.as_ref(),
    );
    Ok(match &config.prev_result {
        Some(previous) => merged(previous, ours),
        None => ours,
    }
    .to_string())
}

/// The result of the plugins before this one with `ours` added: its interfaces after theirs
/// (the indexes of its addresses moved along), its addresses and routes after theirs, and its
/// DNS where theirs has none.
fn merged(previous: &Value, mut ours: Value) -> Value {
    let mut all = previous.clone();
    if !all.is_object() {
        return ours;
    }
    let list = |value: &mut Value, key: &str| -> Vec<Value> {
        value
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .map(std::mem::take)
            .unwrap_or_default()
    };
    let mut interfaces = list(&mut all, "interfaces");
    let offset = interfaces.len() as u64;
    let mut ips = list(&mut all, "ips");
    for mut ip in list(&mut ours, "ips") {
        if let Some(index) = ip.get("interface").and_then(Value::as_u64) {
            ip["interface"] = (index + offset).into();
        }
        ips.push(ip);
    }
    interfaces.extend(list(&mut ours, "interfaces"));
    let mut routes = list(&mut all, "routes");
    routes.extend(list(&mut ours, "routes"));
    all["interfaces"] = interfaces.into();
    all["ips"] = ips.into();
    all["routes"] = routes.into();
    if all
        .get("dns")
        .is_none_or(|dns| dns.as_object().is_none_or(|d| d.is_empty()))
    {
        all["dns"] = ours["dns"].take();
    }
    all["cniVersion"] = ours["cniVersion"].take();
    all
}

/// `aa:bb:cc:dd:ee:ff`.
fn mac_text(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The ADD result in `version`'s format: the bridge, the host veth and the container's
/// interface; the address on the latter, with its gateway; the default route; DNS as
/// configured.
fn result(
    version: &str,
    network: &NetworkSpec,
    host: &str,
    host_mac: &[u8],
    call: &Call,
    addr: Ipv4Addr,
    dns: Option<&Value>,
) -> Value {
    let ip_version = version.starts_with("0.");
    let gateways = network.container_gateways();
    let ips: Vec<Value> = network
        .container_addresses(addr)
        .iter()
        .map(|address| {
            let mut ip = json!({
                "address": address.to_string(),
                "interface": 2,
            });
            let same_family = |gateway: &&IpAddr| gateway.is_ipv4() == address.addr().is_ipv4();
            if let Some(gateway) = gateways.iter().find(same_family) {
                ip["gateway"] = gateway.to_string().into();
            }
            if ip_version {
                ip["version"] = if address.addr().is_ipv4() { "4" } else { "6" }.into();
            }
            ip
        })
        .collect();
    json!({
        "cniVersion": version,
        "interfaces": [
            {"name": network.bridge, "mac": mac_text(&netsetup::mac_for(network.gateway))},
            {"name": host, "mac": mac_text(host_mac)},
            {"name": call.ifname, "mac": mac_text(&netsetup::mac_for(addr)), "sandbox": call.netns},
        ],
        "ips": ips,
        "routes": gateways
            .iter()
            .map(|gateway| {
                let everywhere = if gateway.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
                json!({"dst": everywhere, "gw": gateway.to_string()})
            })
            .collect::<Vec<_>>(),
        "dns": dns.cloned().unwrap_or_else(|| json!({})),
    })
}

/// DEL: the ports, the host veth (the container's end goes with it) and the lease; each step
/// is fine with nothing to do, so DEL succeeds twice, without ADD, and with the namespace gone.
///
/// Deleting a veth holds the caller 10 to 30 ms while the kernel waits for RCU grace periods;
/// so the host end is only taken off the bridge here (the address it held can go to another
/// attachment at once), and a child deletes it, by index, after berth-cni has answered. The
/// child also takes over the netfilter socket, whose release waits for the removed ports'
/// elements to be freed.
fn del(call: &Call, config: &Config) -> Result<(), CniError> {
    let network = config.network();
    let leases = leases(config, &network)?;
    ports::unpublish_owned_by(&[call.port_owner(&config.name)])?;
    let mut netlink = Netlink::open()?;
    let host = netsetup::attachment_host_interface(&call.container, &call.ifname);
    let link = netlink.link_by_name(&host)?;
    if let Some(link) = &link {
        if link.controller.is_some() {
            netlink.leave_bridge(link.index, &host)?;
        }
    }
    leases.release_attachment(&call.container, &call.ifname)?;
    let netfilter = netsetup::firewall::take_socket();
    if let Some(link) = link {
        delete_in_background(netlink, link.index, &host, netfilter);
    }
    Ok(())
}

/// Deletes interface `index` in a child of its own, which the runtime does not wait for (or
/// here, if there can be no child), and lets go of `netfilter` there.
fn delete_in_background(
    mut netlink: Netlink,
    index: u32,
    name: &str,
    netfilter: Option<std::os::fd::OwnedFd>,
) {
    // SAFETY: berth-cni has one thread (neither it nor netsetup starts any; nft runs as a
    // process of its own), so the child may run any code; it never returns from this function
    // (it ends with `_exit`). Not checked here: berth-cni does not link berth-container, whose
    // `sys::check_single_threaded` berth's own forks call.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            // Off the runtime's pipes (it reads stdout to its end) and out of its session.
            let _ = nix::unistd::setsid();
            if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
                for fd in 0..3 {
                    // SAFETY: dup2 onto the standard descriptors, from one that is open.
                    unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) };
                }
            }
            let _ = netlink.delete_link_at(index, name);
            if netfilter.is_some() {
                std::thread::sleep(netsetup::firewall::RELEASE_AFTER);
            }
            drop(netfilter);
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Parent { .. }) => {}
        Err(_) => {
            let _ = netlink.delete_link_at(index, name);
        }
    }
}

/// CHECK: the attachment has its lease, its host veth on the bridge, and inside the namespace
/// its interface up with its address and default route.
fn check(call: &Call, config: &Config) -> Result<(), CniError> {
    let network = config.network();
    let leases = leases(config, &network)?;
    let wrong = |what: String| CniError::new(error::CHECK_FAILED, what, "");
    let addr = leases
        .leases()?
        .into_iter()
        .find(|(_, owner)| {
            owner.container == call.container && owner.interface.as_deref() == Some(&call.ifname)
        })
        .map(|(addr, _)| addr)
        .ok_or_else(|| {
            wrong(format!(
                "{} of container {} has no lease in {}",
                call.ifname,
                call.container,
                leases.path().display()
            ))
        })?;
    let addresses: Vec<IpNet> = network.container_addresses(addr);
    // The runtime's record of the chain's ADD must agree with the lease: among the addresses
    // it gives this interface (a later plugin may have added some) are berth-cni's.
    if let Some(previous) = &config.prev_result {
        let recorded = recorded_addresses(previous, &call.ifname, &call.netns);
        if !recorded.is_empty() && !addresses.iter().all(|a| recorded.contains(a)) {
            let listed: Vec<String> = recorded.iter().map(ToString::to_string).collect();
            return Err(wrong(format!(
                "prevResult gives {} the addresses {}, but its lease is {addr}",
                call.ifname,
                listed.join(", ")
            )));
        }
    }
    let mut netlink = Netlink::open()?;
    let host = netsetup::attachment_host_interface(&call.container, &call.ifname);
    let bridge = netlink.link_by_name(&network.bridge)?;
    let on_bridge = netlink.link_by_name(&host)?.is_some_and(|link| {
        link.controller.is_some() && link.controller == bridge.map(|b| b.index)
    });
    if !on_bridge {
        return Err(wrong(format!(
            "the host end {host} of {} is missing or not on bridge {}",
            call.ifname, network.bridge
        )));
    }
    let netns = open_netns(&call.netns)?;
    let mut inside = Netlink::open_in(netns.as_fd())?;
    netsetup::check_container_interface(
        &mut inside,
        &call.ifname,
        &addresses,
        &network.container_gateways(),
    )?;
    Ok(())
}

/// The addresses that a result gives interface `ifname` in `netns` (its `ips` whose
/// `interface` index names an interface of that name and sandbox).
fn recorded_addresses(result: &Value, ifname: &str, netns: &str) -> Vec<IpNet> {
    let interfaces = result["interfaces"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let is_ours = |index: &Value| {
        index
            .as_u64()
            .and_then(|i| interfaces.get(usize::try_from(i).ok()?))
            .is_some_and(|interface| interface["name"] == ifname && interface["sandbox"] == netns)
    };
    result["ips"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter(|ip| is_ours(&ip["interface"]))
        .filter_map(|ip| ip["address"].as_str()?.parse().ok())
        .collect()
}

/// GC: every attachment of this network that `cni.dev/valid-attachments` does not list loses
/// its ports, its host veth and its lease; so do ports and veths on this network's bridge that
/// no valid attachment accounts for.
fn gc(config: &Config) -> Result<(), CniError> {
    let network = config.network();
    let leases = leases(config, &network)?;
    // Without the list, GC would remove every attachment: a runtime that forgot it must not.
    let Some(valid_attachments) = &config.valid_attachments else {
        return Err(CniError::new(
            error::INVALID_CONFIG,
            "GC needs cni.dev/valid-attachments (an empty list removes every attachment)",
            "",
        ));
    };
    let valid: HashSet<(&str, &str)> = valid_attachments
        .iter()
        .map(
            |Attachment {
                 container_id,
                 ifname,
             }| (container_id.as_str(), ifname.as_str()),
        )
        .collect();
    // Ports first, while the addresses they lead to are still leased.
    let prefix = format!("cni:{}/", config.name);
    let valid_owners: HashSet<String> = valid
        .iter()
        .map(|(container, ifname)| port_owner(&config.name, container, ifname))
        .collect();
    let stale_ports: Vec<String> = ports::published()?
        .into_iter()
        .filter(|p| p.owner.starts_with(&prefix) && !valid_owners.contains(&p.owner))
        .map(|p| p.owner)
        .collect();
    if !stale_ports.is_empty() {
        ports::unpublish_owned_by(&stale_ports)?;
    }
    let mut netlink = Netlink::open()?;
    let keep: HashSet<String> = valid
        .iter()
        .map(|(container, ifname)| netsetup::attachment_host_interface(container, ifname))
        .collect();
    if let Some(bridge) = netlink.link_by_name(&network.bridge)? {
        for name in netlink.link_names()? {
            if !name.starts_with("bcni") || keep.contains(&name) {
                continue;
            }
            if netlink
                .link_by_name(&name)?
                .is_some_and(|link| link.controller == Some(bridge.index))
            {
                netlink.delete_link(&name)?;
            }
        }
    }
    leases.release_attachments_but(|container, ifname| valid.contains(&(container, ifname)))?;
    Ok(())
}

/// STATUS: ready when the lease file's directory can be written and `nft` can be run.
fn status(config: &Config) -> Result<(), CniError> {
    let unavailable = |msg: String| CniError::new(NOT_AVAILABLE, msg, "");
    let network = config.network();
    let leases = leases(config, &network).map_err(|e| unavailable(e.msg))?;
    leases.leases().map_err(|e| unavailable(e.to_string()))?;
    let dir = config.state_dir();
    let probe = dir.join(format!(".status{}", std::process::id()));
    fs::write(&probe, b"").map_err(|e| {
        unavailable(format!(
            "the data directory {} is not writable: {e}",
            dir.display()
        ))
    })?;
    let _ = fs::remove_file(&probe);
    let path = std::env::var_os("PATH").unwrap_or_default();
    let nft = std::env::split_paths(&path).any(|dir| is_executable(&dir.join("nft")));
    if !nft {
        return Err(unavailable(
            "nft not found in PATH: berth-cni needs nftables (apt-get install nftables)".into(),
        ));
    }
    Ok(())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
