//! Crashes at the worst moment: berth killed with SIGKILL at every named step of setup and
//! teardown, the workload and berth killed at once, a thousand runs in a row. After each,
//! `berth gc` (or the next run) leaves nothing behind, and the next run works.

use crate::eth0_address;
use berth_e2e::*;
use std::time::Duration;

/// The fault points, read from `runtime/berth/src/fault.rs` itself, so that a step added there is
/// walked here too.
fn fault_steps() -> Vec<&'static str> {
    let source = include_str!("../../../runtime/berth/src/fault.rs");
    let list = source
        .split_once("pub const STEPS")
        .and_then(|(_, rest)| rest.split_once("];"))
        .expect("STEPS in fault.rs")
        .0;
    let steps: Vec<&str> = list.split('"').skip(1).step_by(2).collect();
    assert!(steps.len() >= 8, "the fault steps: {steps:?}");
    steps
}

/// `berth run ARGS...` by the fault-injection build, killed at `step`; asserts it died so.
#[track_caller]
fn crash_at(w: &World, step: &str, args: &[&str]) -> Outcome {
    let crashed = w.run(
        w.cmd(berth_fault_bin())
            .arg("--root")
            .arg(w.root())
            .env("BERTH_FAULT", step)
            .arg("run")
            .args(args),
    );
    assert_eq!(
        crashed.killed_by_signal(),
        Some(libc::SIGKILL),
        "{step}: berth must die\n{crashed}"
    );
    crashed
}

/// After a crash: gc, then nothing of the crashed container is left, a second gc removes
/// nothing, and the next run works and gets the lowest address again.
#[track_caller]
fn gc_leaves_nothing(w: &World, orphan: &str, step: &str) {
    let gc = w.run(w.berth().arg("gc"));
    gc.ok();
    let gone = poll(Duration::from_secs(5), Duration::from_millis(10), || {
        sys::pids_with_argv(&["sleep", orphan]).is_empty().then_some(())
    });
    assert!(gone.is_some(), "{step}: a process of the crashed container survived gc\n{gc}");
    w.assert_clean();
    let again = w.run(w.berth().arg("gc"));
    assert_eq!(again.ok(), "", "{step}: a second gc must remove nothing\n{again}");
    let next = crate::run_showing_eth0(w, &[]);
    assert_eq!(eth0_address(&next), "10.201.0.2/16", "{step}: the next run\n{next}");
    w.assert_clean();
}

#[test]
fn berth_killed_at_every_step_leaves_nothing_after_gc() {
    for step in fault_steps() {
        let w = World::new();
        let orphan = unique_sleep_arg();
        // A background process that would outlive berth, then a quick end of the workload
        // itself (so the teardown steps are reached); a published port, for gc to unpublish.
        let script = format!("sleep {orphan} & sleep 0.3");
        crash_at(&w, step, &["--net", "bridge", "-p", "8080:80", "sh", "-c", &script]);
        gc_leaves_nothing(&w, &orphan, step);
    }
}

#[test]
fn without_gc_a_crashed_runs_address_is_taken_over_when_asked_for() {
    let w = World::new();
    crash_at(&w, "after-exec", &["--net", "bridge", "sleep", "30"]);
    // While there is room, a run takes the lowest address nobody holds: it reads no owner.
    let next = crate::run_showing_eth0(&w, &[]);
    assert_eq!(eth0_address(&next), "10.201.0.3/16", "{next}");
    assert_eq!(w.leases().len(), 1, "the dead launcher's lease waits: {:#?}", w.leases());
    // Asked for, the dead launcher's address is taken over.
    let asked = crate::run_showing_eth0(&w, &["--ip", "10.201.0.2"]);
    assert_eq!(
        eth0_address(&asked),
        "10.201.0.2/16",
        "the dead launcher's lease is taken over\n{asked}"
    );
    assert!(w.leases().is_empty(), "{:#?}", w.leases());
}

#[test]
fn workload_and_berth_killed_at_once() {
    let w = World::new();
    let (ready, orphan) = (w.path("ready"), unique_sleep_arg());
    let script = format!("sleep {orphan} & touch '{}'; wait", ready.display());
    let mut run = w.spawn(w.berth().args(["run", "--net", "bridge", "sh", "-c", &script]));
    assert!(wait_for_file(&ready, Duration::from_secs(10)), "{}", run.stderr_so_far());
    let workload = w.run(w.cmd("cat").arg(format!("/proc/{}/task/{0}/children", run.pid())));
    let workload: u32 = workload.ok().trim().parse().expect("one child: the workload");
    sys::kill(workload, libc::SIGKILL).unwrap();
    run.signal(libc::SIGKILL);
    run.wait(Duration::from_secs(10));
    gc_leaves_nothing(&w, &orphan, "both killed");
}

