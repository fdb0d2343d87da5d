//! Who owns what: an address stays taken while its container lives on without its launcher;
//! the bridge keeps one MAC address; one bridge is managed from one state directory; the
//! workload inherits no stray file descriptors.

use crate::eth0_address;
use berth_e2e::*;
use std::time::Duration;

#[test]
fn an_address_stays_taken_while_the_container_outlives_its_launcher() {
    let w = World::new();
    let sleep = unique_sleep_arg();
    // The workload kills its own launcher; a background sleep keeps the namespace alive.
    let script = format!("sleep {sleep} & sleep 0.2; kill -9 $PPID; wait");
    let first = w.berth_run(&["--net", "bridge", "sh", "-c", &script]);
    assert_eq!(first.killed_by_signal(), Some(libc::SIGKILL), "{first}");
    let orphans = sys::pids_with_argv(&["sleep", &sleep]);
    assert_eq!(orphans.len(), 1, "the orphan keeps the container alive");

    let second = crate::run_showing_eth0(&w, &[]);
    assert_eq!(eth0_address(&second), "10.201.0.3/16", "10.201.0.2 is still in use\n{second}");
    let asked = w.berth_run(&["--net", "bridge", "--ip", "10.201.0.2", "true"]);
    asked.expect_berth_error(&["10.201.0.2 is already in use"]);

    for pid in orphans {
        sys::kill(pid, libc::SIGKILL).unwrap();
    }
    assert!(w.wait_veths_gone(VETH_GONE_TIMEOUT).is_empty(), "the container's veth goes");
    let third = crate::run_showing_eth0(&w, &["--ip", "10.201.0.2"]);
    assert_eq!(eth0_address(&third), "10.201.0.2/16", "freed at last\n{third}");
    assert!(w.leases().is_empty(), "{:#?}", w.leases());
}

#[test]
fn the_bridge_keeps_one_mac_address_as_containers_come_and_go() {
    let w = World::new();
    let mac = || {
        let out = w.run(w.cmd("cat").arg("/sys/class/net/berth0/address"));
        out.ok().trim().to_owned()
    };
    w.berth_run(&["--net", "bridge", "true"]).expect_code(0);
    assert_eq!(mac(), "02:42:0a:c9:00:01");
    let (ready, done) = (w.path("ready"), w.path("done"));
    let mut held = w.spawn(w.berth().args([
        "run",
        "--net",
        "bridge",
        "sh",
        "-c",
        &format!("touch '{}'; {}", ready.display(), sh_wait_for_file(&done)),
    ]));
    assert!(wait_for_file(&ready, Duration::from_secs(10)), "{}", held.stderr_so_far());
    w.berth_run(&["--net", "bridge", "true"]).expect_code(0);
    assert_eq!(mac(), "02:42:0a:c9:00:01", "a port leaving must not change the gateway's MAC");
    std::fs::write(&done, "").unwrap();
    held.wait(Duration::from_secs(10)).expect_code(0);
    w.assert_clean();
}

#[test]
fn a_second_state_directory_cannot_manage_the_same_bridge() {
    let w = World::new();
    w.berth_run(&["--net", "bridge", "true"]).expect_code(0);
    let other = w.path("other-root");
    let out = w
        .run(w.cmd(berth_bin()).arg("--root").arg(&other).args(["run", "--net", "bridge", "true"]));
    out.expect_berth_error(&[&format!("use --root {}", w.root().display())]);
    assert!(out.stderr.contains(&w.root().display().to_string()), "names the managing root\n{out}");
    w.assert_clean();
}

#[test]
fn the_workload_inherits_only_stdin_stdout_and_stderr() {
    let w = World::new();
    let out = w.run(w.cmd("sh").arg("-c").arg(format!(
        "exec 7</etc/hostname; exec {} --root {} run --net none sh -c 'ls /proc/$$/fd'",
        berth_bin().display(),
        w.root().display()
    )));
    let fds: Vec<&str> = out.ok().split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2"], "{out}");
}
