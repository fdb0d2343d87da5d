//! `RunSpec`: everything a run will do, validated before anything is created.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use netsetup::NetworkSpec;

use crate::cli::RunArgs;
use crate::engine::networks;
use crate::engine::ports::PublishRequest;
use crate::error::{Error, Result};
use berth_container::capabilities::{self, CapabilityPolicy};
use berth_container::child::ProcessPlan;
use berth_container::log::LogOptions;
use berth_container::mounts::{self, Mount};
use berth_container::namespaces::Namespaces;
use berth_container::plan::{self, Origin, Plan};
pub use berth_container::plan::{c_string, check_hostname, check_rootfs};
use berth_container::rootfs::FilesystemPlan;
use berth_container::user::User;
use berth_state::files;
use oci_spec::runtime::{Linux, LinuxCapabilities, Process, Root, Spec};

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

/// Annotations that berth's own front end writes, for what its flags ask and an OCI config
/// cannot say; a bundle may not set them (they are refused as unknown).
pub mod annotation {
    /// `flags`: the config was made from `berth run`'s flags. Its capabilities then follow
    /// docker's rule: the bounding set is the permitted and effective one for root only
    /// (`-u 1000` keeps none), where a config's process sets survive the change of user. And
    /// `process.user` is not read: the workload keeps berth's user and groups unless [`USER`].
    pub const FRONT: &str = "org.berth.run";
    /// `-u USER[:GROUP]`, looked up in the container's own passwd and group files.
    pub const USER: &str = "org.berth.run.user";
    /// `passwd`: HOME is the user's home in the container's passwd file (no `-e HOME`).
    pub const HOME: &str = "org.berth.run.home";
}

/// The process and capabilities of a config berth kept (see `engine::kept`): one made from
/// the flags as its annotations say (berth wrote them; a bundle could not), any other as it is.
pub fn process_of(config: &Spec) -> Result<(ProcessPlan, CapabilityPolicy)> {
    let (mut process, mut capabilities) = plan::process_and_capabilities(config)?;
    if annotation_of(config, annotation::FRONT) == Some("flags") {
        apply_flags_annotations(config, &mut process, &mut capabilities)?;
    }
    Ok((process, capabilities))
}

/// The annotation `key` of `config`.
fn annotation_of<'a>(config: &'a Spec, key: &str) -> Option<&'a str> {
    config.annotations().as_ref()?.get(key).map(String::as_str)
}

/// What berth's annotations of a config made from the flags say of its process.
fn apply_flags_annotations(
    config: &Spec,
    process: &mut ProcessPlan,
    capabilities: &mut CapabilityPolicy,
) -> Result<()> {
    let given = |key: &str| annotation_of(config, key);
    process.user = given(annotation::USER).map(User::parse).transpose()?;
    process.home_is_default = given(annotation::HOME) == Some("passwd");
    capabilities.sets = None;
    Ok(())
}

/// What the engine settles of a run besides its config.
#[derive(Debug)]
pub struct Engine {
    /// 64 hex digits, random.
    pub id: String,
    /// The container's name.
    pub name: String,
    /// Whether the name was given (`--name`), and so must be claimed.
    pub named: bool,
    /// Its network.
    pub network: Network,
    /// Whether berth's init runs as PID 1 (`--init`, `org.berth.init`).
    pub init: bool,
    /// Whether it runs in the background (`-d`).
    pub detached: bool,
    /// How large a detached container's log may grow.
    pub log_options: LogOptions,
}

