//! Named networks: `berth network create/ls/inspect/rm/prune`, `run --net NAME`, isolation
//! between networks, `--internal`, names resolving among members, and a full subnet.

use berth_e2e::*;
use std::time::Duration;

/// Starts a detached container `name` on `network` that runs `script` (then waits).
fn start(w: &World, network: &str, name: &str, script: &str) -> String {
    let script = format!("{script}; while :; do sleep 0.05; done");
    let out = w.berth_run(&["-d", "--net", network, "--name", name, "sh", "-c", &script]);
    out.ok().trim().to_owned()
}

/// The address `berth inspect` gives container `name`.
fn address_of(w: &World, name: &str) -> String {
    let record = crate::json(w.run(w.berth().args(["inspect", name])).ok());
    record["address"].as_str().unwrap_or_else(|| panic!("no address: {record}")).to_owned()
}

fn create(w: &World, args: &[&str]) {
    w.run(w.berth().args(["network", "create"]).args(args)).ok();
}

/// Ends a test: stops the containers still `running` (1 s grace), removes their records and
/// those of the `ended` ones, removes every created network, and checks that nothing is left.
fn finish(w: &World, running: &[&str], ended: &[&str]) {
    if !running.is_empty() {
        w.run(w.berth().args(["stop", "-t", "1"]).args(running)).ok();
    }
    let all: Vec<&str> = running.iter().chain(ended).copied().collect();
    if !all.is_empty() {
        w.run(w.berth().arg("rm").args(&all)).ok();
    }
    w.run(w.berth().args(["network", "prune"])).ok();
    w.assert_clean();
}

/// berth's nftables table as `nft` lists it.
fn berth_table(w: &World) -> String {
    w.run(w.cmd("nft").args(["list", "table", "inet", "berth"])).ok().to_owned()
}

/// The text of set `name` in berth's table as `nft` lists it.
fn set_of(table: &str, name: &str) -> String {
    let start =
        table.find(&format!("set {name} {{")).unwrap_or_else(|| panic!("no set {name}\n{table}"));
    let end = table[start..].find('}').map_or(table.len(), |e| start + e);
    table[start..end].to_owned()
}

/// Whether `ping` from a container on `network` reaches `target` (name or address).
fn pings(w: &World, network: &str, target: &str) -> bool {
    let ping = format!("ping -c 1 -W 1 {target} >/dev/null 2>&1 && echo yes || echo no");
    w.berth_run(&["--net", network, "sh", "-c", &ping]).ok() == "yes\n"
}

#[test]
fn created_networks_are_listed_inspected_and_removed_leaving_nothing() {
    let w = World::new();
    create(&w, &["app"]);
    create(
        &w,
        &["--subnet", "10.30.0.0/24", "--gateway", "10.30.0.254", "--bridge", "br-db", "db"],
    );

    let ls = w.run(w.berth().args(["network", "ls"]));
    let rows: Vec<Vec<&str>> = ls.ok().lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "BRIDGE", "SUBNET", "GATEWAY", "INTERNAL", "IPV6"], "{ls}");
    assert_eq!(rows[1], ["bridge", "berth0", "10.201.0.0/16", "10.201.0.1", "no", "-"], "{ls}");
    assert_eq!(rows[2], ["app", "berth1", "10.202.0.0/16", "10.202.0.1", "no", "-"], "{ls}");
    assert_eq!(rows[3], ["db", "br-db", "10.30.0.0/24", "10.30.0.254", "no", "-"], "{ls}");
    assert_eq!(rows[4][0], "host", "{ls}");
    assert_eq!(rows[5][0], "none", "{ls}");

    // Made at once, like docker: the bridge with its gateway address, and the firewall entries.
    let link = w.link("br-db").expect("the bridge br-db exists");
    assert_eq!(link["linkinfo"]["info_kind"], "bridge", "{link}");
    let addrs = w.run(w.cmd("ip").args(["-br", "-4", "addr", "show", "br-db"]));
    assert!(addrs.ok().contains("10.30.0.254/24"), "{addrs}");
    let table = berth_table(&w);
    for element in ["\"br-db\"", "\"berth1\""] {
        assert!(set_of(&table, "bridges").contains(element), "{element} in berth's table\n{table}");
    }
    for subnet in ["10.30.0.0/24", "10.202.0.0/16"] {
        assert!(set_of(&table, "masq_subnets").contains(subnet), "{subnet} masqueraded\n{table}");
    }

    // A container joins it and gets an address of its subnet with the gateway as its route.
    let seen = w.berth_run(&["--net", "db", "sh", "-c", "ip -br -4 addr show eth0; ip route"]);
    assert!(seen.ok().contains("10.30.0.1/24"), "{seen}");
    assert!(seen.ok().contains("default via 10.30.0.254 dev eth0"), "{seen}");

    let inspect = crate::json(w.run(w.berth().args(["network", "inspect", "db"])).ok());
    assert_eq!(inspect["bridge"], "br-db");
    assert_eq!(inspect["subnet"], "10.30.0.0/24");
    assert_eq!(inspect["internal"], false);
    assert_eq!(inspect["containers"], serde_json::json!([]));

    let rm = w.run(w.berth().args(["network", "rm", "app", "db"]));
    assert_eq!(rm.ok(), "app\ndb\n");
    assert!(w.link("br-db").is_none() && w.link("berth1").is_none(), "bridges removed");
    let table = berth_table(&w);
    for element in ["br-db", "berth1", "10.30.0.0", "10.202.0.0"] {
        assert!(!table.contains(element), "{element} gone from berth's table\n{table}");
    }
    let ls = w.run(w.berth().args(["network", "ls"]));
    assert_eq!(ls.ok().lines().count(), 4, "header, bridge, host, none\n{ls}");
    w.assert_clean();
}

