//! berth-cni, the CNI plugin: the specification's commands and edge cases driven through the
//! environment variables, its result fed to Debian's reference meta plugins, and podman (its
//! CNI backend) running busybox-root containers on a berth-cni network.
//!
//! A container's namespace is a `unshare --net sleep infinity` of the world, named by
//! `/proc/PID/ns/net` (no file under /run/netns, which is the machine's).

use berth_e2e::*;
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SUBNET: &str = "10.123.0.0/24";
const GATEWAY: &str = "10.123.0.1";
const BRIDGE: &str = "cnibr0";
const NETWORK: &str = "cnitest";

/// A berth-cni network configuration with its lease file in the world, and `extra` keys.
fn conf(w: &World, version: &str, extra: &str) -> String {
    format!(
        r#"{{"cniVersion":"{version}","name":"{NETWORK}","type":"berth-cni","bridge":"{BRIDGE}",
        "subnet":"{SUBNET}","dataDir":"{}"{extra}}}"#,
        data_dir(w).display()
    )
}

fn data_dir(w: &World) -> PathBuf {
    w.path("cni-data")
}

/// A container's network namespace: a `sleep` in a namespace of its own.
struct Netns {
    holder: Bg,
}

impl Netns {
    #[track_caller]
    fn new(w: &World) -> Netns {
        let holder = w.spawn(w.cmd("unshare").args(["--net", "sleep", "infinity"]));
        let pid = holder.pid();
        // The namespace is the sleep's once unshare has exec'd it.
        let comm = format!("/proc/{pid}/comm");
        poll(Duration::from_secs(5), Duration::from_millis(2), || {
            (std::fs::read_to_string(&comm).ok()?.trim() == "sleep").then_some(())
        })
        .expect("the namespace holder never started");
        Netns { holder }
    }

    fn path(&self) -> String {
        format!("/proc/{}/ns/net", self.holder.pid())
    }

    /// Ends the namespace's only process: the namespace goes with it.
    fn kill(mut self) {
        self.holder.signal(libc::SIGKILL);
        self.holder.wait(Duration::from_secs(5));
    }
}

/// Runs berth-cni with `command` for container `id`'s interface `ifname` in `netns`, the
/// configuration on stdin.
fn cni(w: &World, command: &str, id: &str, netns: &str, ifname: &str, config: &str) -> Outcome {
    w.run(&mut cni_cmd(w, command, id, netns, ifname, config))
}

fn cni_cmd(
    w: &World,
    command: &str,
    id: &str,
    netns: &str,
    ifname: &str,
    config: &str,
) -> std::process::Command {
    plugin_cmd(w, &cni_bin(), command, id, netns, ifname, config)
}

/// Any plugin, the way a runtime calls it.
fn plugin_cmd(
    w: &World,
    plugin: &Path,
    command: &str,
    id: &str,
    netns: &str,
    ifname: &str,
    config: &str,
) -> std::process::Command {
    let input = w.path(&format!("cni-input-{}", unique()));
    std::fs::write(&input, config).unwrap();
    let mut c = w.cmd(plugin);
    for (key, value) in [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", ifname),
        ("CNI_PATH", "/usr/lib/cni"),
    ] {
        if !value.is_empty() {
            c.env(key, value);
        }
    }
    c.stdin(File::open(&input).unwrap());
    c
}

/// The error a plugin printed: (code, msg), with the call's exit code checked.
#[track_caller]
fn cni_error(out: &Outcome) -> (u64, String) {
    assert_ne!(out.code(), 0, "the call succeeded:\n{out}");
    let error = crate::json(&out.stdout);
    let code = error["code"].as_u64().unwrap_or_else(|| panic!("no code:\n{out}"));
    (code, error["msg"].as_str().unwrap_or_default().to_owned())
}

/// Asserts that `url` no longer answers the upstream, `after` what.
#[track_caller]
fn assert_unanswered(w: &World, url: &str, after: &str) {
    let out = w.run(w.upstream_cmd("curl").args(["-sS", "--max-time", "2", url]));
    assert_ne!(out.code(), 0, "the port still answers after {after}:\n{out}");
}

/// A command run inside `netns`.
fn inside(w: &World, netns: &str, args: &[&str]) -> Outcome {
    w.run(w.cmd("nsenter").arg(format!("--net={netns}")).args(args))
}

/// The IPv4 addresses (with prefix) of `ifname` inside `netns`; none when there is no such
/// interface.
fn addresses_inside(w: &World, netns: &str, ifname: &str) -> Vec<String> {
    let out = inside(w, netns, &["ip", "-j", "-4", "addr", "show", "dev", ifname]);
    if out.stderr.contains("does not exist") {
        return Vec::new();
    }
    crate::ifaces(out.ok())
        .iter()
        .flat_map(|i| i.inet.iter().map(|(a, p)| format!("{a}/{p}")))
        .collect()
}

