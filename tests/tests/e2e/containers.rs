//! Living with containers, daemonless: `run -d`, `ps`, `inspect`, `logs`, `stop`, `kill`, `rm`.

use berth_e2e::*;
use std::time::{Duration, Instant};

/// A detached container named `name` that says hello, traps `traps`, and waits.
fn start_detached(w: &World, name: &str, traps: &str) -> String {
    let script = format!("echo hello from $(hostname); {traps}; while :; do sleep 0.05; done");
    let out = w.berth_run(&["-d", "--name", name, "--net", "bridge", "sh", "-c", &script]);
    let id = out.ok().trim().to_owned();
    assert_eq!(id.len(), 64, "run -d prints the container's id\n{out}");
    id
}

#[track_caller]
fn wait_for_log(w: &World, name: &str, text: &str) -> String {
    let found = poll(Duration::from_secs(10), Duration::from_millis(20), || {
        let log = w.run(w.berth().args(["logs", name]));
        log.stdout.contains(text).then(|| log.stdout.clone())
    });
    found.unwrap_or_else(|| panic!("{text:?} never showed in the log of {name}"))
}

#[test]
fn a_detached_container_is_listed_logged_stopped_and_removed() {
    let w = World::new();
    let id = start_detached(&w, "web", "trap 'echo bye; exit 3' TERM");
    wait_for_log(&w, "web", "hello from web");

    let ps = w.run(w.berth().arg("ps"));
    let row = ps.ok().lines().find(|l| l.starts_with("web ")).unwrap_or_else(|| panic!("{ps}"));
    for cell in [&id[..12], "bridge", "10.201.0.2", "running", "sh -c"] {
        assert!(row.contains(cell), "{cell:?} in the ps row\n{ps}");
    }
    let json = w.run(w.berth().args(["ps", "--format", "json"]));
    let list: serde_json::Value = serde_json::from_str(json.ok()).expect("JSON");
    assert_eq!(list[0]["name"], "web", "{json}");
    assert_eq!(list[0]["address"], "10.201.0.2", "{json}");
    let inspect = w.run(w.berth().args(["inspect", &id[..6]]));
    let record: serde_json::Value = serde_json::from_str(inspect.ok()).expect("JSON");
    assert_eq!(record["status"], "running", "{inspect}");
    // The container is really there: the host reaches its address.
    w.run(w.cmd("ping").args(["-c", "1", "-W", "5", "10.201.0.2"])).ok();

    let started = Instant::now();
    w.run(w.berth().args(["stop", "web"])).ok();
    assert!(started.elapsed() < Duration::from_secs(5), "SIGTERM was enough");
    assert!(wait_for_log(&w, "web", "bye").contains("hello from web"));
    let all = w.run(w.berth().args(["ps", "-a"]));
    assert!(all.ok().contains("exited (3)"), "{all}");
    assert!(!w.run(w.berth().arg("ps")).ok().contains("web"), "not running any more");
    assert!(w.leases().is_empty(), "the address is released at once");

    w.run(w.berth().args(["rm", "web"])).ok();
    assert!(!w.run(w.berth().args(["ps", "-a"])).ok().contains("web"));
    w.assert_clean();
}

#[test]
fn stop_kills_a_workload_that_ignores_sigterm_after_the_grace_period() {
    let w = World::new();
    start_detached(&w, "stubborn", "trap '' TERM");
    wait_for_log(&w, "stubborn", "hello");
    let started = Instant::now();
    w.run(w.berth().args(["stop", "-t", "1", "stubborn"])).ok();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "{took:?}");
    let all = w.run(w.berth().args(["ps", "-a"]));
    assert!(all.ok().contains("exited (137)"), "{all}");
    w.run(w.berth().args(["rm", "stubborn"])).ok();
    w.assert_clean();
}

#[test]
fn kill_sends_the_signal_asked_for() {
    let w = World::new();
    start_detached(&w, "hup", "trap 'echo got HUP' HUP");
    wait_for_log(&w, "hup", "hello");
    w.run(w.berth().args(["kill", "-s", "HUP", "hup"])).ok();
    wait_for_log(&w, "hup", "got HUP");
    w.run(w.berth().args(["kill", "hup"])).ok();
    let ended = poll(Duration::from_secs(10), Duration::from_millis(20), || {
        w.run(w.berth().args(["ps", "-a"])).stdout.contains("exited (137)").then_some(())
    });
    assert!(ended.is_some(), "SIGKILL by default");
    w.run(w.berth().args(["rm", "hup"])).ok();
    w.assert_clean();
}

