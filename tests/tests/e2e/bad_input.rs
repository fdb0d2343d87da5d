//! Every way berth must refuse: exit 125, a message on stderr that starts with `berth:` and says
//! what is wrong, and nothing left behind.

use berth_e2e::*;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// berth as `nobody` (uid/gid 65534), after it has joined the world.
fn as_nobody(mut cmd: Command) -> Command {
    // SAFETY: the hook only makes system calls; it runs after the world's own hook.
    unsafe { cmd.pre_exec(|| sys::become_user(65534, 65534)) };
    cmd
}

/// berth as root, but without `caps` in its bounding set (so not after exec either).
fn without_caps(mut cmd: Command, caps: &'static [libc::c_int]) -> Command {
    // SAFETY: as above.
    unsafe { cmd.pre_exec(move || sys::drop_bounding_caps(caps)) };
    cmd
}

#[test]
fn not_root_is_refused() {
    let w = World::new();
    let mut cmd = as_nobody(w.berth());
    let out = w.run(cmd.args(["run", "--net", "bridge", "true"]));
    out.expect_berth_error(&["root", "privilege", "permission", "cap_"]);
    w.assert_clean();
}

#[test]
fn reading_roots_state_as_another_user_is_refused_clearly() {
    let w = World::new();
    // berth's containers and networks directories now exist, 0700.
    w.berth_run(&["--net", "bridge", "true"]).expect_code(0);
    for command in [&["ps"][..], &["network", "ls"]] {
        let mut cmd = as_nobody(w.berth());
        let out = w.run(cmd.args(command));
        out.expect_berth_error(&["is root's: run berth as root"]);
    }
    w.assert_clean();
}

#[test]
fn missing_net_admin_capability_is_refused() {
    let w = World::new();
    let mut cmd = without_caps(w.berth(), &[sys::CAP_NET_ADMIN]);
    let out = w.run(cmd.args(["run", "--net", "bridge", "true"]));
    out.expect_berth_error(&["cap_net_admin", "root", "privilege", "permission"]);
    w.assert_clean();
}

#[test]
fn missing_sys_admin_capability_is_refused() {
    let w = World::new();
    let mut cmd = without_caps(w.berth(), &[sys::CAP_SYS_ADMIN]);
    let out = w.run(cmd.args(["run", "--net", "none", "true"]));
    out.expect_berth_error(&["cap_sys_admin", "root", "privilege", "permission"]);
    w.assert_clean();
}

/// A directory of symlinks to every program on the standard PATH but `nft`.
pub fn path_without_nft(w: &World) -> PathBuf {
    let bin = w.path("bin-without-nft");
    std::fs::create_dir(&bin).unwrap();
    for dir in STD_PATH.split(':') {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name();
            if name == "nft" || bin.join(&name).exists() {
                continue;
            }
            std::os::unix::fs::symlink(e.path(), bin.join(&name)).unwrap();
        }
    }
    bin
}

#[test]
fn bridge_without_nft_on_path_is_refused_but_none_and_host_work() {
    let w = World::new();
    let bin = path_without_nft(&w);
    let out = w.run(w.cmd("sh").env("PATH", &bin).args(["-c", "command -v nft || echo none"]));
    assert_eq!(out.ok(), "none\n", "the test's PATH must really lack nft");

    let out = w.run(w.berth().env("PATH", &bin).args(["run", "--net", "bridge", "true"]));
    out.expect_berth_error(&["nftables"]);
    w.assert_clean();
    for net in ["none", "host"] {
        let out = w.run(w.berth().env("PATH", &bin).args(["run", "--net", net, "true"]));
        out.expect_code(0);
    }
    w.assert_clean();
}

#[test]
fn ip_outside_the_subnet_or_reserved_is_refused() {
    let w = World::new();
    for bad in [
        "10.200.0.5",
        "10.202.0.2",
        "198.51.100.9",
        "10.201.0.0",
        "10.201.0.1",
        "10.201.255.255",
        "10.201.0.256",
        "not-an-address",
    ] {
        let out = w.berth_run(&["--net", "bridge", "--ip", bad, "true"]);
        out.expect_berth_error(&[bad, "--ip"]);
    }
    w.assert_clean();
}

