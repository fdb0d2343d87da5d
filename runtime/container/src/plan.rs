//! An OCI runtime config, checked section by section against what the mechanism carries out
//! and turned into the parts of a container's plan: `read_config` (the file and its keys),
//! `config_namespaces` (the namespaces, with the UTS names that depend on them), then
//! `Plan::from_spec` (the UTS names, the process, the filesystem, the resources, the
//! sysctls). A key berth does not carry out is refused by name, never ignored. The caller
//! (the engine) adds what is its own: the network, the names, the annotations' meaning.

use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use caps::CapsHashSet;
use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use oci_spec::runtime::{Linux, LinuxNamespaceType, Process, Spec};
use serde_json::Value;

use crate::capabilities::{self, CapabilityPolicy, ProcessSets};
use crate::child::ProcessPlan;
use crate::error::{Error, Result};
use crate::mounts::Mount;
use crate::namespaces::{Namespace, Namespaces};
use crate::rootfs::FilesystemPlan;
use crate::user::User;
use berth_state::files;

/// What an OCI config asks of the mechanism, checked.
#[derive(Debug)]
pub struct Plan {
    /// The workload's argv (`process.args`).
    pub argv: Vec<CString>,
    /// Its environment (`process.env`), as KEY=VALUE.
    pub env: Vec<CString>,
    /// Its directory, user, umask, limits and terminal; `init` is the caller's to set.
    pub process: ProcessPlan,
    /// The five capability sets and no_new_privs.
    pub capabilities: CapabilityPolicy,
    /// Each kind new, joined by path or the host's, as the caller settled them.
    pub namespaces: Namespaces,
    /// The root, its mounts, the masked and read-only paths.
    pub filesystem: FilesystemPlan,
    /// The hostname, when the config sets one.
    pub hostname: Option<String>,
    /// The NIS domain name, when the config sets one.
    pub domainname: Option<String>,
    /// Namespaced sysctls to set.
    pub sysctl: Vec<(String, String)>,
}

/// Reads `bundle`'s config.json (a canonical bundle path): every key checked against what
/// berth carries out, then parsed, its version 1.x.
pub fn read_config(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let text = files::read_regular(&path, files::CONFIG_LIMIT, files::Links::Follow)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    let value: Value = serde_json::from_slice(&text)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    check_keys(&value)?;
    let config: Spec = serde_json::from_value(value)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    if !config.version().starts_with("1.") {
        return Err(invalid(format!(
            "ociVersion {} is not 1.x, the version berth runs",
            config.version()
        )));
    }
    Ok(config)
}

/// A config.json that asks for something invalid, in its words.
fn invalid(why: String) -> Error {
    Error::Invalid(format!("config.json: {why}"))
}

/// The first section: `config`'s namespaces, checked with the UTS names that depend on them.
/// The caller may then decide one differently (berth's `--net host` takes the host's network
/// namespace whatever the config lists) before it hands them to [`Plan::from_spec`].
pub fn config_namespaces(config: &Spec) -> Result<Namespaces> {
    let namespaces = namespaces(config.linux().as_ref().unwrap_or(&Linux::default()))?;
    uts_names(config, &namespaces)?;
    Ok(namespaces)
}

/// Where a config comes from, which decides what it may leave out.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// A bundle's config.json; the bundle's canonical path resolves its relative paths, and
    /// it must give a root.
    Bundle(&'a Path),
    /// `berth run`'s flags, made into a config by the engine: without a root the container
    /// keeps the host's (this origin only), and every path is absolute.
    Flags,
}

impl Plan {
    /// Checks the rest of `config` (from `origin`) section by section, in this order, with
    /// `namespaces` from [`config_namespaces`] as the caller settled them, and builds the
    /// plan; nothing is made here.
    pub fn from_spec(config: &Spec, origin: Origin, namespaces: Namespaces) -> Result<Plan> {
        let linux = config.linux().clone().unwrap_or_default();
        let (hostname, domainname) = uts_names(config, &namespaces)?;
        let Some(process) = config.process() else {
            return Err(invalid("process is missing".into()));
        };
        let (argv, env, process_plan, capabilities) = process_section(process)?;
        let filesystem = filesystem(config, &linux, origin)?;
        if let Some(hostname) = &hostname {
            check_hostname(hostname)?;
        }
        let sysctl = sysctl(&linux, &namespaces)?;
        Ok(Plan {
            argv,
            env,
            process: process_plan,
            capabilities,
            namespaces,
            filesystem,
            hostname,
            domainname,
            sysctl,
        })
    }
}

