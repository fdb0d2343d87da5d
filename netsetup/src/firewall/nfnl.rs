//! Just enough of nftables' netlink protocol (NETLINK_NETFILTER) to ask the kernel about
//! berth's table and to add or remove set elements without running `nft`: a message builder,
//! dumps, single lookups and batches.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

pub const NFT_MSG_GETCHAIN: u16 = 4;
pub const NFT_MSG_GETRULE: u16 = 7;
pub const NFT_MSG_NEWSETELEM: u16 = 12;
pub const NFT_MSG_GETSETELEM: u16 = 13;
pub const NFT_MSG_DELSETELEM: u16 = 14;
pub const NFTA_CHAIN_TABLE: u16 = 1;
pub const NFTA_CHAIN_NAME: u16 = 3;
pub const NFTA_CHAIN_HOOK: u16 = 4;
pub const NFTA_CHAIN_POLICY: u16 = 5;
pub const NFTA_HOOK_HOOKNUM: u16 = 1;
pub const NF_INET_FORWARD: u32 = 2;
pub const NF_DROP: u32 = 0;
pub const NFPROTO_INET: u8 = 1;
pub const NFPROTO_IPV4: u8 = 2;
pub const NLM_F_ACK: u16 = 4;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLA_F_NESTED: u16 = 0x8000;

/// One netlink message under construction: header, nfgenmsg, then attributes.
pub struct Message {
    buffer: Vec<u8>,
}

impl Message {
    /// An nftables message of `kind` with `flags` beside NLM_F_REQUEST, for `family`.
    pub fn new(kind: u16, flags: u16, family: u8) -> Self {
        Self::raw((NFNL_SUBSYS_NFTABLES << 8) | kind, flags, [family, 0, 0, 0])
    }

    /// A connection-tracking (ctnetlink) message of `kind` with `flags` for `family`.
    pub fn conntrack(kind: u16, flags: u16, family: u8) -> Self {
        Self::raw(
            (NFNL_SUBSYS_CTNETLINK << 8) | kind,
            flags,
            [family, 0, 0, 0],
        )
    }

    fn raw(kind: u16, flags: u16, nfgenmsg: [u8; 4]) -> Self {
        let mut buffer = Vec::with_capacity(128);
        buffer.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `bytes`
        buffer.extend_from_slice(&kind.to_ne_bytes());
        buffer.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        buffer.extend_from_slice(&0u32.to_ne_bytes()); // sequence, set by `transact`
        buffer.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        buffer.extend_from_slice(&nfgenmsg); // family, version, resource id
        Message { buffer }
    }

    /// Adds an attribute holding `value`.
    pub fn attribute(mut self, kind: u16, value: &[u8]) -> Self {
        self.push(kind, value);
        self
    }

    /// Adds attributes already laid out (a copy of some the kernel sent).
    pub fn raw_attributes(mut self, attributes: &[u8]) -> Self {
        self.buffer.extend_from_slice(attributes);
        self.buffer.resize(self.buffer.len().next_multiple_of(4), 0);
        self
    }

    /// Adds a NUL-terminated string attribute.
    pub fn string(self, kind: u16, text: &str) -> Self {
        let mut value = Vec::with_capacity(text.len() + 1);
        value.extend_from_slice(text.as_bytes());
        value.push(0);
        self.attribute(kind, &value)
    }

    /// Adds a nested attribute whose contents `fill` writes.
    pub fn nested(mut self, kind: u16, fill: impl FnOnce(Nest<'_>)) -> Self {
        nest(&mut self.buffer, kind, fill);
        self
    }

    fn push(&mut self, kind: u16, value: &[u8]) {
        push_attribute(&mut self.buffer, kind, value);
    }

    fn bytes(mut self, sequence: u32) -> Vec<u8> {
        let length = self.buffer.len() as u32;
        self.buffer[..4].copy_from_slice(&length.to_ne_bytes());
        self.buffer[8..12].copy_from_slice(&sequence.to_ne_bytes());
        self.buffer
    }
}

/// The inside of a nested attribute.
pub struct Nest<'a> {
    buffer: &'a mut Vec<u8>,
}

impl Nest<'_> {
    /// Adds an attribute holding `value`.
    pub fn attribute(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        push_attribute(self.buffer, kind, value);
        self
    }

    /// Adds a nested attribute whose contents `fill` writes.
    pub fn nested(&mut self, kind: u16, fill: impl FnOnce(Nest<'_>)) -> &mut Self {
        nest(self.buffer, kind, fill);
        self
    }
}

fn push_attribute(buffer: &mut Vec<u8>, kind: u16, value: &[u8]) {
    buffer.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    buffer.extend_from_slice(&kind.to_ne_bytes());
    buffer.extend_from_slice(value);
    buffer.resize(buffer.len().next_multiple_of(4), 0);
}

