//! `berth network`: create, list, inspect, remove and prune networks, and reload the firewall.

use std::path::Path;
use std::time::Instant;

use netsetup::Netlink;
use serde_json::json;

use crate::cli::{NetworkCommand, NetworkCreateArgs, PsFormat};
use crate::commands::table::print_columns;
use crate::engine::host::{
    canonical_root, check_privileges, container_still_attached, DYING_NAMESPACE_GRACE,
};
use crate::engine::networks::{self, Record};
use crate::engine::state::{ContainerDir, State, Status};
use crate::error::{Error, Result};

/// Runs a `berth network` subcommand.
pub fn network(root: &Path, command: NetworkCommand) -> Result<u8> {
    match command {
        NetworkCommand::Create(args) => create(root, args),
        NetworkCommand::Ls { format } => ls(root, format),
        NetworkCommand::Inspect { name } => inspect(root, &name),
        NetworkCommand::Rm { names } => rm(root, &names),
        NetworkCommand::Update {
            ipv6,
            subnet6,
            name,
            ..
        } => update(root, &name, ipv6 || subnet6.is_some(), subnet6),
        NetworkCommand::Prune => prune(root),
        NetworkCommand::Reload => reload(root),
    }
}

fn create(root: &Path, args: NetworkCreateArgs) -> Result<u8> {
    check_privileges("network create")?;
    let root = &canonical_root(root)?;
    let _registry = berth_state::lock(&root.join("networks.lock"))?;
    let mut netlink = Netlink::open()?;
    let request = networks::Request {
        name: &args.name,
        subnet: args.subnet,
        gateway: args.gateway,
        bridge: args.bridge.as_deref(),
        internal: args.internal,
        ipv6: args.ipv6 || args.subnet6.is_some(),
        subnet6: args.subnet6,
    };
    // berth-cni's networks (and other roots') on berth's table: their subnets and bridges are
    // taken too.
    let installed = netsetup::firewall::installed_networks()?;
    let record = networks::plan(root, &request, &netlink.link_names()?, &installed)?;
    let spec = record.spec();
    let state_dir = networks::state_dir(root, &record.name)?;
    let mut made = || -> Result<()> {
        // Entries an earlier network left on this bridge name (a removal that failed halfway).
        netsetup::firewall::uninstall(&spec.bridge)?;
        let bridge =
            netsetup::ensure_network(&mut netlink, &spec, &state_dir, || networks::specs(root))?;
        if bridge.freshly_installed {
            crate::engine::ports::republish_running(root)?;
        }
        networks::member_hosts(&state_dir).retain(|_| true)?;
        networks::record(root, &record)
    };
    if let Err(error) = made() {
        let _ = netsetup::remove_network(&mut netlink, &spec, &state_dir);
        let _ = networks::forget(root, &record.name);
        return Err(error);
    }
    println!("{}", record.name);
    Ok(0)
}

fn ls(root: &Path, format: PsFormat) -> Result<u8> {
    let records = networks::list(root)?;
    match format {
        PsFormat::Json => {
            let mut list: Vec<_> = records.iter().map(describe).collect();
            list.extend(["host", "none"].map(|name| json!({ "name": name })));
            println!("{}", serde_json::Value::Array(list));
        }
        PsFormat::Table => {
            let mut rows = vec![["NAME", "BRIDGE", "SUBNET", "GATEWAY", "INTERNAL", "IPV6"]
                .map(String::from)
                .to_vec()];
            for record in &records {
                rows.push(vec![
                    record.name.clone(),
                    record.bridge.clone(),
                    record.subnet.to_string(),
                    record.gateway.to_string(),
                    if record.internal { "yes" } else { "no" }.into(),
                    record.subnet6.map_or("-".into(), |net| net.to_string()),
                ]);
            }
            for name in ["host", "none"] {
                rows.push([name, "-", "-", "-", "-", "-"].map(String::from).to_vec());
            }
            print_columns(&rows).map_err(|e| Error::system("write the listing", e))?;
        }
    }
    Ok(0)
}

fn inspect(root: &Path, name: &str) -> Result<u8> {
    let record = networks::find(root, name)?;
    let mut value = describe(&record);
    value["containers"] = users(root, &record.name)
        .iter()
        .map(|s| {
            let on_it = s.attachments.iter().find(|a| a.network == record.name);
            let address = on_it.map(|a| a.address.as_str());
            let address6 = on_it.and_then(|a| a.address6.as_deref());
            json!({ "name": s.name, "id": s.id, "address": address, "address6": address6 })
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&value).expect("JSON"));
    Ok(0)
}