#[test]
fn ip_leased_by_a_live_container_is_refused() {
    let w = World::new();
    let (ready, done) = (w.path("ready"), w.path("done"));
    let script = format!("touch '{}'; {}", ready.display(), sh_wait_for_file(&done));
    let mut first = w.spawn(w.berth().args([
        "run",
        "--net",
        "bridge",
        "--ip",
        "10.201.0.50",
        "sh",
        "-c",
        &script,
    ]));
    assert!(
        wait_for_file(&ready, Duration::from_secs(10)),
        "first container never got ready: {}",
        first.stderr_so_far()
    );
    let before = (w.leases(), w.container_dirs(), w.veths());
    assert_eq!(before.0.len(), 1);

    let out = w.berth_run(&["--net", "bridge", "--ip", "10.201.0.50", "true"]);
    out.expect_berth_error(&["10.201.0.50"]);
    assert_eq!(w.leases(), before.0, "the live lease is untouched and no other is added");
    assert_eq!(w.container_dirs(), before.1);
    let veths = poll(Duration::from_secs(5), Duration::from_millis(20), || {
        let v = w.veths();
        (v == before.2).then_some(v)
    });
    assert!(veths.is_some(), "interfaces now {:?}, before {:?}", w.veths(), before.2);

    std::fs::write(&done, "").unwrap();
    first.wait(Duration::from_secs(10)).expect_code(0);
    w.assert_clean();
}

#[test]
fn exhausted_subnet_is_refused() {
    let w = World::new();
    let (pid, start, boot) = (w.host_pid(), sys::start_time(w.host_pid()).unwrap(), sys::boot_id());
    let mut text = String::from("# every address owned by a live process\n");
    for n in 2..=0xfffe_u32 {
        let addr = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 201, 0, 0)) + n);
        text.push_str(&Lease::format(addr, &format!("{n:064x}"), pid, start, &boot));
        text.push('\n');
    }
    std::fs::create_dir_all(w.leases_path().parent().unwrap()).unwrap();
    std::fs::write(w.leases_path(), &text).unwrap();
    let want = parse_leases(&text);
    assert_eq!(want.len(), 65533);

    let out = w.berth_run(&["--net", "bridge", "true"]);
    out.expect_berth_error(&["exhausted", "no free", "full", "available", "no address"]);
    assert!(w.leases() == want, "the lease file's leases changed");
    w.assert_no_container_left();
}

#[test]
fn invalid_names_are_refused() {
    let w = World::new();
    let long = "n".repeat(64);
    for bad in
        ["-lead", ".lead", "_lead", "has space", "a/b", "semi;colon", "ünicode", long.as_str()]
    {
        let arg = format!("--name={bad}");
        let out = w.berth_run(&["--net", "bridge", &arg, "true"]);
        out.expect_berth_error(&["name"]);
    }
    w.assert_clean();
}

#[test]
fn files_that_are_not_regular_files_are_refused_at_once() {
    let w = World::new();
    let fifo = w.path("fifo");
    w.run(w.cmd("mkfifo").arg(&fifo)).ok();
    let fifo = fifo.to_str().unwrap();
    // A FIFO would hang berth (nobody writes it), a device fill its memory.
    for (file, what) in
        [(fifo, "a FIFO"), ("/dev/zero", "a device"), ("/proc/self/status", "a file of /proc")]
    {
        let out = w.berth_run(&["--net", "none", "--env-file", file, "true"]);
        out.expect_berth_error(&[what]);
        assert!(out.elapsed < Duration::from_secs(5), "{out}");
    }
    let bundle = w.path("bundle");
    std::fs::create_dir(&bundle).unwrap();
    w.run(w.cmd("mkfifo").arg(bundle.join("config.json"))).ok();
    w.berth_run(&["--bundle", bundle.to_str().unwrap()])
        .expect_berth_error(&["config.json: a FIFO"]);
    // A FIFO as a container's record is skipped, and said, by every command that lists them.
    let stray = w.containers_dir().join("0123456789ab");
    std::fs::create_dir_all(&stray).unwrap();
    w.run(w.cmd("mkfifo").arg(stray.join("state.json"))).ok();
    let ps = w.run(w.berth().args(["ps", "-a"]));
    assert!(ps.ok().starts_with("NAME"), "{ps}");
    assert!(ps.stderr.contains("a FIFO") && ps.stderr.contains("berth: warning"), "{ps}");
    std::fs::remove_dir_all(&stray).unwrap();
    w.assert_clean();
}