fn nest(buffer: &mut Vec<u8>, kind: u16, fill: impl FnOnce(Nest<'_>)) {
    let start = buffer.len();
    buffer.extend_from_slice(&[0, 0]);
    buffer.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    fill(Nest { buffer });
    let length = (buffer.len() - start) as u16;
    buffer[start..start + 2].copy_from_slice(&length.to_ne_bytes());
}

thread_local! {
    /// This thread's NETLINK_NETFILTER socket (berth and berth-cni use it from their main
    /// thread only, so it is the process's one), opened on first use and kept. The
    /// kernel's release of such a socket waits while any nftables object that anyone deleted
    /// is not yet freed (one RCU grace period, 5 to 15 ms on a small virtual machine): berth
    /// releases it once, at exit, or hands it on ([`take_socket`]).
    static SOCKET: RefCell<Option<Socket>> = const { RefCell::new(None) };
    /// The last sequence number used on it.
    static SEQUENCE: Cell<u32> = const { Cell::new(0) };
}

/// Runs `exchange` on this process's socket with `count` fresh sequence numbers, the first of
/// which it is given. A socket on which an exchange failed halfway is dropped, so that no
/// reply left on it is taken for the next one's.
fn with_socket<T>(
    count: u32,
    exchange: impl FnOnce(&Socket, u32) -> io::Result<T>,
) -> io::Result<T> {
    SOCKET.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let mut socket = Socket::new(NETLINK_NETFILTER)?;
            socket.bind_auto()?;
            socket.connect(&SocketAddr::new(0, 0))?;
            // A kernel that never answers must not hang berth.
            use nix::sys::socket::{setsockopt, sockopt};
            let patience = nix::sys::time::TimeVal::new(10, 0);
            setsockopt(&socket, sockopt::ReceiveTimeout, &patience).map_err(io::Error::from)?;
            // Acknowledgements without a copy of the request, and room for a batch of
            // thousands of them (a range of ports) and for its request (best effort: without
            // CAP_NET_ADMIN the defaults stay).
            socket.set_cap_ack(true)?;
            let _ = setsockopt(&socket, sockopt::RcvBufForce, &(4 << 20));
            let _ = setsockopt(&socket, sockopt::SndBufForce, &(4 << 20));
            *slot = Some(socket);
        }
        let first = SEQUENCE.with(|sequence| {
            let first = sequence.get().wrapping_add(1);
            sequence.set(first.wrapping_add(count));
            first
        });
        let outcome = exchange(slot.as_ref().expect("opened above"), first);
        if outcome.is_err() {
            *slot = None;
        }
        outcome
    })
}

/// How long a process that took over a netfilter socket ([`take_socket`]) keeps it before it
/// lets go: by then the nftables objects a run deleted are freed (one RCU grace period, 5 to
/// 15 ms on a small virtual machine), so the release neither waits nor holds nftables' commit
/// lock, which would delay the next run's ports. berth and berth-cni hand the socket to a
/// child of their own that sleeps this long, so that neither makes its caller wait.
pub const RELEASE_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// Takes this process's netfilter socket, if it has one, for the caller to release where
/// the wait that release may bring (see [`RELEASE_AFTER`]) does no harm. The next request opens
/// another.
pub fn take_socket() -> Option<OwnedFd> {
    let socket = SOCKET.with(|cell| cell.borrow_mut().take())?;
    // The copy keeps the socket open: dropping the original is not its release.
    socket.as_fd().try_clone_to_owned().ok()
}

/// Sends `request` as a dump and hands each reply's family and attributes to `each`.
pub fn dump(mut request: Message, mut each: impl FnMut(u8, &[u8])) -> io::Result<()> {
    request.buffer[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    exchange(request, |reply| match reply {
        Reply::Done => Some(Ok(())),
        Reply::Ack { code: 0 } => None,
        Reply::Ack { code } => Some(Err(io::Error::from_raw_os_error(code))),
        Reply::Object { family, attributes } => {
            each(family, attributes);
            None
        }
    })
}

/// Sends `request` for one object and returns its attributes, or `None` when the kernel says
/// there is no such object (ENOENT).
pub fn get(request: Message) -> io::Result<Option<Vec<u8>>> {
    exchange(request, |reply| {
        Some(match reply {
            Reply::Object { attributes, .. } => Ok(Some(attributes.to_vec())),
            Reply::Ack { code: 0 } => Ok(Some(Vec::new())),
            Reply::Ack { code: libc::ENOENT } => Ok(None),
            Reply::Ack { code } => Err(io::Error::from_raw_os_error(code)),
            Reply::Done => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "unexpected netlink reply",
            )),
        })
    })
}

