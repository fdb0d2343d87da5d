//! `RunSpec`: everything a run will do, validated before anything is created.

use std::ffi::{CString, OsStr};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use netsetup::NetworkSpec;

use crate::cli::RunArgs;
use crate::engine::networks;
use crate::engine::ports::PublishRequest;
use crate::error::{Error, Result};
use berth_container::capabilities::CapabilityPolicy;
use berth_container::child::ProcessPlan;
use berth_container::log::LogOptions;
use berth_container::mounts::{self, Mount};
use berth_container::namespaces::Namespaces;
pub use berth_container::plan::{c_string, check_hostname, check_rootfs};
use berth_container::rootfs::FilesystemPlan;
use berth_container::user::User;
use berth_state::files;

/// The PATH a workload gets unless `-e PATH=...` says otherwise (docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How the container is networked.
#[derive(Debug, Clone)]
pub enum Network {
    /// The host's network namespace.
    Host,
    /// A new network namespace with only `lo`.
    None,
    /// An existing network namespace, an OCI bundle's, joined by the path its namespaces
    /// hold.
    Join,
    /// A new network namespace wired to a bridge network.
    Bridge {
        /// The network to join.
        network: NetworkSpec,
        /// The address asked for with `--ip`.
        requested: Option<Ipv4Addr>,
        /// DNS servers from `--dns`.
        dns: Vec<IpAddr>,
        /// Ports to publish (`-p`).
        publish: Vec<PublishRequest>,
    },
}

impl Network {
    /// The name shown for this network (`host`, `none`, or the bridge network's name).
    pub fn name(&self) -> &str {
        match self {
            Network::Host => "host",
            Network::None => "none",
            Network::Join => networks::JOINED,
            Network::Bridge { network, .. } => &network.name,
        }
    }
}

/// One validated `berth run`.
#[derive(Debug)]
pub struct RunSpec {
    /// 64 hex digits, random.
    pub id: String,
    /// The container's name.
    pub name: String,
    /// The hostname inside the container.
    pub hostname: String,
    /// Its network.
    pub network: Network,
    /// The workload's argv.
    pub argv: Vec<CString>,
    /// The workload's environment, as KEY=VALUE.
    pub env: Vec<CString>,
    /// The capabilities it keeps.
    pub capabilities: CapabilityPolicy,
    /// Whether it runs in the background (`-d`).
    pub detached: bool,
    /// How large a detached container's log may grow.
    pub log_options: LogOptions,
    /// Whether the name was given (`--name`), and so must be claimed.
    pub named: bool,
    /// The root, the mounts (its files over /etc are added by the run).
    pub filesystem: FilesystemPlan,
    /// The workload's directory, user, limits, init.
    pub process: ProcessPlan,
    /// Its namespaces: new, joined by path, or the host's.
    pub namespaces: Namespaces,
    /// Namespaced sysctls to set.
    pub sysctl: Vec<(String, String)>,
    /// The NIS domain name.
    pub domainname: Option<String>,
}