#[test]
fn mistakes_with_container_names_are_refused() {
    let w = World::new();
    w.run(w.berth().args(["logs", "nothing"])).expect_berth_error(&["no such container"]);
    w.run(w.berth().args(["stop", "nothing"])).expect_berth_error(&["no such container"]);
    start_detached(&w, "busy", "true");
    wait_for_log(&w, "busy", "hello");
    w.run(w.berth().args(["rm", "busy"])).expect_berth_error(&["is running", "berth stop"]);
    w.run(w.berth().args(["kill", "-s", "NOPE", "busy"])).expect_berth_error(&["no such signal"]);
    w.run(w.berth().args(["stop", "-t", "0", "busy"])).ok();
    w.run(w.berth().args(["stop", "busy"])).expect_berth_error(&["not running"]);
    w.run(w.berth().args(["rm", "busy"])).ok();
    w.assert_clean();
}

#[test]
fn a_detached_run_that_cannot_start_says_why_in_the_foreground() {
    let w = World::new();
    let out = w.berth_run(&["-d", "--net", "bridge", "no-such-command"]);
    out.expect_code(127);
    assert!(out.stderr.contains("no-such-command: command not found"), "{out}");
    assert_eq!(out.stdout, "", "no id for a container that did not start\n{out}");
    w.assert_clean();
}

#[test]
fn exec_joins_the_container_with_its_capabilities_and_passes_the_exit_code_back() {
    let w = World::new();
    start_detached(&w, "box", "true");
    wait_for_log(&w, "box", "hello");
    let script = "hostname; ip -br -4 addr show eth0; grep CapEff /proc/self/status; \
                  ip link add evil0 type bridge 2>/dev/null || echo no-net-admin; \
                  pwd; echo \"$GREETING\"; exit 7";
    let out = w.run(w.berth().args([
        "exec",
        "-w",
        "/tmp",
        "-e",
        "GREETING=hi",
        "box",
        "sh",
        "-c",
        script,
    ]));
    out.expect_code(7);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "box", "the container's hostname\n{out}");
    assert!(lines[1].contains("10.201.0.2/16"), "the container's eth0\n{out}");
    assert!(lines[2].ends_with("00000000a80425fb"), "the container's capabilities\n{out}");
    assert_eq!(&lines[3..], ["no-net-admin", "/tmp", "hi"], "{out}");
    w.run(w.berth().args(["exec", "box", "no-such-command"])).expect_code(127);
    w.run(w.berth().args(["stop", "box"])).ok();
    w.run(w.berth().args(["exec", "box", "true"])).expect_berth_error(&["not running"]);
    w.run(w.berth().args(["rm", "box"])).ok();
    w.assert_clean();
}

#[test]
fn exec_takes_its_defaults_from_the_kept_config_or_from_an_earlier_berths_record() {
    let w = World::new();
    let out = w.berth_run(&[
        "-d", "--name", "kept", "--net", "none", "-u", "1000:100", "-w", "/tmp", "sleep", "30",
    ]);
    let dir = w.containers_dir().join(out.ok().trim());
    // The run's config, kept beside its record: the flags as a bundle would say them, with
    // berth's annotations for what a config cannot say.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["process"]["args"], serde_json::json!(["sleep", "30"]), "{config}");
    assert_eq!(config["process"]["cwd"], "/tmp", "{config}");
    assert_eq!(config["annotations"]["org.berth.run.user"], "1000:100", "{config}");
    assert_eq!(config["annotations"]["org.berth.net"], "none", "{config}");
    let script = "id -u; id -g; pwd; grep CapEff /proc/self/status";
    let exec = || w.run(w.berth().args(["exec", "kept", "sh", "-c", script]));
    let out = exec();
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines[..3], ["1000", "100", "/tmp"], "the run's user and directory\n{out}");
    assert!(lines[3].ends_with("0000000000000000"), "a user other than root keeps none\n{out}");

    // Its record says the config is kept: without it, exec refuses rather than guess.
    std::fs::remove_file(dir.join("config.json")).unwrap();
    exec().expect_berth_error(&["the record says the run kept its config, but there is none"]);

    // A container of a berth that kept no config: its record holds exec's defaults.
    let record = dir.join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    for (key, value) in [
        ("kept_config", serde_json::json!(false)),
        ("user", serde_json::json!("0")),
        ("workdir", serde_json::json!("/")),
        ("capabilities", serde_json::json!(["CAP_KILL"])),
        ("no_new_privs", serde_json::json!(true)),
        ("host_root", serde_json::json!(true)),
    ] {
        state[key] = value;
    }
    std::fs::write(&record, serde_json::to_vec(&state).unwrap()).unwrap();
    let out = exec();
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines[..3], ["0", "0", "/"], "the record's user and directory\n{out}");
    assert!(lines[3].ends_with("0000000000000020"), "CAP_KILL alone\n{out}");
    w.run(w.berth().args(["stop", "kept"])).ok();
    w.run(w.berth().args(["rm", "kept"])).ok();
    w.assert_clean();
}