/// Sends `request` and hands the replies to it, in order, to `handle` until it returns an
/// outcome.
fn exchange<T>(
    request: Message,
    mut handle: impl FnMut(Reply<'_>) -> Option<io::Result<T>>,
) -> io::Result<T> {
    with_socket(1, |socket, sequence| {
        socket.send(&request.bytes(sequence), 0)?;
        loop {
            let (datagram, _) = socket.recv_from_full()?;
            for (reply_sequence, reply) in replies(&datagram)? {
                if reply_sequence != sequence {
                    continue;
                }
                if let Some(outcome) = handle(reply) {
                    return outcome;
                }
            }
        }
    })
}

/// Sends `messages` as one transaction (a batch), each asking for an acknowledgement, and
/// returns each one's outcome in order: all applied, or (when any failed) none. One datagram
/// out, and the acknowledgements back.
pub fn transact(messages: Vec<Message>) -> io::Result<Vec<io::Result<()>>> {
    let count = messages.len() as u32;
    with_socket(count + 2, |socket, begin| {
        let batch_resource = NFNL_SUBSYS_NFTABLES.to_be_bytes();
        let nfgenmsg = [0, 0, batch_resource[0], batch_resource[1]];
        let mut datagram = Message::raw(NFNL_MSG_BATCH_BEGIN, 0, nfgenmsg).bytes(begin);
        for (index, mut message) in messages.into_iter().enumerate() {
            let flags = u16::from_ne_bytes([message.buffer[6], message.buffer[7]]) | NLM_F_ACK;
            message.buffer[6..8].copy_from_slice(&flags.to_ne_bytes());
            datagram.extend(message.bytes(begin.wrapping_add(index as u32 + 1)));
        }
        datagram.extend(
            Message::raw(NFNL_MSG_BATCH_END, 0, nfgenmsg).bytes(begin.wrapping_add(count + 1)),
        );

        socket.send(&datagram, 0)?;
        let mut outcomes: Vec<Option<io::Result<()>>> = (0..count).map(|_| None).collect();
        let mut pending = count;
        while pending > 0 {
            let (reply, _) = socket.recv_from_full()?;
            for (sequence, reply) in replies(&reply)? {
                let Reply::Ack { code } = reply else { continue };
                let index = sequence.wrapping_sub(begin).wrapping_sub(1) as usize;
                match outcomes.get_mut(index) {
                    Some(slot @ None) => {
                        *slot = Some(match code {
                            0 => Ok(()),
                            code => Err(io::Error::from_raw_os_error(code)),
                        });
                        pending -= 1;
                    }
                    // An error about the batch itself (its begin or end, or the commit).
                    _ if code != 0 && sequence.wrapping_sub(begin) <= count + 1 => {
                        return Err(io::Error::from_raw_os_error(code));
                    }
                    _ => {}
                }
            }
        }
        Ok(outcomes.into_iter().flatten().collect())
    })
}

/// One message from the kernel.
enum Reply<'a> {
    Done,
    /// NLMSG_ERROR: an acknowledgement (code 0) or an error (errno).
    Ack {
        code: i32,
    },
    Object {
        family: u8,
        attributes: &'a [u8],
    },
}

/// The messages in one datagram, each with its sequence number.
fn replies(datagram: &[u8]) -> io::Result<impl Iterator<Item = (u32, Reply<'_>)>> {
    let mut messages = Vec::new();
    let mut rest = datagram;
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
        let sequence = u32::from_ne_bytes([message[8], message[9], message[10], message[11]]);
        let reply = match kind {
            NLMSG_DONE => Reply::Done,
            NLMSG_ERROR if message.len() >= 20 => Reply::Ack {
                code: -i32::from_ne_bytes([message[16], message[17], message[18], message[19]]),
            },
            _ if message.len() >= 20 => Reply::Object {
                family: message[16],
                attributes: &message[20..],
            },
            _ => continue,
        };
        messages.push((sequence, reply));
    }
    Ok(messages.into_iter())
}

/// The (type, value) pairs of a run of netlink attributes.
pub fn attributes_of(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
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

/// The value of the first attribute of `kind` in `data`.
pub fn attribute(data: &[u8], kind: u16) -> Option<&[u8]> {
    attributes_of(data)
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v)
}

/// A NUL-terminated string attribute's text.
pub fn c_string(value: &[u8]) -> Option<String> {
    let text = value.split(|&b| b == 0).next()?;
    Some(String::from_utf8_lossy(text).into_owned())
}

/// A big-endian u32 attribute's value.
pub fn be_u32(value: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(value.get(..4)?.try_into().ok()?))
}
