//! berth's one nftables table: masquerade for the subnets it manages, forward accepts, and
//! isolation between its networks.
//!
//! A network is installed once through the `nftables` crate (JSON handed to `nft`); every
//! later run only asks the kernel over netlink whether its marker is still there, which costs
//! one round trip instead of a process.

use std::borrow::Cow;
use std::io;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use nftables::batch::Batch;
use nftables::expr::{
    Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, CT,
};
use nftables::schema::{
    Chain, Element, FlushObject, NfCmd, NfListObject, Rule, Set, SetFlag, SetType, SetTypeValue,
    Table,
};
use nftables::stmt::{Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::{Error, Ipv4Net, NetworkSpec, Result};

/// The name of berth's table (family `inet`).
pub const TABLE: &str = "berth";

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_GETRULE: u16 = 7;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NF_INET_FORWARD: u32 = 2;
const NF_DROP: u32 = 0;
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;

/// A base chain of another table that drops forwarded packets unless a rule accepts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardDrop {
    /// The table's family: `ip`, `ip6` or `inet`.
    pub family: &'static str,
    /// The table.
    pub table: String,
    /// The chain.
    pub chain: String,
}

impl ForwardDrop {
    /// What this chain does to containers on `bridge`, and what to run about it.
    pub fn warning(&self, bridge: &str) -> String {
        format!(
            "chain {} of table {} {} drops forwarded packets by default, so containers on \
             {bridge} cannot reach beyond this host; to let them: {}",
            self.chain,
            self.family,
            self.table,
            self.remedy(bridge)
        )
    }

    /// What to run so that the bridge's traffic passes this chain.
    pub fn remedy(&self, bridge: &str) -> String {
        let (family, table, chain) = (self.family, &self.table, &self.chain);
        format!(
            "nft insert rule {family} {table} {chain} iifname {bridge} accept; \
             nft insert rule {family} {table} {chain} oifname {bridge} ct state established,related accept"
        )
    }
}

/// Lists the forward-hook base chains of other `ip` and `inet` tables whose policy is drop
/// (docker's and ufw's `FORWARD DROP` through iptables-nft) and none of whose rules names
/// `bridge`: an accept in berth's table does not override them. One netlink dump when there
/// are none. Not seen: iptables-legacy rules, a final reject rule, accepts in a chain that the
/// forward chain jumps to (a rule that names the bridge counts as handled, whatever it does).
pub fn forward_drop_chains(bridge: &str) -> Result<Vec<ForwardDrop>> {
    dump_forward_drops(bridge).map_err(|source| Error::Netlink {
        op: "list",
        object: "nftables chains".into(),
        source,
    })
}

fn dump_forward_drops(bridge: &str) -> io::Result<Vec<ForwardDrop>> {
    let mut found = Vec::new();
    dump(NFT_MSG_GETCHAIN, 0, &[], |family, attributes| {
        found.extend(forward_drop(family, attributes));
    })?;
    // A chain whose rules already name the bridge was taken care of (by berth's remedy, say).
    let mut open = Vec::new();
    for chain in found {
        if !chain_rules_mention(&chain, bridge)? {
            open.push(chain);
        }
    }
    Ok(open)
}

/// Whether any rule of `chain` carries the bytes of `name` (an interface match on it).
fn chain_rules_mention(chain: &ForwardDrop, name: &str) -> io::Result<bool> {
    const NFTA_RULE_TABLE: u16 = 1;
    const NFTA_RULE_CHAIN: u16 = 2;
    let family = if chain.family == "inet" {
        NFPROTO_INET
    } else {
        NFPROTO_IPV4
    };
    let mut found = false;
    let filters = [
        (NFTA_RULE_TABLE, chain.table.as_str()),
        (NFTA_RULE_CHAIN, chain.chain.as_str()),
    ];
    dump(NFT_MSG_GETRULE, family, &filters, |_, attributes| {
        found |= attributes
            .windows(name.len() + 1)
            .any(|w| &w[..name.len()] == name.as_bytes() && w[name.len()] == 0);
    })?;
    Ok(found)
}