#[test]
fn members_reach_each_other_by_name_and_one_that_leaves_disappears() {
    let w = World::new();
    create(&w, &["app"]);
    // The client starts first and watches: the shared hosts file is updated under it.
    start(
        &w,
        "app",
        "client",
        "until getent hosts web; do sleep 0.02; done; ping -c 1 -W 2 web && echo reached-web",
    );
    start(&w, "app", "web", "true");
    let web = address_of(&w, "web");
    let log = poll(Duration::from_secs(10), Duration::from_millis(20), || {
        let log = w.run(w.berth().args(["logs", "client"])).ok().to_owned();
        log.contains("reached-web").then_some(log)
    })
    .expect("the client resolved web and reached it");
    assert!(log.contains(&format!("{web} ")), "web resolves to its address\n{log}");

    let inspect = crate::json(w.run(w.berth().args(["network", "inspect", "app"])).ok());
    let names: Vec<&str> = inspect["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{inspect}");
    assert!(names.contains(&"web") && names.contains(&"client"), "{inspect}");

    // The default network is not a created one: its containers do not see the members.
    let outsider =
        w.berth_run(&["--net", "bridge", "sh", "-c", "getent hosts web || echo unknown"]);
    assert_eq!(outsider.ok(), "unknown\n");

    w.run(w.berth().args(["stop", "-t", "1", "web"])).ok();
    let gone =
        w.run(w.berth().args(["exec", "client", "sh", "-c", "getent hosts web || echo gone"]));
    assert_eq!(gone.ok(), "gone\n", "a member that left is no longer resolved");
    let own = w.run(w.berth().args(["exec", "client", "getent", "hosts", "client"]));
    assert!(own.ok().starts_with("10.202.0."), "{own}");

    finish(&w, &["client"], &["web"]);
}

#[test]
fn containers_on_different_networks_cannot_reach_each_other_but_both_reach_out() {
    let w = World::with_upstream();
    create(&w, &["red"]);
    create(&w, &["blue"]);
    start(&w, "red", "r1", "true");
    start(&w, "blue", "b1", "true");
    let (r1, b1) = (address_of(&w, "r1"), address_of(&w, "b1"));

    assert!(pings(&w, "red", &r1), "same network: reached");
    assert!(!pings(&w, "red", &b1), "red must not reach blue's {b1}");
    assert!(!pings(&w, "blue", &r1), "blue must not reach red's {r1}");
    assert!(!pings(&w, "bridge", &r1), "the default network must not reach red's {r1}");
    // Both still go out through NAT: the upstream sees the host's address.
    for network in ["red", "blue"] {
        let fetch = format!("curl -sS --max-time 3 http://{UPSTREAM_ADDR}/");
        let seen = w.berth_run(&["--net", network, "sh", "-c", &fetch]);
        assert_eq!(seen.ok(), format!("{HOST_ADDR}\n"), "from {network}");
    }

    finish(&w, &["r1", "b1"], &[]);
}

