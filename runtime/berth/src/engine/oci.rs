//! OCI runtime bundles: `berth run --bundle DIR` runs DIR/config.json (read with oci-spec), and
//! `berth spec` writes one. Every key of config.json is checked against what berth carries
//! out before anything else: one it does not support is refused by name, never ignored.

use std::collections::HashSet;
use std::ffi::{CString, OsString};
use std::path::{Path, PathBuf};

use caps::CapsHashSet;
use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde_json::Value;

use crate::cli::{RunArgs, SpecArgs};
use crate::engine::networks;
use crate::engine::spec::{
    c_string, check_hostname, check_rootfs, choose_network, name_of, Network, RunSpec,
};
use crate::error::{Error, Result};
use berth_container::capabilities::{self, CapabilityPolicy, ProcessSets};
use berth_container::child::ProcessPlan;
use berth_container::mounts::{self, Mount};
use berth_container::namespaces::{Namespace, Namespaces};
use berth_container::rootfs::FilesystemPlan;
use berth_container::user::User;
use berth_state::files;

/// The shape of the config.json keys berth carries out.
enum Shape {
    /// A value taken as it is.
    Value,
    /// An object with these keys.
    Object(&'static [(&'static str, Shape)]),
    /// An array of this shape.
    Array(&'static Shape),
    /// An object with free keys (annotations, sysctl).
    Map,
}

const CAPABILITY_SETS: Shape = Shape::Object(&[
    ("bounding", Shape::Value),
    ("effective", Shape::Value),
    ("inheritable", Shape::Value),
    ("permitted", Shape::Value),
    ("ambient", Shape::Value),
]);

const CONFIG: Shape = Shape::Object(&[
    ("ociVersion", Shape::Value),
    (
        "process",
        Shape::Object(&[
            ("terminal", Shape::Value),
            (
                "consoleSize",
                Shape::Object(&[("height", Shape::Value), ("width", Shape::Value)]),
            ),
            (
                "user",
                Shape::Object(&[
                    ("uid", Shape::Value),
                    ("gid", Shape::Value),
                    ("umask", Shape::Value),
                    ("additionalGids", Shape::Value),
                ]),
            ),
            ("args", Shape::Value),
            ("env", Shape::Value),
            ("cwd", Shape::Value),
            ("capabilities", CAPABILITY_SETS),
            ("rlimits", Shape::Value),
            ("noNewPrivileges", Shape::Value),
            ("oomScoreAdj", Shape::Value),
        ]),
    ),
    (
        "root",
        Shape::Object(&[("path", Shape::Value), ("readonly", Shape::Value)]),
    ),
    ("hostname", Shape::Value),
    ("domainname", Shape::Value),
    (
        "mounts",
        Shape::Array(&Shape::Object(&[
            ("destination", Shape::Value),
            ("type", Shape::Value),
            ("source", Shape::Value),
            ("options", Shape::Value),
        ])),
    ),
    ("annotations", Shape::Map),
    (
        "linux",
        Shape::Object(&[
            (
                "namespaces",
                Shape::Array(&Shape::Object(&[
                    ("type", Shape::Value),
                    ("path", Shape::Value),
                ])),
            ),
            ("sysctl", Shape::Map),
            (
                "resources",
                Shape::Object(&[(
                    "devices",
                    Shape::Array(&Shape::Object(&[
                        ("allow", Shape::Value),
                        ("type", Shape::Value),
                        ("major", Shape::Value),
                        ("minor", Shape::Value),
                        ("access", Shape::Value),
                    ])),
                )]),
            ),
            ("maskedPaths", Shape::Value),
            ("readonlyPaths", Shape::Value),
            ("rootfsPropagation", Shape::Value),
        ]),
    ),
]);

