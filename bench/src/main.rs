//! berth-bench: the figures of berth's benchmark that hyperfine cannot take alone: teardown
//! time, many runs at once, a supervisor's memory, start-up and `ps` with a thousand
//! containers running, and start-up with hundreds of ports published. `bench/run.sh` runs it
//! inside namespaces of its own, after the hyperfine figures; it must never run in the
//! machine's own network namespace.
//!
//!   berth-bench scale --berth PATH --root DIR [--containers N] [--runs N] [--smoke]
//!   berth-bench ports --berth PATH --root DIR [--containers N] [--runs N] [--smoke]
//!   berth-bench cni --plugin PATH --dir DIR [--runs N] [--smoke]
//!   berth-bench stamp [SECONDS]   (a workload: waits, prints CLOCK_MONOTONIC in ns, exits)

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("stamp") => {
            // After an optional pause (a long-lived workload, whose supervisor has trimmed).
            if let Some(seconds) = args.get(1).and_then(|s| s.parse::<f64>().ok()) {
                std::thread::sleep(Duration::from_secs_f64(seconds));
            }
            println!("{}", monotonic_ns());
            ExitCode::SUCCESS
        }
        Some("cni") => match CniOptions::parse(&args[1..]) {
            Ok(options) => report(&cni(&options), options.smoke),
            Err(e) => {
                eprintln!("berth-bench: {e}");
                ExitCode::from(2)
            }
        },
        Some(command @ ("scale" | "ports")) => {
            let (figures, containers): (fn(&Options) -> Vec<Row>, usize) = match command {
                "scale" => (scale, 1000),
                _ => (ports, 500),
            };
            match Options::parse(&args[1..], containers) {
                Ok(options) => report(&figures(&options), options.smoke),
                Err(e) => {
                    eprintln!("berth-bench: {e}");
                    ExitCode::from(2)
                }
            }
        }
        _ => {
            eprintln!(
                "usage: berth-bench scale|ports --berth PATH --root DIR [--containers N] \
                 [--runs N] [--smoke] | berth-bench cni --plugin PATH --dir DIR [--runs N] \
                 [--smoke] | berth-bench stamp [SECONDS]"
            );
            ExitCode::from(2)
        }
    }
}

struct Options {
    berth: PathBuf,
    root: PathBuf,
    containers: usize,
    runs: usize,
    smoke: bool,
}

impl Options {
    fn parse(args: &[String], containers: usize) -> Result<Options, String> {
        let given = options(
            args,
            &["--berth", "--root", "--containers", "--runs"],
            "--smoke",
        )?;
        Ok(Options {
            berth: required(&given, "--berth")?,
            root: required(&given, "--root")?,
            containers: given
                .get("--containers")
                .map_or(Ok(containers), |v| number(v))?,
            runs: given.get("--runs").map_or(Ok(200), |v| number(v))?,
            smoke: given.contains_key("--smoke"),
        })
    }

    /// `berth --root ROOT ARGS...`.
    fn berth(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.berth);
        command.arg("--root").arg(&self.root).args(args);
        command
    }
}

fn number(text: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a number"))
}

/// One row of the table: the samples of a figure, the value compared with the target, and
/// the target.
struct Row {
    figure: String,
    samples: Vec<f64>,
    unit: &'static str,
    value: f64,
    target: Option<Target>,
    /// The decimals shown of the samples and the value: none for counts.
    decimals: usize,
}

#[derive(Clone, Copy)]
enum Target {
    AtLeast(f64),
    AtMost(f64),
    Under(f64),
    /// Every sample equals it (a count).
    Equals(f64),
}

impl Row {
    /// A row whose value is the median of its samples.
    fn median(
        figure: impl Into<String>,
        samples: Vec<f64>,
        unit: &'static str,
        target: Option<Target>,
    ) -> Row {
        Row {
            figure: figure.into(),
            value: median(&samples),
            samples,
            unit,
            target,
            decimals: 2,
        }
    }

    /// A row of counts, one per sample (`unit` says of what), whose value is their median.
    fn count(
        figure: impl Into<String>,
        counts: &[usize],
        unit: &'static str,
        target: Option<usize>,
    ) -> Row {
        let samples: Vec<f64> = counts.iter().map(|&count| count as f64).collect();
        Row {
            decimals: 0,
            ..Row::median(
                figure,
                samples,
                unit,
                target.map(|n| Target::Equals(n as f64)),
            )
        }
    }