#[test]
fn an_internal_network_has_no_way_out_but_its_members_reach_each_other() {
    let w = World::with_upstream();
    create(&w, &["--internal", "vault"]);
    create(&w, &["open"]);
    start(&w, "vault", "keeper", "true");
    start(&w, "open", "clerk", "true");
    let (keeper, clerk) = (address_of(&w, "keeper"), address_of(&w, "clerk"));
    assert!(pings(&w, "vault", "keeper"), "members reach each other by name");
    let routes = w.berth_run(&["--net", "vault", "ip", "route"]);
    assert!(!routes.ok().contains("default"), "no default route\n{routes}");
    // No nameserver it could not reach: a lookup fails at once, names of members still work.
    let started = std::time::Instant::now();
    let lookup = w.berth_run(&[
        "--net",
        "vault",
        "sh",
        "-c",
        "grep -c '^nameserver' /etc/resolv.conf; getent hosts web.upstream.test || echo unresolved",
    ]);
    assert_eq!(lookup.ok(), "0\nunresolved\n");
    assert!(started.elapsed() < Duration::from_secs(2), "no lookup timeout\n{lookup}");

    // The upstream learns a route to berth's subnets, so that only berth's rules stand between.
    w.run(w.upstream_cmd("ip").args(["route", "add", "10.0.0.0/8", "via", &HOST_ADDR.to_string()]))
        .ok();
    let upstream_pings =
        |addr: &str| w.run(w.upstream_cmd("ping").args(["-c", "1", "-W", "1", addr])).code() == 0;
    let vault_gateway = keeper.rsplit_once('.').map(|(net, _)| format!("{net}.1")).unwrap();
    assert!(upstream_pings(&vault_gateway), "the control: the route leads to the host");
    assert!(!upstream_pings(&keeper), "the upstream must not reach into an internal network");
    assert!(!upstream_pings(&clerk), "nor into another network: only published ports get in");
    // A container that adds the route itself gets nowhere either: the host drops its packets.
    let gateway = crate::json(w.run(w.berth().args(["network", "inspect", "vault"])).ok())
        ["gateway"]
        .as_str()
        .unwrap()
        .to_owned();
    let escape = format!(
        "ip route add default via {gateway} || exit 9; \
         curl -sS --max-time 2 http://{UPSTREAM_ADDR}/ || echo blocked"
    );
    let out = w.berth_run(&["--net", "vault", "--cap-add", "NET_ADMIN", "sh", "-c", &escape]);
    assert!(out.ok().ends_with("blocked\n"), "{out}");
    let table = berth_table(&w);
    assert!(!set_of(&table, "masq_subnets").contains("10.202.0.0/16"), "no NAT for vault\n{table}");
    assert!(set_of(&table, "internal").contains("\"berth1\""), "{table}");

    finish(&w, &["keeper", "clerk"], &[]);
}