#[test]
fn a_host_path_that_is_not_utf8_is_mounted_as_it_is() {
    use std::os::unix::ffi::OsStrExt;
    let w = World::new();
    // Reached through a link whose own name is text, as `-v` takes text.
    let latin1 = w.path("caf").with_file_name(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    std::fs::create_dir(&latin1).unwrap();
    std::fs::write(latin1.join("menu"), "soup\n").unwrap();
    let link = w.path("cafe-link");
    std::os::unix::fs::symlink(&latin1, &link).unwrap();
    let volume = format!("{}:/mnt:ro", link.display());
    let out = w.berth_run(&["--net", "none", "-v", &volume, "cat", "/mnt/menu"]);
    assert_eq!(out.ok(), "soup\n");
    w.assert_clean();
}

#[test]
fn exec_is_refused_until_the_workload_runs() {
    let w = World::new();
    // The launcher halted once the veth is wired: the record names the workload's pid, but
    // berth has not seen the child through its mounts and capabilities to the exec.
    let mut run = w.spawn(
        w.cmd(berth_fault_bin())
            .arg("--root")
            .arg(w.root())
            .env("BERTH_FAULT", "after-veth:stop")
            .args(["run", "--name", "early", "--net", "bridge", "sleep", "30"]),
    );
    let stopped = poll(Duration::from_secs(10), Duration::from_millis(10), || {
        (sys::proc_state(run.pid()) == Some('T')).then_some(())
    });
    assert!(stopped.is_some(), "berth must stop at after-veth");
    let early = w.run(w.berth().args(["exec", "early", "true"]));
    early.expect_berth_error(&["early is still being created"]);
    run.signal(libc::SIGCONT);
    let entered = poll(Duration::from_secs(10), Duration::from_millis(20), || {
        let out = w.run(w.berth().args(["exec", "early", "hostname"]));
        (out.code() == 0).then_some(out)
    });
    assert_eq!(entered.expect("exec once the workload runs").stdout, "early\n");
    run.signal(libc::SIGTERM);
    run.wait(Duration::from_secs(10));
    w.assert_clean();
}

#[test]
fn a_name_belongs_to_one_container_until_it_is_removed() {
    let w = World::new();
    start_detached(&w, "solo", "true");
    wait_for_log(&w, "solo", "hello");
    w.berth_run(&["--name", "solo", "--net", "none", "true"])
        .expect_berth_error(&["already in use", "solo"]);
    let detached = w.berth_run(&["-d", "--name", "solo", "--net", "none", "true"]);
    detached.expect_berth_error(&["already in use"]);
    assert_eq!(detached.stderr.lines().count(), 1, "said once\n{detached}");
    w.run(w.berth().args(["stop", "solo"])).ok();
    w.berth_run(&["--name", "solo", "--net", "none", "true"])
        .expect_berth_error(&["already in use", "berth rm solo"]);
    w.run(w.berth().args(["rm", "solo"])).ok();
    // Free again, for foreground runs one after the other.
    for _ in 0..2 {
        w.berth_run(&["--name", "solo", "--net", "none", "true"]).expect_code(0);
    }
    w.assert_clean();
}

#[test]
fn two_containers_started_at_once_never_share_a_name() {
    let w = World::new();
    for round in 0..40 {
        let name = format!("twin{round}");
        let mut pair: Vec<Bg> = (0..2)
            .map(|_| {
                w.spawn(w.berth().args(["run", "-d", "--name", &name, "--net", "none", "true"]))
            })
            .collect();
        let outcomes: Vec<Outcome> = pair.iter_mut().map(|bg| bg.wait(DEFAULT_TIMEOUT)).collect();
        let started = outcomes.iter().filter(|out| out.code() == 0).count();
        assert_eq!(started, 1, "round {round}: {started} containers took {name}\n{outcomes:#?}");
        let refused = outcomes.iter().find(|out| out.code() != 0).unwrap();
        refused.expect_berth_error(&["already in use"]);
    }
    let all = w.run(w.berth().args(["ps", "-a"]));
    assert_eq!(all.ok().lines().count(), 41, "{all}");
    for round in 0..40 {
        w.run(w.berth().args(["rm", &format!("twin{round}")])).ok();
    }
    w.assert_clean();
}

#[test]
fn the_log_keeps_stdout_and_stderr_apart_and_out_of_the_workloads_reach() {
    let w = World::new();
    // The workload cannot rewrite its log through its own descriptors: they are pipes.
    let script = "echo out; echo err >&2; readlink /proc/self/fd/1; \
                  echo REWRITTEN > /proc/self/fd/1; echo last";
    let id = w.berth_run(&["-d", "--net", "none", "sh", "-c", script]).ok().trim().to_owned();
    poll(Duration::from_secs(10), Duration::from_millis(20), || {
        w.run(w.berth().args(["ps", "-a"])).stdout.contains("exited (0)").then_some(())
    })
    .expect("the container ends");
    let log = w.run(w.berth().args(["logs", &id]));
    let lines: Vec<&str> = log.ok().lines().collect();
    assert_eq!(lines[0], "out", "{log}");
    assert!(lines[1].starts_with("pipe:["), "{log}");
    assert_eq!(&lines[2..], ["REWRITTEN", "last"], "{log}");
    assert_eq!(log.stderr, "err\n", "{log}");
    // docker's json-file records, one a line.
    let file = std::fs::read_to_string(w.containers_dir().join(&id).join("log")).unwrap();
    let first = crate::json(file.lines().next().unwrap());
    assert_eq!(first["log"], "out\n", "{file}");
    assert_eq!(first["stream"], "stdout", "{file}");
    assert!(first["time"].as_str().unwrap().ends_with('Z'), "{file}");
    w.run(w.berth().args(["rm", &id])).ok();
    w.assert_clean();
}

/// The sizes of the files of a container's log, `log` and its rotated `log.N`.
fn log_sizes(w: &World, id: &str) -> Vec<(String, u64)> {
    let mut sizes: Vec<(String, u64)> = std::fs::read_dir(w.containers_dir().join(id))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.starts_with("log").then(|| (name, e.metadata().unwrap().len()))
        })
        .collect();
    sizes.sort();
    sizes
}

