//! `RunSpec`: everything a run will do, validated before anything is created.

use std::ffi::{CString, OsString};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use netsetup::NetworkSpec;

use crate::cli::RunArgs;
use crate::container::capabilities::CapabilityPolicy;
use crate::error::{Error, Result};
use crate::networks;
use crate::ports::PublishRequest;

/// `--rootfs DIR`: an existing directory other than the host's root, by its canonical path.
fn check_rootfs(dir: &Path) -> Result<std::path::PathBuf> {
    let canonical = std::fs::canonicalize(dir)
        .map_err(|e| Error::Invalid(format!("--rootfs {}: {e}", dir.display())))?;
    if !canonical.is_dir() {
        return Err(Error::Invalid(format!(
            "--rootfs {}: not a directory",
            dir.display()
        )));
    }
    if canonical == Path::new("/") {
        return Err(Error::Invalid(
            "--rootfs /: that is the host's own root; leave --rootfs out".into(),
        ));
    }
    Ok(canonical)
}

/// The PATH a workload gets unless `-e PATH=...` says otherwise (docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How the container is networked.
#[derive(Debug, Clone)]
pub enum Network {
    /// The host's network namespace.
    Host,
    /// A new network namespace with only `lo`.
    None,
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
    /// Whether the name was given (`--name`), and so must be claimed.
    pub named: bool,
    /// The root filesystem (`--rootfs`), by its canonical path; `None`: the host's.
    pub rootfs: Option<std::path::PathBuf>,
    /// Whether the root filesystem is read-only (`--read-only`).
    pub read_only: bool,
}

impl RunSpec {
    /// Checks every input of `berth run` and builds the spec (a named network is looked up
    /// under `root`); nothing is created here.
    pub fn from_args(args: RunArgs, root: &Path) -> Result<Self> {
        let id = new_id()?;
        let named = args.name.is_some();
        let name = match args.name {
            Some(name) => {
                check_name(&name)?;
                name
            }
            None => id[..12].to_owned(),
        };
        let hostname = match args.hostname {
            Some(hostname) => {
                check_hostname(&hostname)?;
                hostname
            }
            // The name's own rule keeps it a hostname the kernel takes (at most 63 bytes).
            None => name.replace('_', "-"),
        };
        let network = match args.net.as_str() {
            "host" | "none"
                if args.ip.is_some() || !args.dns.is_empty() || !args.publish.is_empty() =>
            {
                let flag = if args.ip.is_some() {
                    "--ip"
                } else if args.dns.is_empty() {
                    "-p"
                } else {
                    "--dns"
                };
                return Err(Error::Invalid(format!(
                    "{flag} needs a bridge network, not --net {}",
                    args.net
                )));
            }
            "host" => Network::Host,
            "none" => Network::None,
            name => {
                let network = networks::find(root, name)?.spec();
                if let Some(addr) = args.ip {
                    network.check_address(addr)?;
                }
                let publish = args
                    .publish
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
                    requested: args.ip,
                    dns: args.dns,
                    publish,
                }
            }
        };
        if args.command.first().is_some_and(|c| c.is_empty()) {
            return Err(Error::Invalid("the command is empty".into()));
        }
        let argv = args
            .command
            .iter()
            .map(|arg| c_string(arg, "command argument"))
            .collect::<Result<Vec<_>>>()?;
        let env = environment(&args.env, &hostname)?;
        let capabilities =
            CapabilityPolicy::from_args(&args.cap_add, &args.cap_drop, args.privileged)?;
        let rootfs = args.rootfs.as_deref().map(check_rootfs).transpose()?;
        if args.read_only && rootfs.is_none() {
            return Err(Error::Invalid(
                "--read-only needs --rootfs: berth makes a root filesystem of the container's \
                 own read-only, never the host's"
                    .into(),
            ));
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
            named,
            rootfs,
            read_only: args.read_only,
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

fn new_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn getrandom(buffer: &mut [u8]) -> Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buffer))
        .map_err(|e| Error::file("/dev/urandom", e))
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

/// RFC 1123 hostnames: dot-separated labels of letters, digits and '-', each 1 to 63
/// characters, not starting or ending with '-'; at most 64 bytes in all (the kernel's limit).
fn check_hostname(hostname: &str) -> Result<()> {
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
        .map(|(k, v)| c_string(&OsString::from(format!("{k}={v}")), "environment entry"))
        .collect()
}

/// `text` as a C string, refused when it holds a NUL byte.
pub fn c_string(text: &OsString, what: &str) -> Result<CString> {
    CString::new(text.as_bytes())
        .map_err(|_| Error::Invalid(format!("{what} {text:?} contains a NUL byte")))
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
    fn hostnames_follow_rfc_1123() {
        assert!(check_hostname("web-1.example").is_ok());
        for bad in ["", "web_1", "-web", "web-", "a..b", &"x".repeat(65)] {
            assert!(check_hostname(bad).is_err(), "{bad:?}");
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
