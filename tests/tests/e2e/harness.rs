//! The harness itself: the world is wired as promised, and is the world's, not the machine's.

use berth_e2e::*;
use std::time::Instant;

#[test]
fn world_reaches_upstream_http_and_dns() {
    let t = Instant::now();
    let w = World::with_upstream();
    eprintln!("world with upstream up in {:?}", t.elapsed());
    let out =
        w.run(w.cmd("curl").args(["-sS", "--max-time", "5", &format!("http://{UPSTREAM_ADDR}/")]));
    assert_eq!(out.ok(), format!("{HOST_ADDR}\n"), "{out}");
    let out = w.run(w.cmd("getent").args(["hosts", UPSTREAM_NAME]));
    let words: Vec<&str> = out.ok().split_whitespace().collect();
    assert_eq!(words, [UPSTREAM_ADDR.to_string().as_str(), UPSTREAM_NAME], "{out}");
}

#[test]
fn world_is_isolated_from_the_machine() {
    let t = Instant::now();
    let w = World::new();
    eprintln!("world up in {:?}", t.elapsed());
    // The world sees its own interfaces and resolv.conf ...
    let names = w.link_names();
    assert!(names.contains(&"uplink0".to_string()), "{names:?}");
    let resolv = w.sh("cat /etc/resolv.conf");
    assert_eq!(resolv.ok(), HOST_RESOLV_CONF);
    let sysfs = w.sh("ls /sys/class/net");
    assert!(sysfs.ok().split_whitespace().any(|n| n == "uplink0"), "{sysfs}");
    // ... and the machine does not.
    assert!(!std::path::Path::new("/sys/class/net/uplink0").exists());
    assert_ne!(std::fs::read_to_string("/etc/resolv.conf").unwrap(), HOST_RESOLV_CONF);
    let route = w.run(w.cmd("ip").args(["-j", "route", "show", "default"]));
    let routes: serde_json::Value = serde_json::from_str(route.ok()).unwrap();
    assert_eq!(routes[0]["gateway"], UPSTREAM_ADDR.to_string(), "{route}");
}

/// The machine's own network namespace never gets anything of berth's or of the tests' (this
/// runs while the other tests start containers in their worlds).
#[test]
fn machine_network_namespace_is_untouched() {
    let w = World::new();
    w.berth_run(&["--net", "bridge", "true"]).ok();
    let machine: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for name in &machine {
        assert!(
            name != "berth0" && name != "uplink0" && !name.starts_with("bth"),
            "the machine's own network namespace has {name}: {machine:?}"
        );
    }
    let tables = std::process::Command::new("nft").args(["list", "tables"]).output().unwrap();
    let tables = String::from_utf8_lossy(&tables.stdout);
    assert!(!tables.contains("berth"), "the machine has an nft table of berth's:\n{tables}");
}

/// The cleanliness checks can fail: a mount that leaks from a child mount namespace into the
/// host is seen (the world's mounts are shared, like a systemd machine's), and so is a leftover
/// container interface.
#[test]
fn leftovers_are_detected() {
    let w = World::new();
    let f = w.path("leak");
    std::fs::write(&f, "leak\n").unwrap();
    let script = format!(
        "unshare --mount --propagation unchanged mount --bind '{}' /etc/hostname",
        f.display()
    );
    w.sh(&script).ok();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.assert_clean()));
    let msg = match caught {
        Ok(()) => panic!("a mount leaked into the host's mount table went unnoticed"),
        Err(p) => p.downcast_ref::<String>().cloned().unwrap_or_default(),
    };
    assert!(msg.contains("mount table changed") && msg.contains("/etc/hostname"), "{msg}");
    let machine = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!machine.contains(&*f.to_string_lossy()), "the leak reached the machine:\n{machine}");

    let w = World::new();
    w.run(w.cmd("ip").args(["link", "add", "bthe2e0", "type", "veth", "peer", "name", "bthe2e1"]))
        .ok();
    let left = w.wait_veths_gone(std::time::Duration::from_millis(50));
    assert_eq!(left.len(), 2, "{left:?}");
}