#[test]
fn log_options_are_checked() {
    let w = World::new();
    for (bad, says) in [
        ("max-size=1", "4k or more"),
        ("max-size=lots", "4k or more"),
        ("max-file=0", "1 to 100"),
        ("mode=non-blocking", "max-size and max-file"),
        ("max-size", "KEY=VALUE"),
    ] {
        let out = w.berth_run(&["-d", "--net", "none", "--log-opt", bad, "true"]);
        out.expect_berth_error(&[says]);
    }
    w.berth_run(&["--net", "none", "--log-opt", "max-size=1m", "true"])
        .expect_berth_error(&["--log-opt needs -d"]);
    w.assert_clean();
}

#[test]
fn invalid_hostnames_are_refused() {
    let w = World::new();
    let long = "h".repeat(65);
    for bad in ["-lead", "has space", "a/b", "semi;colon", long.as_str()] {
        let arg = format!("--hostname={bad}");
        let out = w.berth_run(&["--net", "bridge", "--name", "fine", &arg, "true"]);
        out.expect_berth_error(&["hostname"]);
    }
    w.assert_clean();
}

#[test]
fn berth0_that_is_not_a_bridge_is_refused_and_left_alone() {
    let w = World::new();
    // A veth, not a dummy: the kernels this runs on may lack the dummy driver, never veth.
    let add = ["link", "add", "berth0", "type", "veth", "peer", "name", "berth0peer"];
    w.run(w.cmd("ip").args(add)).ok();
    let out = w.berth_run(&["--net", "bridge", "true"]);
    out.expect_berth_error(&["berth0"]);
    assert!(out.stderr.contains("bridge"), "the message should say berth0 is not a bridge\n{out}");
    let link = w.link("berth0").expect("berth0 must still exist");
    assert_eq!(
        link["linkinfo"]["info_kind"], "veth",
        "berth must not touch a berth0 it did not make: {link}"
    );
    w.assert_clean();
}

#[test]
fn unparsable_lease_file_is_refused_and_left_unchanged() {
    let w = World::new();
    let path = w.leases_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let garbage = "# leases\nthis is not a lease\n10.201.0.2 container=zz pid=notapid\n";
    std::fs::write(&path, garbage).unwrap();
    let out = w.berth_run(&["--net", "bridge", "true"]);
    out.expect_berth_error(&[path.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        garbage,
        "the lease file must be left unchanged"
    );
    w.assert_no_container_left();
}

#[test]
fn command_line_mistakes_are_refused() {
    let w = World::new();
    let long_name = "x".repeat(64);
    let cases: [(&[&str], &[&str]); 9] = [
        (&["--net", "bridg", "true"], &["unknown network", "bridg"]),
        (&["--net", "none", "--ip", "10.201.0.9", "true"], &["--ip needs a bridge network"]),
        (&["--net", "host", "--dns", "198.51.100.2", "true"], &["--dns needs a bridge network"]),
        (&["--name", &long_name, "true"], &["invalid container name"]),
        (&["-e", "=x", "true"], &["invalid environment entry"]),
        (&["--cap-drop", "NOPE", "true"], &["no such capability"]),
        (&[""], &["the command is empty"]),
        (&[], &["<COMMAND>"]),
        (&["--nett", "bridge", "true"], &["unexpected argument '--nett'"]),
    ];
    for (args, expected) in cases {
        w.berth_run(args).expect_berth_error(expected);
    }
    w.assert_clean();
    assert!(!w.link_names().iter().any(|l| l == "berth0"), "no bridge made for bad input");
}

/// A directory outside berth's root dressed as a network's (a record that names it, and a
/// file beside it): where a network name that is a path would lead a lookup.
fn decoy_network(w: &World) -> PathBuf {
    let dir = w.path("decoy");
    std::fs::create_dir(&dir).unwrap();
    let record = serde_json::json!({"name": dir, "bridge": "decoy0", "subnet": "10.77.0.0/24",
        "gateway": "10.77.0.1", "internal": false, "created": 0});
    std::fs::write(dir.join("network.json"), record.to_string()).unwrap();
    std::fs::write(dir.join("precious"), "not berth's\n").unwrap();
    dir
}

/// The decoy is as it was: its two files and nothing else (no lease file), and no bridge was
/// made from its record.
#[track_caller]
fn assert_decoy_untouched(w: &World, dir: &std::path::Path, after: &str) {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("the decoy is gone after {after}: {e}"))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["network.json", "precious"], "the decoy was changed by {after}");
    assert!(w.link("decoy0").is_none(), "{after} made a bridge from the decoy's record");
}