#[test]
fn a_full_subnet_is_a_clear_error_that_leaves_nothing_behind() {
    let w = World::new();
    create(&w, &["--subnet", "10.30.0.0/29", "tiny"]);
    // A /29: the network and broadcast addresses and the gateway leave five for containers.
    let names: Vec<String> = (1..=5).map(|i| format!("c{i}")).collect();
    for name in &names {
        start(&w, "tiny", name, "true");
    }
    let leases_path = w.root().join("networks/tiny/leases");
    let before = parse_leases(&std::fs::read_to_string(&leases_path).unwrap());
    assert_eq!(before.len(), 5, "{before:#?}");
    let veths = w.veths();

    let full = w.berth_run(&["--net", "tiny", "--name", "sixth", "true"]);
    full.expect_berth_error(&["no free address", "10.30.0.0/29"]);
    let after = parse_leases(&std::fs::read_to_string(&leases_path).unwrap());
    assert_eq!(after, before, "the leases are untouched");
    assert_eq!(w.veths(), veths, "no interface was made");
    assert_eq!(w.container_dirs().len(), 5, "no container directory is left");

    finish(&w, &names.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
}

#[test]
fn a_network_in_use_is_not_removed_and_prune_keeps_it() {
    let w = World::new();
    create(&w, &["busy"]);
    create(&w, &["idle"]);
    start(&w, "busy", "worker", "true");

    let rm = w.run(w.berth().args(["network", "rm", "busy"]));
    rm.expect_berth_error(&["network busy is in use by worker"]);
    let prune = w.run(w.berth().args(["network", "prune"]));
    assert_eq!(prune.ok(), "idle\n", "prune removes only the unused network");
    assert!(w.link("berth1").is_some(), "busy's bridge is still there");
    assert!(pings(&w, "busy", "worker"), "and busy still works");

    w.run(w.berth().args(["stop", "-t", "1", "worker"])).ok();
    w.run(w.berth().args(["rm", "worker"])).ok();
    assert_eq!(w.run(w.berth().args(["network", "rm", "busy"])).ok(), "busy\n");
    w.assert_clean();
}

#[test]
fn bad_network_requests_are_refused_by_name_and_leave_nothing() {
    let w = World::new();
    create(&w, &["--subnet", "10.30.0.0/24", "taken"]);
    let links = w.link_names();
    let table = berth_table(&w);
    let cases: &[(&[&str], &str)] = &[
        (&["bridge"], "reserved"),
        (&["host"], "reserved"),
        (&["joined"], "network name joined is reserved (a container that joined"),
        (&["bad/name"], "invalid network name"),
        (&["taken"], "network taken already exists"),
        (&["--subnet", "10.30.0.128/25", "over"], "overlaps network taken"),
        (&["--subnet", "10.201.5.0/24", "over"], "overlaps network bridge"),
        (&["--subnet", "10.40.0.1/24", "bits"], "did you mean 10.40.0.0/24"),
        (&["--subnet", "10.40.0.0/30", "small"], "too small"),
        (&["--subnet", "10.40.0.0/24", "--gateway", "10.41.0.1", "gw"], "not a host address"),
        (&["--subnet", "10.40.0.0/24", "--gateway", "10.40.0.255", "gw"], "not a host address"),
        (&["--bridge", "lo", "lo-net"], "--bridge lo: an interface of that name exists"),
        (&["--bridge", "a-name-far-too-long", "long"], "invalid bridge name"),
        (&["--bridge", "bth0123456789ab", "veth"], "berth's container interfaces"),
        (&["--gateway", "10.60.0.1", "gw"], "--gateway needs --subnet"),
        (&["--subnet", "10.40.0.0", "cidr"], "not an IPv4 subnet in CIDR notation"),
    ];
    for (args, message) in cases {
        let out = w.run(w.berth().args(["network", "create"]).args(*args));
        out.expect_berth_error(&[message]);
    }
    w.berth_run(&["--net", "nosuch", "true"])
        .expect_berth_error(&["no such network: nosuch", "berth network create nosuch"]);
    w.run(w.berth().args(["network", "rm", "bridge"]))
        .expect_berth_error(&["the default network bridge cannot be removed"]);
    w.run(w.berth().args(["network", "rm", "nosuch"])).expect_berth_error(&["no such network"]);
    w.run(w.berth().args(["network", "rm", "host"])).expect_berth_error(&["host is built in"]);
    w.berth_run(&["--net", "taken", "--ip", "10.31.0.5", "true"])
        .expect_berth_error(&["10.31.0.5", "10.30.0.0/24"]);

    assert_eq!(w.link_names(), links, "no interface was made");
    assert_eq!(berth_table(&w), table, "berth's table is unchanged");
    w.run(w.berth().args(["network", "rm", "taken"])).ok();
    w.assert_clean();
}

#[test]
fn gc_removes_a_dead_members_name_from_the_hosts_file() {
    let w = World::new();
    create(&w, &["app"]);
    let ready = w.path("ready");
    let script = format!("touch '{}'; exec sleep 600", ready.display());
    let mut launcher =
        w.spawn(w.berth().args(["run", "--net", "app", "--name", "ghost", "sh", "-c", &script]));
    assert!(wait_for_file(&ready, Duration::from_secs(10)), "{}", launcher.stderr_so_far());
    let hosts = w.root().join("networks/app/hosts");
    assert!(std::fs::read_to_string(&hosts).unwrap().contains("\tghost"));
    launcher.signal(libc::SIGKILL);
    launcher.wait(Duration::from_secs(10));

    let gc = w.run(w.berth().arg("gc"));
    assert!(gc.ok().contains("from the hosts file of network app"), "{gc}");
    assert!(!std::fs::read_to_string(&hosts).unwrap().contains("ghost"), "{gc}");
    w.run(w.berth().args(["network", "rm", "app"])).ok();
    w.assert_clean();
}

#[test]
fn a_detached_nginx_on_a_network_is_listed_reached_by_name_entered_and_stopped() {
    let w = World::new();
    create(&w, &["app"]);
    let nginx = w.nginx_command("nginx").join("' '");
    let script = format!("echo starting nginx; exec '{nginx}'");
    let id = w.berth_run(&["-d", "--net", "app", "--name", "web", "sh", "-c", &script]);
    let id = id.ok().trim().to_owned();
    let web = address_of(&w, "web");
    assert!(w.wait_tcp(format!("{web}:80").parse().unwrap(), Duration::from_secs(10)), "nginx up");

    let ps = w.run(w.berth().arg("ps"));
    let row = ps.ok().lines().find(|l| l.starts_with("web ")).unwrap_or_else(|| panic!("{ps}"));
    for cell in [&id[..12], "app", &web, "running"] {
        assert!(row.contains(cell), "{cell:?} in the ps row\n{ps}");
    }
    let from_host =
        w.run(w.cmd("curl").args(["-sS", "--max-time", "5", &format!("http://{web}/")]));
    assert_eq!(from_host.ok(), "hello from web to 10.202.0.1\n");
    let by_name = w.berth_run(&["--net", "app", "curl", "-sS", "--max-time", "5", "http://web/"]);
    assert!(by_name.ok().starts_with("hello from web to 10.202.0."), "{by_name}");

    let inside =
        w.run(w.berth().args(["exec", "web", "sh", "-c", "hostname; ip -br -4 addr show eth0"]));
    assert!(inside.ok().starts_with("web\neth0"), "{inside}");
    assert!(inside.ok().contains(&format!("{web}/16")), "{inside}");

    let started = std::time::Instant::now();
    w.run(w.berth().args(["stop", "web"])).ok();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "nginx ends on SIGTERM, within the grace period"
    );
    let log = w.run(w.berth().args(["logs", "web"]));
    assert!(log.ok().contains("starting nginx"), "{log}");
    finish(&w, &[], &["web"]);
}

