//! What berth keeps while a container runs, and what it leaves once it ends: state, leases,
//! interfaces, mounts; many runs in a row and at once; launchers that die.

use crate::ifaces;
use berth_e2e::*;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fn ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 201, 0, 0)) + n)
}

#[test]
fn running_container_has_state_lease_and_bridge_port_and_loses_them_at_exit() {
    let w = World::new();
    let (ready, done) = (w.path("ready"), w.path("done"));
    let script = format!(
        "cat /etc/hosts > '{}'.hosts; touch '{}'; {}",
        ready.display(),
        ready.display(),
        sh_wait_for_file(&done)
    );
    let mut berth = w.spawn(
        w.berth().args(["run", "--net", "bridge", "--name", "stateful", "sh", "-c", &script]),
    );
    assert!(
        wait_for_file(&ready, Duration::from_secs(10)),
        "workload never got ready: {}",
        berth.stderr_so_far()
    );

    // The per-container directory.
    let ids = w.container_dirs();
    assert_eq!(ids.len(), 1, "one container directory expected: {ids:?}");
    let id = &ids[0];
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "container id {id:?} is not 64 hex digits"
    );
    let cdir = w.containers_dir().join(id);
    for f in ["state.json", "resolv.conf", "hosts", "hostname"] {
        assert!(cdir.join(f).is_file(), "{} missing", cdir.join(f).display());
    }
    let state = std::fs::read_to_string(cdir.join("state.json")).unwrap();
    crate::json(&state);
    let seen_hosts = std::fs::read_to_string(format!("{}.hosts", ready.display())).unwrap();
    assert_eq!(
        std::fs::read_to_string(cdir.join("hosts")).unwrap(),
        seen_hosts,
        "the container sees its hosts file"
    );

    // The lease names its owner: this launcher, this boot.
    let leases = w.leases();
    assert_eq!(leases.len(), 1, "{leases:#?}");
    let l = &leases[0];
    assert_eq!(l.addr, ip(2));
    assert_eq!(&l.container, id);
    assert_eq!(l.pid, berth.pid(), "the lease's pid is the launcher's");
    assert_eq!(
        Some(l.start),
        sys::start_time(berth.pid()),
        "the lease's start is the launcher's start time"
    );
    assert_eq!(l.boot, sys::boot_id());

    // The host side: a veth port on berth0, a bridge with the gateway address, NAT, forwarding.
    let veth = format!("bth{}", &id[..12]);
    let link =
        w.link(&veth).unwrap_or_else(|| panic!("no {veth} on the host: {:?}", w.link_names()));
    assert_eq!(link["master"], "berth0", "{link}");
    let bridge = w.link("berth0").expect("berth0");
    assert_eq!(bridge["linkinfo"]["info_kind"], "bridge", "{bridge}");
    let out = w.run(w.cmd("ip").args(["-j", "addr", "show", "dev", "berth0"]));
    assert_eq!(ifaces(out.ok())[0].inet, [(ip(1), 16)], "{out}");
    let out = w.run(w.cmd("nft").args(["list", "table", "inet", "berth"]));
    assert!(out.ok().contains("masquerade"), "{out}");
    assert_eq!(w.sh("cat /proc/sys/net/ipv4/ip_forward").ok().trim(), "1");

    std::fs::write(&done, "").unwrap();
    berth.wait(Duration::from_secs(10)).expect_code(0);
    w.assert_clean();
    assert!(w.link("berth0").is_some(), "berth0 stays after the last container");
}

#[test]
fn fifty_sequential_bridge_runs_leave_nothing_behind() {
    let w = World::new();
    let t = Instant::now();
    for i in 0..50 {
        let out =
            w.berth_run(&["--net", "bridge", "ip", "-j", "-4", "addr", "show", "dev", "eth0"]);
        // Each run is a real bridge container, and each gets the address its predecessor gave
        // back.
        assert_eq!(out.code(), 0, "run {i}\n{out}");
        assert_eq!(ifaces(&out.stdout)[0].inet, [(ip(2), 16)], "run {i}\n{out}");
    }
    eprintln!("50 bridge runs: {:?} ({:?} each)", t.elapsed(), t.elapsed() / 50);
    w.assert_clean();
}

#[test]
fn twenty_parallel_runs_get_twenty_distinct_addresses() {
    parallel_bridge_runs(20).assert_clean();
}