#[test]
fn a_chatty_workload_cannot_fill_the_state_root() {
    let w = World::new();
    let id = w
        .berth_run(&[
            "-d",
            "--net",
            "none",
            "--log-opt",
            "max-size=64k",
            "--log-opt",
            "max-file=2",
            "sh",
            "-c",
            "yes | head -n 200000; echo the-end",
        ])
        .ok()
        .trim()
        .to_owned();
    poll(Duration::from_secs(20), Duration::from_millis(50), || {
        w.run(w.berth().args(["ps", "-a"])).stdout.contains("exited (0)").then_some(())
    })
    .expect("the container ends");
    let sizes = log_sizes(&w, &id);
    let names: Vec<&str> = sizes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["log", "log.1"], "two files at most: {sizes:?}");
    assert!(sizes.iter().all(|(_, size)| *size <= 64 << 10), "{sizes:?}");
    // What is kept is the newest output, in order, up to its end.
    let log = w.run(w.berth().args(["logs", &id]));
    let lines: Vec<&str> = log.ok().lines().collect();
    assert_eq!(lines.last(), Some(&"the-end"), "{}", &log.stdout[log.stdout.len() - 200..]);
    assert!(lines[..lines.len() - 1].iter().all(|l| *l == "y") && lines.len() > 100);
    // Without options the log is capped too (10 MiB a file, 3 files).
    let id = w
        .berth_run(&[
            "-d",
            "--net",
            "none",
            "sh",
            "-c",
            "yes $(printf %0200d 0) | head -c 40000000",
        ])
        .ok()
        .trim()
        .to_owned();
    poll(Duration::from_secs(60), Duration::from_millis(100), || {
        w.run(w.berth().args(["ps", "-a"]))
            .stdout
            .matches("exited (0)")
            .count()
            .eq(&2)
            .then_some(())
    })
    .expect("the container ends");
    let sizes = log_sizes(&w, &id);
    assert!(sizes.len() <= 3 && sizes.iter().all(|(_, s)| *s <= 10 << 20), "{sizes:?}");
    for id in w
        .run(w.berth().args(["ps", "-a", "--format", "json"]))
        .ok()
        .split('"')
        .filter(|s| s.len() == 64)
    {
        w.run(w.berth().args(["rm", id])).ok();
    }
    w.assert_clean();
}