/// Refuses the first key of `value` that `shape` does not have (an empty value is as good as
/// none), naming it by its path (`linux.seccomp`, `mounts[2].uidMappings`).
fn check_keys(value: &Value, shape: &Shape, at: &str) -> Result<()> {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    };
    match (shape, value) {
        (Shape::Object(keys), Value::Object(map)) => {
            for (key, inner) in map {
                let path = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                match keys.iter().find(|(name, _)| name == key) {
                    Some((_, shape)) => check_keys(inner, shape, &path)?,
                    None if empty(inner) => {}
                    None => {
                        return Err(Error::Invalid(format!(
                            "config.json: {path} is not supported by berth; remove it to run \
                             the bundle"
                        )))
                    }
                }
            }
            Ok(())
        }
        (Shape::Array(shape), Value::Array(items)) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_keys(item, shape, &format!("{at}[{i}]"))),
        _ => Ok(()),
    }
}

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
    let path = bundle.join("config.json");
    let text = files::read_regular(&path, files::CONFIG_LIMIT, files::Links::Follow)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    let value: Value = serde_json::from_slice(&text)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    check_keys(&value, &CONFIG, "")?;
    let config: Spec = serde_json::from_value(value)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    if !config.version().starts_with("1.") {
        return Err(invalid(format!(
            "ociVersion {} is not 1.x, the version berth runs",
            config.version()
        )));
    }

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

    // Namespaces.
    let linux = config.linux().clone().unwrap_or_default();
    let mut new = HashSet::new();
    let mut joined: Vec<(LinuxNamespaceType, PathBuf)> = Vec::new();
    for namespace in linux.namespaces().clone().unwrap_or_default() {
        let kind = namespace.typ();
        match namespace.path() {
            None => {
                new.insert(kind);
            }
            Some(path) => joined.push((kind, path.clone())),
        }
    }
    let has = |kind| new.contains(&kind) || joined.iter().any(|(k, _)| *k == kind);
    for kind in [LinuxNamespaceType::User, LinuxNamespaceType::Time] {
        if has(kind) {
            return Err(invalid(format!(
                "linux.namespaces: a {kind} namespace is not supported by berth"
            )));
        }
    }
    if !new.contains(&LinuxNamespaceType::Mount) {
        return Err(invalid(
            "linux.namespaces: berth always makes a new mount namespace; list {\"type\": \
             \"mount\"} without a path"
                .into(),
        ));
    }
    // Each kind: new if listed without a path, joined if listed with one, else the host's.
    let namespace = |kind: LinuxNamespaceType| match joined.iter().find(|(k, _)| *k == kind) {
        Some((_, path)) => Namespace::Join(path.clone()),
        None if new.contains(&kind) => Namespace::New,
        None => Namespace::Host,
    };
    for (kind, _) in &joined {
        if !matches!(
            kind,
            LinuxNamespaceType::Network
                | LinuxNamespaceType::Uts
                | LinuxNamespaceType::Ipc
                | LinuxNamespaceType::Cgroup
        ) {
            return Err(invalid(format!(
                "linux.namespaces: joining a {kind} namespace by path is not supported by \
                 berth (only network, uts, ipc and cgroup)"
            )));
        }
    }
    if !has(LinuxNamespaceType::Uts) {
        return Err(invalid(
            "linux.namespaces: berth gives every container a UTS namespace; list {\"type\": \
             \"uts\"}"
                .into(),
        ));
    }
    let mut namespaces = Namespaces {
        network: Namespace::Host,
        uts: namespace(LinuxNamespaceType::Uts),
        ipc: namespace(LinuxNamespaceType::Ipc),
        pid: if new.contains(&LinuxNamespaceType::Pid) {
            Namespace::New
        } else {
            Namespace::Host
        },
        cgroup: namespace(LinuxNamespaceType::Cgroup),
        join_order: joined
            .iter()
            .filter_map(|(kind, _)| match kind {
                LinuxNamespaceType::Uts => Some(CloneFlags::CLONE_NEWUTS),
                LinuxNamespaceType::Ipc => Some(CloneFlags::CLONE_NEWIPC),
                LinuxNamespaceType::Cgroup => Some(CloneFlags::CLONE_NEWCGROUP),
                _ => None,
            })
            .collect(),
    };
    let pid_private = namespaces.pid == Namespace::New;
    let joins_uts = matches!(namespaces.uts, Namespace::Join(_));
    let names = config
        .hostname()
        .iter()
        .chain(config.domainname())
        .any(|n| !n.is_empty());
    if joins_uts && names {
        return Err(invalid(
            "the bundle joins a UTS namespace by path, so it cannot set hostname or \
             domainname (they would change that namespace's)"
                .into(),
        ));
    }

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
    let network = if let Namespace::Join(path) = namespace(LinuxNamespaceType::Network) {
        if asked {
            return Err(invalid(
                "the bundle joins a network namespace by path, so berth's network options \
                 (--net, -p, --ip, --dns, org.berth.*) do not apply"
                    .into(),
            ));
        }
        Network::Join(path)
    } else if new.contains(&LinuxNamespaceType::Network) {
        choose_network(
            root,
            net.as_deref().unwrap_or(networks::DEFAULT),
            ip,
            &dns,
            &publish,
        )?
    } else {
        if asked {
            return Err(invalid(
                "the bundle shares the host's network (no network namespace in \
                 linux.namespaces), so berth's network options do not apply"
                    .into(),
            ));
        }
        Network::Host
    };
    namespaces.network = network.namespace();

    // The process.
    let Some(process) = config.process().clone() else {
        return Err(invalid("process is missing".into()));
    };
    let argv: Vec<CString> = process
        .args()
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|arg| c_string(&OsString::from(arg), "process.args entry"))
        .collect::<Result<_>>()?;
    if argv.first().is_none_or(|a| a.is_empty()) {
        return Err(invalid("process.args is empty".into()));
    }
    let env: Vec<CString> = process
        .env()
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|entry| {
            if !entry.contains('=') {
                return Err(invalid(format!(
                    "process.env entry {entry:?} is not KEY=VALUE"
                )));
            }
            c_string(&OsString::from(entry), "process.env entry")
        })
        .collect::<Result<_>>()?;
    if !process.cwd().is_absolute() {
        return Err(invalid(format!(
            "process.cwd {} is not absolute",
            process.cwd().display()
        )));
    }
    let user = process.user();
    let rlimits = process
        .rlimits()
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|limit| {
            let name = serde_json::to_value(limit.typ())
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            let resource = resource_named(&name)
                .ok_or_else(|| invalid(format!("process.rlimits: {name} is not supported")))?;
            Ok((resource, limit.soft(), limit.hard()))
        })
        .collect::<Result<Vec<_>>>()?;
    let capability_set = |set: &Option<oci_spec::runtime::Capabilities>| -> Result<CapsHashSet> {
        set.iter()
            .flatten()
            .map(|cap| {
                let name = serde_json::to_value(cap)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                name.parse()
                    .map_err(|_| invalid(format!("process.capabilities: unknown {name}")))
            })
            .collect()
    };
    let oci_caps = process.capabilities().clone().unwrap_or_default();
    let capabilities = CapabilityPolicy {
        keep: capability_set(oci_caps.bounding())?,
        sets: Some(ProcessSets {
            effective: capability_set(oci_caps.effective())?,
            permitted: capability_set(oci_caps.permitted())?,
            inheritable: capability_set(oci_caps.inheritable())?,
            ambient: capability_set(oci_caps.ambient())?,
        }),
        no_new_privs: process.no_new_privileges().unwrap_or(false),
    };
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
    if init && !pid_private {
        return Err(invalid(
            "berth's init runs as PID 1 of a private PID namespace: list {\"type\": \"pid\"} \
             in linux.namespaces"
                .into(),
        ));
    }

    // The root and the mounts.
    let Some(root_config) = config.root().clone() else {
        return Err(invalid("root is missing".into()));
    };
    let rootfs = check_rootfs(&bundle.join(root_config.path()), "root.path")?;
    let mounts = config
        .mounts()
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            Mount::from_oci(
                m.destination(),
                m.typ().as_deref(),
                m.source().as_deref(),
                m.options().as_deref().unwrap_or_default(),
                &bundle,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_devices(&linux)?;
    match linux.rootfs_propagation().as_deref() {
        None | Some("private" | "rprivate") => {}
        Some(other) => {
            return Err(invalid(format!(
                "linux.rootfsPropagation {other:?} is not supported by berth (its mounts are \
                 always private)"
            )))
        }
    }
    let absolute = |paths: &Option<Vec<String>>, key: &str| -> Result<Vec<PathBuf>> {
        paths
            .iter()
            .flatten()
            .map(|p| {
                if p.starts_with('/') {
                    Ok(PathBuf::from(p))
                } else {
                    Err(invalid(format!("{key}: {p} is not absolute")))
                }
            })
            .collect()
    };
    let filesystem = FilesystemPlan {
        rootfs: Some(rootfs),
        read_only: root_config.readonly().unwrap_or(false),
        mounts,
        etc_files: Vec::new(),
        masked_paths: absolute(linux.masked_paths(), "linux.maskedPaths")?,
        read_only_paths: absolute(linux.readonly_paths(), "linux.readonlyPaths")?,
    };

    // The names and sysctls.
    let id = berth_state::new_id()?;
    let (name, named) = name_of(args.name.as_deref(), &id)?;
    let hostname = match config.hostname() {
        Some(hostname) if !hostname.is_empty() => {
            check_hostname(hostname)?;
            hostname.clone()
        }
        _ => name.replace('_', "-"),
    };
    let sysctl: Vec<(String, String)> = linux
        .sysctl()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    for (key, _) in &sysctl {
        check_sysctl(key, &namespaces)?;
    }
    Ok(RunSpec {
        id,
        name,
        hostname,
        network,
        argv,
        env,
        capabilities,
        detached: args.detach,
        log_options: crate::engine::spec::log_options(args)?,
        named,
        filesystem,
        process: ProcessPlan {
            workdir: Some(process.cwd().clone()),
            user: Some(User::Ids {
                uid: user.uid(),
                gid: user.gid(),
                additional_gids: user.additional_gids().clone().unwrap_or_default(),
            }),
            home_is_default: false,
            umask: user.umask(),
            rlimits,
            oom_score_adj: process.oom_score_adj(),
            init,
            terminal: process.terminal().unwrap_or(false),
            console_size: process.console_size().map(|size| {
                (
                    u16::try_from(size.height()).unwrap_or(u16::MAX),
                    u16::try_from(size.width()).unwrap_or(u16::MAX),
                )
            }),
        },
        namespaces,
        sysctl,
        domainname: config.domainname().clone().filter(|d| !d.is_empty()),
    })
}