/// The leases on file in the data directory (lines that are not comments).
fn cni_leases(w: &World) -> Vec<String> {
    let path = data_dir(w).join(NETWORK).join("leases");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// The attachments' host interfaces (`bcni*`).
fn cni_veths(w: &World) -> Vec<String> {
    w.link_names().into_iter().filter(|n| n.starts_with("bcni")).collect()
}

/// Nothing of berth-cni's is left: no lease, no host veth, no published port (and the world's
/// own leftover checks).
#[track_caller]
fn assert_cni_clean(w: &World) {
    assert_eq!(cni_leases(w), Vec::<String>::new(), "leases left behind");
    let mut left = Vec::new();
    poll(VETH_GONE_TIMEOUT, Duration::from_millis(20), || {
        left = cni_veths(w);
        left.is_empty().then_some(())
    });
    assert!(left.is_empty(), "host interfaces left behind: {left:?}");
    w.assert_clean();
}

/// The ADD result's address of the container's interface.
#[track_caller]
fn result_address(out: &Outcome) -> String {
    let result = crate::json(out.ok());
    result["ips"][0]["address"].as_str().unwrap_or_else(|| panic!("no address:\n{out}")).into()
}

#[test]
fn cni_add_wires_the_namespace_check_passes_and_del_twice_leaves_nothing() {
    let w = World::new();
    let ns = Netns::new(&w);
    let config = conf(&w, "1.0.0", "");
    let out = cni(&w, "ADD", "c1", &ns.path(), "eth0", &config);
    let result = crate::json(out.ok());
    assert_eq!(result["cniVersion"], "1.0.0", "{out}");
    assert_eq!(result["ips"][0]["address"], "10.123.0.2/24", "{out}");
    assert_eq!(result["ips"][0]["gateway"], GATEWAY, "{out}");
    assert!(result["ips"][0].get("version").is_none(), "1.0.0 has no ips[].version: {out}");
    let container = &result["interfaces"][result["ips"][0]["interface"].as_u64().unwrap() as usize];
    assert_eq!(container["name"], "eth0", "{out}");
    assert_eq!(container["sandbox"], ns.path().as_str(), "{out}");
    assert_eq!(container["mac"], "02:42:0a:7b:00:02", "{out}");
    assert_eq!(result["routes"][0]["dst"], "0.0.0.0/0", "{out}");

    // What the container sees: its address, its default route, and the gateway answering.
    assert_eq!(addresses_inside(&w, &ns.path(), "eth0"), ["10.123.0.2/24"]);
    let routes = inside(&w, &ns.path(), &["ip", "-j", "route", "show", "default"]);
    let routes = crate::json(routes.ok());
    assert_eq!(routes[0]["gateway"], GATEWAY, "{routes}");
    assert_eq!(routes[0]["dev"], "eth0", "{routes}");
    inside(&w, &ns.path(), &["ping", "-c", "1", "-W", "2", GATEWAY]).ok();
    assert_eq!(cni_leases(&w).len(), 1);

    let out = cni(&w, "CHECK", "c1", &ns.path(), "eth0", &config);
    assert_eq!(out.ok(), "", "CHECK prints nothing when all is well");
    // ADD again: the same address, made anew, and still right.
    let again = cni(&w, "ADD", "c1", &ns.path(), "eth0", &config);
    assert_eq!(result_address(&again), "10.123.0.2/24");
    assert_eq!(addresses_inside(&w, &ns.path(), "eth0"), ["10.123.0.2/24"]);
    cni(&w, "CHECK", "c1", &ns.path(), "eth0", &config).ok();
    assert_eq!(cni_leases(&w).len(), 1);

    // A 0.4.0 configuration gets a 0.4.0 result: ips[].version.
    let ns2 = Netns::new(&w);
    let out = cni(&w, "ADD", "c2", &ns2.path(), "eth0", &conf(&w, "0.4.0", ""));
    let result = crate::json(out.ok());
    assert_eq!(result["cniVersion"], "0.4.0", "{out}");
    assert_eq!(result["ips"][0]["version"], "4", "{out}");
    assert_eq!(result["ips"][0]["address"], "10.123.0.3/24", "{out}");

    // After another plugin in a chain: its result first, ours added, our indexes moved along.
    // And an MTU, on both ends.
    let ns3 = Netns::new(&w);
    let previous = format!(
        r#","mtu":1400,"prevResult":{{"cniVersion":"1.0.0","interfaces":[{{"name":"net0","sandbox":"{}"}}],
        "ips":[{{"address":"192.168.7.2/24","interface":0}}],"dns":{{"nameservers":["192.168.7.1"]}}}}"#,
        ns3.path()
    );
    let out = cni(&w, "ADD", "c3", &ns3.path(), "eth0", &conf(&w, "1.0.0", &previous));
    let result = crate::json(out.ok());
    assert_eq!(result["interfaces"][0]["name"], "net0", "{out}");
    assert_eq!(result["interfaces"][3]["name"], "eth0", "{out}");
    assert_eq!(result["ips"][0]["address"], "192.168.7.2/24", "{out}");
    assert_eq!(result["ips"][1]["address"], "10.123.0.4/24", "{out}");
    assert_eq!(result["ips"][1]["interface"], 3, "{out}");
    assert_eq!(result["dns"]["nameservers"][0], "192.168.7.1", "{out}");
    let link = inside(&w, &ns3.path(), &["ip", "-j", "link", "show", "eth0"]);
    assert_eq!(crate::json(link.ok())[0]["mtu"], 1400, "{link}");
    let host_end = result["interfaces"][2]["name"].as_str().unwrap();
    assert_eq!(w.link(host_end).unwrap()["mtu"], 1400, "the host end's MTU");

    for _ in 0..2 {
        cni(&w, "DEL", "c1", &ns.path(), "eth0", &config).ok();
        cni(&w, "DEL", "c2", &ns2.path(), "eth0", &config).ok();
        cni(&w, "DEL", "c3", &ns3.path(), "eth0", &config).ok();
    }
    // The veth goes right after DEL has answered (its deletion takes the kernel a while).
    let gone = poll(VETH_GONE_TIMEOUT, Duration::from_millis(10), || {
        let links = inside(&w, &ns.path(), &["ip", "-br", "link"]);
        (!links.ok().contains("eth0")).then_some(())
    });
    assert!(gone.is_some(), "eth0 is still in the namespace after DEL");
    assert_cni_clean(&w);
}