/// The process section of `config` alone, checked: its directory, user, limits and
/// capabilities (for a command that joins the container later, as `berth exec`).
pub fn process_and_capabilities(config: &Spec) -> Result<(ProcessPlan, CapabilityPolicy)> {
    let Some(process) = config.process() else {
        return Err(invalid("process is missing".into()));
    };
    let (_, _, plan, capabilities) = process_section(process)?;
    Ok((plan, capabilities))
}

/// `linux.namespaces`: a mount and a UTS namespace always, no user or time namespace; each
/// kind new when listed without a path, joined when listed with one (network, uts, ipc and
/// cgroup only, in the config's order), else the host's.
fn namespaces(linux: &Linux) -> Result<Namespaces> {
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
    Ok(Namespaces {
        network: namespace(LinuxNamespaceType::Network),
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
    })
}

/// `hostname` and `domainname`, which a joined UTS namespace cannot take (they would change
/// that namespace's); an empty one is none.
fn uts_names(config: &Spec, namespaces: &Namespaces) -> Result<(Option<String>, Option<String>)> {
    let given = |name: &Option<String>| name.clone().filter(|n| !n.is_empty());
    let (hostname, domainname) = (given(config.hostname()), given(config.domainname()));
    if matches!(namespaces.uts, Namespace::Join(_)) && (hostname.is_some() || domainname.is_some())
    {
        return Err(invalid(
            "the bundle joins a UTS namespace by path, so it cannot set hostname or \
             domainname (they would change that namespace's)"
                .into(),
        ));
    }
    Ok((hostname, domainname))
}

/// `process`: its args (not empty), env (KEY=VALUE), cwd (absolute), user, rlimits,
/// capability sets, no_new_privs, OOM score, terminal.
fn process_section(
    process: &Process,
) -> Result<(Vec<CString>, Vec<CString>, ProcessPlan, CapabilityPolicy)> {
    let argv: Vec<CString> = process
        .args()
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|arg| c_string(OsStr::new(arg), "process.args entry"))
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
            c_string(OsStr::new(entry), "process.env entry")
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
        capabilities::from_oci(set.iter().flatten())
            .map_err(|name| invalid(format!("process.capabilities: unknown {name}")))
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
    let plan = ProcessPlan {
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
        init: false,
        terminal: process.terminal().unwrap_or(false),
        console_size: process.console_size().map(|size| {
            (
                u16::try_from(size.height()).unwrap_or(u16::MAX),
                u16::try_from(size.width()).unwrap_or(u16::MAX),
            )
        }),
    };
    Ok((argv, env, plan, capabilities))
}

/// `root` (a directory of the bundle's, not the host's root; the flags' may leave it out for
/// the host's), `mounts` (nothing over /proc in a root of the container's own), the
/// device rules (`linux.resources`), `linux.rootfsPropagation` (private only), and the masked
/// and read-only paths (absolute).
fn filesystem(config: &Spec, linux: &Linux, origin: Origin) -> Result<FilesystemPlan> {
    let bundle = match origin {
        Origin::Bundle(bundle) => bundle,
        Origin::Flags => Path::new("/"),
    };
    let root = match (config.root(), origin) {
        (Some(root), _) => Some(root),
        (None, Origin::Flags) => None,
        (None, Origin::Bundle(_)) => return Err(invalid("root is missing".into())),
    };
    if let (Some(root), Origin::Flags) = (root, origin) {
        if !root.path().is_absolute() {
            return Err(invalid(format!(
                "root.path {} is not absolute",
                root.path().display()
            )));
        }
    }
    let rootfs = root
        .map(|root| check_rootfs(&bundle.join(root.path()), "root.path"))
        .transpose()?;
    let mounts = config
        .mounts()
        .iter()
        .flatten()
        .map(|m| {
            let mount = Mount::from_oci(
                m.destination(),
                m.typ().as_deref(),
                m.source().as_deref(),
                m.options().as_deref().unwrap_or_default(),
                bundle,
            )?;
            if rootfs.is_some() {
                mount.check_clear_of_proc()?;
            }
            Ok(mount)
        })
        .collect::<Result<Vec<_>>>()?;
    check_devices(linux)?;
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
    Ok(FilesystemPlan {
        rootfs,
        read_only: root.and_then(|root| root.readonly()).unwrap_or(false),
        mounts,
        etc_files: Vec::new(),
        masked_paths: absolute(linux.masked_paths(), "linux.maskedPaths")?,
        read_only_paths: absolute(linux.readonly_paths(), "linux.readonlyPaths")?,
    })
}