#[test]
fn a_flushed_table_comes_back_whole_from_a_run_on_any_network() {
    let w = World::new();
    create(&w, &["red"]);
    create(&w, &["blue"]);
    create(&w, &["--internal", "vault"]);
    start(&w, "blue", "b1", "true");
    start(&w, "red", "r1", "true");
    let b1 = address_of(&w, "b1");
    // `exec` installs nothing: r1 shows what the firewall does at each moment.
    let r1_reaches_b1 = || {
        let ping = format!("ping -c 1 -W 1 {b1} >/dev/null 2>&1 && echo yes || echo no");
        w.run(w.berth().args(["exec", "r1", "sh", "-c", &ping])).ok() == "yes\n"
    };
    assert!(!r1_reaches_b1(), "isolated before the flush");
    w.run(w.cmd("nft").args(["flush", "ruleset"])).ok();
    assert!(r1_reaches_b1(), "the control: with no table, red reaches blue");
    // The first run after the flush is on red: it must bring back blue and vault as well.
    w.berth_run(&["--net", "red", "true"]).ok();
    assert!(!r1_reaches_b1(), "isolated again after one run on red");
    let table = berth_table(&w);
    for element in ["\"berth1\"", "\"berth2\"", "\"berth3\""] {
        assert!(set_of(&table, "bridges").contains(element), "{element} is back\n{table}");
    }
    for subnet in ["10.202.0.0/16", "10.203.0.0/16"] {
        assert!(set_of(&table, "masq_subnets").contains(subnet), "{subnet} is back\n{table}");
    }
    assert!(!set_of(&table, "masq_subnets").contains("10.204.0.0/16"), "vault: no NAT\n{table}");
    assert!(set_of(&table, "internal").contains("\"berth3\""), "vault is internal\n{table}");

    finish(&w, &["b1", "r1"], &[]);
}

