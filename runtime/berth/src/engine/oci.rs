//! OCI runtime bundles: `berth run --bundle DIR` runs DIR/config.json (read with oci-spec), and
//! `berth spec` writes one. Every key of config.json is checked against what berth carries
//! out before anything else: one it does not support is refused by name, never ignored.

use std::path::Path;

use serde_json::Value;

use crate::cli::{RunArgs, SpecArgs};
use crate::engine::networks;
use crate::engine::spec::{choose_network, name_of, Engine, Network, RunSpec};
use crate::error::{Error, Result};
use berth_container::capabilities;
use berth_container::mounts;
use berth_container::namespaces::Namespace;
use berth_container::plan::{self, Origin};

/// The berth annotations of a bundle.
const ANNOTATIONS: [&str; 5] = [
    "org.berth.net",
    "org.berth.publish",
    "org.berth.ip",
    "org.berth.dns",
    "org.berth.init",
];

/// Options of `berth run` that config.json decides, and where in it.
fn decided_by_the_config(args: &RunArgs) -> Option<(&'static str, &'static str)> {
    [
        (!args.command.is_empty(), "a command", "process.args"),
        (args.rootfs.is_some(), "--rootfs", "root.path"),
        (args.read_only, "--read-only", "root.readonly"),
        (!args.volume.is_empty(), "-v", "mounts"),
        (args.workdir.is_some(), "-w", "process.cwd"),
        (args.user.is_some(), "-u", "process.user"),
        (!args.env.is_empty(), "-e", "process.env"),
        (!args.env_file.is_empty(), "--env-file", "process.env"),
        (args.pid.is_some(), "--pid", "linux.namespaces"),
        (args.hostname.is_some(), "--hostname", "hostname"),
        (
            !args.cap_add.is_empty(),
            "--cap-add",
            "process.capabilities",
        ),
        (
            !args.cap_drop.is_empty(),
            "--cap-drop",
            "process.capabilities",
        ),
        (args.privileged, "--privileged", "process.capabilities"),
    ]
    .into_iter()
    .find(|(given, _, _)| *given)
    .map(|(_, flag, key)| (flag, key))
}

