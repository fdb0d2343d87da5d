//! berth-bench: the figures of berth's benchmark that hyperfine cannot take alone: teardown
//! time, many runs at once, a supervisor's memory, and start-up and `ps` with a thousand
//! containers running. `bench/run.sh` runs it inside namespaces of its own, after the
//! hyperfine figures; it must never run in the machine's own network namespace.
//!
//!   berth-bench scale --berth PATH --root DIR [--containers N] [--runs N] [--smoke]
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
        Some("scale") => match Options::parse(&args[1..]) {
            Ok(options) => scale(&options),
            Err(e) => {
                eprintln!("berth-bench: {e}");
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!(
                "usage: berth-bench scale --berth PATH --root DIR [--containers N] [--runs N] \
                 [--smoke] | berth-bench stamp"
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
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options {
            berth: PathBuf::new(),
            root: PathBuf::new(),
            containers: 1000,
            runs: 200,
            smoke: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value")).cloned();
            match arg.as_str() {
                "--berth" => options.berth = value()?.into(),
                "--root" => options.root = value()?.into(),
                "--containers" => options.containers = number(&value()?)?,
                "--runs" => options.runs = number(&value()?)?,
                "--smoke" => options.smoke = true,
                other => return Err(format!("unknown option {other}")),
            }
        }
        if options.berth.as_os_str().is_empty() || options.root.as_os_str().is_empty() {
            return Err("--berth and --root are required".into());
        }
        Ok(options)
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
}

#[derive(Clone, Copy)]
enum Target {
    AtMost(f64),
    Under(f64),
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
        }
    }

    fn met(&self) -> Option<bool> {
        self.target.map(|target| match target {
            Target::AtMost(limit) => self.value <= limit,
            Target::Under(limit) => self.value < limit,
        })
    }
}

fn scale(options: &Options) -> ExitCode {
    let bench = std::env::current_exe().expect("own path");
    let berth = |args: &[&str]| {
        let mut command = Command::new(&options.berth);
        command.arg("--root").arg(&options.root).args(args);
        command
    };
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

    // A thousand detached containers, started a few at a time. A failed assertion aborts
    // (panic=abort): the hook stops them first, so that none is left running.
    let started = Instant::now();
    let names: Vec<String> = (0..options.containers)
        .map(|i| format!("bench-{i}"))
        .collect();
    let (hook_berth, hook_root, hook_names) =
        (options.berth.clone(), options.root.clone(), names.clone());
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        stop_all(&hook_berth, &hook_root, &hook_names);
    }));
    for batch in names.chunks(8) {
        let children: Vec<Child> = batch
            .iter()
            .map(|name| {
                spawn_quietly(&mut berth(&[
                    "run", "-d", "--net", "bridge", "--name", name, "sleep", "100000",
                ]))
            })
            .collect();
        for mut child in children {
            let status = child.wait().expect("wait for berth run -d");
            assert!(status.success(), "a detached run failed: {status}");
        }
    }
    eprintln!(
        "berth-bench: started {} detached containers in {:.1} s",
        names.len(),
        started.elapsed().as_secs_f64()
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
    });

    let ps = timed_runs(runs.min(50), || berth(&["ps"]));
    rows.push(Row::median(
        format!("berth ps, {} running (ms)", names.len()),
        ps,
        "ms",
        Some(Target::Under(50.0)),
    ));

    stop_all(&options.berth, &options.root, &names);
    print_table(&rows);
    let missed = rows.iter().any(|row| row.met() == Some(false));
    if missed && !options.smoke {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
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

fn median(samples: &[f64]) -> f64 {
    let sorted = sorted(samples);
    sorted[sorted.len() / 2]
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
            format!("{:.2}", s[0]),
            format!("{:.2}", at(0.5)),
            format!("{:.2}", at(0.9)),
            format!("{:.2}", s[s.len() - 1]),
            row.unit.into(),
            format!("{:.2}", row.value),
            match row.target {
                None => "-".into(),
                Some(Target::AtMost(limit)) => format!("<= {limit}"),
                Some(Target::Under(limit)) => format!("< {limit}"),
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
