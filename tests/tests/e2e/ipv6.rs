//! Dual-stack networks (`network create --ipv6`): an IPv6 address that pairs with the IPv4
//! one, usable at once (no duplicate address detection), a default route, NAT66 to the
//! upstream on 2001:db8::/32, DNS over IPv6, and ports published on IPv6 too.

use berth_e2e::*;
use std::time::Duration;

/// berth's set or map `name` as `nft` lists it.
fn listed(w: &World, kind: &str, name: &str) -> String {
    w.run(w.cmd("nft").args(["list", kind, "inet", "berth", name])).stdout.clone()
}

#[test]
fn a_dual_stack_container_gets_an_ipv6_address_route_nat66_and_dns() {
    let w = World::with_upstream();
    // The host keeps heeding router advertisements once it forwards IPv6.
    w.run(w.cmd("sysctl").args(["-qw", "net.ipv6.conf.uplink0.accept_ra=1"])).ok();
    w.run(w.cmd("sysctl").args(["-qw", "net.ipv6.conf.all.forwarding=0"])).ok();
    w.run(w.berth().args([
        "network",
        "create",
        "--subnet6",
        "fd00:b::/64",
        "--subnet",
        "10.40.0.0/24",
        "six",
    ]))
    .ok();
    let sysctl = |key: &str| w.run(w.cmd("sysctl").args(["-n", key])).ok().trim().to_owned();
    let ls = w.run(w.berth().args(["network", "ls"])).ok().to_owned();
    assert!(ls.lines().any(|l| l.starts_with("six ") && l.ends_with("fd00:b::/64")), "{ls}");
    assert_eq!(sysctl("net.ipv6.conf.all.forwarding"), "1");
    assert_eq!(sysctl("net.ipv6.conf.uplink0.accept_ra"), "2", "RAs still heeded on uplink0");
    let bridge = crate::json(w.run(w.berth().args(["network", "inspect", "six"])).ok());
    assert_eq!(bridge["gateway6"], "fd00:b::1", "{bridge}");
    let bridge = bridge["bridge"].as_str().expect("a bridge").to_owned();
    assert_eq!(sysctl(&format!("net.ipv6.conf.{bridge}.accept_ra")), "0", "none from containers");
    // The first thing the workload does is use its IPv6 address: it is not tentative.
    let script = format!(
        "curl -sS --max-time 3 http://[{UPSTREAM_ADDR6}]/ && ip -6 -o addr show dev eth0 && \
         ip -6 route show default && getent ahostsv6 {UPSTREAM_NAME6} | head -n 1"
    );
    let out =
        w.berth_run(&["--net", "six", "--dns", &UPSTREAM_ADDR6.to_string(), "sh", "-c", &script]);
    let lines: Vec<&str> = out.ok().lines().collect();
    // NAT66: the upstream sees the host's address.
    assert_eq!(lines[0], HOST_ADDR6.to_string(), "{out}");
    // The address that pairs with 10.40.0.2, without duplicate address detection.
    assert!(lines[1].contains("inet6 fd00:b::2/64"), "{out}");
    assert!(!lines[1].contains("tentative"), "{out}");
    assert!(lines[2].starts_with("default via fd00:b::1 dev eth0"), "{out}");
    // Resolved by the upstream's responder, asked over IPv6 (--dns 2001:db8::2).
    assert!(lines[3].starts_with(&UPSTREAM_ADDR6.to_string()), "{out}");
    w.run(w.berth().args(["run", "-d", "--net", "six", "--name", "rec", "sleep", "30"])).ok();
    let inspect = crate::json(w.run(w.berth().args(["inspect", "rec"])).ok());
    assert_eq!(inspect["address6"], "fd00:b::2", "{inspect}");
    w.run(w.berth().args(["stop", "-t", "1", "rec"])).ok();
    w.run(w.berth().args(["rm", "rec"])).ok();

    // A network without --ipv6 gives no IPv6 address, and reaches no IPv6 upstream.
    let v4 = w.berth_run(&["sh", "-c", "ip -6 -o addr show dev eth0 scope global | wc -l"]);
    assert_eq!(v4.ok().trim(), "0");

    w.run(w.berth().args(["network", "rm", "six"])).ok();
    assert!(!listed(&w, "set", "masq_subnets6").contains("elements"), "left in the table");
    w.assert_clean();
}