/// `linux.sysctl`, each key checked against the container's namespaces.
fn sysctl(linux: &Linux, namespaces: &Namespaces) -> Result<Vec<(String, String)>> {
    let sysctl: Vec<(String, String)> = linux
        .sysctl()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    for (key, _) in &sysctl {
        check_sysctl(key, namespaces)?;
    }
    Ok(sysctl)
}

/// A root filesystem (`what`: `--rootfs` or the bundle's `root.path`): an existing directory
/// other than the host's root, by its canonical path.
pub fn check_rootfs(dir: &Path, what: &str) -> Result<PathBuf> {
    let canonical = std::fs::canonicalize(dir)
        .map_err(|e| Error::Invalid(format!("{what} {}: {e}", dir.display())))?;
    if !canonical.is_dir() {
        return Err(Error::Invalid(format!(
            "{what} {}: not a directory",
            dir.display()
        )));
    }
    if canonical == Path::new("/") {
        return Err(Error::Invalid(format!(
            "{what} /: that is the host's own root; leave it out"
        )));
    }
    Ok(canonical)
}

/// RFC 1123 hostnames: dot-separated labels of letters, digits and '-', each 1 to 63
/// characters, not starting or ending with '-'; at most 64 bytes in all (the kernel's limit).
pub fn check_hostname(hostname: &str) -> Result<()> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if hostname.len() <= 64 && hostname.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid hostname {hostname:?}: use dot-separated labels of letters, digits and '-' (at most 64 characters)"
        )))
    }
}

/// `text` as a C string, refused when it holds a NUL byte.
pub fn c_string(text: &OsStr, what: &str) -> Result<CString> {
    CString::new(text.as_bytes())
        .map_err(|_| Error::Invalid(format!("{what} {text:?} contains a NUL byte")))
}

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

/// Refuses the first key of a config.json that berth does not carry out, by its path.
pub fn check_keys(config: &Value) -> Result<()> {
    check_keys_at(config, &CONFIG, "")
}