/// Sends an nftables dump request of `kind` for `family` (0: every family) with string
/// attributes `filters`, and hands each reply's family and attributes to `each`.
fn dump(
    kind: u16,
    family: u8,
    filters: &[(u16, &str)],
    mut each: impl FnMut(u8, &[u8]),
) -> io::Result<()> {
    let socket = netfilter_socket()?;
    socket.send(&request(kind, NLM_F_DUMP, family, filters), 0)?;

    loop {
        let (datagram, _) = socket.recv_from_full()?;
        let mut rest = &datagram[..];
        while rest.len() >= 16 {
            let length = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            if length < 16 || length > rest.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bad netlink message",
                ));
            }
            let message = &rest[..length];
            rest = &rest[length.next_multiple_of(4).min(rest.len())..];
            match kind {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let code =
                        i32::from_ne_bytes([message[16], message[17], message[18], message[19]]);
                    return Err(io::Error::from_raw_os_error(-code));
                }
                _ if message.len() >= 20 => each(message[16], &message[20..]),
                _ => {}
            }
        }
    }
}

/// The chain described by `attributes` (of a table of `family`), if it is a forward-hook base
/// chain with a drop policy in a table other than berth's.
fn forward_drop(family: u8, attributes: &[u8]) -> Option<ForwardDrop> {
    // berth's traffic is IPv4: an ip6 table's policy does not touch it.
    let family = match family {
        NFPROTO_INET => "inet",
        NFPROTO_IPV4 => "ip",
        _ => return None,
    };
    let (mut table, mut chain, mut hook, mut policy) = (None, None, None, None);
    for (kind, value) in attributes_of(attributes) {
        match kind {
            NFTA_CHAIN_TABLE => table = c_string(value),
            NFTA_CHAIN_NAME => chain = c_string(value),
            NFTA_CHAIN_POLICY => policy = be_u32(value),
            NFTA_CHAIN_HOOK => {
                hook = attributes_of(value)
                    .find(|(kind, _)| *kind == NFTA_HOOK_HOOKNUM)
                    .and_then(|(_, v)| be_u32(v))
            }
            _ => {}
        }
    }
    let table = table?;
    (hook? == NF_INET_FORWARD && policy? == NF_DROP && !(family == "inet" && table == TABLE)).then(
        || ForwardDrop {
            family,
            table,
            chain: chain.unwrap_or_default(),
        },
    )
}

/// The (type, value) pairs of a run of netlink attributes.
fn attributes_of(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let length = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let kind = u16::from_ne_bytes([data[2], data[3]]) & 0x3fff;
        if length < 4 || length > data.len() {
            return None;
        }
        let value = &data[4..length];
        data = &data[length.next_multiple_of(4).min(data.len())..];
        Some((kind, value))
    })
}

fn c_string(value: &[u8]) -> Option<String> {
    let text = value.split(|&b| b == 0).next()?;
    Some(String::from_utf8_lossy(text).into_owned())
}

fn be_u32(value: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(value.get(..4)?.try_into().ok()?))
}

fn netfilter_socket() -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    Ok(socket)
}

/// Whether `network` is installed in berth's table (its marker chain exists, and so its set
/// elements, which come in the same transaction). One netlink round trip, no process.
pub fn installed(network: &NetworkSpec) -> Result<bool> {
    let marker = Installed::of(network).marker();
    let filters = [
        (NFTA_CHAIN_TABLE, TABLE),
        (NFTA_CHAIN_NAME, marker.as_str()),
    ];
    exists(NFT_MSG_GETCHAIN, &filters).map_err(|source| Error::Netlink {
        op: "look up nftables chain",
        object: format!("inet {TABLE} {marker}"),
        source,
    })
}

