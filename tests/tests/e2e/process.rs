//! The workload as a process: its arguments, environment, exit status, signals, leftovers.

use berth_e2e::*;
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn exit_code_zero() {
    let w = World::new();
    w.berth_run(&["--net", "none", "true"]).expect_code(0);
}

#[test]
fn exit_code_of_the_workload_comes_back() {
    let w = World::new();
    w.berth_run(&["--net", "none", "sh", "-c", "exit 7"]).expect_code(7);
    w.berth_run(&["--net", "bridge", "sh", "-c", "exit 7"]).expect_code(7);
    w.assert_clean();
}

#[test]
fn exit_code_126_for_a_file_that_is_not_executable() {
    let w = World::new();
    let f = w.path("not-executable.sh");
    std::fs::write(&f, "#!/bin/sh\necho should not run\n").unwrap();
    util::set_mode(&f, 0o644);
    let out = w.berth_run(&["--net", "none", f.to_str().unwrap()]);
    out.expect_code(126);
    assert!(!out.stdout.contains("should not run"), "{out}");
    assert!(out.stderr.contains("not-executable.sh"), "the message should name the file\n{out}");
}

#[test]
fn exit_code_127_for_a_missing_command() {
    let w = World::new();
    let out = w.berth_run(&["--net", "none", "no-such-command-berth-e2e"]);
    out.expect_code(127);
    assert!(
        out.stderr.contains("no-such-command-berth-e2e"),
        "the message should name the command\n{out}"
    );
    w.assert_clean();
}

#[test]
fn exit_code_137_when_the_workload_is_killed_by_sigkill() {
    let w = World::new();
    let out = w.berth_run(&["--net", "none", "sh", "-c", "kill -9 $$"]);
    out.expect_code(137);
}

#[test]
fn arguments_after_the_command_belong_to_the_workload() {
    let w = World::new();
    let out = w.berth_run(&[
        "--net", "none", "printf", "[%s]", "--net", "host", "-e", "A=b", "--name", "x",
    ]);
    assert_eq!(out.ok(), "[--net][host][-e][A=b][--name][x]", "{out}");
}

#[test]
fn environment_is_clean_plus_e_values() {
    let w = World::new();
    let out =
        w.run(w.berth().env("BERTH_E2E_MUST_NOT_LEAK", "1").args([
            "run", "--net", "none", "--name", "envy", "-e", "FOO=bar", "-e", "X=a=b", "env",
        ]));
    let env: BTreeMap<&str, &str> = out.ok().lines().filter_map(|l| l.split_once('=')).collect();
    let keys: Vec<&str> = env.keys().copied().collect();
    assert_eq!(
        keys,
        ["FOO", "HOME", "HOSTNAME", "PATH", "X"],
        "environment should be PATH, HOSTNAME, HOME and -e\n{out}"
    );
    assert_eq!(env["FOO"], "bar");
    assert_eq!(env["X"], "a=b");
    assert_eq!(env["HOSTNAME"], "envy");
    assert!(env["HOME"].starts_with('/'), "{out}");
    assert!(env["PATH"].split(':').any(|d| d == "/usr/bin"), "{out}");
}

/// A workload script for a container named `sig`: it checks that it runs in the container
/// (exit 98 if not), installs `traps`, says it is ready by creating `ready`, then idles (bounded:
/// exits 99 after about 20 s).
fn trapping_workload(traps: &str, ready: &std::path::Path) -> String {
    format!(
        "[ \"$(hostname)\" = sig ] || exit 98; {traps}; touch '{}'; \
         i=0; while [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; exit 99",
        ready.display()
    )
}

#[test]
fn sigterm_to_berth_reaches_the_workload_and_its_exit_code_comes_back() {
    let w = World::new();
    let ready = w.path("ready");
    let script = trapping_workload("trap 'exit 42' TERM", &ready);
    let mut berth =
        w.spawn(w.berth().args(["run", "--net", "none", "--name", "sig", "sh", "-c", &script]));
    assert!(
        wait_for_file(&ready, Duration::from_secs(10)),
        "workload never got ready: {}",
        berth.stderr_so_far()
    );
    berth.signal(libc::SIGTERM);
    berth.wait(Duration::from_secs(10)).expect_code(42);
}

#[test]
fn a_forwarded_signal_that_kills_the_workload_gives_128_plus_n() {
    let w = World::new();
    let ready = w.path("ready");
    let sleep = unique_sleep_arg();
    let script = format!("touch '{}'; exec sleep {sleep}", ready.display());
    let mut berth = w.spawn(w.berth().args(["run", "--net", "bridge", "sh", "-c", &script]));
    assert!(
        wait_for_file(&ready, Duration::from_secs(10)),
        "workload never got ready: {}",
        berth.stderr_so_far()
    );
    // Wait for the exec, so the signal reaches sleep and not the shell before it.
    poll(Duration::from_secs(15), Duration::from_millis(5), || {
        (!sys::pids_with_argv(&["sleep", &sleep]).is_empty()).then_some(())
    });
    berth.signal(libc::SIGTERM);
    berth.wait(Duration::from_secs(10)).expect_code(128 + libc::SIGTERM);
    w.assert_clean();
}

