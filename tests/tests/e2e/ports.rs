//! Published ports (`run -p`): reached from another machine (the upstream), from the host on
//! its own addresses and on 127.0.0.1, and from containers (hairpin); UDP and ranges; conflicts
//! refused with nothing left; a port on 127.0.0.1 kept from other machines; removal at the end,
//! by `gc` after a crash, and back after a flush.

use crate::curl;
use berth_e2e::*;
use std::time::Duration;

/// Starts nginx detached as container `name` with `publish` (`-p` values); its answer names
/// the container and the client's address.
fn start_nginx(w: &World, name: &str, publish: &[&str]) -> String {
    let mut args = vec!["-d", "--name", name];
    for p in publish {
        args.extend(["-p", p]);
    }
    let nginx = w.nginx_command(name);
    args.extend(nginx.iter().map(String::as_str));
    w.berth_run(&args).ok().trim().to_owned()
}

/// berth's map `name` as `nft` lists it (empty while there is no table).
fn port_map(w: &World, name: &str) -> String {
    w.run(w.cmd("nft").args(["list", "map", "inet", "berth", name])).stdout.clone()
}

/// The PORTS column of `berth ps` for container `name`.
fn ps_ports(w: &World, name: &str) -> String {
    let ps = w.run(w.berth().arg("ps")).ok().to_owned();
    let header = ps.lines().next().unwrap_or_default();
    let column = header.find("PORTS").expect("a PORTS column");
    let row = ps
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in ps:\n{ps}"));
    row[column..].split_whitespace().next().unwrap_or_default().to_owned()
}

const PATIENCE: Duration = Duration::from_secs(5);

#[test]
fn a_published_port_is_reached_from_another_machine_the_host_and_containers() {
    let w = World::with_upstream();
    start_nginx(&w, "web", &["8080:80"]);
    let from_upstream = format!("http://{HOST_ADDR}:8080/");
    // Another machine: the client's own address reaches the container (no SNAT on the way in).
    let answer = curl(&w, w.upstream_cmd("curl"), &from_upstream, PATIENCE);
    assert_eq!(answer.as_deref(), Some(format!("hello from web to {UPSTREAM_ADDR}\n").as_str()));
    // The host, on its own address and on 127.0.0.1.
    for url in [format!("http://{HOST_ADDR}:8080/"), "http://127.0.0.1:8080/".into()] {
        let answer = curl(&w, w.cmd("curl"), &url, Duration::ZERO);
        assert!(
            answer.as_deref().is_some_and(|a| a.starts_with("hello from web")),
            "{url}: {answer:?}"
        );
    }
    // A container on the same bridge, through the host's address and the gateway (hairpin),
    // and a container on another network.
    w.run(w.berth().args(["network", "create", "other"])).ok();
    for (net, url) in [
        ("bridge", format!("http://{HOST_ADDR}:8080/")),
        ("bridge", "http://10.201.0.1:8080/".into()),
        ("other", format!("http://{HOST_ADDR}:8080/")),
    ] {
        let out = w.berth_run(&["--net", net, "curl", "-sS", "--max-time", "2", &url]);
        assert!(out.ok().starts_with("hello from web"), "--net {net} {url}: {out}");
    }
    assert_eq!(ps_ports(&w, "web"), "0.0.0.0:8080->80/tcp");
    let record = crate::json(w.run(w.berth().args(["inspect", "web"])).ok());
    assert_eq!(record["ports"][0]["host_port"], 8080, "{record}");

    w.run(w.berth().args(["stop", "web"])).ok();
    assert!(!port_map(&w, "ports_any").contains("elements"), "{}", port_map(&w, "ports_any"));
    let after = w.run(w.upstream_cmd("curl").args(["-sS", "--max-time", "2", &from_upstream]));
    assert_ne!(after.code(), 0, "still answered after the container ended: {after}");
    w.run(w.berth().args(["rm", "web"])).ok();
    w.run(w.berth().args(["network", "rm", "other"])).ok();
    w.assert_clean();
}