impl RunSpec {
    /// Checks every input of `berth run` without `--bundle` (see `oci::spec_from_bundle`)
    /// and builds the spec (a named network is looked up under `root`); nothing is created
    /// here.
    pub fn from_args(args: RunArgs, root: &Path) -> Result<Self> {
        let log_options = log_options(&args)?;
        let id = berth_state::new_id()?;
        let (name, named) = name_of(args.name.as_deref(), &id)?;
        let hostname = match args.hostname {
            Some(hostname) => {
                check_hostname(&hostname)?;
                hostname
            }
            // The name's own rule keeps it a hostname the kernel takes (at most 63 bytes).
            None => name.replace('_', "-"),
        };
        let network = choose_network(
            root,
            args.net.as_deref().unwrap_or(networks::DEFAULT),
            args.ip,
            &args.dns,
            &args.publish,
        )?;
        if args.command.first().is_some_and(|c| c.is_empty()) {
            return Err(Error::Invalid("the command is empty".into()));
        }
        let argv = args
            .command
            .iter()
            .map(|arg| c_string(arg, "command argument"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut entries = Vec::new();
        for file in &args.env_file {
            entries.extend(read_env_file(file)?);
        }
        entries.extend(args.env.iter().cloned());
        let home_is_default = !entries
            .iter()
            .any(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == "HOME");
        let env = environment(&entries, &hostname)?;
        let capabilities =
            CapabilityPolicy::from_args(&args.cap_add, &args.cap_drop, args.privileged)?;
        let rootfs = args
            .rootfs
            .as_deref()
            .map(|dir| check_rootfs(dir, "--rootfs"))
            .transpose()?;
        if args.read_only && rootfs.is_none() {
            return Err(Error::Invalid(
                "--read-only needs --rootfs: berth makes a root filesystem of the container's \
                 own read-only, never the host's"
                    .into(),
            ));
        }
        if args.init && args.pid.as_deref() == Some("host") {
            return Err(Error::Invalid(
                "--init runs as PID 1 of a private PID namespace: leave out --pid host".into(),
            ));
        }
        // A root filesystem of its own makes a container: its processes get a PID namespace,
        // so that they reach no other container's root through /proc/PID/root.
        let pid_private = args.init
            || match args.pid.as_deref() {
                Some(mode) => mode == "private",
                None => rootfs.is_some(),
            };
        let volumes = args
            .volume
            .iter()
            .map(|text| Mount::parse_volume(text))
            .collect::<Result<Vec<_>, _>>()?;
        let mut filesystem = FilesystemPlan {
            read_only: args.read_only,
            ..FilesystemPlan::default()
        };
        if rootfs.is_some() {
            filesystem.mounts = mounts::rootfs_defaults();
            filesystem.masked_paths = mounts::MASKED_PATHS.map(PathBuf::from).to_vec();
            filesystem.read_only_paths = mounts::READ_ONLY_PATHS.map(PathBuf::from).to_vec();
        } else if pid_private {
            filesystem.mounts.push(mounts::proc_for_private_pids());
        }
        if rootfs.is_some() {
            if let Some((text, _)) = args
                .volume
                .iter()
                .zip(&volumes)
                .find(|(_, volume)| volume.is_under_proc())
            {
                return Err(Error::Invalid(format!(
                    "-v {text}: berth mounts nothing on /proc or below it in a root \
                     filesystem, so that its masked and read-only paths stay as they are (as \
                     runc refuses); choose another container path"
                )));
            }
        } else if let Some((text, volume)) = args
            .volume
            .iter()
            .zip(&volumes)
            .find(|(_, volume)| !volume.destination.exists())
        {
            return Err(Error::Invalid(format!(
                "-v {text}: {} does not exist, and without --rootfs berth makes nothing in \
                     the host's own filesystem",
                volume.destination.display()
            )));
        }
        filesystem.rootfs = rootfs;
        filesystem.mounts.extend(volumes);
        if let Some(dir) = &args.workdir {
            if !dir.is_absolute() {
                return Err(Error::Invalid(format!(
                    "--workdir {}: the path must be absolute",
                    dir.display()
                )));
            }
        }
        let process = ProcessPlan {
            workdir: args.workdir.clone(),
            user: args.user.as_deref().map(User::parse).transpose()?,
            home_is_default,
            init: args.init,
            ..ProcessPlan::default()
        };
        let namespaces = Namespaces::for_run(matches!(network, Network::Host), pid_private);
        Ok(RunSpec {
            id,
            name,
            hostname,
            network,
            argv,
            env,
            capabilities,
            detached: args.detach,
            log_options,
            named,
            filesystem,
            process,
            namespaces,
            sysctl: Vec::new(),
            domainname: None,
        })
    }

    /// The workload's command as the user typed it.
    pub fn command_line(&self) -> String {
        self.argv
            .iter()
            .map(|arg| arg.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The workload's command (its first word), for messages.
    pub fn command_name(&self) -> String {
        self.argv[0].to_string_lossy().into_owned()
    }

    /// The PATH the workload's command is looked up in.
    pub fn path(&self) -> &[u8] {
        path_of(&self.env)
    }
}

/// `--log-opt`, which only a detached container's log takes.
pub fn log_options(args: &RunArgs) -> Result<LogOptions> {
    if !args.log_opt.is_empty() && !args.detach {
        return Err(Error::Invalid(
            "--log-opt needs -d: only a detached container has a log (a foreground one's output \
             goes to the terminal)"
                .into(),
        ));
    }
    Ok(LogOptions::parse(&args.log_opt)?)
}

/// The container's name (`--name`, checked, or the id's first 12 digits) and whether it was
/// given.
pub fn name_of(given: Option<&str>, id: &str) -> Result<(String, bool)> {
    match given {
        Some(name) => {
            check_name(name)?;
            Ok((name.to_owned(), true))
        }
        None => Ok((berth_state::short_id(id).to_owned(), false)),
    }
}

/// The network `net` (host, none, or a bridge network under `root`) with `--ip`, `--dns` and
/// `-p`, checked.
pub fn choose_network(
    root: &Path,
    net: &str,
    ip: Option<Ipv4Addr>,
    dns: &[IpAddr],
    publish: &[String],
) -> Result<Network> {
    Ok(match net {
        "host" | "none" if ip.is_some() || !dns.is_empty() || !publish.is_empty() => {
            let flag = if ip.is_some() {
                "--ip"
            } else if dns.is_empty() {
                "-p"
            } else {
                "--dns"
            };
            return Err(Error::Invalid(format!(
                "{flag} needs a bridge network, not --net {net}"
            )));
        }
        "host" => Network::Host,
        "none" => Network::None,
        name => {
            let network = networks::find(root, name)?.spec();
            if let Some(addr) = ip {
                network.check_address(addr)?;
            }
            let publish = publish
                .iter()
                .map(|text| PublishRequest::parse(text))
                .collect::<Result<Vec<_>>>()?;
            if network.internal && !publish.is_empty() {
                return Err(Error::Invalid(format!(
                    "network {} is internal: nothing reaches its containers from outside, so \
                     they cannot publish ports",
                    network.name
                )));
            }
            Network::Bridge {
                network,
                requested: ip,
                dns: dns.to_vec(),
                publish,
            }
        }
    })
}

/// The entries of an `--env-file`: KEY=VALUE or KEY lines; blank lines and '#' comments are
/// skipped (docker's format).
fn read_env_file(path: &Path) -> Result<Vec<String>> {
    let bad =
        |e: &dyn std::fmt::Display| Error::Invalid(format!("--env-file {}: {e}", path.display()));
    let bytes = files::read_regular(path, files::CONFIG_LIMIT, files::Links::Follow)
        .map_err(|e| bad(&e))?;
    let text = String::from_utf8(bytes).map_err(|e| bad(&e))?;
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split_once('=').map_or(line, |(key, _)| key);
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(Error::Invalid(format!(
                "--env-file {} line {}: {line:?} is not KEY=VALUE or KEY",
                path.display(),
                number + 1
            )));
        }
        entries.push(line.to_owned());
    }
    Ok(entries)
}

/// docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, here at most 63 characters.
fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = name.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid container name {name:?}: use 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )))
    }
}