impl Network {
    /// Records this network (published as `publish` says) and `init` in `annotations` as a
    /// bundle would ask for them (for the kept config, which says what the run was asked).
    pub fn annotate(
        &self,
        annotations: &mut HashMap<String, String>,
        publish: &[String],
        init: bool,
    ) {
        let mut set = |key: &str, value: String| annotations.insert(key.to_owned(), value);
        set("org.berth.net", self.name().to_owned());
        if init {
            set("org.berth.init", "true".into());
        }
        if let Network::Bridge { requested, dns, .. } = self {
            if let Some(addr) = requested {
                set("org.berth.ip", addr.to_string());
            }
            let joined = |texts: Vec<String>| texts.join(",");
            if !dns.is_empty() {
                set(
                    "org.berth.dns",
                    joined(dns.iter().map(IpAddr::to_string).collect()),
                );
            }
            if !publish.is_empty() {
                set("org.berth.publish", joined(publish.to_vec()));
            }
        }
    }
}

/// One validated `berth run`: its OCI config, what the engine settled, and the mechanism's
/// plan of it.
#[derive(Debug)]
pub struct RunSpec {
    /// What the engine settled: id, name, network, how it runs.
    pub engine: Engine,
    /// The hostname inside the container.
    pub hostname: String,
    /// The run as an OCI config: the bundle's, or the one the flags make (boxed: it is large,
    /// and a supervisor's stack keeps what moving it by value touched).
    pub config: Box<Spec>,
    /// What the mechanism will do: process, capabilities, namespaces, filesystem, sysctls.
    pub plan: Plan,
}