#[test]
fn udp_ports_ranges_and_free_ports_are_published() {
    let w = World::with_upstream();
    // A DNS responder in the container, on UDP 53, published on 5353.
    let dnsmasq = "dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts \
                   --host-record=svc.berth.test,10.9.9.9";
    let mut args = vec!["-d", "--name", "dns", "-p", "5353:53/udp"];
    args.extend(dnsmasq.split(' '));
    w.berth_run(&args).ok();
    let dig = || {
        w.run(w.upstream_cmd("dig").args([
            "+short",
            "+time=1",
            "+tries=1",
            "-p",
            "5353",
            &format!("@{HOST_ADDR}"),
            "svc.berth.test",
        ]))
    };
    let answered = util::poll(PATIENCE, Duration::from_millis(50), || {
        (dig().stdout == "10.9.9.9\n").then_some(())
    });
    assert!(answered.is_some(), "no DNS answer through the published UDP port: {}", dig());

    // A range, one to one, and a port picked by the kernel.
    start_nginx(&w, "ranged", &["8081-8083:80-82", "80"]);
    let ports = ps_ports(&w, "ranged");
    let listed: Vec<&str> = ports.split(',').collect();
    assert_eq!(listed.len(), 2, "{ports}");
    assert_eq!(listed[0], "0.0.0.0:8081-8083->80-82/tcp", "a range shown as one");
    let picked: u16 = listed[1]
        .strip_prefix("0.0.0.0:")
        .and_then(|r| r.strip_suffix("->80/tcp"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("picked port in {ports}"));
    let url = format!("http://{HOST_ADDR}:{picked}/");
    let answer = curl(&w, w.upstream_cmd("curl"), &url, PATIENCE);
    assert!(answer.is_some_and(|a| a.starts_with("hello from ranged")), "{url}");
    // 8081 goes to the container's port 80, where nginx listens.
    let answer = curl(&w, w.upstream_cmd("curl"), &format!("http://{HOST_ADDR}:8081/"), PATIENCE);
    assert!(answer.is_some_and(|a| a.starts_with("hello from ranged")));

    w.run(w.berth().args(["stop", "dns", "ranged"])).ok();
    w.run(w.berth().args(["rm", "dns", "ranged"])).ok();
    w.assert_clean();
}

#[test]
fn a_taken_port_is_refused_and_nothing_is_left() {
    let w = World::new();
    start_nginx(&w, "first", &["8080:80"]);
    let table_before = port_map(&w, "ports_any");
    // Another container's port, alone or with free ones beside it.
    for publish in [&["8080:80"][..], &["9000:80", "8080:81"]] {
        let mut args = vec![];
        for p in publish {
            args.extend(["-p", *p]);
        }
        args.push("true");
        w.berth_run(&args).expect_berth_error(&["already published by container first"]);
    }
    // A host process's port.
    let _host_server = w.in_host_net(|| std::net::TcpListener::bind("0.0.0.0:9090"));
    w.berth_run(&["-p", "9090:80", "true"])
        .expect_berth_error(&["in use by a process of the host"]);
    // Nothing was added, and no address is held.
    assert_eq!(port_map(&w, "ports_any"), table_before);
    let held = w.run(w.cmd("ss").args(["-ltnuH", "sport", "= :9000"])).ok().to_owned();
    assert!(held.trim().is_empty(), "port 9000 still held: {held}");

    // Bad requests: refused before anything is made.
    for (args, message) in [
        (&["-p", "8080:80/sctp", "true"][..], "unknown protocol 'sctp'"),
        (&["-p", "70000:80", "true"], "'70000' is not a port"),
        (&["-p", "8000-8003:80-81", "true"], "4 host ports for 2 container ports"),
        (&["--net", "host", "-p", "80", "true"], "-p needs a bridge network"),
        (&["-p", "192.0.2.99:8085:80", "true"], "not an address of this host"),
        (&["-p", "8086:80", "-p", "8086:81", "true"], "published twice"),
    ] {
        w.berth_run(args).expect_berth_error(&[message]);
    }
    w.run(w.berth().args(["network", "create", "--internal", "closed"])).ok();
    w.berth_run(&["--net", "closed", "-p", "80", "true"]).expect_berth_error(&["is internal"]);
    w.run(w.berth().args(["network", "rm", "closed"])).ok();

    // A range of hundreds, published and unpublished in one transaction each.
    w.berth_run(&["-p", "20000-20299:20000-20299/udp", "true"]).ok();
    assert!(!port_map(&w, "ports_any").contains("20000"), "the range is gone");
    // A port is free again the moment its run has ended: the same port, run after run.
    for _ in 0..5 {
        w.berth_run(&["-p", "8099:80", "true"]).ok();
    }

    w.run(w.berth().args(["stop", "first"])).ok();
    w.run(w.berth().args(["rm", "first"])).ok();
    w.assert_clean();
}

/// Makes the upstream send packets for 127.0.0.0/8 to the host, as a neighbour on the LAN can
/// (moby#41872).
fn route_loopback_to_host(w: &World) {
    let script = format!(
        "sysctl -qw net.ipv4.conf.eth0.route_localnet=1 && \
         ip rule add pref 1 to 127.0.0.0/8 ipproto tcp lookup 100 && \
         ip rule add pref 2 lookup local && ip rule del pref 0 && \
         ip route add 127.0.0.0/8 via {HOST_ADDR} dev eth0 table 100"
    );
    w.run(w.upstream_cmd("sh").args(["-c", &script])).ok();
}

#[test]
fn a_port_published_on_127_0_0_1_is_the_hosts_alone() {
    let w = World::with_upstream();
    start_nginx(&w, "local", &["127.0.0.1:8080:80"]);
    start_nginx(&w, "open", &["8081:80"]);
    let answer = curl(&w, w.cmd("curl"), "http://127.0.0.1:8080/", PATIENCE);
    assert!(answer.is_some_and(|a| a.starts_with("hello from local")));
    assert_eq!(ps_ports(&w, "local"), "127.0.0.1:8080->80/tcp");
    // Not on the host's other addresses.
    let other =
        w.run(w.cmd("curl").args(["-sS", "--max-time", "2", &format!("http://{HOST_ADDR}:8080/")]));
    assert_ne!(other.code(), 0, "{other}");

    // The upstream sends its packets for 127.0.0.1 to the host: the control (a port open on
    // every address) proves they arrive; the loopback-only port stays unreachable, and so
    // does the open one by 127.0.0.1.
    route_loopback_to_host(&w);
    let open = curl(&w, w.upstream_cmd("curl"), &format!("http://{HOST_ADDR}:8081/"), PATIENCE);
    assert!(open.is_some_and(|a| a.starts_with("hello from open")));
    for port in [8080, 8081] {
        let url = format!("http://127.0.0.1:{port}/");
        let out = w.run(w.upstream_cmd("curl").args(["-sS", "--max-time", "2", &url]));
        assert_ne!(out.code(), 0, "the upstream reached {url} on the host: {out}");
    }
    // Nor by routing berth's subnet through the host (moby#45610): containers are reached
    // through published ports only.
    let route = ["route", "add", "10.201.0.0/16", "via", &HOST_ADDR.to_string()];
    w.run(w.upstream_cmd("ip").args(route)).ok();
    let record = crate::json(w.run(w.berth().args(["inspect", "local"])).ok());
    let direct = format!("http://{}/", record["address"].as_str().expect("an address"));
    let out = w.run(w.upstream_cmd("curl").args(["-sS", "--max-time", "2", &direct]));
    assert_ne!(out.code(), 0, "the upstream reached {direct} directly: {out}");

    w.run(w.berth().args(["stop", "local", "open"])).ok();
    w.run(w.berth().args(["rm", "local", "open"])).ok();
    w.assert_clean();
}

#[test]
fn gc_unpublishes_a_crashed_containers_ports_and_a_flush_brings_them_back() {
    let w = World::with_upstream();
    // A foreground run killed with SIGKILL leaves its element behind.
    let mut run =
        w.spawn(w.berth().args(["run", "--name", "crashed", "-p", "8090:80", "sleep", "600"]));
    let published = util::poll(PATIENCE, Duration::from_millis(20), || {
        port_map(&w, "ports_any").contains("8090").then_some(())
    });
    assert!(published.is_some(), "8090 never published");
    run.signal(libc::SIGKILL);
    run.wait(Duration::from_secs(5));
    // Its port is free on the host, but still in the map until gc, or until a run takes it.
    let gc = w.run(w.berth().arg("gc")).ok().to_owned();
    assert!(gc.contains("unpublished port 0.0.0.0:8090->80/tcp"), "{gc}");
    assert!(!port_map(&w, "ports_any").contains("8090"));

    // A flushed table: the next run puts the running container's port back.
    start_nginx(&w, "web", &["8080:80"]);
    assert!(
        curl(&w, w.upstream_cmd("curl"), &format!("http://{HOST_ADDR}:8080/"), PATIENCE).is_some()
    );
    w.run(w.cmd("nft").args(["flush", "ruleset"])).ok();
    w.berth_run(&["true"]).ok();
    let answer = curl(&w, w.upstream_cmd("curl"), &format!("http://{HOST_ADDR}:8080/"), PATIENCE);
    assert!(answer.is_some_and(|a| a.starts_with("hello from web")), "not back after a flush");

    // A crashed owner's port is taken over by the next run that asks for it.
    let mut run =
        w.spawn(w.berth().args(["run", "--name", "crashed2", "-p", "8091:80", "sleep", "600"]));
    let published = util::poll(PATIENCE, Duration::from_millis(20), || {
        port_map(&w, "ports_any").contains("8091").then_some(())
    });
    assert!(published.is_some());
    run.signal(libc::SIGKILL);
    run.wait(Duration::from_secs(5));
    w.berth_run(&["-p", "8091:80", "true"]).ok();

    w.run(w.berth().args(["stop", "web"])).ok();
    w.run(w.berth().args(["rm", "web"])).ok();
    w.run(w.berth().arg("gc")).ok();
    w.assert_clean();
}

#[test]
fn a_udp_client_that_keeps_its_port_follows_the_published_port() {
    let w = World::with_upstream();
    // A client that always sends from 198.51.100.2#5555, so its packets are one flow.
    let ask = || {
        let out = w.run(w.upstream_cmd("dig").args([
            "+short",
            "+time=1",
            "+tries=1",
            "-b",
            &format!("{UPSTREAM_ADDR}#5555"),
            "-p",
            "5353",
            &format!("@{HOST_ADDR}"),
            "svc.berth.test",
        ]));
        out.stdout.trim().to_owned()
    };
    let responder = |name: &str, answer: &str, publish: bool| {
        let record = format!("--host-record=svc.berth.test,{answer}");
        let mut args = vec!["-d", "--name", name];
        if publish {
            args.extend(["-p", "5353:53/udp"]);
        }
        args.extend(["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv"]);
        args.extend(["--no-hosts", &record]);
        w.berth_run(&args).ok();
    };
    let answered = |answer: &str| {
        util::poll(PATIENCE, Duration::from_millis(50), || (ask() == answer).then_some(()))
            .is_some()
    };
    responder("a", "10.1.1.1", true);
    assert!(answered("10.1.1.1"), "the first container answers: {}", ask());
    w.run(w.berth().args(["stop", "-t", "1", "a"])).ok();
    // The same address goes to a container that published nothing: the client's flow must
    // not lead to it.
    responder("b", "10.2.2.2", false);
    for _ in 0..3 {
        let answer = ask();
        assert!(!answer.contains("10.2.2.2"), "a container that published nothing answered");
    }
    w.run(w.berth().args(["stop", "-t", "1", "b"])).ok();
    // Published again: the client's flow, untranslated while nothing was published, now is.
    responder("c", "10.3.3.3", true);
    assert!(answered("10.3.3.3"), "the newly published port answers: {}", ask());
    w.run(w.berth().args(["stop", "-t", "1", "c"])).ok();
    w.run(w.berth().args(["rm", "a", "b", "c"])).ok();
    w.assert_clean();
}