    fn met(&self) -> Option<bool> {
        self.target.map(|target| match target {
            Target::AtLeast(limit) => self.value >= limit,
            Target::AtMost(limit) => self.value <= limit,
            Target::Under(limit) => self.value < limit,
            Target::Equals(expected) => self.samples.iter().all(|&sample| sample == expected),
        })
    }

    fn show(&self, value: f64) -> String {
        format!("{value:.*}", self.decimals)
    }
}

fn scale(options: &Options) -> Vec<Row> {
    let bench = std::env::current_exe().expect("own path");
    let berth = |args: &[&str]| options.berth(args);
    let runs = options.runs;
    let mut rows = Vec::new();

    // One run first: the bridge and the table exist from here on.
    run_quietly(&mut berth(&["run", "--net", "bridge", "true"]));

    let empty = timed_runs(runs, || berth(&["run", "--net", "bridge", "true"]));
    rows.push(Row::median(
        "bridge run, no other container (ms)",
        empty.clone(),
        "ms",
        None,
    ));

    // Teardown: `runs` workloads that exit at once, then a few that outlive the supervisor's
    // trim (its code pages come back from the page cache). The second has no target: on an
    // idle virtual machine it mostly measures how long a halted CPU takes to wake for the
    // SIGCHLD (1.0-1.6 ms here, trimmed or not).
    let teardowns = |count: usize, stamp: &[&str]| -> Vec<f64> {
        (0..count)
            .map(|_| {
                let mut command = berth(&["run", "--net", "bridge"]);
                command.arg(&bench).args(stamp);
                teardown_ms(&mut command)
            })
            .collect()
    };
    rows.push(Row::median(
        "teardown: workload exit to berth exit (ms)",
        teardowns(runs, &["stamp"]),
        "ms",
        Some(Target::Under(1.0)),
    ));
    rows.push(Row::median(
        "teardown after a 1.2 s workload (ms)",
        teardowns(if options.smoke { 2 } else { 10 }, &["stamp", "1.2"]),
        "ms",
        None,
    ));

    let rounds = if options.smoke { 2 } else { 7 };
    let at_once: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            let children: Vec<Child> = (0..100)
                .map(|_| spawn_quietly(&mut berth(&["run", "--net", "bridge", "true"])))
                .collect();
            for mut child in children {
                let status = child.wait().expect("wait for berth");
                assert!(status.success(), "a run of the hundred failed: {status}");
            }
            ms(started.elapsed())
        })
        .collect();
    rows.push(Row::median(
        "100 bridge runs started at once, all done (ms)",
        at_once,
        "ms",
        Some(Target::Under(1000.0)),
    ));

    // A thousand detached containers.
    let names = container_names("bench", options.containers);
    stop_on_panic(options, &names);
    let seconds = start_detached(options, &names, |_| Vec::new());
    eprintln!(
        "berth-bench: started {} detached containers in {seconds:.1} s",
        names.len()
    );

    // A supervisor trims its memory once its workload has run for a second.
    std::thread::sleep(Duration::from_millis(1500));
    let memory = |field: &str| supervisor_memory_mib(&options.root, field);
    let rss = memory("VmRSS:");
    rows.push(Row::median(
        format!(
            "resident memory (VmRSS) of a supervisor, {} running (MiB)",
            rss.len()
        ),
        rss,
        "MiB",
        Some(Target::Under(1.5)),
    ));
    // VmRSS counts shared code pages in full; these say what each supervisor costs on its own.
    for (field, what) in [
        ("RssAnon:", "its own pages (RssAnon)"),
        ("Pss:", "its share (Pss)"),
    ] {
        let samples = memory(field);
        rows.push(Row::median(
            format!("  of which {what} (MiB)"),
            samples,
            "MiB",
            None,
        ));
    }

    let full = timed_runs(runs, || berth(&["run", "--net", "bridge", "true"]));
    let ratio = median(&full) / median(&empty);
    rows.push(Row {
        figure: format!(
            "bridge run, {} others running (ratio to none running)",
            names.len()
        ),
        value: ratio,
        samples: full,
        unit: "ms",
        target: Some(Target::AtMost(1.5)),
        decimals: 2,
    });

    let ps = timed_runs(runs.min(50), || berth(&["ps"]));
    rows.push(Row::median(
        format!("berth ps, {} running (ms)", names.len()),
        ps,
        "ms",
        Some(Target::Under(50.0)),
    ));

    stop_all(&options.berth, &options.root, &names);
    rows
}