#[test]
fn stray_entries_in_the_containers_directory_are_skipped_and_said() {
    let w = World::new();
    start_detached(&w, "live", "true");
    wait_for_log(&w, "live", "hello");
    let containers = w.containers_dir();
    std::fs::write(containers.join("stray-file"), "x").unwrap();
    std::os::unix::fs::symlink("/etc", containers.join("stray-link")).unwrap();
    let corrupt = containers.join("c0ffee0c0ffee0c0ffee");
    std::fs::create_dir(&corrupt).unwrap();
    std::fs::write(corrupt.join("state.json"), "{ not json").unwrap();
    // Every command still works on the live container...
    let ps = w.run(w.berth().arg("ps"));
    assert!(ps.ok().contains("live"), "{ps}");
    // ... and the entries it cannot read are named, never silently hidden.
    for entry in ["stray-file", "stray-link", "c0ffee0c0ffee0c0ffee"] {
        assert!(ps.stderr.contains(entry), "{entry} not said\n{ps}");
    }
    w.run(w.berth().args(["exec", "live", "true"])).ok();
    w.run(w.berth().args(["logs", "live"])).ok();
    w.run(w.berth().arg("gc")).ok();
    w.run(w.berth().args(["stop", "live"])).ok();
    w.run(w.berth().args(["rm", "live"])).ok();
    for entry in ["stray-file", "stray-link"] {
        std::fs::remove_file(containers.join(entry)).unwrap();
    }
    std::fs::remove_dir_all(&corrupt).unwrap();
    // An empty BERTH_ROOT is no setting: --root holds.
    let ps = w.run(w.berth().env("BERTH_ROOT", "").arg("ps"));
    assert!(ps.ok().starts_with("NAME"), "{ps}");
    w.assert_clean();
}

#[test]
fn logs_follow_the_output_through_every_rotation() {
    let w = World::new();
    // Rotated about every 150 ms, with four files kept; and every 300 ms with only one (a new
    // file each time, never one cut short under the reader).
    for (files, lines, every) in [("4", 600, 20), ("1", 300, 10)] {
        let script = format!(
            "for i in $(seq 1 {lines}); do echo $i; [ $((i % {every})) = 0 ] && sleep 0.05; done"
        );
        let id = w
            .berth_run(&[
                "-d",
                "--net",
                "none",
                "--log-opt",
                "max-size=4k",
                "--log-opt",
                &format!("max-file={files}"),
                "sh",
                "-c",
                &script,
            ])
            .ok()
            .trim()
            .to_owned();
        let follow = w.run(w.berth().args(["logs", "-f", &id]));
        let expected: Vec<String> = (1..=lines).map(|i| i.to_string()).collect();
        let printed: Vec<&str> = follow.ok().lines().collect();
        assert_eq!(printed, expected, "max-file={files}\n{}", follow.stderr);
        w.run(w.berth().args(["rm", &id])).ok();
    }
    w.assert_clean();
}
