//! A container cannot change the host: docker's default capabilities, no_new_privs, read-only
//! resolv.conf, no way to the host's loopback; `--cap-add`, `--cap-drop` and `--privileged`.

use berth_e2e::*;
use std::io::Read;
use std::net::TcpListener;

/// docker's default capability set as /proc/PID/status prints it.
const DOCKER_DEFAULT_CAPS: &str = "00000000a80425fb";

fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in\n{status}"))
        .trim()
        .to_owned()
}

#[test]
fn default_capabilities_are_dockers_and_no_new_privs_is_set() {
    let w = World::new();
    let out = w.berth_run(&["--net", "bridge", "cat", "/proc/self/status"]);
    let status = out.expect_code(0).stdout.clone();
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(status_field(&status, set), DOCKER_DEFAULT_CAPS, "{set}\n{out}");
    }
    // Empty, as docker's since CVE-2022-24769.
    assert_eq!(status_field(&status, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&status, "CapAmb"), "0000000000000000");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    w.assert_clean();
}

#[test]
fn a_bridge_container_cannot_change_interfaces_addresses_or_the_firewall() {
    let w = World::new();
    let script = "ip link add evil0 type bridge; echo link=$?; \
                  ip addr add 10.201.9.9/16 dev eth0; echo addr=$?; \
                  nft list ruleset; echo list=$?; nft flush ruleset; echo flush=$?; \
                  echo 'nameserver 203.0.113.66' >> /etc/resolv.conf; echo resolv=$?";
    let out = w.berth_run(&["--net", "bridge", "sh", "-c", script]);
    out.expect_code(0);
    for step in ["link", "addr", "list", "flush", "resolv"] {
        assert!(!out.stdout.contains(&format!("{step}=0")), "{step} must fail\n{out}");
    }
    assert!(out.stderr.contains("Operation not permitted"), "EPERM expected\n{out}");
    assert!(out.stderr.contains("Read-only file system"), "resolv.conf must be read-only\n{out}");
    // The host's firewall is intact: berth's table is still there.
    let table = w.run(w.cmd("nft").args(["list", "table", "inet", "berth"]));
    assert!(table.ok().contains("masquerade"), "{table}");
    w.assert_clean();
}

#[test]
fn cap_add_net_admin_allows_interface_changes_again() {
    let w = World::new();
    let out = w.berth_run(&[
        "--net",
        "bridge",
        "--cap-add",
        "NET_ADMIN",
        "sh",
        "-c",
        "ip link add mine0 type bridge && ip addr add 10.201.9.9/16 dev eth0 && ip -br addr show eth0",
    ]);
    assert!(out.expect_code(0).stdout.contains("10.201.9.9/16"), "{out}");
    w.assert_clean();
}

#[test]
fn cap_drop_all_and_privileged() {
    let w = World::new();
    let none = w.berth_run(&["--net", "none", "--cap-drop", "ALL", "cat", "/proc/self/status"]);
    assert_eq!(status_field(none.expect_code(0).stdout.as_str(), "CapEff"), "0000000000000000");
    let only = w.berth_run(&[
        "--net",
        "none",
        "--cap-drop",
        "all",
        "--cap-add",
        "cap_net_admin",
        "cat",
        "/proc/self/status",
    ]);
    assert_eq!(status_field(only.expect_code(0).stdout.as_str(), "CapEff"), "0000000000001000");
    let privileged = w.berth_run(&["--net", "none", "--privileged", "cat", "/proc/self/status"]);
    let status = privileged.expect_code(0).stdout.clone();
    let eff = u64::from_str_radix(&status_field(&status, "CapEff"), 16).unwrap();
    assert!(eff & (1 << 21) != 0, "CAP_SYS_ADMIN expected with --privileged\n{privileged}");
    assert_eq!(status_field(&status, "NoNewPrivs"), "0");
    w.berth_run(&["--net", "none", "--cap-add", "NOT_A_CAP", "true"])
        .expect_berth_error(&["NOT_A_CAP", "capability"]);
    w.assert_clean();
}

