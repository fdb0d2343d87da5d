//! What a workload sees of its network, its name and its resolver, for each `--net`.

use crate::{ifaces, parse_hosts, parse_resolv, sections, valid_name, SEP};
use berth_e2e::*;

#[test]
fn net_none_has_only_loopback_up() {
    let w = World::new();
    let out =
        w.berth_run(&["--net", "none", "sh", "-c", "ip -j addr show; echo @@; ip -j route show"]);
    let s = sections(out.ok());
    let ifs = ifaces(&s[0]);
    assert_eq!(ifs.len(), 1, "only lo expected\n{out}");
    assert_eq!(ifs[0].name, "lo", "{out}");
    assert!(ifs[0].is_up(), "lo must be up\n{out}");
    assert!(ifs[0].inet.contains(&("127.0.0.1".parse().unwrap(), 8)), "{out}");
    assert_eq!(crate::json(&s[1]), serde_json::json!([]), "no routes expected\n{out}");
    w.assert_clean();
}

#[test]
fn network_is_an_alias_of_net() {
    let w = World::new();
    let out = w.berth_run(&["--network", "none", "ip", "-j", "link", "show"]);
    let names: Vec<String> = ifaces(out.ok()).into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["lo"], "{out}");
}

#[test]
fn default_network_is_bridge() {
    let w = World::new();
    let out = w.berth_run(&["ip", "-j", "-4", "addr", "show", "dev", "eth0"]);
    assert_eq!(ifaces(out.ok())[0].inet, [("10.201.0.2".parse().unwrap(), 16)], "{out}");
    w.assert_clean();
}

#[test]
fn net_host_sees_the_host_network_with_its_own_hostname() {
    let w = World::new();
    let world_hostname = w.sh("hostname").ok().to_string();
    let script = format!("ip -j link show; {SEP} ip -j route show default; {SEP} hostname; {SEP} cat /etc/resolv.conf");
    let out = w.berth_run(&["--net", "host", "--name", "hosty", "sh", "-c", &script]);
    let s = sections(out.ok());
    let names: Vec<String> = ifaces(&s[0]).into_iter().map(|i| i.name).collect();
    assert!(
        names.iter().any(|n| n == "uplink0"),
        "the host's uplink0 must be visible: {names:?}\n{out}"
    );
    assert_eq!(crate::json(&s[1])[0]["gateway"], UPSTREAM_ADDR.to_string(), "{out}");
    assert_eq!(s[2].trim(), "hosty", "UTS namespace is still the container's own\n{out}");
    assert_eq!(s[3], HOST_RESOLV_CONF, "--net host keeps the host's resolv.conf as is\n{out}");
    assert_eq!(w.sh("hostname").ok(), world_hostname, "the host's hostname must not change");
    w.assert_clean();
}