/// Refuses the first key of `value` that `shape` does not have (an empty value is as good as
/// none), naming it by its path (`linux.seccomp`, `mounts[2].uidMappings`).
fn check_keys_at(value: &Value, shape: &Shape, at: &str) -> Result<()> {
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
                    Some((_, shape)) => check_keys_at(inner, shape, &path)?,
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
            .try_for_each(|(i, item)| check_keys_at(item, shape, &format!("{at}[{i}]"))),
        _ => Ok(()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A config from JSON, as a bundle's would parse.
    fn spec(config: Value) -> Spec {
        serde_json::from_value(config).expect("a valid OCI config")
    }

    /// The smallest config berth runs, with `patch` merged in at the top level.
    fn minimal(patch: Value) -> Spec {
        let mut config = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "root": {"path": "rootfs"},
            "linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}]}
        });
        for (key, value) in patch.as_object().unwrap() {
            config[key] = value.clone();
        }
        spec(config)
    }

    fn error(result: Result<impl std::fmt::Debug>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn keys_unsupported_are_named_by_their_path() {
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "hooks": {},
            "linux": {"namespaces": [{"type": "mount"}], "seccomp": {"defaultAction": "x"}}
        });
        let err = error(check_keys(&config));
        assert!(err.contains("linux.seccomp is not supported"), "{err}");
        let mounts = serde_json::json!({"mounts": [{"destination": "/x", "uidMappings": [1]}]});
        assert!(error(check_keys(&mounts)).contains("mounts[0].uidMappings"));
        // An empty value is as good as none ("hooks": {} above passed).
        check_keys(&serde_json::json!({"hooks": {}, "linux": {"seccomp": null}})).unwrap();
    }

    fn namespaces_of(list: Value) -> Result<Namespaces> {
        namespaces(
            minimal(serde_json::json!({"linux": {"namespaces": list}}))
                .linux()
                .as_ref()
                .unwrap(),
        )
    }

    #[test]
    fn namespaces_are_new_joined_or_the_hosts_and_joined_in_the_configs_order() {
        let namespaces = namespaces_of(serde_json::json!([
            {"type": "mount"}, {"type": "pid"},
            {"type": "ipc", "path": "/proc/7/ns/ipc"}, {"type": "uts", "path": "/proc/7/ns/uts"},
            {"type": "network", "path": "/proc/7/ns/net"}
        ]))
        .unwrap();
        assert_eq!(namespaces.pid, Namespace::New);
        assert_eq!(namespaces.cgroup, Namespace::Host);
        assert_eq!(namespaces.network, Namespace::Join("/proc/7/ns/net".into()));
        assert_eq!(namespaces.ipc, Namespace::Join("/proc/7/ns/ipc".into()));
        assert_eq!(
            namespaces.join_order,
            [CloneFlags::CLONE_NEWIPC, CloneFlags::CLONE_NEWUTS]
        );
        let new_network = namespaces_of(serde_json::json!([
            {"type": "mount"}, {"type": "uts"}, {"type": "network"}
        ]))
        .unwrap();
        assert_eq!(new_network.network, Namespace::New);
        assert_eq!(new_network.pid, Namespace::Host);
    }

    #[test]
    fn namespaces_round_trip_through_the_oci_form() {
        let bundle = crate::namespaces::tests::a_bundles();
        for made in [
            Namespaces::for_run(false, false),
            Namespaces::for_run(true, true),
            bundle,
        ] {
            let mut linux = Linux::default();
            linux.set_namespaces(Some(made.to_oci()));
            assert_eq!(namespaces(&linux).unwrap(), made);
        }
    }

    #[test]
    fn namespaces_berth_cannot_give_are_refused_by_kind() {
        let refused = |list: Value, expected: &str| {
            let err = error(namespaces_of(list));
            assert!(err.starts_with("config.json: linux.namespaces: "), "{err}");
            assert!(err.contains(expected), "{err}");
        };
        refused(
            serde_json::json!([{"type": "mount"}, {"type": "uts"}, {"type": "user"}]),
            "a user namespace",
        );
        refused(
            serde_json::json!([{"type": "mount"}, {"type": "uts"}, {"type": "time"}]),
            "a time namespace",
        );
        refused(
            serde_json::json!([{"type": "uts"}]),
            "always makes a new mount namespace",
        );
        refused(
            serde_json::json!([{"type": "mount", "path": "/proc/7/ns/mnt"}, {"type": "uts"}]),
            "always makes a new mount",
        );
        refused(
            serde_json::json!([{"type": "mount"}, {"type": "uts"}, {"type": "pid", "path": "/proc/7/ns/pid"}]),
            "joining a pid namespace by path",
        );
        refused(serde_json::json!([{"type": "mount"}]), "a UTS namespace");
    }

    #[test]
    fn uts_names_need_a_uts_namespace_of_the_containers_own() {
        let joined = serde_json::json!({"namespaces": [
            {"type": "mount"}, {"type": "uts", "path": "/proc/7/ns/uts"}
        ]});
        for names in [
            serde_json::json!({"hostname": "web", "linux": joined}),
            serde_json::json!({"domainname": "example", "linux": joined}),
        ] {
            let config = minimal(names);
            let kinds = namespaces(config.linux().as_ref().unwrap()).unwrap();
            assert!(error(uts_names(&config, &kinds)).contains("cannot set hostname"));
        }
        let config = minimal(serde_json::json!({"hostname": "", "linux": joined}));
        let kinds = namespaces(config.linux().as_ref().unwrap()).unwrap();
        assert_eq!(
            uts_names(&config, &kinds).unwrap(),
            (None, None),
            "empty is none"
        );
        let own = minimal(serde_json::json!({"hostname": "web", "domainname": "example"}));
        let kinds = namespaces(own.linux().as_ref().unwrap()).unwrap();
        assert_eq!(
            uts_names(&own, &kinds).unwrap(),
            (Some("web".into()), Some("example".into()))
        );
    }

    fn process_of(
        process: Value,
    ) -> Result<(Vec<CString>, Vec<CString>, ProcessPlan, CapabilityPolicy)> {
        let config = minimal(serde_json::json!({"process": process}));
        process_section(config.process().as_ref().unwrap())
    }

    #[test]
    fn process_is_taken_with_its_user_limits_and_capability_sets() {
        let (argv, env, plan, capabilities) = process_of(serde_json::json!({
            "args": ["sleep", "1"], "env": ["A=1"], "cwd": "/srv", "terminal": true,
            "consoleSize": {"height": 24, "width": 100000},
            "user": {"uid": 1000, "gid": 100, "umask": 18, "additionalGids": [5]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}],
            "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_KILL"]},
            "noNewPrivileges": true, "oomScoreAdj": 100
        }))
        .unwrap();
        assert_eq!(argv, [c"sleep".to_owned(), c"1".to_owned()]);
        assert_eq!(env, [c"A=1".to_owned()]);
        assert_eq!(plan.workdir.as_deref(), Some(Path::new("/srv")));
        assert_eq!(plan.umask, Some(18));
        assert_eq!(plan.rlimits, [(Resource::RLIMIT_NOFILE, 10, 20)]);
        assert_eq!(plan.oom_score_adj, Some(100));
        assert_eq!(
            plan.console_size,
            Some((24, u16::MAX)),
            "clamped, not wrapped"
        );
        assert!(plan.terminal && !plan.init && !plan.home_is_default);
        assert_eq!(plan.user.unwrap().to_string(), "1000:100");
        assert_eq!(capabilities.keep.len(), 2);
        let sets = capabilities.sets.unwrap();
        assert_eq!(sets.effective.len(), 1);
        assert!(sets.ambient.is_empty());
        assert!(capabilities.no_new_privs);
    }

    #[test]
    fn process_entries_berth_cannot_run_are_refused() {
        let user = serde_json::json!({"uid": 0, "gid": 0});
        let refused = |process: Value, expected: &str| {
            let err = error(process_of(process));
            assert!(err.contains(expected), "{err}");
        };
        refused(
            serde_json::json!({"args": [], "cwd": "/", "user": user}),
            "process.args is empty",
        );
        refused(
            serde_json::json!({"args": [""], "cwd": "/", "user": user}),
            "process.args is empty",
        );
        refused(
            serde_json::json!({"args": ["a\u{0}b"], "cwd": "/", "user": user}),
            "contains a NUL byte",
        );
        refused(
            serde_json::json!({"args": ["sh"], "env": ["A"], "cwd": "/", "user": user}),
            "\"A\" is not KEY=VALUE",
        );
        refused(
            serde_json::json!({"args": ["sh"], "cwd": "srv", "user": user}),
            "process.cwd srv is not absolute",
        );
    }

    #[test]
    fn filesystem_refuses_a_missing_root_propagation_and_relative_paths() {
        let bundle = std::env::temp_dir().join(format!("berth-plan-{}", std::process::id()));
        std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
        let of = |patch: Value| {
            let config = minimal(patch);
            filesystem(
                &config,
                config.linux().as_ref().unwrap(),
                Origin::Bundle(&bundle),
            )
        };
        let plan = of(serde_json::json!({
            "root": {"path": "rootfs", "readonly": true},
            "mounts": [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}],
            "linux": {"namespaces": [], "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"],
                      "rootfsPropagation": "rprivate"}
        }))
        .unwrap();
        assert_eq!(
            plan.rootfs,
            Some(std::fs::canonicalize(bundle.join("rootfs")).unwrap())
        );
        assert!(plan.read_only);
        assert_eq!(plan.mounts.len(), 1);
        assert_eq!(plan.masked_paths, [PathBuf::from("/proc/kcore")]);
        assert_eq!(plan.read_only_paths, [PathBuf::from("/proc/sys")]);
        let refused = |patch: Value, expected: &str| {
            let err = error(of(patch));
            assert!(err.contains(expected), "{err}");
        };
        refused(
            serde_json::json!({"root": {"path": "nowhere"}}),
            "root.path ",
        );
        refused(
            serde_json::json!({"root": {"path": "/"}}),
            "that is the host's own root",
        );
        refused(
            serde_json::json!({"linux": {"rootfsPropagation": "shared"}}),
            "linux.rootfsPropagation \"shared\" is not supported",
        );
        refused(
            serde_json::json!({"linux": {"maskedPaths": ["proc/kcore"]}}),
            "linux.maskedPaths: proc/kcore is not absolute",
        );
        refused(
            serde_json::json!({"linux": {"readonlyPaths": ["sys"]}}),
            "linux.readonlyPaths: sys is not absolute",
        );
        let mut rootless = serde_json::to_value(minimal(serde_json::json!({}))).unwrap();
        rootless.as_object_mut().unwrap().remove("root");
        let config = spec(rootless);
        let err = error(filesystem(
            &config,
            &Linux::default(),
            Origin::Bundle(&bundle),
        ));
        assert_eq!(err, "config.json: root is missing");
        std::fs::remove_dir_all(&bundle).unwrap();
    }

    #[test]
    fn the_engines_config_may_keep_the_hosts_root_and_mount_over_its_proc() {
        let mut config = serde_json::to_value(minimal(serde_json::json!({
            "root": {"path": "/tmp"},
            "mounts": [{"destination": "/proc/sys/x", "type": "bind", "source": "/tmp",
                        "options": ["rbind"]}]
        })))
        .unwrap();
        let in_root = filesystem(&spec(config.clone()), &Linux::default(), Origin::Flags);
        assert!(error(in_root).contains("mounts nothing on /proc or below it"));
        config.as_object_mut().unwrap().remove("root");
        let plan = filesystem(&spec(config), &Linux::default(), Origin::Flags).unwrap();
        assert_eq!(plan.rootfs, None, "the host's root");
        assert_eq!(plan.mounts[0].destination, Path::new("/proc/sys/x"));
    }

    #[test]
    fn resources_allow_only_the_usual_devices() {
        let with = |devices: Value| {
            let config = minimal(serde_json::json!({"linux": {"resources": {"devices": devices}}}));
            check_devices(config.linux().as_ref().unwrap())
        };
        with(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"}
        ]))
        .unwrap();
        let err = error(with(
            serde_json::json!([{"allow": true, "type": "b", "major": 8, "minor": 0}]),
        ));
        assert!(err.contains("allows device b 8:0"), "{err}");
        let err = error(with(serde_json::json!([{"allow": true, "access": "rwm"}])));
        assert!(err.contains("allows device a *:*"), "{err}");
    }

    #[test]
    fn sysctls_only_in_a_namespace_of_the_containers_own() {
        let of = |namespaces: Value, key: &str| {
            let config = minimal(serde_json::json!({"linux": {
                "namespaces": namespaces, "sysctl": {key: "1"}
            }}));
            let linux = config.linux().as_ref().unwrap();
            sysctl(linux, &namespaces_of_linux(linux))
        };
        fn namespaces_of_linux(linux: &Linux) -> Namespaces {
            namespaces(linux).unwrap()
        }
        let own = serde_json::json!([{"type": "mount"}, {"type": "uts"}, {"type": "network"}, {"type": "ipc"}]);
        let shared = serde_json::json!([{"type": "mount"}, {"type": "uts"}]);
        let joined = serde_json::json!([{"type": "mount"}, {"type": "uts"},
                                        {"type": "network", "path": "/proc/7/ns/net"}]);
        assert_eq!(
            of(own.clone(), "net.ipv4.ip_forward").unwrap(),
            [("net.ipv4.ip_forward".into(), "1".into())]
        );
        of(own.clone(), "kernel.shmmax").unwrap();
        of(own.clone(), "fs.mqueue.msg_max").unwrap();
        for (namespaces, key) in [
            (shared.clone(), "net.ipv4.ip_forward"),
            (joined, "net.ipv4.ip_forward"),
            (shared, "kernel.shmmax"),
            (own.clone(), "kernel.hostname"),
            (own, "net.ipv4/../../x"),
        ] {
            let err = error(of(namespaces, key));
            assert!(
                err.contains(&format!("linux.sysctl {key} is not in a namespace")),
                "{err}"
            );
        }
    }

    #[test]
    fn hostnames_are_rfc_1123() {
        check_hostname("web-1.example").unwrap();
        for bad in [
            "-web",
            "web-",
            "we_b",
            "",
            "a..b",
            &"a".repeat(64),
            &format!("{}.b", "a".repeat(63)),
        ] {
            assert!(check_hostname(bad).is_err(), "{bad:?}");
        }
    }
}