#[test]
fn the_hosts_loopback_services_are_unreachable_from_a_bridge_container() {
    let w = World::new();
    let listener =
        w.in_host_net(|| TcpListener::bind("127.0.0.1:8080").expect("bind 127.0.0.1:8080"));
    let server = std::thread::spawn(move || {
        // Answer whoever connects, so a connection that gets through is seen as one.
        for stream in listener.incoming().take(1).flatten() {
            let mut stream = stream;
            let _ = stream.read(&mut [0u8; 512]);
            let _ =
                std::io::Write::write_all(&mut stream, b"HTTP/1.0 200 OK\r\n\r\nhost-loopback\n");
        }
    });
    // From the host itself the service answers.
    let host = w.run(w.cmd("curl").args(["-s", "-m", "5", "http://127.0.0.1:8080/"]));
    assert!(host.ok().contains("host-loopback"), "{host}");
    server.join().unwrap();
    // From the container, neither its loopback nor the gateway address reaches it.
    let out = w.berth_run(&[
        "--net",
        "bridge",
        "sh",
        "-c",
        "curl -s -m 2 http://127.0.0.1:8080/; echo lo=$?; curl -s -m 2 http://10.201.0.1:8080/; echo gw=$?",
    ]);
    out.expect_code(0);
    assert!(!out.stdout.contains("host-loopback"), "{out}");
    assert!(
        out.stdout.contains("lo=7") && out.stdout.contains("gw=7"),
        "connections must be refused\n{out}"
    );
    w.assert_clean();
}

#[test]
fn state_is_private_and_links_planted_under_the_root_are_refused() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let w = World::new();
    // While a container runs: directories 0700, state and the kept config (with the `-e`
    // values) 0600, bound files 0644 (the root itself
    // was made by the test, so its mode is the test's). Looked at once its record says it runs
    // (until then berth may be writing the record anew, through a temporary file).
    let out = w.berth_run(&[
        "--net",
        "bridge",
        "sh",
        "-c",
        &format!("for i in $(seq 500); do grep -q '\"lifecycle\": \"running\"' {0}/containers/*/state.json && break; sleep 0.01; done; \
                  stat -c '%a %n' {0}/containers {0}/containers/* {0}/containers/*/* {0}/networks/bridge {0}/networks/bridge/leases", w.root().display()),
    ]);
    let modes = out.expect_code(0).stdout.clone();
    for line in modes.lines() {
        let (mode, path) = line.split_once(' ').unwrap();
        let want =
            if path.ends_with(".conf") || path.ends_with("/hosts") || path.ends_with("/hostname") {
                "644"
            } else if path.ends_with("state.json")
                || path.ends_with("/config.json")
                || path.ends_with("/leases")
            {
                "600"
            } else {
                "700"
            };
        assert_eq!(mode, want, "{path}\n{out}");
    }
    let leases_before = std::fs::read(w.leases_path()).unwrap();

    // A link where berth keeps its containers: refused, the target untouched.
    let elsewhere = w.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let containers = w.containers_dir();
    std::fs::remove_dir(&containers).unwrap();
    symlink(&elsewhere, &containers).unwrap();
    w.berth_run(&["--net", "none", "true"]).expect_berth_error(&["symbolic link"]);
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written through the link"
    );
    std::fs::remove_file(&containers).unwrap();

    // A link in place of the lease file: refused, neither followed nor replaced.
    let target = w.path("target");
    std::fs::write(&target, "not a lease file\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(w.leases_path()).unwrap();
    symlink(&target, w.leases_path()).unwrap();
    w.berth_run(&["--net", "bridge", "true"]).expect_berth_error(&["symbolic link"]);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "not a lease file\n");
    assert!(std::fs::symlink_metadata(w.leases_path()).unwrap().file_type().is_symlink());
    std::fs::remove_file(w.leases_path()).unwrap();
    std::fs::write(w.leases_path(), leases_before).unwrap();
    w.assert_clean();
}