/// ipMasq (the default) masquerades what leaves for the upstream: it sees the host's address.
/// With `ipMasq: false` the container's own address arrives (the upstream routes the subnet
/// back through the host).
#[test]
fn cni_ip_masq_decides_the_source_the_upstream_sees() {
    let w = World::with_upstream();
    w.run(w.upstream_cmd("ip").args(["route", "add", SUBNET, "via", &HOST_ADDR.to_string()])).ok();
    let url = format!("http://{UPSTREAM_ADDR}/");
    for (masq, expected) in
        [("", HOST_ADDR.to_string()), (r#","ipMasq":false"#, "10.123.0.2".into())]
    {
        let ns = Netns::new(&w);
        let config = conf(&w, "1.0.0", masq);
        cni(&w, "ADD", "m", &ns.path(), "eth0", &config).ok();
        let seen = w.run(w.cmd("nsenter").arg(format!("--net={}", ns.path())).args([
            "curl",
            "-sS",
            "--max-time",
            "5",
            &url,
        ]));
        assert_eq!(seen.ok().trim(), expected, "ipMasq {masq:?}: {seen}");
        cni(&w, "DEL", "m", &ns.path(), "eth0", &config).ok();
        // The network goes with its bridge, so that the next one is installed afresh.
        w.run(w.cmd("ip").args(["link", "del", BRIDGE])).ok();
        w.run(w.cmd("nft").args(["delete", "table", "inet", "berth"])).ok();
    }
    assert_cni_clean(&w);
}

#[test]
fn cni_is_gateway_false_makes_a_segment_only_its_containers_share() {
    let w = World::new();
    let bridge_addresses = || addresses_inside(&w, "/proc/self/ns/net", BRIDGE);
    let segment = conf(&w, "1.0.0", r#","isGateway":false"#);
    let (a, b) = (Netns::new(&w), Netns::new(&w));
    let out = cni(&w, "ADD", "a", &a.path(), "eth0", &segment);
    let result = crate::json(out.ok());
    assert_eq!(result["ips"][0]["address"], "10.123.0.2/24", "{out}");
    assert!(result["ips"][0].get("gateway").is_none(), "no gateway to name: {out}");
    assert_eq!(result["routes"], serde_json::json!([]), "{out}");
    let b_addr = result_address(&cni(&w, "ADD", "b", &b.path(), "eth0", &segment));
    assert_eq!(b_addr, "10.123.0.3/24");
    cni(&w, "CHECK", "a", &a.path(), "eth0", &segment).ok();

    // The containers reach each other and nothing else: the host holds no address on the
    // bridge (no IPv6 link-local one either), gives them no route, and forwards nothing.
    let on_bridge = w.run(w.cmd("ip").args(["-o", "addr", "show", "dev", BRIDGE]));
    assert_eq!(on_bridge.ok().trim(), "", "the host is on the segment");
    let forwarding = w.run(w.cmd("cat").arg("/proc/sys/net/ipv4/ip_forward"));
    assert_eq!(forwarding.ok().trim(), "0", "a segment turned the host into a router");
    let routes = inside(&w, &a.path(), &["ip", "-4", "route", "show", "default"]);
    assert_eq!(routes.ok().trim(), "", "a default route on a bare segment");
    inside(&w, &a.path(), &["ping", "-c", "1", "-W", "5", "10.123.0.3"]).ok();
    // Not even when the host routes the subnet and a container aims at the host's address
    // straight through the bridge: the host answers no ARP request for it, and drops what
    // reaches its bridge's MAC address all the same.
    w.run(w.cmd("ip").args(["route", "add", SUBNET, "dev", BRIDGE])).ok();
    inside(&w, &a.path(), &["ip", "route", "add", "default", "dev", "eth0"]).ok();
    let host = HOST_ADDR.to_string();
    let to_host = inside(&w, &a.path(), &["ping", "-c", "1", "-W", "1", &host]);
    assert_ne!(to_host.code(), 0, "the host answered from a segment:\n{to_host}");
    let neighbour = inside(&w, &a.path(), &["ip", "neigh", "show", &host]);
    assert!(!neighbour.ok().contains("lladdr"), "the host answered ARP: {neighbour}");
    let bridge_mac = "02:42:0a:7b:00:01";
    inside(&w, &a.path(), &["ip", "neigh", "replace", &host, "lladdr", bridge_mac, "dev", "eth0"])
        .ok();
    let to_host = inside(&w, &a.path(), &["ping", "-c", "1", "-W", "1", &host]);
    assert_ne!(to_host.code(), 0, "the host answered from a segment:\n{to_host}");
    w.run(w.cmd("ip").args(["route", "del", SUBNET, "dev", BRIDGE])).ok();

    // Ports cannot be published into it: refused before anything is made.
    let ports = r#","isGateway":false,"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}"#;
    let c = Netns::new(&w);
    let (code, msg) = cni_error(&cni(&w, "ADD", "c", &c.path(), "eth0", &conf(&w, "1.0.0", ports)));
    assert_eq!(code, 7, "{msg}");
    assert!(msg.contains("isGateway"), "{msg}");
    assert_eq!(cni_leases(&w).len(), 2);
    assert_eq!(addresses_inside(&w, &c.path(), "eth0"), Vec::<String>::new());

    // The bridge follows the configuration it is asked with: the gateway address comes with
    // isGateway true and goes again with false.
    let routed = conf(&w, "1.0.0", "");
    cni(&w, "ADD", "c", &c.path(), "eth0", &routed).ok();
    assert_eq!(bridge_addresses(), [format!("{GATEWAY}/24")]);
    cni(&w, "DEL", "c", &c.path(), "eth0", &routed).ok();
    cni(&w, "ADD", "c", &c.path(), "eth0", &segment).ok();
    assert_eq!(bridge_addresses(), Vec::<String>::new());
    for (id, ns) in [("a", &a), ("b", &b), ("c", &c)] {
        cni(&w, "DEL", id, &ns.path(), "eth0", &segment).ok();
    }
    assert_cni_clean(&w);
}

#[test]
fn cni_del_succeeds_without_add_and_with_the_namespace_gone() {
    let w = World::new();
    let config = conf(&w, "1.1.0", "");
    // Never added, no namespace at all.
    cni(&w, "DEL", "never", "", "eth0", &config).ok();
    cni(&w, "DEL", "never", "/proc/1/nonexistent/ns/net", "eth0", &config).ok();
    let ns = Netns::new(&w);
    let path = ns.path();
    cni(&w, "ADD", "gone", &path, "eth0", &config).ok();
    assert_eq!(cni_leases(&w).len(), 1);
    ns.kill();
    assert!(!Path::new(&path).exists());
    cni(&w, "DEL", "gone", &path, "eth0", &config).ok();
    cni(&w, "DEL", "gone", &path, "eth0", &config).ok();
    assert_cni_clean(&w);
}

#[test]
fn cni_check_names_what_someone_removed() {
    let w = World::new();
    let ns = Netns::new(&w);
    let config = conf(&w, "1.1.0", "");
    let added = cni(&w, "ADD", "c1", &ns.path(), "eth0", &config);
    let addr = result_address(&added);
    // The runtime passes the ADD's result as prevResult: it must agree with the lease.
    let with_previous = |result: &str| conf(&w, "1.1.0", &format!(r#","prevResult":{result}"#));
    cni(&w, "CHECK", "c1", &ns.path(), "eth0", &with_previous(added.stdout.trim())).ok();
    // A later plugin in the chain may have given the interface another address.
    let mut chained = crate::json(&added.stdout);
    let interface = chained["ips"][0]["interface"].clone();
    chained["ips"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"address": "192.168.5.5/24", "interface": interface}));
    cni(&w, "CHECK", "c1", &ns.path(), "eth0", &with_previous(&chained.to_string())).ok();
    let altered = added.stdout.replace(&addr, "10.123.0.77/24");
    let (code, msg) =
        cni_error(&cni(&w, "CHECK", "c1", &ns.path(), "eth0", &with_previous(&altered)));
    assert_eq!(code, 101, "{msg}");
    assert!(
        msg.contains("10.123.0.77/24") && msg.contains(addr.split('/').next().unwrap()),
        "{msg}"
    );
    inside(&w, &ns.path(), &["ip", "addr", "del", &addr, "dev", "eth0"]).ok();
    let (code, msg) = cni_error(&cni(&w, "CHECK", "c1", &ns.path(), "eth0", &config));
    assert_eq!(code, 101, "{msg}");
    assert!(msg.contains(&format!("address {addr} is missing")), "{msg}");
    // The address back, the route gone: CHECK names the route.
    inside(&w, &ns.path(), &["ip", "addr", "add", &addr, "dev", "eth0"]).ok();
    let (_, msg) = cni_error(&cni(&w, "CHECK", "c1", &ns.path(), "eth0", &config));
    assert!(msg.contains(&format!("default route via {GATEWAY} is missing")), "{msg}");
    // The interface gone.
    inside(&w, &ns.path(), &["ip", "link", "del", "eth0"]).ok();
    let (_, msg) = cni_error(&cni(&w, "CHECK", "c1", &ns.path(), "eth0", &config));
    assert!(msg.contains("missing") && msg.contains("eth0"), "{msg}");
    // CHECK of an attachment that was never added.
    let (_, msg) = cni_error(&cni(&w, "CHECK", "other", &ns.path(), "eth0", &config));
    assert!(msg.contains("no lease"), "{msg}");
    cni(&w, "DEL", "c1", &ns.path(), "eth0", &config).ok();
    assert_cni_clean(&w);
}

#[test]
fn cni_gc_removes_every_attachment_not_listed_as_valid() {
    let w = World::new();
    let ports = r#","runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}"#;
    let (a, b) = (Netns::new(&w), Netns::new(&w));
    cni(&w, "ADD", "a", &a.path(), "eth0", &conf(&w, "1.1.0", ports)).ok();
    let long = "l".repeat(100);
    let ports2 = ports.replace("8080", "8081");
    let c = Netns::new(&w);
    cni(&w, "ADD", &long, &c.path(), "eth0", &conf(&w, "1.1.0", &ports2)).ok();
    cni(&w, "ADD", "b", &b.path(), "eth1", &conf(&w, "1.1.0", "")).ok();
    assert_eq!(cni_veths(&w).len(), 3);
    let published = w.run(w.cmd("nft").args(["list", "map", "inet", "berth", "ports_any"]));
    assert!(published.ok().contains("cni:cnitest/a/eth0"), "{published}");

    // b stays; a and the long one go, with their ports.
    let keep_b = r#","cni.dev/valid-attachments":[{"containerID":"b","ifname":"eth1"}]"#;
    cni(&w, "GC", "", "", "", &conf(&w, "1.1.0", keep_b)).ok();
    assert_eq!(cni_leases(&w).len(), 1, "{:?}", cni_leases(&w));
    assert!(cni_leases(&w)[0].contains("container=b interface=eth1"), "{:?}", cni_leases(&w));
    assert_eq!(cni_veths(&w).len(), 1);
    let published = w.run(w.cmd("nft").args(["list", "map", "inet", "berth", "ports_any"]));
    assert!(!published.ok().contains("elements"), "{published}");
    assert!(addresses_inside(&w, &a.path(), "eth0").is_empty());
    assert!(addresses_inside(&w, &c.path(), "eth0").is_empty());
    cni(&w, "CHECK", "b", &b.path(), "eth1", &conf(&w, "1.1.0", "")).ok();

    // An empty list: everything goes.
    let none = r#","cni.dev/valid-attachments":[]"#;
    cni(&w, "GC", "", "", "", &conf(&w, "1.1.0", none)).ok();
    assert!(addresses_inside(&w, &b.path(), "eth1").is_empty());
    assert_cni_clean(&w);
}

/// A network name and a container id so long that `cni:NETWORK/ID/IFNAME` does not fit in an
/// element's comment (127 bytes): DEL and GC still find the attachment's ports.
#[test]
fn cni_ports_of_long_names_are_found_again_by_del_and_gc() {
    let w = World::new();
    let name = "n".repeat(40);
    let id = "i".repeat(100);
    let config = |extra: &str| {
        format!(
            r#"{{"cniVersion":"1.1.0","name":"{name}","type":"berth-cni","bridge":"{BRIDGE}",
            "subnet":"{SUBNET}","dataDir":"{}",
            "runtimeConfig":{{"portMappings":[{{"hostPort":8080,"containerPort":80}}]}}{extra}}}"#,
            data_dir(&w).display()
        )
    };
    let ports = || w.run(w.cmd("nft").args(["list", "map", "inet", "berth", "ports_any"]));
    let ns = Netns::new(&w);
    for command in ["DEL", "GC"] {
        cni(&w, "ADD", &id, &ns.path(), "eth0", &config("")).ok();
        let published = ports();
        assert!(published.ok().contains(&format!("cni:{name}/bcni")), "{published}");
        let valid = r#","cni.dev/valid-attachments":[]"#;
        cni(&w, command, &id, &ns.path(), "eth0", &config(valid)).ok();
        let published = ports();
        assert!(!published.ok().contains("elements"), "{command} left the port:\n{published}");
        let leases = std::fs::read_to_string(data_dir(&w).join(&name).join("leases")).unwrap();
        assert!(!leases.contains(&id), "{command} left the lease:\n{leases}");
    }
    assert_cni_clean(&w);
}

#[test]
fn cni_version_status_and_bad_requests() {
    let w = World::new();
    let out = cni(&w, "VERSION", "", "", "", r#"{"cniVersion":"1.1.0"}"#);
    let version = crate::json(out.ok());
    assert_eq!(version["cniVersion"], "1.1.0");
    assert_eq!(version["supportedVersions"], serde_json::json!(["0.4.0", "1.0.0", "1.1.0"]));
    cni(&w, "STATUS", "", "", "", &conf(&w, "1.1.0", "")).ok();
    let unwritable = r#"{"cniVersion":"1.1.0","name":"x","type":"berth-cni","subnet":"10.9.0.0/24",
        "dataDir":"/proc/berth-cni"}"#;
    let (code, msg) = cni_error(&cni(&w, "STATUS", "", "", "", unwritable));
    assert_eq!(code, 50, "{msg}");
    assert!(msg.contains("/proc/berth-cni"), "{msg}");

    let ns = Netns::new(&w);
    let add = |config: &str| cni(&w, "ADD", "c1", &ns.path(), "eth0", config);
    let (code, msg) = cni_error(&add(&conf(&w, "0.2.0", "")));
    assert_eq!(code, 1, "{msg}");
    assert!(msg.contains("0.2.0"), "{msg}");
    let (code, _) = cni_error(&add(r#"{"cniVersion":"1.0.0","name":"#));
    assert_eq!(code, 6);
    let (code, msg) = cni_error(&add(&conf(&w, "1.0.0", r#","ipam":{"type":"host-local"}"#)));
    assert_eq!(code, 7, "{msg}");
    assert!(msg.contains("unknown field `ipam`"), "{msg}");
    let no_subnet = r#"{"cniVersion":"1.0.0","name":"x","type":"berth-cni"}"#;
    let (code, msg) = cni_error(&add(no_subnet));
    assert_eq!(code, 7, "{msg}");
    assert!(msg.contains("subnet is required"), "{msg}");
    let (code, msg) = cni_error(&add(&conf(&w, "1.0.0", r#","gateway":"10.99.0.1""#)));
    assert_eq!(code, 7, "{msg}");
    assert!(msg.contains("10.99.0.1"), "{msg}");
    let (code, msg) = cni_error(&cni(&w, "ADD", "c1", "", "eth0", &conf(&w, "1.0.0", "")));
    assert_eq!(code, 4, "{msg}");
    assert!(msg.contains("CNI_NETNS"), "{msg}");
    let (code, msg) = cni_error(&cni(&w, "", "c1", &ns.path(), "eth0", &conf(&w, "1.0.0", "")));
    assert_eq!(code, 4, "{msg}");
    let (code, msg) = cni_error(&cni(&w, "ADD", "c/1", &ns.path(), "eth0", &conf(&w, "1.0.0", "")));
    assert_eq!(code, 4, "{msg}");
    assert!(msg.contains("CNI_CONTAINERID"), "{msg}");
    // None of these left anything.
    assert!(addresses_inside(&w, &ns.path(), "eth0").is_empty());
    // Another network on this one's bridge: two lease files would hand out the same addresses.
    let config = conf(&w, "1.0.0", "");
    cni(&w, "ADD", "c1", &ns.path(), "eth0", &config).ok();
    let other = config.replace(&format!(r#""name":"{NETWORK}""#), r#""name":"other""#);
    let (code, msg) = cni_error(&cni(&w, "ADD", "c2", &ns.path(), "eth1", &other));
    assert_eq!(code, 100, "{msg}");
    assert!(msg.contains(&format!("bridge {BRIDGE} hands out the addresses of another")), "{msg}");
    assert!(addresses_inside(&w, &ns.path(), "eth1").is_empty());
    cni(&w, "DEL", "c1", &ns.path(), "eth0", &config).ok();
    assert_cni_clean(&w);
}

#[test]
fn cni_twenty_adds_at_once_get_twenty_addresses_and_dels_leave_nothing() {
    let w = World::new();
    let config = conf(&w, "1.0.0", "");
    let namespaces: Vec<Netns> = (0..20).map(|_| Netns::new(&w)).collect();
    // `command` for every namespace at once.
    let all_at_once = |command: &str| -> Vec<Outcome> {
        let mut calls: Vec<Bg> = namespaces
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                w.spawn(&mut cni_cmd(&w, command, &format!("p{i}"), &ns.path(), "eth0", &config))
            })
            .collect();
        calls.iter_mut().map(|call| call.wait(DEFAULT_TIMEOUT)).collect()
    };
    let mut given: Vec<String> = all_at_once("ADD").iter().map(result_address).collect();
    for (ns, addr) in namespaces.iter().zip(&given) {
        assert_eq!(&addresses_inside(&w, &ns.path(), "eth0"), std::slice::from_ref(addr));
    }
    given.sort();
    given.dedup();
    assert_eq!(given.len(), 20, "{given:?}");
    assert_eq!(cni_leases(&w).len(), 20);
    for deleted in all_at_once("DEL") {
        deleted.ok();
    }
    assert_cni_clean(&w);
}

#[test]
fn cni_port_mappings_reach_the_container_from_the_upstream_until_del() {
    let w = World::new();
    let ns = Netns::new(&w);
    let ports = r#","capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":""}]}"#;
    let config = conf(&w, "1.0.0", ports);
    // A long id: the elements' comments cannot hold it whole.
    let id = "w".repeat(100);
    cni(&w, "ADD", &id, &ns.path(), "eth0", &config).ok();
    let www = w.path("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "served from the namespace\n").unwrap();
    let _server = w.spawn(w.cmd("nsenter").arg(format!("--net={}", ns.path())).args([
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        www.to_str().unwrap(),
    ]));
    let url = format!("http://{HOST_ADDR}:8080/index.html");
    let got = crate::curl(&w, w.upstream_cmd("curl"), &url, Duration::from_secs(5));
    assert_eq!(got.as_deref(), Some("served from the namespace\n"));
    cni(&w, "DEL", &id, &ns.path(), "eth0", &config).ok();
    assert_unanswered(&w, &url, "DEL");
    assert_cni_clean(&w);
}

/// Each reference meta plugin of Debian's containernetworking-plugins takes berth-cni's result
/// as its prevResult, does its part on the interfaces the result names, and is undone by DEL.
#[test]
fn cni_result_chains_into_the_reference_meta_plugins() {
    let w = World::new();
    let ns = Netns::new(&w);
    let ports = r#","runtimeConfig":{"portMappings":[{"hostPort":9090,"containerPort":80,"protocol":"tcp"}]}"#;
    let mut result: Value =
        crate::json(cni(&w, "ADD", "c1", &ns.path(), "eth0", &conf(&w, "1.0.0", ports)).ok());
    let host_veth = result["interfaces"][1]["name"].as_str().unwrap().to_owned();
    let plugins = [
        ("tuning", r#""sysctl":{"net.ipv4.conf.eth0.arp_announce":"2"}"#),
        ("bandwidth", r#""egressRate":1000000,"egressBurst":100000"#),
        (
            "portmap",
            r#""capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":9091,"containerPort":80,"protocol":"tcp"}]}"#,
        ),
        ("firewall", r#""backend":"iptables""#),
    ];
    let config_of = |plugin: &str, keys: &str, prev: &Value| {
        format!(
            r#"{{"cniVersion":"1.0.0","name":"{NETWORK}","type":"{plugin}",{keys},"prevResult":{prev}}}"#
        )
    };
    let mut configs = Vec::new();
    for (plugin, keys) in plugins {
        let config = config_of(plugin, keys, &result);
        let bin = Path::new("/usr/lib/cni").join(plugin);
        let out = w.run(&mut plugin_cmd(&w, &bin, "ADD", "c1", &ns.path(), "eth0", &config));
        result = crate::json(out.ok());
        assert_eq!(
            result["ips"][0]["address"], "10.123.0.2/24",
            "{plugin} changed the result:\n{out}"
        );
        configs.push((plugin, bin, config));
    }
    // What each did, seen where it did it.
    let sysctl = inside(&w, &ns.path(), &["cat", "/proc/sys/net/ipv4/conf/eth0/arp_announce"]);
    assert_eq!(sysctl.ok().trim(), "2");
    // bandwidth shapes the container's egress on the host's end of the veth (ingress there,
    // redirected to an ifb): it found that end from the result.
    let tc = w.run(w.cmd("tc").args(["filter", "show", "dev", &host_veth, "ingress"]));
    assert!(tc.ok().contains("mirred"), "no redirect on {host_veth}:\n{tc}");
    let nat = w.run(w.cmd("iptables").args(["-t", "nat", "-S"]));
    assert!(nat.ok().contains("10.123.0.2:80"), "portmap's DNAT is missing:\n{nat}");
    let filter = w.run(w.cmd("iptables").args(["-S", "CNI-FORWARD"]));
    assert!(filter.ok().contains("10.123.0.2"), "firewall's rule is missing:\n{filter}");
    // CHECK down the chain, then DEL in reverse order.
    cni(&w, "CHECK", "c1", &ns.path(), "eth0", &conf(&w, "1.0.0", "")).ok();
    for (plugin, bin, config) in configs.iter().rev() {
        let out = w.run(&mut plugin_cmd(&w, bin, "DEL", "c1", &ns.path(), "eth0", config));
        assert_eq!(out.code(), 0, "{plugin} DEL:\n{out}");
    }
    cni(&w, "DEL", "c1", &ns.path(), "eth0", &conf(&w, "1.0.0", ports)).ok();
    let nat = w.run(w.cmd("iptables").args(["-t", "nat", "-S"]));
    assert!(!nat.ok().contains("10.123.0.2"), "portmap left its DNAT:\n{nat}");
    assert_cni_clean(&w);
}

// ---- podman, with its CNI backend ----

/// podman in a world: a mount namespace of its own (tmpfs over /run and /var/lib, so that its
/// netns files, locks and libcni's cache stay in it; the world's resolv.conf bound over
/// /etc/resolv.conf), joined to the world's network namespace, private storage and run
/// directories in the world's directory, and a containers.conf that selects the CNI backend, a
/// network directory holding `conflist`, and a plugin directory holding berth-cni (the
/// reference plugins from /usr/lib/cni after it).
///
/// Its mount namespace is made from the machine's, not the world's: runc needs the cgroup
/// hierarchies, which the world's own sysfs hides. Each container's cgroups go under a parent
/// of the test's own, removed at the end.
struct Podman<'w> {
    w: &'w World,
    holder: Bg,
    rootfs: PathBuf,
    cgroup_parent: String,
}

impl<'w> Podman<'w> {
    fn new(w: &'w World, conflist: &str) -> Podman<'w> {
        let dir = w.path("podman");
        for sub in ["net", "bin", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::copy(cni_bin(), dir.join("bin/berth-cni")).unwrap();
        std::fs::write(dir.join(format!("net/{NETWORK}.conflist")), conflist).unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
                 events_logfile_path = \"{d}/events.log\"\nruntime = \"runc\"\n\
                 tmp_dir = \"{d}/tmp\"\n\
                 [network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = \"{d}/net\"\n\
                 cni_plugin_dirs = [\"{d}/bin\", \"/usr/lib/cni\"]\n"
            ),
        )
        .unwrap();
        let ready = dir.join("ready");
        let script = format!(
            "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib && \
             mount --bind {} /etc/resolv.conf && touch {} && exec sleep infinity",
            w.host_resolv_conf().display(),
            ready.display()
        );
        let net = File::open(format!("/proc/{}/ns/net", w.host_pid())).unwrap();
        let uts = File::open(format!("/proc/{}/ns/uts", w.host_pid())).unwrap();
        let parent = std::process::id() as libc::pid_t;
        let mut holder = std::process::Command::new("unshare");
        holder
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env("PATH", STD_PATH);
        // SAFETY: the closure only makes system calls on descriptors it owns.
        unsafe {
            use std::os::fd::AsRawFd;
            use std::os::unix::process::CommandExt;
            holder.pre_exec(move || {
                berth_e2e::sys::die_with_parent(parent)?;
                berth_e2e::sys::setns(net.as_raw_fd(), libc::CLONE_NEWNET)?;
                berth_e2e::sys::setns(uts.as_raw_fd(), libc::CLONE_NEWUTS)
            });
        }
        let holder = w.spawn(&mut holder);
        assert!(wait_for_file(&ready, Duration::from_secs(5)), "podman's namespace never came up");
        let rootfs = w.path("busybox");
        w.make_busybox_root(&rootfs);
        Podman { w, holder, rootfs, cgroup_parent: format!("/berth-e2e-{:x}", unique()) }
    }

    /// `podman ARGS` in its namespaces.
    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let dir = self.w.path("podman");
        let mut c = self.w.cmd("nsenter");
        c.arg(format!("--mount=/proc/{}/ns/mnt", self.holder.pid()))
            .arg("podman")
            .arg("--root")
            .arg(dir.join("storage"))
            .arg("--runroot")
            .arg(dir.join("runroot"))
            .args(["--runtime", "runc"])
            .args(args)
            .env("CONTAINERS_CONF", dir.join("containers.conf"));
        c
    }

    /// `podman run OPTIONS --rootfs BUSYBOX COMMAND...` on the test network.
    fn run_cmd(&self, options: &[&str], command: &[&str]) -> std::process::Command {
        let mut args = vec![
            "run",
            "--network",
            NETWORK,
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=32768:32768",
            "--cgroup-parent",
            &self.cgroup_parent,
        ];
        args.extend_from_slice(options);
        args.push("--rootfs");
        let rootfs = self.rootfs.to_str().unwrap().to_owned();
        let mut c = self.cmd(&args);
        c.arg(rootfs).args(command);
        c
    }

    fn run(&self, options: &[&str], command: &[&str]) -> Outcome {
        self.w.run(&mut self.run_cmd(options, command))
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        // Whatever podman left running (a container of a failed test, its conmon) first, by pid.
        let cgroups = Path::new("/sys/fs/cgroup");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(cgroups)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join(self.cgroup_parent.trim_start_matches('/')))
            .collect();
        dirs.push(cgroups.join(self.cgroup_parent.trim_start_matches('/')));
        // A cgroup goes once its last process has been reaped (conmon's cleanup may still be
        // starting one): kill what is in them and remove them, again, for a few seconds.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left: Vec<&PathBuf> = dirs.iter().filter(|d| d.is_dir()).collect();
            if left.is_empty() || std::time::Instant::now() > deadline {
                break;
            }
            for dir in &left {
                let pids = std::process::Command::new("find")
                    .arg(dir)
                    .args(["-name", "cgroup.procs", "-exec", "cat", "{}", "+"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                for pid in pids.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
                    let _ = berth_e2e::sys::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
            for dir in &left {
                let _ = std::process::Command::new("find")
                    .arg(dir)
                    .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

fn podman_conflist(w: &World, chained: &str) -> String {
    format!(
        r#"{{"cniVersion":"1.0.0","name":"{NETWORK}","plugins":[
        {{"type":"berth-cni","bridge":"{BRIDGE}","subnet":"{SUBNET}","dataDir":"{}",
          "capabilities":{{"portMappings":true}}}}{chained}]}}"#,
        data_dir(w).display()
    )
}

#[test]
fn cni_podman_runs_a_busybox_container_with_address_route_nat_and_dns() {
    let w = World::with_upstream();
    let podman = Podman::new(&w, &podman_conflist(&w, ""));
    let script = format!(
        "ip -o -4 addr show dev eth0 | awk '{{print $4}}'; echo @@; ip route show default; \
         echo @@; wget -q -O - http://{UPSTREAM_ADDR}/; echo @@; \
         nslookup {UPSTREAM_NAME} | grep -A1 '^Name:' | tail -n 1 | awk '{{print $2}}'"
    );
    let out = podman.run(&["--rm"], &["sh", "-c", &script]);
    let parts = crate::sections(out.ok());
    assert_eq!(parts[0].trim(), "10.123.0.2/24", "{out}");
    assert!(parts[1].starts_with(&format!("default via {GATEWAY} dev eth0")), "{out}");
    // The upstream's nginx answers with the client's address: the host's, so NAT happened.
    assert_eq!(parts[2].trim(), HOST_ADDR.to_string(), "{out}");
    assert_eq!(parts[3].trim(), UPSTREAM_ADDR.to_string(), "{out}");
    // --rm: podman called DEL.
    assert_cni_clean(&w);
}

#[test]
fn cni_podman_publishes_a_port_through_port_mappings_until_rm() {
    let w = World::with_upstream();
    let podman = Podman::new(&w, &podman_conflist(&w, ""));
    std::fs::create_dir_all(podman.rootfs.join("www")).unwrap();
    std::fs::write(podman.rootfs.join("www/index.html"), "podman's busybox\n").unwrap();
    let out = podman
        .run(&["-d", "--name", "web", "-p", "8080:80"], &["httpd", "-f", "-p", "80", "-h", "/www"]);
    out.ok();
    let published = w.run(w.cmd("nft").args(["list", "map", "inet", "berth", "ports_any"]));
    assert!(
        published.ok().contains("8080") && published.ok().contains("10.123.0.2 . 80"),
        "{published}"
    );
    let url = format!("http://{HOST_ADDR}:8080/index.html");
    let got = crate::curl(&w, w.upstream_cmd("curl"), &url, Duration::from_secs(10));
    assert_eq!(got.as_deref(), Some("podman's busybox\n"));
    w.run(&mut podman.cmd(&["rm", "-f", "web"])).ok();
    assert_unanswered(&w, &url, "podman rm -f");
    assert_cni_clean(&w);
}

#[test]
fn cni_podman_chain_with_tuning() {
    let w = World::new();
    let tuning = r#",{"type":"tuning","sysctl":{"net.ipv4.conf.eth0.arp_announce":"2"}}"#;
    let podman = Podman::new(&w, &podman_conflist(&w, tuning));
    let out = podman.run(
        &["--rm"],
        &["sh", "-c", "cat /proc/sys/net/ipv4/conf/eth0/arp_announce; ip -o -4 addr show dev eth0"],
    );
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines[0], "2", "tuning did not run after berth-cni:\n{out}");
    assert!(lines[1].contains("10.123.0.2/24"), "{out}");
    assert_cni_clean(&w);
}

#[test]
fn cni_podman_twenty_containers_at_once_get_twenty_addresses_and_leave_nothing() {
    let w = World::new();
    let podman = Podman::new(&w, &podman_conflist(&w, ""));
    // Each prints its address, then waits for the others: all 20 hold theirs at once.
    let go = podman.rootfs.join("go");
    let script = "ip -o -4 addr show dev eth0 | awk '{print $4}'; \
                  while [ ! -e /go ]; do sleep 0.05; done";
    let mut runs: Vec<Bg> =
        (0..20).map(|_| w.spawn(&mut podman.run_cmd(&["--rm"], &["sh", "-c", script]))).collect();
    let all_up = poll(Duration::from_secs(120), Duration::from_millis(50), || {
        runs.iter().all(|run| !run.stdout_so_far().is_empty()).then_some(())
    });
    let mut given: Vec<String> =
        runs.iter().map(|run| run.stdout_so_far().trim().to_owned()).collect();
    std::fs::write(&go, "").unwrap();
    assert!(all_up.is_some(), "not all 20 started: {given:?}");
    for run in &mut runs {
        run.wait(Duration::from_secs(60)).ok();
    }
    given.sort();
    given.dedup();
    assert_eq!(given.len(), 20, "{given:?}");
    assert!(given.iter().all(|a| a.starts_with("10.123.0.") && a.ends_with("/24")), "{given:?}");
    assert_cni_clean(&w);
}

#[test]
fn cni_networks_and_berth_run_share_the_table_through_reloads_and_flushes() {
    let w = World::new();
    let ports =
        || w.run(w.cmd("nft").args(["list", "map", "inet", "berth", "ports_any"])).ok().to_owned();
    let markers = || w.run(w.cmd("nft").args(["list", "table", "inet", "berth"])).ok().to_owned();
    w.berth_run(&["-d", "--name", "web", "-p", "18080:80", "sleep", "60"]).ok();
    let a = Netns::new(&w);
    let with_port = |port: u16| {
        format!(
            r#","capabilities":{{"portMappings":true}},"runtimeConfig":{{"portMappings":[{{"hostPort":{port},"containerPort":80,"protocol":"tcp"}}]}}"#
        )
    };
    cni(&w, "ADD", "a", &a.path(), "eth0", &conf(&w, "1.1.0", &with_port(19090))).ok();

    // `berth network reload` keeps the CNI network and its port beside berth's own.
    w.run(w.berth().args(["network", "reload"])).ok();
    let (listed, chains) = (ports(), markers());
    assert!(listed.contains("18080") && listed.contains("19090"), "{listed}");
    assert!(chains.contains(&format!("/{BRIDGE}")), "the CNI network's marker is gone:\n{chains}");

    // A flush, then a CNI ADD makes the table again with its own network only: the next
    // `berth run` still puts back berth's running containers' ports.
    w.run(w.cmd("nft").args(["delete", "table", "inet", "berth"])).ok();
    let b = Netns::new(&w);
    cni(&w, "ADD", "b", &b.path(), "eth0", &conf(&w, "1.1.0", "")).ok();
    assert!(!ports().contains("18080"));
    w.berth_run(&["true"]).ok();
    assert!(ports().contains("18080"), "berth's port after the flush:\n{}", ports());

    // berth's guard against forged router advertisements covers CNI attachments' ports too.
    let guard = w.run(w.cmd("nft").args(["list", "table", "bridge", "berth"])).ok().to_owned();
    assert!(guard.contains("\"bcni*\"") && guard.contains("nd-router-advert"), "{guard}");

    for (id, netns) in [("a", a), ("b", b)] {
        cni(&w, "DEL", id, &netns.path(), "eth0", &conf(&w, "1.1.0", "")).ok();
        netns.kill();
    }
    w.run(w.berth().args(["stop", "-t", "1", "web"])).ok();
    w.run(w.berth().args(["rm", "web"])).ok();
    w.assert_clean();
}

#[test]
fn cni_refuses_names_and_bridges_that_are_not_its_own() {
    let w = World::new();
    let netns = Netns::new(&w);
    let with_bridge = |bridge: &str| conf(&w, "1.1.0", "").replace(BRIDGE, bridge);
    for bridge in ["bth0123456789a", "berth0", "x;include", "bcni0"] {
        let out = cni(&w, "ADD", "a", &netns.path(), "eth0", &with_bridge(bridge));
        let (code, msg) = cni_error(&out);
        assert_eq!(code, 7, "{bridge}: {msg}");
    }
    // An interface name the kernel refuses (a form feed) is refused before any lease.
    let (code, _) =
        cni_error(&cni(&w, "ADD", "a", &netns.path(), "e\u{c}x", &conf(&w, "1.1.0", "")));
    assert_eq!(code, 4);
    // A bridge that berth did not make (another plugin's cni0, say) is not taken over.
    w.run(w.cmd("ip").args(["link", "add", "foreign0", "type", "bridge"])).ok();
    let (code, msg) =
        cni_error(&cni(&w, "ADD", "a", &netns.path(), "eth0", &with_bridge("foreign0")));
    assert!(code == 7 && msg.contains("not made by berth"), "{code} {msg}");
    // GC without the list of valid attachments removes nothing and says why.
    let (code, msg) = cni_error(&cni(&w, "GC", "", "", "", &conf(&w, "1.1.0", "")));
    assert!(code == 7 && msg.contains("valid-attachments"), "{code} {msg}");
    w.run(w.cmd("ip").args(["link", "del", "foreign0"])).ok();
    let leases =
        std::fs::read_to_string(data_dir(&w).join(NETWORK).join("leases")).unwrap_or_default();
    let held: Vec<&str> = leases.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(held.is_empty(), "a lease was left: {leases}");
    netns.kill();
    w.assert_clean();
}

/// What a container in `netns` sees of the upstream's web server: the source address it was
/// reached from (the host's, through NAT); `None` if it cannot reach it.
fn seen_by_upstream(w: &World, netns: &Netns) -> Option<String> {
    let url = format!("http://{UPSTREAM_ADDR}/");
    let out = inside(w, &netns.path(), &["curl", "-sS", "--max-time", "3", &url]);
    (out.code() == 0).then(|| out.stdout.trim().to_owned())
}

/// `berth network create` keeps clear of a CNI network's subnet and bridge, when it picks a
/// subnet and when one is given, and its `network rm` leaves the CNI network's NAT alone.
#[test]
fn cni_networks_subnets_and_bridges_are_not_taken_by_berth_network_create() {
    let w = World::with_upstream();
    // 10.202.0.0/16 is the subnet berth picks first.
    let config = conf(&w, "1.1.0", "").replace(SUBNET, "10.202.0.0/16");
    let ns = Netns::new(&w);
    cni(&w, "ADD", "c1", &ns.path(), "eth0", &config).ok();
    assert_eq!(seen_by_upstream(&w, &ns).as_deref(), Some(HOST_ADDR.to_string().as_str()));
    let marker = format!("net2/10.202.0.0/16/x/{BRIDGE}");

    w.run(w.berth().args(["network", "create", "app"])).ok();
    let app = crate::json(w.run(w.berth().args(["network", "inspect", "app"])).ok());
    assert_eq!(app["subnet"], "10.203.0.0/16", "the CNI network's subnet is passed over: {app}");
    let over = w.run(w.berth().args(["network", "create", "--subnet", "10.202.7.0/24", "over"]));
    over.expect_berth_error(&[&format!("overlaps network 10.202.0.0/16 on bridge {BRIDGE}")]);
    assert!(over.stderr.contains(&marker), "the marker is named\n{over}");
    let args = ["network", "create", "--subnet", "10.210.0.0/24", "--bridge", BRIDGE, "on"];
    w.run(w.berth().args(args)).expect_berth_error(&["exists already"]);

    w.run(w.berth().args(["network", "rm", "app"])).ok();
    assert_eq!(
        seen_by_upstream(&w, &ns).as_deref(),
        Some(HOST_ADDR.to_string().as_str()),
        "the CNI container lost its NAT with berth's network"
    );
    cni(&w, "DEL", "c1", &ns.path(), "eth0", &config).ok();

    // The CNI network's bridge gone, its network still installed: its bridge is not taken
    // either (making it would replace the CNI network's entries).
    w.run(w.cmd("ip").args(["link", "del", BRIDGE])).ok();
    let out = w.run(w.berth().args(args));
    out.expect_berth_error(&[&format!("--bridge {BRIDGE}: nftables table inet berth holds")]);
    assert!(out.stderr.contains(&marker), "the marker is named\n{out}");
    let table = w.run(w.cmd("nft").args(["list", "table", "inet", "berth"])).ok().to_owned();
    assert!(table.contains(&marker), "the CNI network is still installed\n{table}");
    assert_cni_clean(&w);
}

/// A CNI network on the subnet of a berth network made before it (berth-cni does not know
/// berth's networks): removing the berth network leaves the elements the CNI network's marker
/// also accounts for, its masquerade element among them.
#[test]
fn cni_network_keeps_its_nat_when_berth_removes_a_network_of_the_same_subnet() {
    let w = World::with_upstream();
    w.run(w.berth().args(["network", "create", "--subnet", SUBNET, "app"])).ok();
    let config = conf(&w, "1.1.0", "");
    let ns = Netns::new(&w);
    cni(&w, "ADD", "c1", &ns.path(), "eth0", &config).ok();

    w.run(w.berth().args(["network", "rm", "app"])).ok();
    let table = w.run(w.cmd("nft").args(["list", "table", "inet", "berth"])).ok().to_owned();
    assert!(!table.contains("\"berth1\""), "berth's network is gone\n{table}");
    assert_eq!(
        seen_by_upstream(&w, &ns).as_deref(),
        Some(HOST_ADDR.to_string().as_str()),
        "the CNI container lost its NAT with berth's network\n{table}"
    );
    cni(&w, "DEL", "c1", &ns.path(), "eth0", &config).ok();
    assert_cni_clean(&w);
}

/// containerd's CNI_CONTAINERID is its namespace, '-' and its id: up to 153 characters. Its
/// lease names it whole; its ports' owner and its veth's name are hashes of it.
#[test]
fn cni_container_ids_as_long_as_containerd_sends_are_taken() {
    let w = World::new();
    let id = format!("{}-{}", "k".repeat(76), "c".repeat(76));
    assert_eq!(id.len(), 153);
    let ports = r#","runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]}"#;
    let config = conf(&w, "1.1.0", ports);
    let ns = Netns::new(&w);
    let added = cni(&w, "ADD", &id, &ns.path(), "eth0", &config);
    assert_eq!(result_address(&added), "10.123.0.2/24");
    assert_eq!(addresses_inside(&w, &ns.path(), "eth0"), ["10.123.0.2/24"]);
    let leases = cni_leases(&w);
    assert!(leases[0].contains(&format!("container={id} interface=eth0 ")), "{leases:?}");
    let published = w.run(w.cmd("nft").args(["list", "map", "inet", "berth", "ports_any"]));
    assert!(published.ok().contains(&format!("cni:{NETWORK}/bcni")), "{published}");
    cni(&w, "CHECK", &id, &ns.path(), "eth0", &config).ok();
    // A GC that lists it keeps it.
    let valid =
        format!(r#","cni.dev/valid-attachments":[{{"containerID":"{id}","ifname":"eth0"}}]"#);
    cni(&w, "GC", "", "", "", &conf(&w, "1.1.0", &valid)).ok();
    assert_eq!(cni_leases(&w), leases);
    cni(&w, "CHECK", &id, &ns.path(), "eth0", &config).ok();
    cni(&w, "DEL", &id, &ns.path(), "eth0", &config).ok();

    // Far longer than any runtime sends: refused before anything is made.
    let (code, msg) = cni_error(&cni(&w, "ADD", &"x".repeat(1025), &ns.path(), "eth0", &config));
    assert_eq!(code, 4, "{msg}");
    assert!(msg.contains("CNI_CONTAINERID") && msg.contains("1 to 1024"), "{msg}");
    assert_cni_clean(&w);
}

/// CNI_NETNS must be a network namespace other than berth-cni's own (the host's, which ADD
/// would configure as a container's); a FIFO must not hang the call. Code 4, nothing made.
#[test]
fn cni_netns_that_is_the_hosts_own_or_no_network_namespace_is_refused() {
    let w = World::new();
    let config = conf(&w, "1.1.0", "");
    let fifo = w.path("fifo");
    w.run(w.cmd("mkfifo").arg(&fifo)).ok();
    let plain = w.path("plain");
    std::fs::write(&plain, "").unwrap();
    let host = w.host_pid();
    let links = w.link_names();
    let cases = [
        (format!("/proc/{host}/ns/net"), "is berth-cni's own network namespace"),
        ("/proc/self/ns/net".to_owned(), "is berth-cni's own network namespace"),
        (fifo.display().to_string(), "is not a network namespace"),
        (plain.display().to_string(), "is not a network namespace"),
        (format!("/proc/{host}/ns/uts"), "is not a network namespace"),
    ];
    for (netns, message) in cases {
        let mut call = w.spawn(&mut cni_cmd(&w, "ADD", "c1", &netns, "eth0", &config));
        let (code, msg) = cni_error(&call.wait(Duration::from_secs(10)));
        assert_eq!(code, 4, "{netns}: {msg}");
        assert!(msg.contains(&format!("CNI_NETNS {netns} {message}")), "{msg}");
        assert_eq!(w.link_names(), links, "{netns}: interfaces were made on the host");
    }
    assert_cni_clean(&w);
}