#[test]
fn ports_are_published_on_ipv6_too() {
    let w = World::with_upstream();
    w.run(w.berth().args(["network", "create", "--ipv6", "six"])).ok();
    let nginx = w.nginx_command("web");
    let mut args = vec!["-d", "--net", "six", "--name", "web", "-p", "8080:80"];
    args.extend(nginx.iter().map(String::as_str));
    w.berth_run(&args).ok();
    let url = format!("http://[{HOST_ADDR6}]:8080/");
    // From another machine, over IPv6: its own address arrives.
    let answer = crate::curl(&w, w.upstream_cmd("curl"), &url, Duration::from_secs(5));
    assert_eq!(answer, Some(format!("hello from web to {UPSTREAM_ADDR6}\n")));
    // From the host, on its IPv6 address, and from a container on the network (hairpin).
    let host = w.run(w.cmd("curl").args(["-sS", "--max-time", "2", &url]));
    assert!(host.ok().starts_with("hello from web"), "{host}");
    let hairpin = w.berth_run(&["--net", "six", "curl", "-sS", "--max-time", "2", &url]);
    assert!(hairpin.ok().starts_with("hello from web"), "{hairpin}");
    // IPv4 as before.
    let v4 = w.run(w.upstream_cmd("curl").args([
        "-sS",
        "--max-time",
        "2",
        &format!("http://{HOST_ADDR}:8080/"),
    ]));
    assert!(v4.ok().starts_with("hello from web"), "{v4}");
    let ps = w.run(w.berth().arg("ps")).ok().to_owned();
    assert!(ps.contains("0.0.0.0:8080->80/tcp,[::]:8080->80/tcp"), "{ps}");
    // One address only: the IPv6 one.
    let mut args = vec!["-d", "--net", "six", "--name", "only6", "-p"];
    let only6 = format!("[{HOST_ADDR6}]:8081:80");
    args.push(&only6);
    let nginx = w.nginx_command("only6");
    args.extend(nginx.iter().map(String::as_str));
    w.berth_run(&args).ok();
    assert!(listed(&w, "map", "ports6_at").contains("2001:db8::1 . tcp . 8081"));
    assert!(!listed(&w, "map", "ports_any").contains("8081"));
    let only6_url = format!("http://[{HOST_ADDR6}]:8081/");
    let answer = crate::curl(&w, w.upstream_cmd("curl"), &only6_url, Duration::from_secs(5));
    assert!(answer.is_some_and(|a| a.starts_with("hello from only6")));
    let v4 = w.run(w.upstream_cmd("curl").args([
        "-sS",
        "--max-time",
        "2",
        &format!("http://{HOST_ADDR}:8081/"),
    ]));
    assert_ne!(v4.code(), 0, "published on IPv6 only: {v4}");
    // A neighbour that routes the IPv6 subnet through the host gets nowhere (moby#45610).
    let web = crate::json(w.run(w.berth().args(["inspect", "web"])).ok());
    let address6 = web["address6"].as_str().expect("an IPv6 address").to_owned();
    let subnet6 = format!("{}/64", address6.rsplit_once("::").expect("a ::").0.to_owned() + "::");
    w.run(w.upstream_cmd("ip").args([
        "-6",
        "route",
        "add",
        &subnet6,
        "via",
        &HOST_ADDR6.to_string(),
    ]))
    .ok();
    let direct = format!("http://[{address6}]/");
    let out = w.run(w.upstream_cmd("curl").args(["-sS", "--max-time", "2", &direct]));
    assert_ne!(out.code(), 0, "the upstream reached {direct} directly: {out}");

    // Refused: ::1, and an IPv6 address for a container that has none.
    w.berth_run(&["--net", "six", "-p", "[::1]:8082:80", "true"])
        .expect_berth_error(&["cannot publish on ::1"]);
    w.berth_run(&["-p", &format!("[{HOST_ADDR6}]:8082:80"), "true"])
        .expect_berth_error(&["the container has no IPv6 address"]);

    w.run(w.berth().args(["stop", "-t", "1", "web", "only6"])).ok();
    w.run(w.berth().args(["rm", "web", "only6"])).ok();
    w.run(w.berth().args(["network", "rm", "six"])).ok();
    w.assert_clean();
}