/// 100 runs started at once on a fresh root, so that they also race to create the bridge and
/// berth's nftables table: 100 distinct addresses, one bridge, one table without duplicated
/// rules, a lease file that parses, all exit 0.
#[test]
fn a_hundred_runs_racing_on_a_fresh_root() {
    let w = parallel_bridge_runs(100);
    let bridges = w.run(w.cmd("ip").args(["-br", "link", "show", "type", "bridge"]));
    assert_eq!(bridges.ok().lines().count(), 1, "one bridge\n{bridges}");
    let ruleset = w.run(w.cmd("nft").args(["list", "ruleset"]));
    let text = ruleset.ok();
    assert_eq!(text.matches("table inet berth").count(), 1, "one table\n{ruleset}");
    assert_eq!(text.matches("table ").count(), 2, "and the bridge one\n{ruleset}");
    for rule in [
        "ip saddr @masq_subnets oifname != @bridges masquerade",
        "iifname @bridges accept",
        "ct state established,related accept",
        "elements = { \"berth0\" }",
        "elements = { 10.201.0.0/16 }",
    ] {
        assert_eq!(text.matches(rule).count(), 1, "{rule:?} exactly once\n{ruleset}");
    }
    w.assert_clean();
}

/// Starts `n` bridge runs at once, holds them all running until each has seen its address,
/// checks the addresses and leases, lets them go and checks they all exit 0.
fn parallel_bridge_runs(n: usize) -> World {
    let w = World::new();
    let d = w.path("par");
    std::fs::create_dir(&d).unwrap();
    let barrier = d.join("barrier");
    let mut runs: Vec<Bg> = (0..n)
        .map(|i| {
            let script = format!(
                "ip -j -4 addr show dev eth0 > '{d}/addr.{i}' && touch '{d}/ready.{i}' && {}",
                sh_wait_for_file(&barrier),
                d = d.display()
            );
            w.spawn(w.berth().args([
                "run",
                "--net",
                "bridge",
                "--name",
                &format!("par{i}"),
                "sh",
                "-c",
                &script,
            ]))
        })
        .collect();
    let all_ready = poll(Duration::from_secs(30), Duration::from_millis(10), || {
        for r in runs.iter_mut() {
            if let Some(o) = r.try_outcome() {
                panic!("a parallel run ended before the barrier\n{o}");
            }
        }
        (0..n).all(|i| d.join(format!("ready.{i}")).exists()).then_some(())
    });
    assert!(all_ready.is_some(), "not all {n} containers got ready within 30 s");

    let addrs: BTreeSet<Ipv4Addr> = (0..n)
        .map(|i| {
            let text = std::fs::read_to_string(d.join(format!("addr.{i}"))).unwrap();
            let ifs = ifaces(&text);
            assert_eq!(ifs.len(), 1, "{text}");
            assert_eq!(ifs[0].inet.len(), 1, "{text}");
            assert_eq!(ifs[0].inet[0].1, 16, "{text}");
            ifs[0].inet[0].0
        })
        .collect();
    let expected: BTreeSet<Ipv4Addr> = (2..2 + n as u32).map(ip).collect();
    assert_eq!(
        addrs, expected,
        "{n} running containers hold the {n} lowest addresses, each its own"
    );

    let leases = w.leases();
    let lease_addrs: BTreeSet<Ipv4Addr> = leases.iter().map(|l| l.addr).collect();
    assert_eq!(lease_addrs, expected, "{leases:#?}");
    let lease_pids: BTreeSet<u32> = leases.iter().map(|l| l.pid).collect();
    let run_pids: BTreeSet<u32> = runs.iter().map(|r| r.pid()).collect();
    assert_eq!(lease_pids, run_pids, "each lease is owned by its launcher");

    std::fs::write(&barrier, "").unwrap();
    for r in runs.iter_mut() {
        r.wait(Duration::from_secs(30)).expect_code(0);
    }
    w
}