/// Asks for one object of berth's `inet` family by its string attributes: found or ENOENT.
fn exists(kind: u16, filters: &[(u16, &str)]) -> io::Result<bool> {
    let socket = netfilter_socket()?;
    socket.send(&request(kind, 0, NFPROTO_INET, filters), 0)?;
    let (reply, _) = socket.recv_from_full()?;
    if reply.len() < 20 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short netlink reply",
        ));
    }
    if u16::from_ne_bytes([reply[4], reply[5]]) != NLMSG_ERROR {
        return Ok(true);
    }
    match -i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]) {
        0 => Ok(true),
        libc::ENOENT => Ok(false),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// An nftables request of `kind` with `flags` beside NLM_F_REQUEST, for `family`, carrying
/// string attributes `filters`.
fn request(kind: u16, flags: u16, family: u8, filters: &[(u16, &str)]) -> Vec<u8> {
    let mut attributes = Vec::new();
    for (kind, text) in filters {
        let start = attributes.len();
        attributes.extend_from_slice(&((4 + text.len() + 1) as u16).to_ne_bytes());
        attributes.extend_from_slice(&kind.to_ne_bytes());
        attributes.extend_from_slice(text.as_bytes());
        attributes.push(0);
        attributes.resize(start + (attributes.len() - start).next_multiple_of(4), 0);
    }
    let length = 20 + attributes.len();
    let mut request = Vec::with_capacity(length);
    request.extend_from_slice(&(length as u32).to_ne_bytes());
    request.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | kind).to_ne_bytes());
    request.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    request.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    request.extend_from_slice(&[family, 0, 0, 0]); // nfgenmsg: family, version, res_id
    request.extend_from_slice(&attributes);
    request
}

/// Installs `networks` in berth's table, making the table if it is missing: one transaction,
/// idempotent, and safe when many callers race. The table's rules are a fixed handful that
/// look networks up in sets; a network is only elements of those sets:
///
/// - `bridges`: every berth bridge. Forwarded packets from one to another are dropped (networks
///   are isolated), those from a bridge out are accepted, and replies back in.
/// - `same_bridge`: `bridge . bridge` pairs, accepted before that drop (hairpin traffic).
/// - `internal`: bridges of internal networks, whose traffic never leaves the host.
/// - `masq_subnets`: the subnets whose traffic is masqueraded when it leaves by another
///   interface.
///
/// An empty chain named after the network's bridge, subnet and kind (`net/SUBNET/PREFIX/x|i/
/// BRIDGE`) marks it as installed (see [`installed`]) and says which elements are its own.
pub fn install(networks: &[&NetworkSpec]) -> Result<()> {
    apply(&table_batch(networks, false).to_nftables())
}

/// Replaces berth's table by a fresh one holding `networks` (after a firewall reload flushed
/// it, say), in one transaction.
pub fn reinstall(networks: &[&NetworkSpec]) -> Result<()> {
    apply(&table_batch(networks, true).to_nftables())
}

/// Removes from berth's table every network installed on `bridge` (its elements and marker),
/// whatever its subnet; nothing to do when there is none.
pub fn uninstall(bridge: &str) -> Result<()> {
    let mut batch = Batch::new();
    let mut any = false;
    for marker in markers()? {
        let Some(installed) = Installed::from_marker(&marker) else {
            continue;
        };
        if installed.bridge != bridge {
            continue;
        }
        any = true;
        for (set, element) in installed.elements() {
            batch.delete(NfListObject::Element(Element {
                family: NfFamily::INet,
                table: Cow::Borrowed(TABLE),
                name: Cow::Borrowed(set),
                elem: Cow::Owned(vec![element]),
            }));
        }
        batch.delete(NfListObject::Chain(Chain {
            family: NfFamily::INet,
            table: Cow::Borrowed(TABLE),
            name: Cow::Owned(marker),
            ..Chain::default()
        }));
    }
    if !any {
        return Ok(());
    }
    apply(&batch.to_nftables())
}

/// The names of the marker chains in berth's table (none when there is no table).
fn markers() -> Result<Vec<String>> {
    let mut names = Vec::new();
    let listed = dump(
        NFT_MSG_GETCHAIN,
        NFPROTO_INET,
        &[(NFTA_CHAIN_TABLE, TABLE)],
        |_, attributes| {
            let (mut table, mut name) = (None, None);
            for (kind, value) in attributes_of(attributes) {
                match kind {
                    NFTA_CHAIN_TABLE => table = c_string(value),
                    NFTA_CHAIN_NAME => name = c_string(value),
                    _ => {}
                }
            }
            if let (Some(TABLE), Some(name)) = (table.as_deref(), name) {
                if name.starts_with(MARKER_PREFIX) {
                    names.push(name);
                }
            }
        },
    );
    match listed {
        Ok(()) => Ok(names),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(Vec::new()),
        Err(source) => Err(Error::Netlink {
            op: "list",
            object: format!("chains of inet {TABLE}"),
            source,
        }),
    }
}

const MARKER_PREFIX: &str = "net/";

/// What a marker chain says of the network it marks: the elements that are its own.
struct Installed {
    bridge: String,
    subnet: Ipv4Net,
    internal: bool,
}

