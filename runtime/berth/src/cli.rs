//! The command line: clap structures only (they also feed the man pages).

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// berth: docker's networking for a process, without a daemon.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, long_about = None)]
pub struct Cli {
    /// Directory for all of berth's state: leases, container state, generated files.
    #[arg(long, env = "BERTH_ROOT", default_value = "/run/berth", global = true)]
    pub root: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

/// berth's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in new network, UTS and mount namespaces.
    #[command(after_help = "Examples:\n  \
        berth run --net bridge nginx -g 'daemon off;'\n  \
        berth run -d --name web -p 8080:80 -p 127.0.0.1:8443:443 nginx -g 'daemon off;'\n  \
        berth run -d -p 5353:53/udp -p 9000-9003:9000-9003 ./server\n  \
        berth run --net none --name sandbox sh\n  \
        berth run --rootfs rootfs-examples/busybox --pid private --init -v $PWD:/work -w /work sh\n  \
        berth run --bundle ./bundle\n  \
        berth run --ip 10.201.0.50 --dns 198.51.100.2 -e MODE=test ./server")]
    Run(Box<RunArgs>),
    /// Write an OCI runtime bundle's config.json (like `runc spec`) that `berth run --bundle`
    /// runs as it is: sh in the bundle's rootfs, docker's capabilities, a private PID
    /// namespace, the default bridge network.
    #[command(after_help = "Example:\n  \
        mkdir bundle && rootfs-examples/busybox.sh bundle/rootfs\n  \
        berth spec --bundle bundle && berth run --bundle bundle")]
    Spec(SpecArgs),
    /// List containers: running ones, or all with -a.
    #[command(after_help = "Examples:\n  berth ps\n  berth ps -a --format json")]
    Ps(PsArgs),
    /// Run a command in a running container (its network, UTS and mount namespaces, and its
    /// capabilities); the command's exit code is berth's.
    #[command(
        after_help = "Examples:\n  berth exec web ip -br addr\n  berth exec -e DEBUG=1 -w /tmp web sh"
    )]
    Exec(ExecArgs),
    /// Show a container's record and status as JSON.
    #[command(after_help = "Example:\n  berth inspect web")]
    Inspect {
        /// The container's name or the start of its id.
        name: String,
    },
    /// Print a detached container's output.
    #[command(after_help = "Examples:\n  berth logs web\n  berth logs -f web")]
    Logs {
        /// Follow the output until the container ends.
        #[arg(short, long)]
        follow: bool,
        /// The container's name or the start of its id.
        name: String,
    },
    /// Stop containers: SIGTERM, then SIGKILL after the grace period.
    #[command(after_help = "Examples:\n  berth stop web\n  berth stop -t 2 web db")]
    Stop {
        /// Seconds to wait after SIGTERM before SIGKILL.
        #[arg(
            short = 't',
            long = "time",
            value_name = "SECONDS",
            default_value_t = 10
        )]
        time: u64,
        /// The containers' names or the starts of their ids.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Send a signal to containers' workloads.
    #[command(after_help = "Examples:\n  berth kill web\n  berth kill -s HUP web")]
    Kill {
        /// The signal, by name (HUP, SIGTERM) or number.
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        /// The containers' names or the starts of their ids.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove the records of ended detached containers.
    #[command(after_help = "Example:\n  berth rm web")]
    Rm {
        /// The containers' names or the starts of their ids.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove everything left by containers whose launcher is gone (processes, leases,
    /// interfaces, state), printing one line per thing removed.
    #[command(after_help = "Examples:\n  berth gc\n  berth gc --repair")]
    Gc(GcArgs),
    /// Manage berth's networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Check what berth needs (privileges, namespaces, bridge, veth, nftables with NAT, the
    /// host's forward policy, ip_forward, resolv.conf) and print ok / warn / fail with the fix.
    #[command(after_help = "Example:\n  berth doctor")]
    Doctor,
    /// Print a shell completion script for berth.
    #[command(after_help = "Examples:\n  \
        berth completions bash > /etc/bash_completion.d/berth\n  \
        berth completions zsh > /usr/local/share/zsh/site-functions/_berth\n  \
        berth completions fish > /etc/fish/completions/berth.fish")]
    Completions {
        /// The shell: bash, zsh or fish.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

/// The shells berth writes completions for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompletionShell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// `berth network` subcommands.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Make a bridge network; containers join it with `berth run --net NAME` and reach each
    /// other by name.
    #[command(after_help = "Examples:\n  \
        berth network create backend\n  \
        berth network create --subnet 10.30.0.0/24 --gateway 10.30.0.254 --bridge br-app app\n  \
        berth network create --internal secrets")]
    Create(NetworkCreateArgs),
    /// List networks: the built-in bridge, host and none, and the created ones.
    #[command(
        visible_alias = "list",
        after_help = "Examples:\n  berth network ls\n  berth network ls --format json"
    )]
    Ls {
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: PsFormat,
    },
    /// Show a network's settings and its containers as JSON.
    #[command(after_help = "Example:\n  berth network inspect backend")]
    Inspect {
        /// The network's name.
        name: String,
    },
    /// Remove created networks (refused while a container uses one): their bridge, leases and
    /// firewall entries.
    #[command(
        visible_alias = "remove",
        after_help = "Example:\n  berth network rm backend"
    )]
    Rm {
        /// The networks' names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Turn IPv6 on or off for a network that no container uses (the default network's only
    /// setting).
    #[command(group(clap::ArgGroup::new("change").required(true).args(["ipv6", "subnet6", "no_ipv6"])))]
    #[command(after_help = "Examples:\n  \
        berth network update --ipv6 bridge\n  \
        berth network update --subnet6 fd00:1::/64 backend\n  \
        berth network update --no-ipv6 bridge")]
    Update {
        /// Dual stack (see network create --ipv6); the first free /64 of fd62:6572:7468::/48
        /// unless --subnet6 gives one.
        #[arg(long, conflicts_with = "no_ipv6")]
        ipv6: bool,
        /// The IPv6 subnet (implies --ipv6).
        #[arg(long, value_name = "CIDR", value_parser = parse_cidr6, conflicts_with = "no_ipv6")]
        subnet6: Option<netsetup::Ipv6Net>,
        /// IPv4 only.
        #[arg(long = "no-ipv6")]
        no_ipv6: bool,
        /// The network's name.
        name: String,
    },
    /// Remove every created network that no container uses.
    #[command(after_help = "Example:\n  berth network prune")]
    Prune,
    /// Restore berth's nftables table (after a firewall reload flushed the ruleset, say).
    #[command(after_help = "Example:\n  nft flush ruleset; berth network reload")]
    Reload,
}