/// The cost of published ports: a run publishing one port with no other container, with
/// `options.containers` others running that publish none, and with as many publishing one
/// each. The target is on the last two: the same containers run in both, so their ratio is
/// what the published ports cost (what running containers cost is the scale table's).
/// Published ports are elements of nft maps that a fixed handful of rules look up: the
/// ruleset must not grow with them. Rounds, each measuring the three, cancel the drift of the
/// machine's speed; each stage waits for the previous one's interfaces to be gone.
fn ports(options: &Options) -> Vec<Row> {
    const PORT: &str = "18080:80";
    const FIRST_PORT: usize = 20000;
    let published_run = || options.berth(&["run", "--net", "bridge", "-p", PORT, "true"]);
    let rounds = if options.smoke { 2 } else { 5 };
    let per_round = options.runs.div_ceil(rounds);
    let names = container_names("port", options.containers);
    let n = names.len();
    stop_on_panic(options, &names);

    // One run first: the bridge and the table exist from here on.
    run_quietly(&mut published_run());
    let (mut alone, mut running, mut published) = (Stage::default(), Vec::new(), Stage::default());
    let mut elements_after = Vec::new();
    for _ in 0..rounds {
        wait_bridge_empty();
        alone.measure(per_round, published_run);

        start_detached(options, &names, |_| Vec::new());
        running.extend(timed_runs(per_round, published_run));
        stop_all(&options.berth, &options.root, &names);
        wait_bridge_empty();

        let seconds = start_detached(options, &names, |i| {
            vec!["-p".into(), format!("{}:80", FIRST_PORT + i)]
        });
        eprintln!(
            "berth-bench: started {n} detached containers publishing a port each in {seconds:.1} s"
        );
        published.measure(per_round, published_run);
        stop_all(&options.berth, &options.root, &names);
        elements_after.push(ports_any_elements());
    }

    let ratio_to_alone = |samples: Vec<f64>, figure: String, target: Option<Target>| Row {
        figure,
        value: median(&samples) / median(&alone.walls),
        samples,
        unit: "ms",
        target,
        decimals: 2,
    };
    // The same in every round, with and without the ports.
    let rules = alone.rules[0];
    vec![
        Row::median(
            format!("bridge run -p {PORT}, no other container (ms)"),
            alone.walls.clone(),
            "ms",
            None,
        ),
        ratio_to_alone(
            running.clone(),
            format!("  {n} others running, no port published (ratio to none)"),
            None,
        ),
        ratio_to_alone(
            published.walls.clone(),
            format!("  {n} others running, each publishing a port (ratio to none)"),
            None,
        ),
        // What published ports themselves cost: the same containers, with and without them.
        Row {
            figure: format!("  {n} ports published vs none, {n} running either way (ratio)"),
            value: median(&published.walls) / median(&running),
            samples: published.walls,
            unit: "ms",
            target: Some(Target::AtMost(1.2)),
            decimals: 2,
        },
        Row::count(
            "nft rules, no port published",
            &alone.rules,
            "rules",
            Some(rules),
        ),
        Row::count(
            format!("nft rules, {n} published"),
            &published.rules,
            "rules",
            Some(rules),
        ),
        Row::count(
            "ports_any elements, no port published",
            &alone.elements,
            "elements",
            Some(0),
        ),
        Row::count(
            format!("ports_any elements, {n} published"),
            &published.elements,
            "elements",
            Some(n),
        ),
        Row::count(
            format!("ports_any elements, the {n} stopped and removed"),
            &elements_after,
            "elements",
            Some(0),
        ),
    ]
}

/// The wall times of the runs of one stage of `ports`, and the rules in the ruleset and the
/// elements of ports_any after each round's runs.
#[derive(Default)]
struct Stage {
    walls: Vec<f64>,
    rules: Vec<usize>,
    elements: Vec<usize>,
}

impl Stage {
    fn measure(&mut self, runs: usize, make: impl Fn() -> Command) {
        self.walls.extend(timed_runs(runs, make));
        self.rules.push(nft_rules());
        self.elements.push(ports_any_elements());
    }
}