/// The device rules berth can honour: it has no device cgroup, but every mount in a container
/// is `nodev` except its binds of the usual devices (null, zero, full, random, urandom, tty,
/// and its own ptys), so a rule that denies the rest holds. A rule that allows any other
/// device is refused.
fn check_devices(linux: &oci_spec::runtime::Linux) -> Result<()> {
    let usual = |kind: &str, major: Option<i64>, minor: Option<i64>| {
        kind == "c"
            && matches!(
                (major, minor),
                (Some(1), Some(3 | 5 | 7 | 8 | 9)) | (Some(5), Some(0 | 2)) | (Some(136), _)
            )
    };
    let resources = linux.resources().clone().unwrap_or_default();
    for rule in resources.devices().clone().unwrap_or_default() {
        if !rule.allow() {
            continue;
        }
        let kind = serde_json::to_value(rule.typ())
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_else(|| "a".into());
        if !usual(&kind, rule.major(), rule.minor()) {
            return Err(Error::Invalid(format!(
                "config.json: linux.resources.devices allows device {kind} {}:{}, which berth \
                 cannot grant (it has no device cgroup: a container opens only the usual devices)",
                rule.major().map_or("*".into(), |m| m.to_string()),
                rule.minor().map_or("*".into(), |m| m.to_string()),
            )));
        }
    }
    Ok(())
}