/// Options of `berth network create`.
#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// The subnet in CIDR notation, a /29 or larger; default: the first free /16 from
    /// 10.202.0.0/16 on.
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub subnet: Option<netsetup::Ipv4Net>,
    /// The bridge's address, the containers' gateway; default: the subnet's first address.
    #[arg(long, value_name = "ADDR")]
    pub gateway: Option<Ipv4Addr>,
    /// The bridge interface's name; default: the first free berthN.
    #[arg(long, value_name = "IFNAME")]
    pub bridge: Option<String>,
    /// No NAT and no route out: members reach each other and the host, nothing beyond.
    #[arg(long)]
    pub internal: bool,
    /// Dual stack: containers also get an IPv6 address (the one that pairs with their IPv4
    /// one), an IPv6 default route and NAT66 out; published ports answer on IPv6 too.
    #[arg(long)]
    pub ipv6: bool,
    /// The IPv6 subnet (implies --ipv6); default: the first free /64 of fd62:6572:7468::/48.
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr6)]
    pub subnet6: Option<netsetup::Ipv6Net>,
    /// The network's name (letters, digits, '_', '.', '-').
    pub name: String,
}

fn parse_cidr(text: &str) -> Result<netsetup::Ipv4Net, String> {
    text.parse()
        .map_err(|_| format!("{text} is not an IPv4 subnet in CIDR notation, such as 10.30.0.0/24"))
}