#[test]
fn bridge_container_sees_eth0_address_route_hostname_hosts_and_resolver() {
    let w = World::new();
    let script = format!(
        "ip -j addr show; {SEP} ip -j route show; {SEP} hostname; {SEP} cat /etc/hostname; {SEP} \
         cat /etc/hosts; {SEP} cat /etc/resolv.conf"
    );
    let out = w.berth_run(&["--net", "bridge", "--name", "web", "sh", "-c", &script]);
    let s = sections(out.ok());
    assert_eq!(s.len(), 6, "{out}");

    let ifs = ifaces(&s[0]);
    let mut names: Vec<&str> = ifs.iter().map(|i| i.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["eth0", "lo"], "{out}");
    for i in &ifs {
        assert!(i.is_up(), "{} must be up\n{out}", i.name);
    }
    let eth0 = ifs.iter().find(|i| i.name == "eth0").unwrap();
    assert_eq!(
        eth0.inet,
        [("10.201.0.2".parse().unwrap(), 16)],
        "first container gets 10.201.0.2/16\n{out}"
    );

    let routes = crate::json(&s[1]);
    let default = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dst"] == "default")
        .unwrap_or_else(|| panic!("no default route\n{out}"));
    assert_eq!(default["gateway"], "10.201.0.1", "{out}");
    assert_eq!(default["dev"], "eth0", "{out}");

    assert_eq!(s[2].trim(), "web", "hostname = --name\n{out}");
    assert_eq!(s[3].trim(), "web", "/etc/hostname\n{out}");

    let hosts = parse_hosts(&s[4]);
    assert!(
        hosts.iter().any(|(a, n)| a == "127.0.0.1" && n.iter().any(|x| x == "localhost")),
        "/etc/hosts lacks localhost\n{out}"
    );
    assert!(
        hosts.iter().any(|(a, n)| a == "10.201.0.2" && n.iter().any(|x| x == "web")),
        "/etc/hosts lacks `10.201.0.2 web`\n{out}"
    );

    let r = parse_resolv(&s[5]);
    assert_eq!(r.nameservers, ["198.51.100.2"], "{out}");
    assert_eq!(r.search, ["example.test"], "{out}");
    assert_eq!(r.options, ["ndots:1"], "{out}");
    w.assert_clean();
}

#[test]
fn hostname_flag_overrides_the_name() {
    let w = World::new();
    let out = w.berth_run(&[
        "--net",
        "none",
        "--name",
        "web",
        "--hostname",
        "box",
        "sh",
        "-c",
        "hostname; cat /etc/hostname",
    ]);
    assert_eq!(out.ok(), "box\nbox\n", "{out}");
}

#[test]
fn generated_names_are_valid_and_distinct() {
    let w = World::new();
    let a = w.berth_run(&["--net", "none", "hostname"]);
    let b = w.berth_run(&["--net", "none", "hostname"]);
    let (a, b) = (a.ok().trim().to_string(), b.ok().trim().to_string());
    assert!(valid_name(&a), "generated name {a:?} breaks the name rule");
    assert!(valid_name(&b), "generated name {b:?} breaks the name rule");
    assert_ne!(a, b, "two containers got the same generated name");
}

#[test]
fn name_of_63_characters_is_accepted_and_becomes_the_hostname() {
    let w = World::new();
    let name: String = "a1-".repeat(21);
    assert_eq!(name.len(), 63);
    let out = w.berth_run(&["--net", "none", "--name", &name, "hostname"]);
    assert_eq!(out.ok().trim(), name, "{out}");
    let dotted = "x_y.z-0";
    let out = w.berth_run(&["--net", "none", "--name", dotted, "--hostname", "h", "hostname"]);
    assert_eq!(out.ok().trim(), "h", "`_`, `.` and `-` are allowed in names\n{out}");
}

#[test]
fn resolv_conf_drops_loopback_nameservers_and_keeps_search_and_options() {
    let w = World::new();
    std::fs::write(
        w.host_resolv_conf(),
        "nameserver 127.0.0.53\nnameserver 198.51.100.2\nnameserver ::1\nnameserver 127.1.2.3\n\
         search example.test other.test\noptions ndots:1 timeout:2\n",
    )
    .unwrap();
    let out = w.berth_run(&["--net", "bridge", "cat", "/etc/resolv.conf"]);
    let r = parse_resolv(out.ok());
    assert_eq!(r.nameservers, ["198.51.100.2"], "loopback nameservers must go\n{out}");
    assert_eq!(r.search, ["example.test", "other.test"], "{out}");
    assert_eq!(r.options, ["ndots:1", "timeout:2"], "{out}");
    w.assert_clean();
}