/// Sends `sig` to berth and waits for the workload's trap to write `name` in `log`.
#[track_caller]
fn assert_signal_reaches_workload(berth: &mut Bg, log: &std::path::Path, name: &str, sig: i32) {
    berth.signal(sig);
    let seen = poll(Duration::from_secs(15), Duration::from_millis(5), || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        text.lines().any(|l| l == name).then_some(())
    });
    if seen.is_none() {
        if let Some(o) = berth.try_outcome() {
            panic!("SIG{name} was not forwarded (berth ended)\n{o}");
        }
        panic!(
            "SIG{name} did not reach the workload within 15 s; seen so far: {:?}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

#[test]
fn every_forwarded_signal_reaches_the_workload() {
    let w = World::new();
    let ready = w.path("ready");
    let log = w.path("signals.log");
    let names = ["INT", "HUP", "QUIT", "USR1", "USR2", "WINCH"];
    let traps: Vec<String> =
        names.iter().map(|n| format!("trap 'echo {n} >> {}' {n}", log.display())).collect();
    let script = trapping_workload(&format!("{}; trap 'exit 3' TERM", traps.join("; ")), &ready);
    let mut berth =
        w.spawn(w.berth().args(["run", "--net", "none", "--name", "sig", "sh", "-c", &script]));
    assert!(
        wait_for_file(&ready, Duration::from_secs(10)),
        "workload never got ready: {}",
        berth.stderr_so_far()
    );
    let sigs =
        [libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH];
    for (name, sig) in names.iter().zip(sigs) {
        assert_signal_reaches_workload(&mut berth, &log, name, sig);
    }
    berth.signal(libc::SIGTERM);
    berth.wait(Duration::from_secs(10)).expect_code(3);
}

#[test]
fn leftover_background_processes_are_killed_when_the_workload_ends() {
    let w = World::new();
    let (ready, go) = (w.path("ready"), w.path("go"));
    let sleep = unique_sleep_arg();
    let script = format!(
        "sleep {sleep} >/dev/null 2>&1 </dev/null & touch '{}'; {}; echo done",
        ready.display(),
        sh_wait_for_file(&go)
    );
    let mut berth = w.spawn(w.berth().args(["run", "--net", "bridge", "sh", "-c", &script]));
    assert!(
        wait_for_file(&ready, Duration::from_secs(10)),
        "workload never got ready: {}",
        berth.stderr_so_far()
    );
    // The background process really runs while the workload does ...
    let running = poll(Duration::from_secs(15), Duration::from_millis(5), || {
        (!sys::pids_with_argv(&["sleep", &sleep]).is_empty()).then_some(())
    });
    assert!(running.is_some(), "the workload's `sleep {sleep} &` never showed up");
    // ... and is gone soon after the workload has ended.
    std::fs::write(&go, "").unwrap();
    let out = berth.wait(Duration::from_secs(10));
    assert_eq!(out.ok(), "done\n", "{out}");
    let mut left = Vec::new();
    let gone = poll(Duration::from_secs(15), Duration::from_millis(10), || {
        left = sys::pids_with_argv(&["sleep", &sleep]);
        left.is_empty().then_some(())
    });
    if gone.is_none() {
        for pid in &left {
            let _ = sys::kill(*pid, libc::SIGKILL);
        }
        panic!("`sleep {sleep} &` started by the workload still runs 5 s after berth exited (pids {left:?})");
    }
    w.assert_clean();
}

/// A script's `berth run ... &` starts with SIGINT and SIGQUIT ignored (POSIX, for background
/// jobs without job control): berth must still take and forward them.
#[test]
fn signals_are_forwarded_when_berth_starts_with_them_ignored() {
    let w = World::new();
    let ready = w.path("ready");
    let log = w.path("signals.log");
    let traps = format!(
        "trap 'echo INT >> {0}' INT; trap 'echo QUIT >> {0}' QUIT; trap 'exit 4' TERM",
        log.display()
    );
    let script = trapping_workload(&traps, &ready);
    let mut cmd = w.berth();
    cmd.args(["run", "--net", "none", "--name", "sig", "sh", "-c", &script]);
    // SAFETY: the hook only changes signal dispositions; it runs after the world's own hooks.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGQUIT, libc::SIG_IGN);
            Ok(())
        })
    };
    let mut berth = w.spawn(&mut cmd);
    assert!(wait_for_file(&ready, Duration::from_secs(10)), "{}", berth.stderr_so_far());
    for (name, sig) in [("INT", libc::SIGINT), ("QUIT", libc::SIGQUIT)] {
        assert_signal_reaches_workload(&mut berth, &log, name, sig);
    }
    berth.signal(libc::SIGTERM);
    berth.wait(Duration::from_secs(10)).expect_code(4);
}

#[test]
fn ctrl_z_stops_berth_and_its_workload_and_fg_continues_both() {
    let w = World::new();
    let sleep = unique_sleep_arg();
    let mut berth = w.spawn(w.berth().args(["run", "--net", "none", "sleep", &sleep]));
    let workload = poll(Duration::from_secs(15), Duration::from_millis(5), || {
        sys::pids_with_argv(&["sleep", &sleep]).first().copied()
    })
    .expect("the workload runs");
    let both_in = |state: char| {
        poll(Duration::from_secs(10), Duration::from_millis(5), || {
            (sys::proc_state(berth.pid()) == Some(state)
                && sys::proc_state(workload) == Some(state))
            .then_some(())
        })
        .is_some()
    };
    // A terminal's Ctrl-Z reaches berth's process group; the workload, in a session of its
    // own, is stopped by berth.
    berth.signal(libc::SIGTSTP);
    assert!(
        both_in('T'),
        "stopped: berth {:?}, workload {:?}",
        sys::proc_state(berth.pid()),
        sys::proc_state(workload)
    );
    berth.signal(libc::SIGCONT);
    assert!(
        both_in('S'),
        "continued: berth {:?}, workload {:?}",
        sys::proc_state(berth.pid()),
        sys::proc_state(workload)
    );
    berth.signal(libc::SIGTERM);
    berth.wait(Duration::from_secs(10)).expect_code(128 + libc::SIGTERM);
    w.assert_clean();
}