impl Installed {
    fn of(network: &NetworkSpec) -> Self {
        Installed {
            bridge: network.bridge.clone(),
            subnet: network.subnet,
            internal: network.internal,
        }
    }

    /// `net/SUBNET/PREFIX/x|i/BRIDGE`: a bridge name holds no '/', so it can come last.
    fn marker(&self) -> String {
        format!(
            "{MARKER_PREFIX}{}/{}/{}/{}",
            self.subnet.network(),
            self.subnet.prefix_len(),
            if self.internal { "i" } else { "x" },
            self.bridge
        )
    }

    fn from_marker(name: &str) -> Option<Self> {
        let mut parts = name.strip_prefix(MARKER_PREFIX)?.splitn(4, '/');
        let addr: std::net::Ipv4Addr = parts.next()?.parse().ok()?;
        let prefix: u8 = parts.next()?.parse().ok()?;
        let internal = match parts.next()? {
            "i" => true,
            "x" => false,
            _ => return None,
        };
        Some(Installed {
            subnet: Ipv4Net::new(addr, prefix).ok()?,
            internal,
            bridge: parts.next()?.to_owned(),
        })
    }

    /// The set elements that stand for the network in berth's table.
    fn elements(&self) -> Vec<(&'static str, Expression<'static>)> {
        let bridge = || Expression::String(Cow::Owned(self.bridge.clone()));
        let mut elements = vec![
            ("bridges", bridge()),
            (
                "same_bridge",
                Expression::Named(NamedExpression::Concat(vec![bridge(), bridge()])),
            ),
        ];
        if self.internal {
            elements.push(("internal", bridge()));
        } else {
            elements.push((
                "masq_subnets",
                Expression::Named(NamedExpression::Prefix(Prefix {
                    addr: Box::new(Expression::String(Cow::Owned(
                        self.subnet.network().to_string(),
                    ))),
                    len: self.subnet.prefix_len().into(),
                })),
            ));
        }
        elements
    }
}