fn parse_cidr6(text: &str) -> Result<netsetup::Ipv6Net, String> {
    text.parse()
        .map_err(|_| format!("{text} is not an IPv6 subnet in CIDR notation, such as fd00:1::/64"))
}

/// Options of `berth exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Set an environment variable for the command (KEY=VALUE, or KEY to copy berth's).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The working directory inside the container (default: the container's).
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Run as this user, UID[:GID] or NAME[:GROUP] (default: the container's user).
    #[arg(short = 'u', long = "user", value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// The container's name or the start of its id.
    pub name: String,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Options of `berth ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show every container, ended and dead ones too.
    #[arg(short, long)]
    pub all: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: PsFormat,
}

/// How `berth ps` prints.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PsFormat {
    /// Aligned columns.
    Table,
    /// A JSON array of the containers' records.
    Json,
}

/// Options of `berth gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Rebuild a lease file that does not parse from the running containers' state (the old
    /// file is kept as leases.corrupt).
    #[arg(long)]
    pub repair: bool,
}

/// Options of `berth run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Network to join: bridge (berth0, NAT to the outside), none (loopback only), host, or a
    /// network made by `berth network create`. Default: bridge.
    #[arg(long = "net", visible_alias = "network", value_name = "NETWORK")]
    pub net: Option<String>,

    /// Container name (letters, digits, '_', '.', '-'); generated when not given.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Hostname inside the container; defaults to the container's name.
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// Ask for this IPv4 address on the bridge network instead of the lowest free one.
    #[arg(long, value_name = "ADDR")]
    pub ip: Option<Ipv4Addr>,

    /// DNS server for the container's resolv.conf (repeatable); default: the host's.
    #[arg(long, value_name = "ADDR")]
    pub dns: Vec<IpAddr>,

    /// Publish a container port on the host: [HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|/udp], ports
    /// or ranges (8000-8003:80-83; 8000-8010:80 takes the first free host port); without
    /// HOSTPORT a free one is picked (berth ps shows it). Without HOSTIP, on every address, IPv4
    /// and (on a dual-stack network) IPv6; 0.0.0.0 or [::] picks one family; an IPv6 HOSTIP
    /// goes in brackets. Repeatable; bridge networks only.
    #[arg(short = 'p', long = "publish", value_name = "PORTS")]
    pub publish: Vec<String>,

    /// Set an environment variable in the container (KEY=VALUE, or KEY to copy berth's).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Run in the background: print the container's id and return; its output goes to a log
    /// (berth logs).
    #[arg(short = 'd', long)]
    pub detach: bool,

    /// Limit a detached container's log (repeatable): max-size=SIZE (rotate past it; bytes,
    /// or with k, m, g; default 10m) and max-file=N (files kept, the log and the rotated ones;
    /// default 3).
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opt: Vec<String>,

    /// Add a capability to docker's default set (NET_ADMIN, ..., or ALL; repeatable).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,

    /// Drop a capability from the container's set (CHOWN, ..., or ALL; repeatable).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,

    /// Run in this root filesystem (a directory, e.g. from rootfs-examples/busybox.sh) instead
    /// of the host's: the container gets its own /proc, a read-only /sys and a /dev of its own.
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,

    /// Make the root filesystem read-only (needs --rootfs).
    #[arg(long = "read-only")]
    pub read_only: bool,

    /// Bind mount a host path into the container: HOSTPATH:CONTAINERPATH[:ro] (repeatable).
    /// HOSTPATH must exist; without --rootfs, CONTAINERPATH must exist too (berth makes nothing
    /// in the host's own filesystem).
    #[arg(
        short = 'v',
        long = "volume",
        value_name = "HOSTPATH:CONTAINERPATH[:ro]"
    )]
    pub volume: Vec<String>,

    /// The working directory of the command (default /; made in a --rootfs if missing).
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<PathBuf>,

    /// Run as this user: UID[:GID] or NAME[:GROUP], names looked up in the container's
    /// /etc/passwd and /etc/group. A user other than root keeps no capabilities.
    #[arg(short = 'u', long = "user", value_name = "USER[:GROUP]")]
    pub user: Option<String>,

    /// Read environment variables from a file: KEY=VALUE or KEY lines, '#' comments (repeatable;
    /// -e entries come after and win).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,

    /// The PID namespace: host or private. The default is host without --rootfs: the
    /// command is an ordinary process of the host, which berth forwards signals to and reaps
    /// the leftovers of, at no cost. With --rootfs it is private, as docker's: /proc shows only
    /// the container's processes, and no process reaches another container's root through
    /// /proc/PID/root. In a private namespace the command is PID 1, to which the kernel
    /// delivers no signal it has no handler for: a shell ignores `berth stop` (SIGTERM) and
    /// Ctrl-C until the grace period ends. Add --init.
    #[arg(long = "pid", value_name = "host|private", value_parser = ["host", "private"])]
    pub pid: Option<String>,

    /// Run a tiny init as PID 1 of a private PID namespace (implies --pid private): it forwards
    /// signals to the command, reaps orphaned zombies, and exits with the command's status.
    #[arg(long)]
    pub init: bool,

    /// Run an OCI runtime bundle: DIR/config.json (process, root, hostname, mounts, namespaces,
    /// sysctl, rlimits; the network from the annotations org.berth.net and org.berth.publish,
    /// or --net and -p). Options that config.json decides are refused with it.
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,

    /// Give the container every capability and allow new privileges (setuid binaries).
    #[arg(long)]
    pub privileged: bool,

    /// The command to run and its arguments (options after it are the command's own).
    #[arg(
        required_unless_present = "bundle",
        trailing_var_arg = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