/// A thousand runs in a row: no growth in interfaces, the nft ruleset, the lease file, files
/// under the root, or berth's own open descriptors.
#[test]
fn a_thousand_runs_in_a_row_grow_nothing() {
    let w = World::new();
    // The workload's parent is berth: it counts berth's open descriptors. berth starts with
    // only 0, 1 and 2 (no descriptor another test thread happens to have open).
    let count_fds = || {
        let mut berth = w.berth();
        berth.args(["run", "--net", "bridge", "sh", "-c", "ls /proc/$PPID/fd | wc -l"]);
        // SAFETY: the hook only makes a system call; it runs after the world's own hooks.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut berth, || {
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                Ok(())
            })
        };
        let count = w.run(&mut berth);
        count.ok().trim().parse::<u32>().unwrap_or_else(|_| panic!("a count\n{count}"))
    };
    count_fds(); // The first run makes the bridge, the table and the lease file.
    w.assert_clean();
    let ruleset = || w.run(w.cmd("nft").args(["list", "ruleset"])).ok().to_owned();
    let snapshot = || {
        let lease_file = std::fs::read(w.leases_path()).unwrap().len();
        (ruleset(), lease_file, w.root_files(), w.link_names())
    };
    let before = snapshot();
    // A run can catch berth a moment before it closes the pipe that lets its child go on, so
    // one count can be one higher; a leak would raise every count after it.
    let counts: Vec<u32> = (0..1000).map(|_| count_fds()).collect();
    let (early, late) = (counts[..100].iter().min(), counts[900..].iter().min());
    assert_eq!(late, early, "berth's open descriptors grew: {counts:?}");
    w.wait_veths_gone(VETH_GONE_TIMEOUT);
    assert_eq!(snapshot(), before, "after 1000 runs");
    w.assert_clean();
}

/// gc running over and over while containers start and end takes nothing of theirs: every
/// run works (a gc that took a starting container's veth broke it).
#[test]
fn gc_over_and_over_never_takes_from_a_live_container() {
    let w = World::new();
    w.berth_run(&["--net", "bridge", "true"]).expect_code(0);
    let stop = w.path("stop-gc");
    let gc_loop = format!(
        "while [ ! -e '{}' ]; do {} --root '{}' gc || exit 1; done",
        stop.display(),
        berth_bin().display(),
        w.root().display()
    );
    let mut gcs = w.spawn(w.cmd("sh").args(["-c", &gc_loop]));
    for i in 0..40 {
        let out =
            w.berth_run(&["--net", "bridge", "sh", "-c", "sleep 0.02; ip -br addr show eth0"]);
        assert!(out.ok().contains("10.201.0."), "run {i}\n{out}");
    }
    std::fs::write(&stop, "").unwrap();
    gcs.wait(Duration::from_secs(30)).expect_code(0);
    w.assert_clean();
}

#[test]
fn gc_repair_keeps_the_leases_of_running_containers() {
    let w = World::new();
    let ready = w.path("ready");
    let script = format!("touch '{}'; exec sleep 30", ready.display());
    let mut live = w.spawn(w.berth().args(["run", "--net", "bridge", "sh", "-c", &script]));
    assert!(wait_for_file(&ready, Duration::from_secs(10)), "{}", live.stderr_so_far());
    let mut text = std::fs::read_to_string(w.leases_path()).unwrap();
    text.push_str("garbage\n");
    std::fs::write(w.leases_path(), text).unwrap();
    w.berth_run(&["--net", "bridge", "true"]).expect_berth_error(&["gc --repair"]);

    let repair = w.run(w.berth().args(["gc", "--repair"]));
    assert!(repair.ok().contains("rebuilt"), "{repair}");
    let next = crate::run_showing_eth0(&w, &[]);
    assert_eq!(eth0_address(&next), "10.201.0.3/16", "10.201.0.2 is still the live one's\n{next}");

    // A lease file that was removed, or replaced by a link, is rebuilt the same way.
    for how in ["removed", "linked"] {
        std::fs::remove_file(w.leases_path()).unwrap();
        if how == "linked" {
            std::os::unix::fs::symlink("/dev/null", w.leases_path()).unwrap();
            w.berth_run(&["--net", "bridge", "true"]).expect_berth_error(&["gc --repair"]);
        }
        let repair = w.run(w.berth().args(["gc", "--repair"]));
        assert!(repair.ok().contains("rebuilt"), "{how}: {repair}");
        let next = crate::run_showing_eth0(&w, &[]);
        assert_eq!(eth0_address(&next), "10.201.0.3/16", "{how}: 10.201.0.2 is kept\n{next}");
    }
    live.signal(libc::SIGTERM);
    live.wait(Duration::from_secs(10));
}

#[test]
fn two_gcs_at_once_both_succeed() {
    let w = World::new();
    crash_at(&w, "after-veth", &["--net", "bridge", "true"]);
    let mut first = w.spawn(w.berth().arg("gc"));
    let mut second = w.spawn(w.berth().arg("gc"));
    first.wait(Duration::from_secs(10)).expect_code(0);
    second.wait(Duration::from_secs(10)).expect_code(0);
    w.assert_clean();
}