/// The transaction that makes (or with `replace`, remakes) berth's table with its sets, chains
/// and fixed rules, and installs `networks` in it. Without `replace`, sets and their elements
/// that exist are kept; the base chains are flushed and refilled, so the rules never double.
fn table_batch<'a>(networks: &[&NetworkSpec], replace: bool) -> Batch<'a> {
    let family = NfFamily::INet;
    let table = Cow::Borrowed(TABLE);
    let mut batch = Batch::new();
    let berth_table = || {
        NfListObject::Table(Table {
            family,
            name: table.clone(),
            ..Table::default()
        })
    };
    if replace {
        // `add` then `delete` works whether or not the table exists.
        batch.add(berth_table());
        batch.delete(berth_table());
    }
    batch.add(berth_table());
    let set = |name: &'static str, set_type, flags: Option<SetFlag>| {
        NfListObject::Set(Box::new(Set {
            family,
            table: table.clone(),
            name: Cow::Borrowed(name),
            handle: None,
            set_type,
            policy: None,
            flags: flags.map(|flag| [flag].into_iter().collect()),
            elem: None,
            timeout: None,
            gc_interval: None,
            size: None,
            comment: None,
        }))
    };
    let ifname = || SetTypeValue::Single(SetType::Ifname);
    batch.add(set("bridges", ifname(), None));
    batch.add(set(
        "same_bridge",
        SetTypeValue::Concatenated(Cow::Owned(vec![SetType::Ifname, SetType::Ifname])),
        None,
    ));
    batch.add(set("internal", ifname(), None));
    batch.add(set(
        "masq_subnets",
        SetTypeValue::Single(SetType::Ipv4Addr),
        Some(SetFlag::Interval),
    ));

    let chain = |name: &'static str, kind, hook, prio| Chain {
        family,
        table: table.clone(),
        name: Cow::Borrowed(name),
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    };
    let postrouting = chain("postrouting", NfChainType::NAT, NfHook::Postrouting, 100);
    let forward = chain("forward", NfChainType::Filter, NfHook::Forward, 0);
    for base in [postrouting, forward] {
        batch.add(NfListObject::Chain(base.clone()));
        batch.add_cmd(NfCmd::Flush(FlushObject::Chain(base)));
    }
    let rule = |chain: &'static str, expr: Vec<Statement<'static>>| {
        NfListObject::Rule(Rule {
            family,
            table: table.clone(),
            chain: Cow::Borrowed(chain),
            expr: Cow::Owned(expr),
            ..Rule::default()
        })
    };
    let meta = |key| Expression::Named(NamedExpression::Meta(Meta { key }));
    let set_ref = |name: &'static str| Expression::String(Cow::Borrowed(name));
    let matches = |left, op, right| Statement::Match(Match { left, right, op });
    let iif_in = |set| matches(meta(MetaKey::Iifname), Operator::EQ, set_ref(set));
    let oif_in = |set| matches(meta(MetaKey::Oifname), Operator::EQ, set_ref(set));

    // Masquerade what leaves a masqueraded subnet by an interface that is not a berth bridge.
    batch.add(rule(
        "postrouting",
        vec![
            matches(
                Expression::Named(NamedExpression::Payload(Payload::PayloadField(
                    PayloadField {
                        protocol: Cow::Borrowed("ip"),
                        field: Cow::Borrowed("saddr"),
                    },
                ))),
                Operator::EQ,
                set_ref("@masq_subnets"),
            ),
            matches(meta(MetaKey::Oifname), Operator::NEQ, set_ref("@bridges")),
            Statement::Masquerade(None),
        ],
    ));
    let forward_rules = [
        // Routed within one bridge (hairpin): allowed.
        vec![
            matches(
                Expression::Named(NamedExpression::Concat(vec![
                    meta(MetaKey::Iifname),
                    meta(MetaKey::Oifname),
                ])),
                Operator::EQ,
                set_ref("@same_bridge"),
            ),
            Statement::Accept(None),
        ],
        // From one network to another: dropped.
        vec![
            iif_in("@bridges"),
            oif_in("@bridges"),
            Statement::Drop(None),
        ],
        // In or out of an internal network: dropped.
        vec![iif_in("@internal"), Statement::Drop(None)],
        vec![oif_in("@internal"), Statement::Drop(None)],
        // Out of a network, and the replies back in.
        vec![iif_in("@bridges"), Statement::Accept(None)],
        vec![
            oif_in("@bridges"),
            matches(
                Expression::Named(NamedExpression::CT(CT {
                    key: Cow::Borrowed("state"),
                    family: None,
                    dir: None,
                })),
                Operator::IN,
                Expression::List(vec![
                    Expression::String(Cow::Borrowed("established")),
                    Expression::String(Cow::Borrowed("related")),
                ]),
            ),
            Statement::Accept(None),
        ],
    ];
    for expr in forward_rules {
        batch.add(rule("forward", expr));
    }

    for network in networks {
        let installed = Installed::of(network);
        for (set, element) in installed.elements() {
            batch.add(NfListObject::Element(Element {
                family,
                table: table.clone(),
                name: Cow::Borrowed(set),
                elem: Cow::Owned(vec![element]),
            }));
        }
        batch.add(NfListObject::Chain(Chain {
            family,
            table: table.clone(),
            name: Cow::Owned(installed.marker()),
            ..Chain::default()
        }));
    }
    batch
}

/// Hands a ruleset to `nft -j -f -` and returns nft's own message when it refuses.
fn apply(ruleset: &nftables::schema::Nftables<'_>) -> Result<()> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let json = serde_json::to_vec(ruleset).map_err(|e| Error::Nftables(e.to_string()))?;
    let mut nft = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Nftables(format!("cannot run nft: {e}; install nftables")))?;
    let written = nft.stdin.take().map(|mut stdin| stdin.write_all(&json));
    let output = nft
        .wait_with_output()
        .map_err(|e| Error::Nftables(format!("nft: {e}")))?;
    if let Some(Err(e)) = written {
        return Err(Error::Nftables(format!("writing to nft: {e}")));
    }
    if output.status.success() {
        return Ok(());
    }
    let message = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    // A kernel without nf_tables' NAT refuses the masquerade rule with one of these.
    let hint = if message.contains("No such file or directory") || message.contains("not supported")
    {
        " (does the kernel have nf_tables with NAT: modprobe nft_masq?)"
    } else {
        ""
    };
    Err(Error::Nftables(format!(
        "nft could not change table inet {TABLE}: {message}{hint}"
    )))
}
