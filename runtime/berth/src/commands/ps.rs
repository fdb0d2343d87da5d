//! `berth ps` and `berth inspect`: the containers under `--root`, their liveness checked
//! through procfs (a container whose launcher died shows as such).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::cli::{PsArgs, PsFormat};
use crate::commands::table::print_columns;
use crate::engine::state::{ContainerDir, State, Status};
use crate::error::{Error, Result};

/// Runs `berth ps`.
pub fn ps(root: &Path, args: PsArgs) -> Result<u8> {
    // Each container's status is read once (its launcher's /proc/PID/stat), for the filter and
    // the row alike.
    let mut states = Vec::new();
    for (dir, state) in ContainerDir::list(root)? {
        match state {
            Ok(state) => {
                let status = state.status();
                if args.all || status == Status::Running {
                    states.push((dir, state, status));
                }
            }
            // Never hidden: said, and left for the administrator (or berth gc) to deal with.
            Err(e) if dir.path().is_dir() => eprintln!(
                "berth: warning: {e}: berth cannot tell this container's status, nor clean \
                 up after it; remove {} once nothing of it runs",
                dir.path().display()
            ),
            Err(e) => eprintln!("berth: warning: {e}"),
        }
    }
    match args.format {
        PsFormat::Json => {
            let list: Vec<_> = states
                .iter()
                .map(|(_, state, status)| describe(state, *status))
                .collect();
            println!("{}", serde_json::Value::Array(list));
        }
        PsFormat::Table => {
            let now = now();
            let mut rows = vec![[
                "NAME", "ID", "PID", "NETWORK", "ADDRESS", "STATUS", "UPTIME", "PORTS", "COMMAND",
            ]
            .map(String::from)
            .to_vec()];
            for (_, state, status) in &states {
                let status = *status;
                rows.push(vec![
                    state.name.clone(),
                    state.short_id().to_owned(),
                    state.pid.map_or("-".into(), |p| p.to_string()),
                    state.network.clone(),
                    state
                        .first_attachment()
                        .map_or("-".into(), |a| a.address.clone()),
                    status.to_string(),
                    if status == Status::Running {
                        uptime(now.saturating_sub(state.created))
                    } else {
                        "-".into()
                    },
                    if status == Status::Running
                        && state.attachments.iter().any(|a| !a.ports.is_empty())
                    {
                        let ports: Vec<_> = state
                            .attachments
                            .iter()
                            .flat_map(|a| a.ports.clone())
                            .collect();
                        ports_column(&ports)
                    } else {
                        "-".into()
                    },
                    state.command.clone(),
                ]);
            }
            print_columns(&rows).map_err(|e| Error::system("write the listing", e))?;
        }
    }
    Ok(0)
}

/// Runs `berth inspect`: the container's record and status as JSON.
pub fn inspect(root: &Path, name: &str) -> Result<u8> {
    let (_, state) = ContainerDir::find(root, name)?;
    let text = serde_json::to_string_pretty(&describe(&state, state.status()))
        .map_err(|e| Error::Failed(format!("encode state: {e}")))?;
    println!("{text}");
    Ok(0)
}

/// A container as `inspect` and `ps --format json` show it: its record, with its first
/// attachment's address, ports and veth where they always were, and its status.
fn describe(state: &State, status: Status) -> serde_json::Value {
    let mut value = serde_json::to_value(state).unwrap_or_else(|_| json!({}));
    let first = state.first_attachment();
    value["address"] = json!(first.map(|a| &a.address));
    if let Some(address6) = first.and_then(|a| a.address6.as_ref()) {
        value["address6"] = json!(address6);
    }
    value["ports"] = json!(first.map_or(&[][..], |a| &a.ports));
    value["host_interface"] = json!(first.map(|a| &a.host_interface));
    value["status"] = json!(status.to_string());
    value["running"] = json!(status == Status::Running);
    value
}

/// docker's form, without spaces: `0.0.0.0:8080->80/tcp,0.0.0.0:9000-9003->9000-9003/tcp`.
fn ports_column(ports: &[netsetup::PortMapping]) -> String {
    // Ranges, one to one, shown as one: 0.0.0.0:9000-9003->9000-9003/tcp.
    let mut shown = Vec::new();
    let mut rest = ports;
    while let Some(first) = rest.first() {
        let run = 1 + rest
            .windows(2)
            .take_while(|pair| pair[0].continued_by(&pair[1]))
            .count();
        shown.push(first.describe_run(run as u16));
        rest = &rest[run..];
    }
    shown.join(",")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn uptime(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{}s", seconds / 60, seconds % 60),
        _ => format!("{}h{}m", seconds / 3600, seconds % 3600 / 60),
    }
}