/// The PATH in environment `env`, or docker's default.
pub fn path_of(env: &[CString]) -> &[u8] {
    env.iter()
        .find_map(|entry| entry.as_bytes().strip_prefix(b"PATH="))
        .unwrap_or(DEFAULT_PATH.as_bytes())
}

/// The workload's environment: docker's clean one (PATH, HOSTNAME, HOME), then `-e` entries.
pub fn environment(entries: &[String], hostname: &str) -> Result<Vec<CString>> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOSTNAME".into(), hostname.into()),
        ("HOME".into(), "/root".into()),
    ];
    for entry in entries {
        let (key, value) = match entry.split_once('=') {
            Some((key, value)) => (key, Some(value.to_owned())),
            None => (entry.as_str(), None),
        };
        if key.is_empty() || key.contains('\0') {
            return Err(Error::Invalid(format!(
                "invalid environment entry {entry:?}: use KEY=VALUE or KEY"
            )));
        }
        // `-e KEY` copies berth's own value, and sets nothing when berth has none (docker).
        let Some(value) = value.or_else(|| std::env::var(key).ok()) else {
            continue;
        };
        env.retain(|(k, _)| k != key);
        env.push((key.to_owned(), value));
    }
    env.into_iter()
        .map(|(k, v)| {
            Ok(c_string(
                OsStr::new(&format!("{k}={v}")),
                "environment entry",
            )?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        assert!(check_name("web_1.a-b").is_ok());
        for bad in ["", "-web", "_web", "we b", "web/1", &"x".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn environment_is_clean_and_overridable() {
        let env = environment(&["PATH=/x".into(), "A=b=c".into()], "h").unwrap();
        let env: Vec<_> = env.iter().map(|e| e.to_str().unwrap()).collect();
        assert_eq!(env, ["HOSTNAME=h", "HOME=/root", "PATH=/x", "A=b=c"]);
        assert!(environment(&["=x".into()], "h").is_err());
    }
}