#[test]
fn sigkilled_launcher_takes_its_workload_along_and_its_lease_is_reclaimed() {
    let w = World::new();
    let (r1, r2, done) = (w.path("ready1"), w.path("ready2"), w.path("done"));
    let sleep = unique_sleep_arg();
    let script = format!("touch '{}'; exec sleep {sleep}", r1.display());
    let mut first = w.spawn(w.berth().args(["run", "--net", "bridge", "sh", "-c", &script]));
    assert!(
        wait_for_file(&r1, Duration::from_secs(10)),
        "workload never got ready: {}",
        first.stderr_so_far()
    );
    let found = poll(Duration::from_secs(5), Duration::from_millis(5), || {
        let p = sys::pids_with_argv(&["sleep", &sleep]);
        (!p.is_empty()).then_some(p)
    });
    assert!(found.is_some(), "the workload's sleep never showed up");
    assert_eq!(w.leases().len(), 1);

    first.signal(libc::SIGKILL);
    assert_eq!(first.wait(Duration::from_secs(5)).killed_by_signal(), Some(libc::SIGKILL));
    let mut left = Vec::new();
    let died = poll(Duration::from_secs(5), Duration::from_millis(10), || {
        left = sys::pids_with_argv(&["sleep", &sleep]);
        left.is_empty().then_some(())
    });
    if died.is_none() {
        for pid in &left {
            let _ = sys::kill(*pid, libc::SIGKILL);
        }
        panic!("the workload (pids {left:?}) outlived its SIGKILLed launcher by 5 s");
    }
    let stale = w.leases();
    assert_eq!(stale.len(), 1, "the dead launcher's lease is still on file: {stale:#?}");
    assert_eq!(stale[0].pid, first.pid());

    let script = format!(
        "ip -j -4 addr show dev eth0 > '{r}.addr'; ping -c 1 -W 5 10.201.0.1 > '{r}.ping' 2>&1; echo $? >> '{r}.ping'; touch '{r}'; {}",
        sh_wait_for_file(&done),
        r = r2.display()
    );
    // Asked for, the dead launcher's address is taken over (a plain run would take .3).
    let mut second = w.spawn(w.berth().args([
        "run",
        "--net",
        "bridge",
        "--ip",
        "10.201.0.2",
        "sh",
        "-c",
        &script,
    ]));
    assert!(
        wait_for_file(&r2, Duration::from_secs(20)),
        "second run never got ready: {}",
        second.stderr_so_far()
    );
    let text = std::fs::read_to_string(format!("{}.addr", r2.display())).unwrap();
    assert_eq!(
        ifaces(&text)[0].inet,
        [(ip(2), 16)],
        "the dead launcher's address is handed out again"
    );
    let leases = w.leases();
    assert_eq!(leases.len(), 1, "one lease, the new launcher's: {leases:#?}");
    assert_eq!((leases[0].addr, leases[0].pid), (ip(2), second.pid()), "{leases:#?}");
    let ping = std::fs::read_to_string(format!("{}.ping", r2.display())).unwrap();
    assert!(ping.ends_with("\n0\n"), "the new holder of 10.201.0.2 reaches its gateway:\n{ping}");
    std::fs::write(&done, "").unwrap();
    second.wait(Duration::from_secs(10)).expect_code(0);
    assert!(w.leases().is_empty(), "{:#?}", w.leases());
    let veths = w.wait_veths_gone(VETH_GONE_TIMEOUT);
    assert!(veths.is_empty(), "interfaces left: {veths:?}");
}

/// A bridge run that asks for `addr` and prints its eth0 (`ip -j`).
fn eth0_with_ip(w: &World, addr: &str) -> Outcome {
    w.berth_run(&["--net", "bridge", "--ip", addr, "ip", "-j", "-4", "addr", "show", "dev", "eth0"])
}

#[test]
fn stale_leases_are_reclaimed_and_live_ones_kept() {
    let w = World::new();
    let holder = w.host_pid();
    let start = sys::start_time(holder).unwrap();
    let boot = sys::boot_id();
    let dead_pid = {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let owner = |n: u32| format!("{:064x}", 0xdead_0000u64 + u64::from(n));
    let live = Lease::format(ip(4), &owner(4), holder, start, &boot);
    let text = [
        "# berth leases (written by the test)".to_string(),
        Lease::format(ip(2), &owner(2), holder, start + 1, &boot), // same pid, other start
        Lease::format(ip(3), &owner(3), holder, start, "00000000-0000-0000-0000-000000000000"), // other boot
        live.clone(),
        Lease::format(ip(5), &owner(5), dead_pid, start, &boot), // pid gone
    ]
    .join("\n")
        + "\n";
    std::fs::create_dir_all(w.leases_path().parent().unwrap()).unwrap();
    std::fs::write(w.leases_path(), &text).unwrap();

    w.berth_run(&["--net", "bridge", "--ip", "10.201.0.4", "true"])
        .expect_berth_error(&["10.201.0.4"]);
    let addr_of = |o: &Outcome| ifaces(o.ok())[0].inet.clone();
    // While there is room, a run takes the lowest address nobody holds: it reads no owner.
    let out = w.berth_run(&["--net", "bridge", "ip", "-j", "-4", "addr", "show", "dev", "eth0"]);
    assert_eq!(addr_of(&out), [(ip(6), 16)], "{out}");
    let out = eth0_with_ip(&w, "10.201.0.2");
    assert_eq!(
        addr_of(&out),
        [(ip(2), 16)],
        "a lease whose owner has another start time is free\n{out}"
    );
    let out = eth0_with_ip(&w, "10.201.0.3");
    assert_eq!(addr_of(&out), [(ip(3), 16)], "a lease from another boot is free\n{out}");
    let out = eth0_with_ip(&w, "10.201.0.5");
    assert_eq!(addr_of(&out), [(ip(5), 16)], "a lease whose owner is gone is free\n{out}");

    let leases = w.leases();
    assert_eq!(leases.len(), 1, "only the live lease is left: {leases:#?}");
    assert_eq!(leases[0].line, live);
}