/// The run that bundle `dir` describes, with the network and name from `args` (they win over
/// the bundle's annotations).
pub fn spec_from_bundle(dir: &Path, args: &RunArgs, root: &Path) -> Result<RunSpec> {
    let invalid = |why: String| Error::Invalid(format!("config.json: {why}"));
    if let Some((flag, key)) = decided_by_the_config(args) {
        return Err(Error::Invalid(format!(
            "--bundle: {flag} is the bundle's to decide (config.json's {key})"
        )));
    }
    let bundle = std::fs::canonicalize(dir)
        .map_err(|e| Error::Invalid(format!("--bundle {}: {e}", dir.display())))?;
    let mut config = Box::new(plan::read_config(&bundle)?);

    // The annotations: berth's own are checked, the rest is metadata.
    let annotations = config.annotations().clone().unwrap_or_default();
    for key in annotations.keys() {
        if key.starts_with("org.berth.") && !ANNOTATIONS.contains(&key.as_str()) {
            return Err(invalid(format!(
                "unknown annotation {key} (berth reads {})",
                ANNOTATIONS.join(", ")
            )));
        }
    }
    // The mechanism's first section: the namespaces, which the network settles below.
    let mut namespaces = plan::config_namespaces(&config)?;
    let annotation = |key: &str| annotations.get(key).map(String::as_str);
    let list = |key: &str| -> Vec<String> {
        annotation(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };

    // The network: --net/-p/--ip/--dns, else the annotations, in the bundle's own namespace.
    let net = args
        .net
        .clone()
        .or(annotation("org.berth.net").map(String::from));
    let publish = if args.publish.is_empty() {
        list("org.berth.publish")
    } else {
        args.publish.clone()
    };
    let ip = match (args.ip, annotation("org.berth.ip")) {
        (Some(ip), _) => Some(ip),
        (None, Some(text)) => Some(
            text.parse()
                .map_err(|_| invalid(format!("org.berth.ip {text:?} is not an IPv4 address")))?,
        ),
        (None, None) => None,
    };
    let dns = if args.dns.is_empty() {
        list("org.berth.dns")
            .iter()
            .map(|text| {
                text.parse()
                    .map_err(|_| invalid(format!("org.berth.dns {text:?} is not an address")))
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        args.dns.clone()
    };
    let asked = net.is_some() || !publish.is_empty() || ip.is_some() || !dns.is_empty();
    let network = match &namespaces.network {
        Namespace::Join(_) => {
            if asked {
                return Err(invalid(
                    "the bundle joins a network namespace by path, so berth's network options \
                     (--net, -p, --ip, --dns, org.berth.*) do not apply"
                        .into(),
                ));
            }
            Network::Join
        }
        Namespace::New => choose_network(
            root,
            net.as_deref().unwrap_or(networks::DEFAULT),
            ip,
            &dns,
            &publish,
        )?,
        Namespace::Host => {
            if asked {
                return Err(invalid(
                    "the bundle shares the host's network (no network namespace in \
                     linux.namespaces), so berth's network options do not apply"
                        .into(),
                ));
            }
            Network::Host
        }
    };
    // `--net host` (or org.berth.net) takes the host's namespace whatever the config lists.
    if matches!(network, Network::Host) {
        namespaces.network = Namespace::Host;
    }
    let init = match annotation("org.berth.init") {
        None => args.init,
        Some("true") => true,
        Some("false") => args.init,
        Some(other) => {
            return Err(invalid(format!(
                "org.berth.init {other:?}: use true or false"
            )))
        }
    };
    if init && namespaces.pid != Namespace::New {
        return Err(invalid(
            "berth's init runs as PID 1 of a private PID namespace: list {\"type\": \"pid\"} \
             in linux.namespaces"
                .into(),
        ));
    }

    // Kept as the run was asked: the flags won over the bundle's annotations.
    if !matches!(network, Network::Join) {
        let mut kept = annotations.clone();
        network.annotate(&mut kept, &publish, init);
        config.set_annotations(Some(kept));
    }

    let id = berth_state::new_id()?;
    let (name, named) = name_of(args.name.as_deref(), &id)?;
    let engine = Engine {
        id,
        name,
        named,
        network,
        init,
        detached: args.detach,
        log_options: crate::engine::spec::log_options(args)?,
    };
    // The engine's checks done (network, init, name), the mechanism checks the rest: process,
    // filesystem, resources, sysctls.
    RunSpec::plan(config, Origin::Bundle(&bundle), namespaces, engine)
}

/// `berth spec`: writes BUNDLE/config.json, refusing to overwrite one.
pub fn write_spec(args: &SpecArgs) -> Result<()> {
    let path = args.bundle.join("config.json");
    let text = serde_json::to_string_pretty(&default_config(&args.rootfs))
        .map_err(|e| Error::Invalid(format!("config.json: {e}")))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                Error::Invalid(format!("{} exists; remove it first", path.display()))
            }
            _ => Error::file(&path, e),
        })?;
    std::io::Write::write_all(&mut file, format!("{text}\n").as_bytes())
        .map_err(|e| Error::file(&path, e))
}

/// The config `berth spec` writes: sh in `rootfs`, docker's capabilities, new PID, IPC, UTS,
/// mount and network namespaces, the default bridge network, docker's masked and read-only
/// paths.
fn default_config(rootfs: &Path) -> Value {
    let names: Vec<String> = capabilities::DEFAULT
        .iter()
        .map(|cap| cap.to_string())
        .collect();
    let mounts: Vec<Value> = mounts::rootfs_defaults()
        .iter()
        .map(|m| {
            let (destination, kind, source, options) = m.to_oci();
            serde_json::json!({
                "destination": destination, "type": kind, "source": source, "options": options
            })
        })
        .collect();
    serde_json::json!({
        "ociVersion": crate::engine::spec::OCI_VERSION,
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [format!("PATH={}", crate::engine::spec::DEFAULT_PATH), "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": names, "effective": names, "permitted": names
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": rootfs, "readonly": false},
        "hostname": "berth",
        "mounts": mounts,
        "annotations": {"org.berth.net": networks::DEFAULT},
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                {"type": "mount"}
            ],
            "maskedPaths": mounts::MASKED_PATHS,
            "readonlyPaths": mounts::READ_ONLY_PATHS
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_config_passes_the_check_and_parses() {
        let config = default_config(Path::new("rootfs"));
        plan::check_keys(&config).unwrap();
        let spec: oci_spec::runtime::Spec = serde_json::from_value(config).unwrap();
        assert_eq!(
            spec.process().as_ref().unwrap().args().as_ref().unwrap(),
            &["sh"]
        );
    }
}
