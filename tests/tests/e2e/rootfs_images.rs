//! Root filesystems of rootfs-examples/ beyond busybox.sh's: nginx.sh's (busybox.sh's root
//! plus the host's nginx and the libraries it loads), made again without a change, run
//! detached with a published port, its page fetched from the host and its access log in
//! `berth logs`. debian.sh downloads from a mirror, so no test runs it.

use crate::curl;
use berth_e2e::*;
use std::path::Path;
use std::time::{Duration, SystemTime};

const PATIENCE: Duration = Duration::from_secs(5);

/// Files of the nginx root that a second run of nginx.sh must leave alone (the loader's path is
/// amd64's; it is skipped elsewhere).
const KEPT: [&str; 4] = [
    "usr/sbin/nginx",
    "lib64/ld-linux-x86-64.so.2",
    "etc/nginx/nginx.conf",
    "var/www/html/index.html",
];

/// Modification times of the [`KEPT`] files of `root`.
fn mtimes(root: &Path) -> Vec<(String, SystemTime)> {
    KEPT.iter()
        .filter(|f| root.join(f).exists())
        .map(|f| {
            let meta = std::fs::metadata(root.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            (f.to_string(), meta.modified().unwrap())
        })
        .collect()
}

#[test]
fn nginx_in_the_nginx_root_serves_its_page_on_a_published_port() {
    let w = World::new();
    let root = w.path("nginx-root");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../rootfs-examples/nginx.sh");
    w.run(w.cmd("bash").arg(script).arg(&root)).ok();
    let page = std::fs::read_to_string(root.join("var/www/html/index.html")).unwrap();
    assert!(page.contains("nginx in a berth root filesystem"), "the page nginx.sh wrote: {page}");
    // Idempotent: a second run finds everything in place and rewrites none of it.
    let before = mtimes(&root);
    assert!(before.len() >= 3, "nginx.sh made {before:?}");
    w.run(w.cmd("bash").arg(script).arg(&root)).ok();
    assert_eq!(mtimes(&root), before, "a second run of nginx.sh rewrote files");

    let root = root.to_str().unwrap();
    let mut args = vec!["-d", "--name", "web", "-p", "8080:80", "--rootfs", root];
    args.extend(["nginx", "-g", "daemon off;"]);
    w.berth_run(&args).ok();
    let logs = || w.run(w.berth().args(["logs", "web"]));
    let answer = curl(&w, w.cmd("curl"), "http://127.0.0.1:8080/", PATIENCE);
    assert_eq!(answer.as_deref(), Some(page.as_str()), "nginx's answer\n{}", logs());
    // The access log goes to stdout, which `berth logs` shows (nginx writes it just after the
    // answer).
    let logged = util::poll(PATIENCE, Duration::from_millis(50), || {
        logs().ok().contains("\"GET / HTTP/1.1\" 200").then_some(())
    });
    assert!(logged.is_some(), "no access log line\n{}", logs());

    w.run(w.berth().args(["stop", "web"])).ok();
    w.run(w.berth().args(["rm", "web"])).ok();
    w.assert_clean();
}