#[test]
fn dns_flags_replace_the_hosts_nameservers() {
    let w = World::new();
    let out = w.berth_run(&["--net", "bridge", "--dns", "198.51.100.2", "cat", "/etc/resolv.conf"]);
    assert_eq!(parse_resolv(out.ok()).nameservers, ["198.51.100.2"], "{out}");
    let out =
        w.berth_run(&["--dns", "198.51.100.7", "--dns", "198.51.100.2", "cat", "/etc/resolv.conf"]);
    assert_eq!(
        parse_resolv(out.ok()).nameservers,
        ["198.51.100.7", "198.51.100.2"],
        "order kept\n{out}"
    );
    w.assert_clean();
}

/// "/etc/hostname, /etc/hosts and /etc/resolv.conf are bind-mounted read-only in the
/// container", whatever its network.
fn assert_config_files_read_only(net: &str) {
    let w = World::new();
    // `: >> f` opens for appending and writes nothing: it cannot change the machine's own
    // /etc/hosts even if the file were not berth's read-only copy.
    let script = "for f in /etc/resolv.conf /etc/hosts /etc/hostname; do \
                  if (: >> $f) 2>/dev/null; then echo \"$f writable\"; else echo \"$f read-only\"; fi; done";
    let out = w.berth_run(&["--net", net, "sh", "-c", script]);
    assert_eq!(
        out.ok(),
        "/etc/resolv.conf read-only\n/etc/hosts read-only\n/etc/hostname read-only\n",
        "--net {net}\n{out}"
    );
    w.assert_clean();
}

#[test]
fn config_files_are_read_only_with_net_bridge() {
    assert_config_files_read_only("bridge");
}

#[test]
fn config_files_are_read_only_with_net_none() {
    assert_config_files_read_only("none");
}

#[test]
fn config_files_are_read_only_with_net_host() {
    assert_config_files_read_only("host");
}

/// /etc/hosts holds the container's name, so the hostname it was given resolves.
fn assert_own_name_resolves(net: &str) {
    let w = World::new();
    let out =
        w.berth_run(&["--net", net, "--name", "nm", "sh", "-c", "getent hosts \"$(hostname)\""]);
    assert_eq!(out.code(), 0, "--net {net}: the container's own name does not resolve\n{out}");
    assert!(out.stdout.split_whitespace().any(|x| x == "nm"), "--net {net}\n{out}");
    w.assert_clean();
}

#[test]
fn own_name_resolves_with_net_bridge() {
    assert_own_name_resolves("bridge");
}

#[test]
fn own_name_resolves_with_net_none() {
    assert_own_name_resolves("none");
}

#[test]
fn own_name_resolves_with_net_host() {
    assert_own_name_resolves("host");
}

/// systemd machines make /etc/resolv.conf a symbolic link: berth reads through it, and binds the
/// container's own file over it there, leaving the link's target untouched.
#[test]
fn a_symlinked_host_resolv_conf_works_and_stays_untouched() {
    let w = World::new();
    let etc = w.path("etc");
    let target = w.path("real-resolv.conf");
    std::fs::write(&target, "nameserver 198.51.100.2\nsearch link.test\n").unwrap();
    // In the world's own mount namespace: a copy of /etc whose resolv.conf is a link.
    w.sh(&format!(
        "cp -a /etc '{etc}' 2>/dev/null; rm -f '{etc}/resolv.conf' && \
         ln -s '{target}' '{etc}/resolv.conf' && mount --bind '{etc}' /etc",
        etc = etc.display(),
        target = target.display()
    ))
    .ok();
    let out = w.berth_run(&[
        "--net",
        "bridge",
        "sh",
        "-c",
        "cat /etc/resolv.conf; echo 'nameserver 203.0.113.66' >> /etc/resolv.conf || echo read-only",
    ]);
    let text = out.ok();
    assert!(text.contains("nameserver 198.51.100.2"), "read through the link\n{out}");
    assert!(text.contains("search link.test"), "{out}");
    assert!(text.contains("read-only"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "nameserver 198.51.100.2\nsearch link.test\n",
        "the link's target is untouched"
    );
    w.sh("umount /etc").ok();
    w.assert_clean();
}