#[test]
fn a_removal_that_fails_halfway_keeps_the_network_and_a_later_one_finishes_it() {
    let w = World::new();
    create(&w, &["app"]);
    // Without nft, the firewall entries cannot be removed: the removal stops before anything
    // is gone, and says why.
    let bin = crate::bad_input::path_without_nft(&w);
    let failed = w.run(w.berth().env("PATH", &bin).args(["network", "rm", "app"]));
    failed.expect_berth_error(&["nft"]);
    assert!(w.run(w.berth().args(["network", "ls"])).ok().contains("app "), "still listed");
    assert!(w.link("berth1").is_some(), "its bridge is still there");
    assert_eq!(w.run(w.berth().args(["network", "rm", "app"])).ok(), "app\n");

    // A new network on the same bridge name is installed as itself, not as the old one.
    create(&w, &["--internal", "vault"]);
    let table = berth_table(&w);
    assert!(!set_of(&table, "masq_subnets").contains("10.202.0.0/16"), "vault: no NAT\n{table}");
    assert!(set_of(&table, "internal").contains("\"berth1\""), "vault is internal\n{table}");
    w.run(w.berth().args(["network", "rm", "vault"])).ok();
    w.assert_clean();
}

#[test]
fn a_network_still_used_by_a_dead_launchers_container_is_not_removed_until_gc() {
    let w = World::new();
    create(&w, &["app"]);
    let (ready, orphan) = (w.path("ready"), unique_sleep_arg());
    let script = format!("sleep {orphan} & touch '{}'; wait", ready.display());
    let mut launcher = w.spawn(w.berth().args(["run", "--net", "app", "sh", "-c", &script]));
    assert!(wait_for_file(&ready, Duration::from_secs(10)), "{}", launcher.stderr_so_far());
    launcher.signal(libc::SIGKILL);
    launcher.wait(Duration::from_secs(10));

    let refused = w.run(w.berth().args(["network", "rm", "app"]));
    refused.expect_berth_error(&["whose launcher is gone: berth gc"]);
    assert!(w.link("berth1").is_some(), "the bridge stays under the orphan");
    w.run(w.berth().arg("gc")).ok();
    assert_eq!(w.run(w.berth().args(["network", "rm", "app"])).ok(), "app\n");
    w.assert_clean();
}

#[test]
fn in_a_full_subnet_a_dead_launchers_address_is_taken_over() {
    let w = World::new();
    create(&w, &["--subnet", "10.30.0.0/29", "tiny"]);
    let ready = w.path("ready");
    let script = format!("touch '{}'; exec sleep 600", ready.display());
    let mut doomed = w.spawn(w.berth().args(["run", "--net", "tiny", "sh", "-c", &script]));
    assert!(wait_for_file(&ready, Duration::from_secs(10)), "{}", doomed.stderr_so_far());
    doomed.signal(libc::SIGKILL); // its workload dies with it: nothing holds 10.30.0.2 now
    doomed.wait(Duration::from_secs(10));
    assert!(w.wait_veths_gone(VETH_GONE_TIMEOUT).is_empty());
    let names: Vec<String> = (1..=4).map(|i| format!("c{i}")).collect();
    for name in &names {
        start(&w, "tiny", name, "true");
    }
    let sixth = w.berth_run(&["--net", "tiny", "ip", "-br", "-4", "addr", "show", "eth0"]);
    assert!(
        sixth.ok().contains("10.30.0.2/29"),
        "the dead launcher's address, taken over\n{sixth}"
    );
    let gc = w.run(w.berth().arg("gc"));
    assert!(gc.ok().contains("removed container"), "the dead launcher's record\n{gc}");

    finish(&w, &names.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
}