#[test]
fn network_names_that_are_paths_are_refused_on_every_lookup() {
    let w = World::new();
    let decoy = decoy_network(&w);
    // The bundle's annotation names the network too.
    let bundle = w.path("bundle");
    std::fs::create_dir(&bundle).unwrap();
    w.run(w.berth().args(["spec", "--bundle", bundle.to_str().unwrap()])).ok();
    w.make_busybox_root(&bundle.join("rootfs"));
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["process"]["args"] = serde_json::json!(["true"]);

    // The decoy by its absolute path, and relative to ROOT/networks.
    let relative = format!("../../{}", decoy.file_name().unwrap().to_str().unwrap());
    for name in [decoy.to_str().unwrap(), relative.as_str()] {
        let lookups: [&[&str]; 4] = [
            &["run", "--net", name, "true"],
            &["network", "inspect", name],
            &["network", "update", "--ipv6", name],
            &["network", "rm", name],
        ];
        for args in lookups {
            let out = w.run(w.berth().args(args));
            out.expect_berth_error(&[&format!("invalid network name {name:?}")]);
            assert_decoy_untouched(&w, &decoy, &format!("berth {}", args.join(" ")));
        }
        config["annotations"] = serde_json::json!({ "org.berth.net": name });
        std::fs::write(&config_path, config.to_string()).unwrap();
        let out = w.berth_run(&["--bundle", bundle.to_str().unwrap()]);
        out.expect_berth_error(&[&format!("invalid network name {name:?}")]);
        assert_decoy_untouched(&w, &decoy, "a bundle's org.berth.net");
    }
    w.assert_clean();
}

#[test]
fn network_records_unlike_what_create_makes_are_refused_before_use() {
    let w = World::new();
    w.run(w.berth().args(["network", "create", "--subnet", "10.30.0.0/24", "app"])).ok();
    let path = w.root().join("networks/app/network.json");
    let good = std::fs::read_to_string(&path).unwrap();
    let record: serde_json::Value = serde_json::from_str(&good).unwrap();
    let links = w.link_names();
    let table = w.run(w.cmd("nft").args(["list", "table", "inet", "berth"])).ok().to_owned();
    let cases: [(&str, serde_json::Value, &str); 8] = [
        ("name", "other".into(), "it names network \"other\", not app"),
        ("bridge", "br\"x".into(), "invalid bridge name \"br\\\"x\""),
        ("bridge", "bth0123456789ab".into(), "berth's container interfaces"),
        ("subnet", "127.0.0.0/24".into(), "subnet 127.0.0.0/24 overlaps 127.0.0.0/8"),
        ("subnet", "10.30.0.1/24".into(), "subnet 10.30.0.1/24 has host bits set"),
        ("subnet", "10.30.0.0/30".into(), "subnet 10.30.0.0/30 is too small"),
        ("gateway", "10.31.0.1".into(), "gateway 10.31.0.1 is not a host address"),
        ("subnet6", "fe80::/64".into(), "subnet6 fe80::/64 is not a unique local"),
    ];
    for (key, value, message) in cases {
        let mut bad = record.clone();
        bad[key] = value;
        std::fs::write(&path, bad.to_string()).unwrap();
        for args in [&["run", "--net", "app", "true"][..], &["network", "rm", "app"]] {
            let out = w.run(w.berth().args(args));
            out.expect_berth_error(&[message]);
            assert!(out.stderr.contains(path.to_str().unwrap()), "the record is named\n{out}");
        }
    }
    // Not a regular file: a FIFO hangs no lookup, and a link is not followed.
    std::fs::remove_file(&path).unwrap();
    w.run(w.cmd("mkfifo").arg(&path)).ok();
    let mut fifo = w.spawn(w.berth().args(["run", "--net", "app", "true"]));
    fifo.wait(Duration::from_secs(10)).expect_berth_error(&["a FIFO"]);
    std::fs::remove_file(&path).unwrap();
    let elsewhere = w.path("elsewhere.json");
    std::fs::write(&elsewhere, &good).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    w.berth_run(&["--net", "app", "true"]).expect_berth_error(&["symbolic link"]);

    assert_eq!(w.link_names(), links, "no interface was made");
    let now = w.run(w.cmd("nft").args(["list", "table", "inet", "berth"])).ok().to_owned();
    assert_eq!(now, table, "berth's table is unchanged");
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, &good).unwrap();
    assert_eq!(w.run(w.berth().args(["network", "rm", "app"])).ok(), "app\n");
    w.assert_clean();
}

