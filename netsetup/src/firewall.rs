//! berth's one nftables table: masquerade for the subnets it manages and forward accepts.
//!
//! The table is created once through the `nftables` crate (JSON handed to `nft`); every later
//! run only asks the kernel over netlink whether it is still there, which costs one round trip
//! instead of a process.

use std::borrow::Cow;
use std::io;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use nftables::batch::Batch;
use nftables::expr::{
    Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, CT,
};
use nftables::schema::{Chain, NfListObject, Rule, Table};
use nftables::stmt::{Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::{Error, NetworkSpec, Result};

/// The name of berth's table (family `inet`).
pub const TABLE: &str = "berth";

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETTABLE: u16 = 1;
const NFTA_TABLE_NAME: u16 = 1;
const NFPROTO_INET: u8 = 1;
const NLMSG_ERROR: u16 = 2;

/// Asks the kernel whether table `inet berth` exists in this network namespace.
pub fn table_exists() -> Result<bool> {
    query_table(TABLE).map_err(|source| Error::Netlink {
        op: "look up nftables table",
        object: format!("inet {TABLE}"),
        source,
    })
}

fn query_table(name: &str) -> io::Result<bool> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;

    let mut attribute = Vec::with_capacity(16);
    let name_len = name.len() + 1;
    attribute.extend_from_slice(&((4 + name_len) as u16).to_ne_bytes());
    attribute.extend_from_slice(&NFTA_TABLE_NAME.to_ne_bytes());
    attribute.extend_from_slice(name.as_bytes());
    attribute.push(0);
    attribute.resize(attribute.len().next_multiple_of(4), 0);

    let length = 16 + 4 + attribute.len();
    let mut request = Vec::with_capacity(length);
    request.extend_from_slice(&(length as u32).to_ne_bytes());
    request.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE).to_ne_bytes());
    request.extend_from_slice(&1u16.to_ne_bytes()); // NLM_F_REQUEST
    request.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    request.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    request.extend_from_slice(&[NFPROTO_INET, 0, 0, 0]); // nfgenmsg: family, version, res_id
    request.extend_from_slice(&attribute);
    socket.send(&request, 0)?;

    let (reply, _) = socket.recv_from_full()?;
    if reply.len() < 16 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short netlink reply",
        ));
    }
    let kind = u16::from_ne_bytes([reply[4], reply[5]]);
    if kind != NLMSG_ERROR {
        return Ok(true);
    }
    let code = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
    match -code {
        0 => Ok(true),
        libc::ENOENT => Ok(false),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Creates table `inet berth` with masquerade and forward accepts for `network`.
/// The caller holds the network's lock and has seen that the table is missing.
pub fn create_table(network: &NetworkSpec) -> Result<()> {
    let family = NfFamily::INet;
    let table = Cow::Borrowed(TABLE);
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(Table {
        family,
        name: table.clone(),
        ..Table::default()
    }));
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
    batch.add(NfListObject::Chain(chain(
        "postrouting",
        NfChainType::NAT,
        NfHook::Postrouting,
        100,
    )));
    batch.add(NfListObject::Chain(chain(
        "forward",
        NfChainType::Filter,
        NfHook::Forward,
        0,
    )));
    let rule = |chain: &'static str, expr: Vec<Statement<'static>>| {
        NfListObject::Rule(Rule {
            family,
            table: table.clone(),
            chain: Cow::Borrowed(chain),
            expr: Cow::Owned(expr),
            ..Rule::default()
        })
    };
    let bridge = || Expression::String(Cow::Owned(network.bridge.clone()));
    let interface = |key| Expression::Named(NamedExpression::Meta(Meta { key }));
    let matches = |left, op, right| Statement::Match(Match { left, right, op });

    // Masquerade what leaves the subnet by any interface but the bridge.
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
                Expression::Named(NamedExpression::Prefix(Prefix {
                    addr: Box::new(Expression::String(Cow::Owned(
                        network.subnet.network().to_string(),
                    ))),
                    len: network.subnet.prefix_len().into(),
                })),
            ),
            matches(interface(MetaKey::Oifname), Operator::NEQ, bridge()),
            Statement::Masquerade(None),
        ],
    ));
    // Forward what comes from the bridge, and the replies that go back to it.
    batch.add(rule(
        "forward",
        vec![
            matches(interface(MetaKey::Iifname), Operator::EQ, bridge()),
            Statement::Accept(None),
        ],
    ));
    batch.add(rule(
        "forward",
        vec![
            matches(interface(MetaKey::Oifname), Operator::EQ, bridge()),
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
    ));
    apply(&batch.to_nftables())
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
    Err(Error::Nftables(format!(
        "nft could not create table inet {TABLE}: {} (does the kernel have nf_tables with NAT: \
         modprobe nft_masq?)",
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}
