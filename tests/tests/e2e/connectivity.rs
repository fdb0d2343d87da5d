//! Packets: container to container, host to container, container to the outside (NAT), DNS.

use crate::{ifaces, sections, SEP};
use berth_e2e::*;
use std::net::SocketAddr;
use std::time::Duration;

#[test]
fn two_containers_ping_each_other() {
    let w = World::new();
    let (r1, go, done) = (w.path("one-ready"), w.path("go"), w.path("done"));
    let one =
        format!("touch '{}'; {}; ping -c 1 -W 5 10.201.0.2", r1.display(), sh_wait_for_file(&go));
    let mut c1 = w.spawn(w.berth().args([
        "run",
        "--net",
        "bridge",
        "--ip",
        "10.201.0.50",
        "--name",
        "one",
        "sh",
        "-c",
        &one,
    ]));
    assert!(
        wait_for_file(&r1, Duration::from_secs(10)),
        "first container never got ready: {}",
        c1.stderr_so_far()
    );
    let two = format!(
        "ping -c 1 -W 5 10.201.0.50 || exit 1; touch '{}'; {}",
        go.display(),
        sh_wait_for_file(&done)
    );
    let mut c2 =
        w.spawn(w.berth().args(["run", "--net", "bridge", "--name", "two", "sh", "-c", &two]));
    let o1 = c1.wait(Duration::from_secs(30));
    std::fs::write(&done, "").unwrap();
    let o2 = c2.wait(Duration::from_secs(30));
    o2.expect_code(0);
    assert!(o2.stdout.contains("1 received"), "two -> one (10.201.0.50)\n{o2}");
    o1.expect_code(0);
    assert!(o1.stdout.contains("1 received"), "one -> two (10.201.0.2)\n{o1}");
    w.assert_clean();
}

#[test]
fn host_and_containers_reach_nginx_in_a_container_without_nat_on_the_bridge() {
    let w = World::new();
    let d = w.path("nginx");
    let mut berth = w.spawn(
        w.berth().args(["run", "--net", "bridge", "--name", "webc"]).args(w.nginx_command("nginx")),
    );
    let addr: SocketAddr = "10.201.0.2:80".parse().unwrap();
    if !w.wait_tcp(addr, Duration::from_secs(10)) {
        let log = std::fs::read_to_string(d.join("error.log")).unwrap_or_default();
        match berth.try_outcome() {
            Some(o) => panic!("nginx in the container ended\n{o}\n--- nginx error.log ---\n{log}"),
            None => panic!("nothing listens on {addr} after 10 s\n--- berth stderr ---\n{}\n--- nginx error.log ---\n{log}", berth.stderr_so_far()),
        }
    }
    let out = w.run(w.cmd("curl").args(["-sS", "--max-time", "5", "http://10.201.0.2/"]));
    assert_eq!(out.ok(), "hello from webc to 10.201.0.1\n", "the host speaks from berth0\n{out}");
    // Traffic between containers stays on the bridge: not masqueraded.
    let out =
        w.berth_run(&["--net", "bridge", "curl", "-sS", "--max-time", "5", "http://10.201.0.2/"]);
    assert_eq!(out.ok(), "hello from webc to 10.201.0.3\n", "{out}");
    berth.signal(libc::SIGTERM);
    berth.wait(Duration::from_secs(10)).expect_code(0);
    w.assert_clean();
}

/// `ip -j -4 addr show dev eth0`, then the rest of a script: the first section proves the
/// workload runs in a bridge container (a workload on the host itself has no eth0 there).
fn in_bridge_container(rest: &str) -> String {
    format!("ip -j -4 addr show dev eth0; {SEP} {rest}")
}

#[track_caller]
fn assert_first_container_address(section: &str, out: &Outcome) {
    let ifs = ifaces(section);
    assert_eq!(ifs.len(), 1, "{out}");
    assert_eq!(ifs[0].inet, [("10.201.0.2".parse().unwrap(), 16)], "{out}");
}

#[test]
fn outgoing_traffic_is_masqueraded_to_the_host_uplink_address() {
    let w = World::with_upstream();
    let script = in_bridge_container(&format!("curl -sS --max-time 5 http://{UPSTREAM_ADDR}/"));
    let out = w.berth_run(&["--net", "bridge", "sh", "-c", &script]);
    let s = sections(out.ok());
    assert_first_container_address(&s[0], &out);
    assert_eq!(
        s[1],
        format!("{HOST_ADDR}\n"),
        "the upstream must see the host's uplink address\n{out}"
    );
    w.assert_clean();
}

#[test]
fn container_resolves_a_name_only_the_upstream_dns_knows() {
    let w = World::with_upstream();
    let script = in_bridge_container(&format!(
        "getent hosts {UPSTREAM_NAME}; {SEP} curl -sS --max-time 5 http://{UPSTREAM_NAME}/fixed"
    ));
    let out = w.berth_run(&["--net", "bridge", "sh", "-c", &script]);
    let s = sections(out.ok());
    assert_first_container_address(&s[0], &out);
    let words: Vec<&str> = s[1].split_whitespace().collect();
    assert_eq!(words, [UPSTREAM_ADDR.to_string().as_str(), UPSTREAM_NAME], "{out}");
    // Name and NAT together: what a user of the container would do.
    assert_eq!(s[2], format!("{UPSTREAM_FIXED_BODY}\n"), "{out}");
    w.assert_clean();
}

#[test]
fn dns_flag_server_is_the_one_asked() {
    let w = World::with_upstream();
    // The host's own resolver is useless to a container (loopback only) ...
    std::fs::write(w.host_resolv_conf(), "nameserver 127.0.0.53\n").unwrap();
    // ... so a name resolves only through --dns.
    let out = w.berth_run(&[
        "--net",
        "bridge",
        "--dns",
        &UPSTREAM_ADDR.to_string(),
        "getent",
        "hosts",
        UPSTREAM_NAME,
    ]);
    let words: Vec<&str> = out.ok().split_whitespace().collect();
    assert_eq!(words, [UPSTREAM_ADDR.to_string().as_str(), UPSTREAM_NAME], "{out}");
    w.assert_clean();
}