#[test]
fn bad_ipv6_subnets_are_refused() {
    let w = World::new();
    w.run(w.berth().args(["network", "create", "--subnet6", "fd00:c::/64", "taken6"])).ok();
    for (args, message) in [
        (
            &["--subnet6", "fd00:d::1/64", "bits"][..],
            "has host bits set; did you mean fd00:d::/64?",
        ),
        (
            &["--subnet", "10.50.0.0/16", "--subnet6", "fd00:e::/120", "small"],
            "is too small for 10.50.0.0/16",
        ),
        (&["--subnet6", "fd00:c::/64", "over"], "overlaps network taken6"),
        (&["--subnet6", "10.0.0.0/8", "notsix"], "is not an IPv6 subnet"),
        (&["--subnet6", "2000::/3", "huge"], "is larger than a /48"),
        (
            &["--subnet6", "fe80::/64", "local"],
            "is not a unique local (fc00::/7) or global unicast",
        ),
    ] {
        w.run(w.berth().args(["network", "create"]).args(args)).expect_berth_error(&[message]);
    }
    w.run(w.berth().args(["network", "update", "bridge"]))
        .expect_berth_error(&["required arguments were not provided"]);
    w.run(w.berth().args(["network", "update", "--subnet6", "fd00:c::/64", "bridge"]))
        .expect_berth_error(&["overlaps network taken6"]);
    w.run(w.berth().args(["network", "rm", "taken6"])).ok();
    w.assert_clean();
}

#[test]
fn the_default_network_turns_ipv6_on_and_off() {
    let w = World::with_upstream();
    let eth0 = || w.berth_run(&["ip", "-o", "addr", "show", "dev", "eth0", "scope", "global"]);
    assert!(!eth0().ok().contains("inet6"), "IPv4 only by default");
    w.run(w.berth().args(["network", "update", "--ipv6", "bridge"])).ok();
    let out = eth0();
    assert!(out.ok().contains("inet6 fd62:6572:7468:1::2/64"), "{out}");
    let nat66 = format!("curl -sS --max-time 3 http://[{UPSTREAM_ADDR6}]/");
    assert_eq!(w.berth_run(&["sh", "-c", &nat66]).ok(), format!("{HOST_ADDR6}\n"));
    // Not while a container runs on it.
    w.run(w.berth().args(["run", "-d", "--name", "busy", "sleep", "30"])).ok();
    w.run(w.berth().args(["network", "update", "--no-ipv6", "bridge"]))
        .expect_berth_error(&["network bridge is in use by busy"]);
    w.run(w.berth().args(["stop", "-t", "1", "busy"])).ok();
    w.run(w.berth().args(["rm", "busy"])).ok();
    w.run(w.berth().args(["network", "update", "--no-ipv6", "bridge"])).ok();
    assert!(!eth0().ok().contains("inet6"), "IPv4 only again");
    assert!(!listed(&w, "set", "masq_subnets6").contains("elements"));
    w.assert_clean();
}

#[test]
fn a_container_cannot_take_over_the_others_routing_with_router_advertisements() {
    let w = World::new();
    // The victim watches its routes for a default route through the forger.
    let watch = w.path("watch.out");
    let script = format!(
        "for i in $(seq 40); do ip -6 route | grep -q fe80::bad && echo hijacked > {0} && exit; \
         sleep 0.1; done; echo clean > {0}",
        watch.display()
    );
    w.berth_run(&["-d", "--name", "victim", "sh", "-c", &script]).ok();
    // The forger, with NET_ADMIN, a link-local address and radvd advertising itself as the
    // default router (CVE-2020-13401).
    let conf = w.path("radvd.conf");
    std::fs::write(
        &conf,
        "interface eth0 { AdvSendAdvert on; MinRtrAdvInterval 3; MaxRtrAdvInterval 4; \
         AdvDefaultPreference high; prefix 2001:db8:bad::/64 { AdvOnLink on; AdvAutonomous on; }; };\n",
    )
    .unwrap();
    let forger = format!(
        "ip addr add fe80::bad/64 dev eth0 && exec radvd -n -m stderr -C {} -p {}",
        conf.display(),
        w.path("radvd.pid").display()
    );
    w.berth_run(&["-d", "--cap-add", "NET_ADMIN", "--name", "forger", "sh", "-c", &forger]).ok();
    let verdict = util::poll(Duration::from_secs(10), Duration::from_millis(50), || {
        std::fs::read_to_string(&watch).ok().filter(|v| !v.is_empty())
    });
    assert_eq!(
        verdict.as_deref(),
        Some("clean\n"),
        "{}",
        w.run(w.berth().args(["logs", "forger"]))
    );
    // Nor the host: it heeds none on the bridge.
    let accept_ra = w.run(w.cmd("sysctl").args(["-n", "net.ipv6.conf.berth0.accept_ra"]));
    assert_eq!(accept_ra.ok().trim(), "0");
    w.run(w.berth().args(["stop", "-t", "1", "forger"])).ok();
    w.run(w.berth().args(["rm", "victim", "forger"])).ok();
    w.assert_clean();
}
