//! berth end-to-end tests: each test builds its own throwaway world (see `berth_e2e::World`)
//! and runs the real berth binary in it. One test binary, so that the tests of every theme share
//! the test threads.

mod bad_input;
mod cli;
mod cni;
mod connectivity;
mod containers;
mod crash;
mod escapes;
mod firewall;
mod harness;
mod ipv6;
mod lifecycle;
mod network;
mod networks;
mod ownership;
mod ports;
mod process;
mod rootfs;
mod rootfs_images;
mod security;

use serde_json::Value;
use std::net::Ipv4Addr;

/// Parse JSON printed by a command (`ip -j ...`), with the text in the panic message.
#[track_caller]
pub fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// The 10.201.x.y/16 address in the output of `ip -br -4 addr show eth0` run in a container.
#[track_caller]
pub fn eth0_address(out: &berth_e2e::Outcome) -> String {
    out.ok()
        .split_whitespace()
        .find(|w| w.starts_with("10.201."))
        .unwrap_or_else(|| panic!("no address in\n{out}"))
        .to_owned()
}

/// `berth run --net bridge ARGS... ip -br -4 addr show eth0`: a bridge run that shows its
/// address (read it with [`eth0_address`]).
pub fn run_showing_eth0(w: &berth_e2e::World, args: &[&str]) -> berth_e2e::Outcome {
    let mut all = vec!["--net", "bridge"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["ip", "-br", "-4", "addr", "show", "eth0"]);
    w.berth_run(&all)
}

/// Workload scripts print several things separated by lines `@@`.
pub const SEP: &str = "echo @@;";

pub fn sections(stdout: &str) -> Vec<String> {
    stdout.split("@@\n").map(String::from).collect()
}

/// One interface as `ip -j addr show` describes it.
#[derive(Debug)]
pub struct Iface {
    pub name: String,
    pub flags: Vec<String>,
    /// (address, prefix length) of the IPv4 addresses.
    pub inet: Vec<(Ipv4Addr, u8)>,
}

impl Iface {
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }
}

/// Parse `ip -j addr show` (or `ip -j link show`) output.
#[track_caller]
pub fn ifaces(text: &str) -> Vec<Iface> {
    let v = json(text);
    v.as_array()
        .unwrap_or_else(|| panic!("expected a JSON array:\n{text}"))
        .iter()
        .map(|l| Iface {
            name: l["ifname"].as_str().unwrap_or_default().to_string(),
            flags: l["flags"]
                .as_array()
                .map(|f| f.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                .unwrap_or_default(),
            inet: l["addr_info"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|x| x["family"] == "inet")
                        .filter_map(|x| {
                            Some((
                                x["local"].as_str()?.parse().ok()?,
                                x["prefixlen"].as_u64()? as u8,
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// What a resolv.conf says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolv {
    pub nameservers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

pub fn parse_resolv(text: &str) -> Resolv {
    let mut r = Resolv::default();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("nameserver") => r.nameservers.extend(w.map(String::from)),
            Some("search") | Some("domain") => r.search.extend(w.map(String::from)),
            Some("options") => r.options.extend(w.map(String::from)),
            _ => {}
        }
    }
    r
}

/// Lines of a hosts file as (address, names).
pub fn parse_hosts(text: &str) -> Vec<(String, Vec<String>)> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let addr = w.next()?;
            Some((addr.to_string(), w.map(String::from).collect()))
        })
        .collect()
}

/// The container name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 63 characters.
pub fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    n.len() <= 63
        && c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|x| x.is_ascii_alphanumeric() || "_.-".contains(x))
}

/// What `curl URL` run by `cmd` prints; `None` if it fails (after retrying for `patience`,
/// while a server may still be starting).
pub fn curl(
    w: &berth_e2e::World,
    mut cmd: std::process::Command,
    url: &str,
    patience: std::time::Duration,
) -> Option<String> {
    cmd.args(["-sS", "--max-time", "2", url]);
    let deadline = std::time::Instant::now() + patience;
    loop {
        let out = w.run(&mut cmd);
        if out.code() == 0 {
            return Some(out.stdout.clone());
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