/// A sysctl may be set only if it belongs to a namespace of the container's own.
fn check_sysctl(key: &str, namespaces: &Namespaces) -> Result<()> {
    let own_ipc = namespaces.ipc == Namespace::New;
    let allowed = if key.starts_with("net.") {
        // Not in a joined namespace either: it may be the host's.
        namespaces.network == Namespace::New
    } else if key.starts_with("kernel.shm")
        || key.starts_with("kernel.msg")
        || key == "kernel.sem"
        || key.starts_with("fs.mqueue.")
    {
        own_ipc
    } else {
        false
    };
    if allowed && !key.contains("..") && !key.contains('/') {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "config.json: linux.sysctl {key} is not in a namespace of the container's own \
             (berth sets net.* with a network namespace, kernel.shm*, kernel.msg*, kernel.sem \
             and fs.mqueue.* with an IPC one)"
        )))
    }
}

/// The resource of an rlimit's name (RLIMIT_NOFILE, ...).
fn resource_named(name: &str) -> Option<Resource> {
    Some(match name {
        "RLIMIT_AS" => Resource::RLIMIT_AS,
        "RLIMIT_CORE" => Resource::RLIMIT_CORE,
        "RLIMIT_CPU" => Resource::RLIMIT_CPU,
        "RLIMIT_DATA" => Resource::RLIMIT_DATA,
        "RLIMIT_FSIZE" => Resource::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => Resource::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => Resource::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => Resource::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => Resource::RLIMIT_NICE,
        "RLIMIT_NOFILE" => Resource::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => Resource::RLIMIT_NPROC,
        "RLIMIT_RSS" => Resource::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => Resource::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => Resource::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => Resource::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => Resource::RLIMIT_STACK,
        _ => return None,
    })
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
        "ociVersion": "1.0.2",
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
    fn unsupported_keys_are_named() {
        let config: Value = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "hooks": {},
            "linux": {"namespaces": [{"type": "mount"}], "seccomp": {"defaultAction": "x"}}
        });
        let err = check_keys(&config, &CONFIG, "").unwrap_err().to_string();
        assert!(err.contains("linux.seccomp is not supported"), "{err}");
        let mounts = serde_json::json!({"mounts": [{"destination": "/x", "uidMappings": [1]}]});
        let err = check_keys(&mounts, &CONFIG, "").unwrap_err().to_string();
        assert!(err.contains("mounts[0].uidMappings"), "{err}");
    }

    #[test]
    fn the_written_config_passes_the_check_and_parses() {
        let config = default_config(Path::new("rootfs"));
        check_keys(&config, &CONFIG, "").unwrap();
        let spec: Spec = serde_json::from_value(config).unwrap();
        assert_eq!(
            spec.process().as_ref().unwrap().args().as_ref().unwrap(),
            &["sh"]
        );
    }
}
