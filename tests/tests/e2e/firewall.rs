//! Living with the host's firewall: another table's forward drop policy is detected and the
//! remedy berth prints works; a flushed ruleset is restored by `berth network reload` and by
//! the next run.

use berth_e2e::*;

/// What the upstream answers a container (its view of the source address), or curl's failure.
fn fetch_upstream(w: &World) -> Outcome {
    let fetch = format!("curl -sS --max-time 3 http://{UPSTREAM_ADDR}/");
    w.berth_run(&["--net", "bridge", "sh", "-c", &fetch])
}

#[test]
fn a_forward_drop_policy_elsewhere_is_reported_with_a_remedy_that_works() {
    let w = World::with_upstream();
    w.berth_run(&["--net", "bridge", "true"]).expect_code(0);
    w.run(w.cmd("nft").args(["add", "table", "ip", "filter"])).ok();
    w.run(w.cmd("nft").args([
        "add",
        "chain",
        "ip",
        "filter",
        "FORWARD",
        "{ type filter hook forward priority 0; policy drop; }",
    ]))
    .ok();

    let blocked = fetch_upstream(&w);
    assert_ne!(blocked.code(), 0, "the drop policy must block the container\n{blocked}");
    let warning = blocked
        .stderr
        .lines()
        .find(|l| l.starts_with("berth: warning: chain FORWARD of table ip filter"))
        .unwrap_or_else(|| panic!("berth must say what blocks the container\n{blocked}"));
    let remedy = warning.split_once("to let them: ").expect("a remedy").1;

    w.sh(remedy).ok();
    let fixed = fetch_upstream(&w);
    assert_eq!(fixed.ok(), format!("{HOST_ADDR}\n"), "after the remedy\n{fixed}");
    assert!(!fixed.stderr.contains("warning"), "no warning once fixed?\n{fixed}");
    w.assert_clean();
}

#[test]
fn a_flushed_ruleset_is_restored_by_network_reload_and_by_the_next_run() {
    let w = World::with_upstream();
    assert_eq!(fetch_upstream(&w).ok(), format!("{HOST_ADDR}\n"));
    w.run(w.berth().args(["network", "create", "--internal", "app"])).ok();

    w.run(w.cmd("nft").args(["flush", "ruleset"])).ok();
    let reload = w.run(w.berth().args(["network", "reload"]));
    assert!(reload.ok().contains("restored"), "{reload}");
    let table = w.run(w.cmd("nft").args(["list", "table", "inet", "berth"]));
    assert!(table.ok().contains("masquerade"), "{table}");
    for element in ["\"berth0\"", "\"berth1\"", "10.201.0.0/16"] {
        assert!(table.ok().contains(element), "every network is restored: {element}\n{table}");
    }
    w.run(w.berth().args(["network", "rm", "app"])).ok();

    // berth's table survives the way hosts save and load their firewall: as nft's own text.
    let saved = w.path("ruleset.nft");
    let text = w.run(w.cmd("nft").args(["list", "ruleset"])).ok().to_owned();
    std::fs::write(&saved, &text).unwrap();
    w.run(w.cmd("nft").args(["flush", "ruleset"])).ok();
    w.run(w.cmd("nft").arg("-f").arg(&saved)).ok();
    assert_eq!(w.run(w.cmd("nft").args(["list", "ruleset"])).ok(), text, "loaded back as it was");
    assert_eq!(fetch_upstream(&w).ok(), format!("{HOST_ADDR}\n"), "NAT after reload");

    w.run(w.cmd("nft").args(["flush", "ruleset"])).ok();
    assert_eq!(fetch_upstream(&w).ok(), format!("{HOST_ADDR}\n"), "NAT restored by a run");
    let rules = w.run(w.cmd("nft").args(["list", "ruleset"]));
    assert_eq!(
        rules.ok().matches("@masq_subnets oifname != @bridges masquerade").count(),
        1,
        "{rules}"
    );
    w.assert_clean();
}