/// `count` container names: PREFIX-0, PREFIX-1...
fn container_names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

/// Starts a detached `sleep` named each of `names`, 8 at a time, the i-th given the run
/// options `extra(i)`; returns the seconds it took.
fn start_detached(
    options: &Options,
    names: &[String],
    extra: impl Fn(usize) -> Vec<String>,
) -> f64 {
    let started = Instant::now();
    for (batch_index, batch) in names.chunks(8).enumerate() {
        let children: Vec<Child> = batch
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut command = options.berth(&["run", "-d", "--net", "bridge", "--name", name]);
                command
                    .args(extra(batch_index * 8 + i))
                    .args(["sleep", "100000"]);
                spawn_quietly(&mut command)
            })
            .collect();
        for mut child in children {
            let status = child.wait().expect("wait for berth run -d");
            assert!(status.success(), "a detached run failed: {status}");
        }
    }
    started.elapsed().as_secs_f64()
}

/// A failed assertion aborts (panic=abort): from here on, the containers of `names` are
/// stopped first, so that none is left running.
fn stop_on_panic(options: &Options, names: &[String]) {
    let (berth, root, names) = (options.berth.clone(), options.root.clone(), names.to_vec());
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        stop_all(&berth, &root, &names);
    }));
}

/// Ends the detached containers (those of `names` that run) and removes their records,
/// waiting for their supervisors. Failures are reported, not fatal: it also runs from the
/// panic hook.
fn stop_all(berth: &Path, root: &Path, names: &[String]) {
    let supervisors = supervisor_pids(root);
    let quietly = |args: &[&str], batch: &[String]| {
        let _ = Command::new(berth)
            .arg("--root")
            .arg(root)
            .args(args)
            .args(batch)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    for batch in names.chunks(200) {
        quietly(&["kill", "-s", "KILL"], batch);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while supervisors
        .iter()
        .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
    {
        if Instant::now() > deadline {
            eprintln!("berth-bench: supervisors still running after 60 s");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for batch in names.chunks(200) {
        quietly(&["rm"], batch);
    }
}

/// Waits until the default bridge has no port left: a stopped container's veth goes with its
/// network namespace, which the kernel tears down after the supervisor has exited.
fn wait_bridge_empty() {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = Command::new("ip")
            .args(["-o", "link", "show", "master", "berth0"])
            .output()
            .expect("run ip");
        if output.stdout.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "veths still on berth0 after 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `nft -j ARGS...`, parsed: the objects of its `nftables` array.
fn nft_json(args: &[&str]) -> Vec<serde_json::Value> {
    let output = Command::new("nft")
        .arg("-j")
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("run nft");
    assert!(
        output.status.success(),
        "nft -j {args:?} failed: {}",
        output.status
    );
    let mut listing: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("nft's JSON");
    match listing["nftables"].take() {
        serde_json::Value::Array(objects) => objects,
        other => panic!("nft -j {args:?}: no nftables array: {other}"),
    }
}

/// The rules in the whole ruleset (set and map elements are not rules).
fn nft_rules() -> usize {
    nft_json(&["list", "ruleset"])
        .iter()
        .filter(|object| object.get("rule").is_some())
        .count()
}

/// The elements of berth's map of the ports published on every host address.
fn ports_any_elements() -> usize {
    nft_json(&["list", "map", "inet", "berth", "ports_any"])
        .iter()
        .filter_map(|object| object.get("map"))
        .map(|map| map["elem"].as_array().map_or(0, Vec::len))
        .sum()
}

/// The pids of the supervisors of the containers under `root`, from their records.
fn supervisor_pids(root: &Path) -> Vec<u32> {
    let Ok(entries) = fs::read_dir(root.join("containers")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| fs::read(entry.path().join("state.json")).ok())
        .filter_map(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .filter_map(|state| state["launcher_pid"].as_u64())
        .map(|pid| pid as u32)
        .collect()
}

/// `field` (VmRSS: or RssAnon: from status, Pss: from smaps_rollup) of every supervisor, in
/// MiB.
fn supervisor_memory_mib(root: &Path, field: &str) -> Vec<f64> {
    let file = if field == "Pss:" {
        "smaps_rollup"
    } else {
        "status"
    };
    supervisor_pids(root)
        .into_iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/{file}")).ok())
        .filter_map(|text| {
            let line = text.lines().find(|l| l.starts_with(field))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib / 1024.0)
        })
        .collect()
}

/// What `berth-bench cni` is given.
struct CniOptions {
    plugin: PathBuf,
    dir: PathBuf,
    runs: usize,
    smoke: bool,
}

impl CniOptions {
    fn parse(args: &[String]) -> Result<CniOptions, String> {
        let given = options(args, &["--plugin", "--dir", "--runs"], "--smoke")?;
        Ok(CniOptions {
            plugin: required(&given, "--plugin")?,
            dir: required(&given, "--dir")?,
            runs: given.get("--runs").map_or(Ok(100), |v| number(v))?,
            smoke: given.contains_key("--smoke"),
        })
    }
}

/// Where the reference plugins are (Debian's containernetworking-plugins).
const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

/// ADD then DEL of one attachment on a fresh network namespace, berth-cni against the
/// reference `bridge` plugin with `host-local` addresses, the same subnet, masquerade and
/// gateway: alternately, so that both see the same drift of the machine's speed. The
/// namespace is made before the clock starts and removed after it stops.
fn cni(options: &CniOptions) -> Vec<Row> {
    const SUBNET: &str = "10.124.0.0/24";
    let dir = options.dir.display();
    let berth = format!(
        r#"{{"cniVersion":"1.0.0","name":"bench","type":"berth-cni","bridge":"cnibench0",
        "subnet":"{SUBNET}","dataDir":"{dir}/berth"}}"#
    );
    let reference = format!(
        r#"{{"cniVersion":"1.0.0","name":"benchref","type":"bridge","bridge":"cniref0",
        "isGateway":true,"ipMasq":true,
        "ipam":{{"type":"host-local","subnet":"{SUBNET}","dataDir":"{dir}/host-local"}}}}"#
    );
    let reference_plugin = Path::new(REFERENCE_PLUGINS).join("bridge");
    let runs = if options.smoke { 5 } else { options.runs };
    let (mut ours, mut ours_settled, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    // Warm-up: the bridges, berth's table and the reference's iptables chains exist after it.
    for round in 0..runs + 3 {
        let id = format!("bench{round}");
        let (answered, settled) = add_and_del(&options.plugin, &berth, &id, true);
        let (reference_answered, _) = add_and_del(&reference_plugin, &reference, &id, false);
        if round >= 3 {
            ours.push(answered);
            ours_settled.push(settled);
            theirs.push(reference_answered);
        }
    }
    let ratio = median(&theirs) / median(&ours);
    let ratio_settled = median(&theirs) / median(&ours_settled);
    vec![
        Row::median("berth-cni ADD+DEL", ours, "ms", None),
        Row::median(
            "  until its deferred veth deletion ends",
            ours_settled,
            "ms",
            None,
        ),
        Row::median("bridge + host-local ADD+DEL", theirs, "ms", None),
        Row::median(
            "reference / berth-cni (medians)",
            vec![ratio],
            "x",
            Some(Target::AtLeast(10.0)),
        ),
        Row::median(
            "  counting the deferred veth deletion",
            vec![ratio_settled],
            "x",
            None,
        ),
    ]
}

/// The time of `plugin`'s ADD and DEL of `id`'s eth0 in a namespace of its own, in ms: until
/// DEL answered, and (with `deferred`: berth-cni's DEL answers before a child of its own has
/// deleted the host veth, which the reference's DEL does before it answers) until the host
/// veth is gone too.
fn add_and_del(plugin: &Path, config: &str, id: &str, deferred: bool) -> (f64, f64) {
    let mut holder = Command::new("unshare")
        .args(["--net", "sleep", "1000"])
        .spawn()
        .expect("spawn unshare");
    let netns = format!("/proc/{}/ns/net", holder.id());
    let own = fs::read_link("/proc/self/ns/net").expect("own network namespace");
    let deadline = Instant::now() + Duration::from_secs(5);
    while fs::read_link(&netns).is_ok_and(|ns| ns == own) {
        assert!(
            Instant::now() < deadline,
            "the namespace holder never unshared"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    let call = |command: &str| {
        let mut child = Command::new(plugin)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", &netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", REFERENCE_PLUGINS)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", plugin.display()));
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(config.as_bytes())
            .expect("write the configuration");
        let output = child.wait_with_output().expect("wait for the plugin");
        assert!(
            output.status.success(),
            "{} {command} failed: {}",
            plugin.display(),
            String::from_utf8_lossy(&output.stdout)
        );
    };
    let started = Instant::now();
    call("ADD");
    call("DEL");
    let answered = ms(started.elapsed());
    if deferred {
        let veth = netsetup::attachment_host_interface(id, "eth0");
        while interface_exists(&veth) {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    let settled = ms(started.elapsed());
    let _ = holder.kill();
    let _ = holder.wait();
    (answered, settled)
}

/// Whether interface `name` exists in this network namespace.
fn interface_exists(name: &str) -> bool {
    let Ok(name) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: if_nametoindex(3) reads the NUL-terminated name.
    unsafe { libc::if_nametoindex(name.as_ptr()) != 0 }
}

/// Times `runs` runs of the command `make` gives, each to its end, in ms.
fn timed_runs(runs: usize, make: impl Fn() -> Command) -> Vec<f64> {
    for _ in 0..runs.min(10) {
        run_quietly(&mut make()); // warm-up
    }
    (0..runs)
        .map(|_| {
            let mut command = make();
            let started = Instant::now();
            run_quietly(&mut command);
            ms(started.elapsed())
        })
        .collect()
}

/// Runs a bridge run whose workload prints the monotonic clock as it exits; returns the time
/// from then until berth has exited, in ms.
fn teardown_ms(command: &mut Command) -> f64 {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn berth");
    let output = child.wait_with_output().expect("wait for berth");
    let ended = monotonic_ns();
    assert!(output.status.success(), "berth failed: {}", output.status);
    let stamp: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("the workload's stamp");
    (ended - stamp) as f64 / 1e6
}

fn spawn_quietly(command: &mut Command) -> Child {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"))
}

fn run_quietly(command: &mut Command) {
    let status = spawn_quietly(command).wait().expect("wait");
    assert!(status.success(), "{command:?} failed: {status}");
}

fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// The options in `args`: each of `valued` with the value that follows it, and `switch` (with
/// an empty value) if given; any other is an error.
fn options(
    args: &[String],
    valued: &[&str],
    switch: &str,
) -> Result<std::collections::HashMap<String, String>, String> {
    let mut given = std::collections::HashMap::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == switch {
            given.insert(arg.clone(), String::new());
        } else if valued.contains(&arg.as_str()) {
            let value = args.next().ok_or(format!("{arg} needs a value"))?;
            given.insert(arg.clone(), value.clone());
        } else {
            return Err(format!("unknown option {arg}"));
        }
    }
    Ok(given)
}

/// The path given with option `name`, which must be there.
fn required(
    given: &std::collections::HashMap<String, String>,
    name: &str,
) -> Result<PathBuf, String> {
    given
        .get(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or(format!("{name} is required"))
}

fn median(samples: &[f64]) -> f64 {
    let sorted = sorted(samples);
    sorted[sorted.len() / 2]
}

/// Prints `rows` and gives the exit code: 1 when a target was missed, unless `smoke` (few runs
/// on a busy machine say little).
fn report(rows: &[Row], smoke: bool) -> ExitCode {
    print_table(rows);
    if rows.iter().any(|row| row.met() == Some(false)) && !smoke {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_table(rows: &[Row]) {
    let mut lines = vec![[
        "figure", "min", "median", "p90", "max", "unit", "value", "target", "result",
    ]
    .map(String::from)
    .to_vec()];
    for row in rows {
        let s = sorted(&row.samples);
        let at = |q: f64| s[((s.len() as f64 * q) as usize).min(s.len() - 1)];
        lines.push(vec![
            row.figure.clone(),
            row.show(s[0]),
            row.show(at(0.5)),
            row.show(at(0.9)),
            row.show(s[s.len() - 1]),
            row.unit.into(),
            row.show(row.value),
            match row.target {
                None => "-".into(),
                Some(Target::AtLeast(limit)) => format!(">= {limit}"),
                Some(Target::AtMost(limit)) => format!("<= {limit}"),
                Some(Target::Under(limit)) => format!("< {limit}"),
                Some(Target::Equals(expected)) => format!("= {expected}"),
            },
            match row.met() {
                None => "-".into(),
                Some(true) => "ok".into(),
                Some(false) => "MISSED".into(),
            },
        ]);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}
