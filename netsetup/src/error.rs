//! The one error type of netsetup.

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Everything that can go wrong while setting up or tearing down a network.
///
/// Each variant names the object it failed on, so a caller can print it as is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A netlink request failed.
    #[error("{op} {object}: {source}")]
    Netlink {
        op: &'static str,
        object: String,
        #[source]
        source: io::Error,
    },
    /// An interface with the bridge's name exists but is something else.
    #[error("{name} exists but is a {kind} interface, not a bridge: remove it (ip link del {name}) if it is not needed")]
    NotABridge { name: String, kind: String },
    /// The bridge is managed from another state directory (another `--root`).
    #[error("bridge {bridge} is managed by another berth root, {root}: use --root {root} (two lease files would hand out the same addresses)")]
    BridgeOwnedElsewhere { bridge: String, root: String },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A state file is a symbolic link, which berth never follows.
    #[error("{} is a symbolic link: berth does not follow links in its state directory; remove it", path.display())]
    SymbolicLink { path: PathBuf },
    /// The lease file does not parse; it is left untouched.
    #[error("{}:{line}: {reason}; the file was left as it is: fix or remove that line (a lease on a line that is removed may be handed out again)", path.display())]
    LeaseFileCorrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// The requested address is not a host address of the subnet.
    #[error(
        "address {addr} is not in the network's subnet {subnet}: pick one in it, or leave --ip out"
    )]
    OutsideSubnet {
        addr: Ipv4Addr,
        subnet: ipnet::Ipv4Net,
    },
    /// The requested address is the subnet's network, gateway or broadcast address.
    #[error("address {addr} is reserved in {subnet} (it is the {what} address): pick another, or leave --ip out")]
    ReservedAddress {
        addr: Ipv4Addr,
        subnet: ipnet::Ipv4Net,
        what: &'static str,
    },
    /// The requested address is leased to a live container.
    #[error("address {addr} is already in use by container {container}: pick another, or leave --ip out")]
    AddressInUse { addr: Ipv4Addr, container: String },
    /// Every host address of the subnet is leased to a live container.
    #[error(
        "no free address left in {subnet}: all {count} addresses are leased to running containers"
    )]
    SubnetExhausted {
        subnet: ipnet::Ipv4Net,
        count: usize,
    },
    /// The host port is published by another container.
    #[error("port {port} is already published by container {owner}: pick another host port")]
    PortPublished { port: String, owner: String },
    /// A dual-stack network on a host whose kernel runs without IPv6.
    #[error("IPv6 is turned off on this host (ipv6.disable=1 on the kernel's command line): use a network without --ipv6")]
    Ipv6Unavailable,
    /// The `nft` program could not be run or refused the ruleset.
    #[error("nftables: {0}")]
    Nftables(String),
    /// A container's interface is not as it was configured (a CNI CHECK).
    #[error("{interface} in the container: {what}")]
    AttachmentWrong { interface: String, what: String },
    /// A process-information lookup in /proc failed.
    #[error("cannot read {0}")]
    Proc(String),
    /// Another failure of a record of berth-state's, said as it says it.
    #[error(transparent)]
    State(berth_state::Error),
}

impl From<berth_state::Error> for Error {
    /// A lock or a record of berth-state's: the same failure, said the same way.
    fn from(error: berth_state::Error) -> Self {
        match error {
            berth_state::Error::File { path, source } => Error::File { path, source },
            berth_state::Error::SymbolicLink { path } => Error::SymbolicLink { path },
            berth_state::Error::Proc(what) => Error::Proc(what),
            e @ berth_state::Error::NotADirectory { .. } => Error::State(e),
        }
    }
}

/// netsetup's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A failed operation on a file; opened with O_NOFOLLOW, ELOOP means a link was planted.
    pub(crate) fn file(path: impl Into<PathBuf>, source: io::Error) -> Self {
        berth_state::Error::file(path, source).into()
    }
}
