//! Root filesystems (`run --rootfs`): a busybox root made by rootfs-examples/busybox.sh, in
//! which the container sees its own / and none of the host's files, its hostname, its eth0
//! and address, DNS through the upstream, /proc and a /dev of its own; `--read-only`; bad
//! requests; the host's mount table unchanged afterwards.

use berth_e2e::*;
use std::path::PathBuf;

/// A busybox root filesystem in the world's scratch directory, with a file only it has.
fn busybox_root(w: &World) -> PathBuf {
    let dir = w.path("busybox");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../rootfs-examples/busybox.sh");
    w.run(w.cmd("bash").arg(script).arg(&dir)).ok();
    std::fs::write(dir.join("ONLY-IN-THE-ROOTFS"), "yes\n").unwrap();
    dir
}

#[test]
fn a_container_in_a_busybox_root_sees_its_own_files_name_network_and_dns() {
    let w = World::with_upstream();
    let root = busybox_root(&w);
    let host_file = w.path("host-only");
    std::fs::write(&host_file, "host\n").unwrap();
    let script = format!(
        "cat /ONLY-IN-THE-ROOTFS; test -e {} && echo host-visible || echo host-hidden; \
         hostname; cat /etc/hostname; ip -o -4 addr show dev eth0 | awk '{{print $4}}'; \
         nslookup {UPSTREAM_NAME} | grep -A1 '^Name:' | tail -n 1 | awk '{{print $2}}'; \
         test -c /dev/null && test -e /proc/self/status && echo dev-and-proc",
        host_file.display()
    );
    let out = w.berth_run(&[
        "--rootfs",
        root.to_str().unwrap(),
        "--hostname",
        "boxy",
        "sh",
        "-c",
        &script,
    ]);
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines[0], "yes", "its own /\n{out}");
    assert_eq!(lines[1], "host-hidden", "none of the host's files\n{out}");
    assert_eq!(&lines[2..4], ["boxy", "boxy"], "{out}");
    assert_eq!(lines[4], "10.201.0.2/16", "{out}");
    assert_eq!(lines[5], UPSTREAM_ADDR.to_string(), "DNS through the upstream\n{out}");
    assert_eq!(lines[6], "dev-and-proc", "{out}");
    // Writable by default, and what it wrote is in the directory.
    w.berth_run(&["--rootfs", root.to_str().unwrap(), "sh", "-c", "echo kept > /tmp/note"]).ok();
    assert_eq!(std::fs::read_to_string(root.join("tmp/note")).unwrap(), "kept\n");
    w.assert_clean();
}

#[test]
fn a_read_only_root_refuses_writes_and_bad_roots_are_refused() {
    let w = World::new();
    let root = busybox_root(&w);
    let root = root.to_str().unwrap();
    let out = w.berth_run(&[
        "--rootfs",
        root,
        "--read-only",
        "sh",
        "-c",
        "echo x > /new || echo refused",
    ]);
    assert!(out.ok().contains("refused"), "{out}");
    assert!(out.stdout.contains("refused") && !std::path::Path::new(root).join("new").exists());

    w.berth_run(&["--read-only", "true"]).expect_berth_error(&["--read-only needs --rootfs"]);
    let missing = w.path("no-such-root");
    w.berth_run(&["--rootfs", missing.to_str().unwrap(), "true"])
        .expect_berth_error(&["No such file or directory"]);
    w.berth_run(&["--rootfs", "/", "true"]).expect_berth_error(&["the host's own root"]);
    // A link where berth would mount: refused, nothing mounted on the host.
    let hosts = std::path::Path::new(root).join("etc/hosts");
    let _ = std::fs::remove_file(&hosts);
    std::os::unix::fs::symlink("/etc/passwd", &hosts).unwrap();
    w.berth_run(&["--rootfs", root, "true"]).expect_berth_error(&["is a symbolic link"]);
    w.assert_clean();
}