/// Options of `berth spec`.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// The root filesystem's path in config.json (relative to the bundle, or absolute).
    #[arg(long, value_name = "PATH", default_value = "rootfs")]
    pub rootfs: PathBuf,
    /// The bundle directory to write config.json in.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
}

#[cfg(test)]
mod man_pages {
    //! The pages in man/ are generated from the definitions above: this test fails when one is
    //! out of date, and `BERTH_UPDATE_MAN=1 cargo test -p berth man_pages` rewrites them.

    use std::path::Path;

    use clap::CommandFactory;

    use super::Cli;

    fn render(command: clap::Command, name: &str, pages: &mut Vec<(String, Vec<u8>)>) {
        let static_name: &'static str = Box::leak(name.to_owned().into_boxed_str());
        let command = command.name(static_name).bin_name(name.replace('-', " "));
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            render(sub.clone(), &format!("{name}-{}", sub.get_name()), pages);
        }
        let mut page = Vec::new();
        clap_mangen::Man::new(command)
            .manual("berth manual")
            .render(&mut page)
            .expect("render a man page");
        pages.push((format!("{name}.1"), page));
    }

    #[test]
    fn man_pages_are_current() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../man");
        let mut pages = Vec::new();
        render(Cli::command(), "berth", &mut pages);
        let update = std::env::var_os("BERTH_UPDATE_MAN").is_some();
        let mut stale = Vec::new();
        for (file, page) in &pages {
            let path = dir.join(file);
            if update {
                std::fs::write(&path, page).expect("write a man page");
            } else if std::fs::read(&path).ok().as_deref() != Some(page.as_slice()) {
                stale.push(file.clone());
            }
        }
        let expected: Vec<&String> = pages.iter().map(|(f, _)| f).collect();
        for entry in std::fs::read_dir(&dir).expect("man/").flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.ends_with(".1") && !expected.contains(&&file) {
                if update {
                    std::fs::remove_file(entry.path()).expect("remove a stale page");
                } else {
                    stale.push(file);
                }
            }
        }
        assert!(
            stale.is_empty(),
            "man pages out of date: {stale:?}; regenerate them with \
             BERTH_UPDATE_MAN=1 cargo test -p berth man_pages"
        );
    }
}