impl RunSpec {
    /// Checks every input of `berth run` without `--bundle` (see `oci::spec_from_bundle`)
    /// and builds the spec (a named network is looked up under `root`); nothing is created
    /// here.
    pub fn from_args(args: RunArgs, root: &Path) -> Result<Self> {
        let log_options = log_options(&args)?;
        let id = berth_state::new_id()?;
        let (name, named) = name_of(args.name.as_deref(), &id)?;
        let hostname = match &args.hostname {
            Some(hostname) => {
                check_hostname(hostname)?;
                hostname.clone()
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
        let user = args.user.as_deref().map(User::parse).transpose()?;
        let namespaces = Namespaces::for_run(matches!(network, Network::Host), pid_private);
        let mut annotations = HashMap::from([(annotation::FRONT.to_owned(), "flags".to_owned())]);
        if let (Some(text), Some(_)) = (&args.user, &user) {
            annotations.insert(annotation::USER.into(), text.clone());
        }
        if home_is_default {
            annotations.insert(annotation::HOME.into(), "passwd".into());
        }
        network.annotate(&mut annotations, &args.publish, args.init);
        let config = flags_config(FlagsConfig {
            argv: &argv,
            env: &env,
            workdir: args.workdir.as_deref(),
            capabilities: &capabilities,
            hostname: args.hostname.as_deref(),
            filesystem: &filesystem,
            namespaces: &namespaces,
            annotations,
        });
        let engine = Engine {
            id,
            name,
            named,
            network,
            init: args.init,
            detached: args.detach,
            log_options,
        };
        let mut spec = RunSpec::plan(config, Origin::Flags, namespaces, engine)?;
        // A config's strings are UTF-8; the command line need not be, and runs as typed.
        spec.plan.argv = argv;
        Ok(spec)
    }

    /// The run of `config` (from `origin`), its namespaces (from [`plan::config_namespaces`])
    /// as the engine settled them: the mechanism's sections checked and planned, then what
    /// berth's own annotations say (of the flags' config only); the config is kept with the
    /// namespaces settled.
    pub fn plan(
        mut config: Box<Spec>,
        origin: Origin,
        namespaces: Namespaces,
        engine: Engine,
    ) -> Result<Self> {
        let mut plan = Plan::from_spec(&config, origin, namespaces)?;
        plan.process.init = engine.init;
        if let Origin::Flags = origin {
            apply_flags_annotations(&config, &mut plan.process, &mut plan.capabilities)?;
        }
        // Kept as it runs: the namespaces as the engine settled them (`--net host`).
        if let Some(linux) = config.linux_mut() {
            linux.set_namespaces(Some(plan.namespaces.to_oci()));
        }
        let hostname = plan
            .hostname
            .clone()
            .unwrap_or_else(|| engine.name.replace('_', "-"));
        Ok(RunSpec {
            engine,
            hostname,
            config,
            plan,
        })
    }

    /// The workload's command as the user typed it.
    pub fn command_line(&self) -> String {
        self.plan
            .argv
            .iter()
            .map(|arg| arg.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The workload's command (its first word), for messages.
    pub fn command_name(&self) -> String {
        self.plan.argv[0].to_string_lossy().into_owned()
    }

    /// The PATH the workload's command is looked up in.
    pub fn path(&self) -> &[u8] {
        path_of(&self.plan.env)
    }
}

/// What the flags ask, checked, for [`flags_config`].
struct FlagsConfig<'a> {
    argv: &'a [CString],
    env: &'a [CString],
    workdir: Option<&'a Path>,
    capabilities: &'a CapabilityPolicy,
    /// `--hostname`; without it the engine names the host after the container, as it
    /// does for a bundle without one.
    hostname: Option<&'a str>,
    filesystem: &'a FilesystemPlan,
    namespaces: &'a Namespaces,
    annotations: HashMap<String, String>,
}

/// The OCI config of checked flags: what a bundle would say for them, with berth's
/// annotations for the rest; no `root` is the host's.
fn flags_config(flags: FlagsConfig) -> Box<Spec> {
    let text = |c: &CString| c.to_string_lossy().into_owned();
    let mut user = oci_spec::runtime::User::default();
    user.set_uid(0);
    user.set_gid(0);
    let keep = capabilities::to_oci(&flags.capabilities.keep);
    let mut sets = LinuxCapabilities::default();
    sets.set_bounding(Some(keep.clone()));
    sets.set_permitted(Some(keep.clone()));
    sets.set_effective(Some(keep));
    sets.set_inheritable(None);
    sets.set_ambient(None);
    let mut process = Process::default();
    process.set_terminal(None);
    process.set_user(user);
    process.set_args(Some(flags.argv.iter().map(text).collect()));
    process.set_env(Some(flags.env.iter().map(text).collect()));
    process.set_cwd(flags.workdir.unwrap_or(Path::new("/")).to_path_buf());
    process.set_capabilities(Some(sets));
    process.set_no_new_privileges(Some(flags.capabilities.no_new_privs));
    process.set_rlimits(None);
    let filesystem = flags.filesystem;
    let paths = |paths: &[PathBuf]| {
        (!paths.is_empty()).then(|| {
            paths
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect()
        })
    };
    let mut linux = Linux::default();
    linux.set_resources(None);
    linux.set_namespaces(Some(flags.namespaces.to_oci()));
    linux.set_masked_paths(paths(&filesystem.masked_paths));
    linux.set_readonly_paths(paths(&filesystem.read_only_paths));
    let mut config = Box::<Spec>::default();
    config.set_version(OCI_VERSION.into());
    config.set_process(Some(process));
    config.set_root(filesystem.rootfs.as_ref().map(|dir| {
        let mut root = Root::default();
        root.set_path(dir.clone());
        root.set_readonly(Some(filesystem.read_only));
        root
    }));
    config.set_hostname(flags.hostname.map(str::to_owned));
    config.set_mounts(Some(
        filesystem.mounts.iter().map(Mount::to_oci_mount).collect(),
    ));
    config.set_annotations(Some(flags.annotations));
    config.set_linux(Some(linux));
    config
}

/// The OCI runtime specification's version of the configs berth writes.
pub const OCI_VERSION: &str = "1.0.2";

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
pub(crate) mod tests {
    use super::*;
    use berth_container::namespaces::Namespace;
    use clap::Parser;
    use std::os::unix::ffi::OsStrExt;

    /// `berth run ARGS` as the flags' front end plans it (no network is looked up).
    pub(crate) fn planned<S: AsRef<OsStr>>(args: &[S]) -> RunSpec {
        let words = [OsStr::new("berth"), OsStr::new("run")]
            .into_iter()
            .chain(args.iter().map(AsRef::as_ref));
        let crate::cli::Command::Run(args) = crate::cli::Cli::parse_from(words).command else {
            unreachable!("a run")
        };
        RunSpec::from_args(*args, Path::new("/nonexistent")).unwrap()
    }

    fn words(text: &str) -> Vec<&OsStr> {
        text.split(' ').map(OsStr::new).collect()
    }

    #[test]
    fn the_flags_make_a_config_a_bundle_could_give_and_plan_it_as_before() {
        let spec = planned(&words(
            "--net none --name web -u 1000:100 -e A=1 -v /tmp:/tmp:ro --cap-drop ALL \
             --cap-add CAP_KILL -w /srv sleep 1",
        ));
        let config = serde_json::to_value(&spec.config).unwrap();
        berth_container::plan::check_keys(&config).unwrap();
        assert_eq!(config["process"]["args"], serde_json::json!(["sleep", "1"]));
        assert!(config.get("root").is_none(), "the host's root");
        let annotations = &config["annotations"];
        assert_eq!(annotations["org.berth.net"], "none");
        assert_eq!(annotations[annotation::FRONT], "flags");
        assert_eq!(annotations[annotation::USER], "1000:100");
        let plan = &spec.plan;
        assert_eq!(
            plan.process.user,
            Some(User::Lookup {
                user: "1000".into(),
                group: Some("100".into())
            }),
            "looked up in the container, not taken as ids"
        );
        assert!(plan.process.home_is_default);
        assert_eq!(plan.capabilities.names(), ["CAP_KILL"]);
        assert_eq!(
            plan.capabilities.sets, None,
            "docker's rule: a user other than root keeps none"
        );
        assert!(plan.capabilities.no_new_privs);
        assert_eq!(plan.namespaces, Namespaces::for_run(false, false));
        assert_eq!(plan.filesystem.rootfs, None);
        assert_eq!(
            plan.filesystem.mounts,
            [Mount::parse_volume("/tmp:/tmp:ro").unwrap()]
        );
        assert!(plan.filesystem.masked_paths.is_empty());
        assert_eq!(plan.process.workdir.as_deref(), Some(Path::new("/srv")));
        let env: Vec<_> = plan.env.iter().map(|e| e.to_str().unwrap()).collect();
        assert_eq!(
            env,
            [
                &format!("PATH={DEFAULT_PATH}"),
                "HOSTNAME=web",
                "HOME=/root",
                "A=1"
            ]
        );
        assert_eq!(spec.hostname, "web");
    }

    #[test]
    fn a_root_filesystem_gets_its_defaults_and_the_command_runs_byte_for_byte() {
        let rootfs = std::env::temp_dir();
        let not_utf8 = OsStr::from_bytes(b"caf\xe9");
        let spec = planned(&[
            OsStr::new("--net"),
            OsStr::new("host"),
            OsStr::new("--rootfs"),
            rootfs.as_os_str(),
            OsStr::new("-e"),
            OsStr::new("HOME=/home/x"),
            OsStr::new("echo"),
            not_utf8,
        ]);
        let plan = &spec.plan;
        assert_eq!(plan.argv[1].as_bytes(), not_utf8.as_bytes());
        assert_eq!(
            plan.filesystem.rootfs,
            Some(std::fs::canonicalize(&rootfs).unwrap())
        );
        assert_eq!(plan.filesystem.mounts, mounts::rootfs_defaults());
        assert_eq!(
            plan.filesystem.masked_paths.len(),
            mounts::MASKED_PATHS.len()
        );
        assert_eq!(plan.namespaces.network, Namespace::Host);
        assert_eq!(
            plan.namespaces.pid,
            Namespace::New,
            "a root of its own has its own PIDs"
        );
        assert_eq!(plan.process.user, None, "berth's own user");
        assert!(!plan.process.home_is_default, "-e HOME");
        assert_eq!(plan.capabilities.names().len(), capabilities::DEFAULT.len());
    }

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