fn rm(root: &Path, names: &[String]) -> Result<u8> {
    check_privileges("network rm")?;
    let root = &canonical_root(root)?;
    let _registry = berth_state::lock(&root.join("networks.lock"))?;
    let mut netlink = Netlink::open()?;
    let mut failed = false;
    for name in names {
        match networks::find(root, name).and_then(|r| remove(root, &mut netlink, &r)) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("berth: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 125 } else { 0 })
}

/// `berth network update`: IPv6 on (`ipv6`, with `subnet6` if given) or off (`--no-ipv6`;
/// clap asks for one of them). The network is taken down (its firewall entries
/// and bridge) and set up again from its new record, while no container uses it.
fn update(root: &Path, name: &str, ipv6: bool, subnet6: Option<netsetup::Ipv6Net>) -> Result<u8> {
    check_privileges("network update")?;
    let root = &canonical_root(root)?;
    let _registry = berth_state::lock(&root.join("networks.lock"))?;
    let record = networks::find(root, name)?;
    let updated = match (ipv6, subnet6, record.subnet6) {
        // IPv6 is on already, and no other subnet is asked for.
        (true, None, Some(_)) => record.clone(),
        _ => {
            let installed = netsetup::firewall::installed_networks()?;
            networks::with_ipv6(root, &record, ipv6, subnet6, &installed)?
        }
    };
    if updated.subnet6 == record.subnet6 {
        println!("{name}");
        return Ok(0);
    }
    // The record exists (the default network's may not yet), so that runs hold it from now
    // on; then no run may hold it, nor any container run on it.
    if record.is_default() {
        networks::record(root, &record)?;
    }
    let _held = networks::hold_exclusively(root, &record, || user_names(root, &record.name))?;
    let running = user_names(root, &record.name);
    if !running.is_empty() {
        return Err(networks::in_use(&record.name, &running));
    }
    let mut netlink = Netlink::open()?;
    let state_dir = networks::state_dir(root, &record.name)?;
    netsetup::remove_network(&mut netlink, &record.spec(), &state_dir)?;
    let bridge = netsetup::ensure_network(&mut netlink, &updated.spec(), &state_dir, || {
        networks::specs(root)
    })?;
    // The record last: a run that waited for the old one finds the new one, and a run that
    // set out on the old network is told to run again.
    if updated.is_default() && updated.subnet6.is_none() {
        // The default network as built in: no record of settings is left.
        networks::forget_settings(root)?;
    } else {
        networks::record(root, &updated)?;
    }
    if bridge.freshly_installed {
        crate::engine::ports::republish_running(root)?;
    }
    println!("{name}");
    Ok(0)
}

fn prune(root: &Path) -> Result<u8> {
    check_privileges("network prune")?;
    let root = &canonical_root(root)?;
    let _registry = berth_state::lock(&root.join("networks.lock"))?;
    let mut netlink = Netlink::open()?;
    for record in networks::list(root)?.iter().filter(|r| !r.is_default()) {
        match remove(root, &mut netlink, record) {
            Ok(()) => println!("{}", record.name),
            Err(Error::InUse(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(0)
}

/// Removes a created network that nothing uses: under an exclusive hold on its record, its
/// firewall entries and bridge, then its record and state.
fn remove(root: &Path, netlink: &mut Netlink, record: &Record) -> Result<()> {
    if record.is_default() {
        return Err(Error::Invalid(
            "the default network bridge cannot be removed".into(),
        ));
    }
    let held = networks::hold_exclusively(root, record, || user_names(root, &record.name))?;
    // Processes of a container whose launcher was killed may still be on the network: their
    // lease holds while their veth lives.
    let spec = record.spec();
    let state_dir = networks::state_dir(root, &record.name)?;
    let deadline = Instant::now() + DYING_NAMESPACE_GRACE;
    let attached: Vec<String> = spec
        .lease_file(&state_dir)
        .leases()
        .map_err(crate::engine::host::with_repair_hint)?
        .values()
        .filter(|owner| {
            owner.is_alive() || container_still_attached(netlink, &owner.container, deadline)
        })
        .map(|owner| container_name(root, &owner.container))
        .collect();
    if !attached.is_empty() {
        let (what, whose) = match attached.len() {
            1 => ("container", "whose launcher is"),
            _ => ("containers", "whose launchers are"),
        };
        return Err(Error::InUse(format!(
            "network {} is still used by {what} {}, {whose} gone: berth gc ends what is left, \
             then remove the network",
            record.name,
            attached.join(", ")
        )));
    }
    netsetup::remove_network(netlink, &spec, &state_dir)?;
    networks::remove(root, record, &held)
}

fn reload(root: &Path) -> Result<u8> {
    check_privileges("network reload")?;
    let root = &canonical_root(root)?;
    let _registry = berth_state::lock(&root.join("networks.lock"))?;
    let specs = networks::specs(root);
    // berth-cni's networks and ports on the same table stay.
    netsetup::firewall::reinstall(&specs.iter().collect::<Vec<_>>(), "cni:")?;
    println!("restored nftables table inet {}", netsetup::firewall::TABLE);
    let ports = crate::engine::ports::republish_running(root)?;
    if ports > 0 {
        println!("published {ports} ports of running containers again");
    }
    Ok(0)
}

/// Container `id`'s name from its record, or the start of its id.
fn container_name(root: &Path, id: &str) -> String {
    ContainerDir::find(root, id)
        .map_or_else(|_| berth_state::short_id(id).to_owned(), |(_, s)| s.name)
}

/// The names of the running containers on network `name`, sorted.
fn user_names(root: &Path, name: &str) -> Vec<String> {
    let mut names: Vec<String> = users(root, name).into_iter().map(|s| s.name).collect();
    names.sort();
    names
}

/// The running containers on network `name`.
fn users(root: &Path, name: &str) -> Vec<State> {
    ContainerDir::list(root)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(_, state)| state.ok())
        .filter(|s| s.network == name && s.status() == Status::Running)
        .collect()
}

fn describe(record: &Record) -> serde_json::Value {
    let mut value = serde_json::to_value(record).expect("JSON");
    value["default"] = json!(record.is_default());
    if let Some(gateway6) = record.spec().gateway6() {
        value["gateway6"] = json!(gateway6);
    }
    value
}