#[test]
fn network_create_refuses_subnets_no_container_can_use() {
    let w = World::new();
    let links = w.link_names();
    let cases = [
        ("127.0.0.0/24", "the loopback range"),
        ("96.0.0.0/3", "the loopback range"),
        ("0.0.0.0/8", "\"this network\""),
        ("0.0.0.0/0", "\"this network\""),
        ("169.254.10.0/24", "the link-local range"),
        ("224.0.0.0/24", "the multicast range"),
        ("239.1.0.0/16", "the multicast range"),
        ("240.0.0.0/4", "the reserved range"),
        ("255.255.255.248/29", "the reserved range (with the broadcast address)"),
    ];
    for (subnet, what) in cases {
        let out = w.run(w.berth().args(["network", "create", "--subnet", subnet, "odd"]));
        out.expect_berth_error(&[&format!("--subnet {subnet} overlaps")]);
        assert!(out.stderr.contains(what), "{what} is named\n{out}");
    }
    assert_eq!(w.link_names(), links, "no interface was made");
    let ls = w.run(w.berth().args(["network", "ls"]));
    assert_eq!(ls.ok().lines().count(), 4, "header, bridge, host, none\n{ls}");
    w.assert_clean();
}

#[test]
fn a_lease_file_that_is_not_utf8_is_refused_and_gc_repair_rebuilds_it() {
    let w = World::new();
    let ready = w.path("ready");
    let script = format!("touch '{}'; exec sleep 30", ready.display());
    let mut live = w.spawn(w.berth().args(["run", "--net", "bridge", "sh", "-c", &script]));
    assert!(wait_for_file(&ready, Duration::from_secs(10)), "{}", live.stderr_so_far());
    let mut bytes = std::fs::read(w.leases_path()).unwrap();
    bytes.extend_from_slice(b"10.201.0.9 container=\xff\xfe pid=1 start=1 boot=x\n");
    std::fs::write(w.leases_path(), &bytes).unwrap();
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();

    let out = w.berth_run(&["--net", "bridge", "true"]);
    out.expect_berth_error(&[&format!("leases:{lines}: not UTF-8 text")]);
    assert!(out.stderr.contains("gc --repair"), "the way out is named\n{out}");
    assert_eq!(std::fs::read(w.leases_path()).unwrap(), bytes, "the file is left as it is");

    let repair = w.run(w.berth().args(["gc", "--repair"]));
    assert!(repair.ok().contains("rebuilt"), "{repair}");
    let next = crate::run_showing_eth0(&w, &[]);
    assert_eq!(
        crate::eth0_address(&next),
        "10.201.0.3/16",
        "10.201.0.2 is still the live one's\n{next}"
    );
    live.signal(libc::SIGTERM);
    live.wait(Duration::from_secs(10));
    let aside = w.root().join("networks/bridge/leases.corrupt");
    assert_eq!(std::fs::read(&aside).unwrap(), bytes, "the broken file is kept beside");
    std::fs::remove_file(aside).unwrap();
    w.assert_clean();
}
