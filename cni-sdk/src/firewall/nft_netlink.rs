//! The nftables backend over netlink: nf_tables messages on a `NETLINK_NETFILTER` socket, no
//! `nft` process.
//!
//! Messages are built and parsed with `netlink-packet-netfilter` (the rust-netlink crate for the
//! netfilter subsystems, on the same `netlink-packet-core` as `rtnetlink`); the expressions it
//! has no types for (nat, masq, ct, fib, range, counter) are written as its generic attributes.
//! Rules are encoded as `nft` 1.0.6 encodes them ([`super::nft_expr`]), so `nft list` shows
//! them as the `nft` backend writes them and Go's knftables finds them by comment.

use std::collections::BTreeSet;
use std::io;
use std::time::Duration;

use netlink_packet_core::{
    DefaultNla, Emitable, NLA_F_NESTED, NLA_F_NET_BYTEORDER, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_REQUEST, NetlinkMessage, ParseableParametrized,
};
use netlink_packet_netfilter::nftables::{
    Bitwise, ChainAttribute, ChainMessage, Cmp, DataAttribute, ExpressionAttribute, Expressions, GenMessage,
    Hook as NlHook, HookNumber, Immediate, InetHookNumber, ListAttribute, Lookup, Meta, MetaKey, NfTablesMessage,
    Operator, Payload, Register, RuleAttribute, RuleMessage, SetAttribute, SetDescription, SetElementAttribute,
    SetElementFlags, SetElementList, SetElementMessage, SetFlags, SetMessage, TableAttribute, TableMessage,
    Verdict as NlVerdict, VerdictAttribute,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};
use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};

use super::FirewallBackend;
use super::error::{FirewallError, FirewallErrorKind, FirewallResult};
use super::model::{BackendKind, BaseChain, Chain, ChainKind, ChainType, Hook, Policy, Table, TableFamily, TableId};
use super::nft_expr::{AnonSet, CmpOp, Expr, LookupSet, decode_rule, encode_rule, has_raw_nft};
use super::nftables::transaction_text;
use super::process::{Runner, command_line, on_thread};
use super::state::{ChainState, Change, HandleRepr, ListedRule, RuleHandle, TableState};
use crate::netns::NetNs;

/// The nftables backend over netlink (no `nft` process).
///
/// Reads exactly what it is asked for — one table, or one chain and its rules
/// ([`FirewallBackend::read_chains`]), with the elements of the anonymous sets those rules use —
/// and commits a batch as one nf_tables transaction (`NFNL_MSG_BATCH_BEGIN` ... `BATCH_END`),
/// which the kernel applies atomically. So an ADD that touches one chain costs the same however
/// many other chains and rules the ruleset holds, except for the rules of the chains it reads.
///
/// Rules with raw nft text ([`Raw::Nft`](super::Raw::Nft)) need nft's parser: a commit holding
/// one runs `nft -f -` instead (the same transaction, through the `nft` binary). Expressions the
/// model does not cover are listed as [`Raw::NftJson`](super::Raw::NftJson) holding the
/// expression's name and attributes (`counter` as nft prints it).
///
/// Usable when the kernel answers nf_tables requests (no `nft` binary needed); Go's
/// `SupportsNFTables`, which asks for the binary, stays [`super::supports_nftables`].
#[derive(Debug, Clone)]
pub struct NftNetlinkBackend {
    runner: Runner,
    nft: String,
}

impl Default for NftNetlinkBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl NftNetlinkBackend {
    /// Netlink in the caller's network namespace.
    pub fn new() -> Self {
        Self { runner: Runner::default(), nft: "nft".to_owned() }
    }

    /// Talks to the nf_tables of `netns` (the socket is opened from a thread inside it).
    pub fn in_netns(mut self, netns: NetNs) -> Self {
        self.runner.netns = Some(netns);
        self
    }

    /// The `nft` binary for rules with raw nft text (default: `nft` from `PATH`).
    pub fn nft_binary(mut self, path: impl Into<String>) -> Self {
        self.nft = path.into();
        self
    }

    /// Gives up on a kernel that does not answer within `timeout` (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.runner.timeout = timeout;
        self
    }

    async fn session<T: Send + 'static>(
        &self,
        what: String,
        job: impl FnOnce(&mut Session) -> FirewallResult<T> + Send + 'static,
    ) -> FirewallResult<T> {
        let timeout = self.runner.timeout;
        on_thread(self.runner.netns.as_ref(), &what.clone(), move || {
            let mut s = Session::open(timeout)?;
            job(&mut s).map_err(|e| e.context(&what))
        })
        .await
    }

    async fn commit_impl(&self, changes: &[Change]) -> FirewallResult<()> {
        let raw = changes.iter().any(|c| match c {
            Change::AppendRule { rule, .. } | Change::InsertRule { rule, .. } => has_raw_nft(rule),
            _ => false,
        });
        if raw {
            // Raw nft text needs nft's parser: the same transaction through `nft -f -`.
            let text = transaction_text(changes)?;
            let args = vec!["-f".to_owned(), "-".to_owned()];
            let out = self.runner.run(&self.nft, &args, Some(text)).await?;
            return if out.success() {
                Ok(())
            } else {
                Err(FirewallError::tool(command_line(&self.nft, &args), &out.stderr, out.code))
            };
        }
        let batch = build_batch(changes)?;
        self.session("nftables transaction".to_owned(), move |s| s.batch(&batch)).await
    }
}

impl FirewallBackend for NftNetlinkBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Nftables
    }

    async fn probe(&self) -> FirewallResult<()> {
        self.session("probe nf_tables".to_owned(), |s| {
            s.request(NfTablesMessage::GetGen(GenMessage { attributes: vec![] }), TableFamily::Inet).map(drop)
        })
        .await
        .map_err(|e| {
            FirewallError::new(FirewallErrorKind::Unavailable, format!("nftables over netlink is not usable: {e}"))
                .with_source(e)
        })
    }

    async fn list_tables(&self) -> FirewallResult<Vec<Table>> {
        self.session("list tables".to_owned(), |s| {
            let msgs = s.dump_parsed(NfTablesMessage::GetTable(TableMessage { attributes: vec![] }), None)?;
            let mut out = Vec::new();
            for (family, m) in msgs {
                if let (Some(family), NfTablesMessage::NewTable(t)) = (family, m) {
                    out.push(parse_table(family, &t.attributes));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn read_table(&self, table: &TableId, _comments: bool) -> FirewallResult<Option<TableState>> {
        let id = table.clone();
        self.session(format!("list table {table}"), move |s| s.read(&id, None)).await
    }

    async fn read_chains(&self, table: &TableId, chains: &[String]) -> FirewallResult<Option<TableState>> {
        let id = table.clone();
        let names = chains.to_vec();
        self.session(format!("list chains {} of table {table}", chains.join(", ")), move |s| s.read(&id, Some(&names)))
            .await
    }

    async fn commit(&self, changes: &[Change]) -> FirewallResult<()> {
        self.commit_impl(changes).await
    }
}

// ---------------------------------------------------------------------------------------------
// Transport

fn nl_family(f: TableFamily) -> NetfilterProtoFamily {
    match f {
        TableFamily::Ip => NetfilterProtoFamily::IPv4,
        TableFamily::Ip6 => NetfilterProtoFamily::IPv6,
        TableFamily::Inet => NetfilterProtoFamily::Inet,
        TableFamily::Bridge => NetfilterProtoFamily::Bridge,
    }
}

fn table_family(f: NetfilterProtoFamily) -> Option<TableFamily> {
    Some(match f {
        NetfilterProtoFamily::IPv4 => TableFamily::Ip,
        NetfilterProtoFamily::IPv6 => TableFamily::Ip6,
        NetfilterProtoFamily::Inet => TableFamily::Inet,
        NetfilterProtoFamily::Bridge => TableFamily::Bridge,
        _ => return None,
    })
}

/// The error kind of an errno from nf_tables.
fn errno_kind(errno: i32) -> FirewallErrorKind {
    match errno {
        libc::ENOENT => FirewallErrorKind::NotFound,
        libc::EEXIST => FirewallErrorKind::Exists,
        libc::EBUSY | libc::ENOTEMPTY => FirewallErrorKind::InUse,
        libc::EPERM | libc::EACCES => FirewallErrorKind::PermissionDenied,
        libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT => FirewallErrorKind::Unavailable,
        // ELOOP/EMLINK: a jump loop; EOPNOTSUPP: NAT where no NAT hook reaches.
        libc::EINVAL | libc::ELOOP | libc::EMLINK | libc::EOPNOTSUPP | libc::ERANGE | libc::E2BIG => {
            FirewallErrorKind::InvalidArgument
        }
        _ => FirewallErrorKind::Other,
    }
}

fn io_error(what: &str, e: io::Error) -> FirewallError {
    let kind = match e.raw_os_error() {
        Some(errno) => errno_kind(errno),
        None => FirewallErrorKind::Other,
    };
    FirewallError::new(kind, format!("{what}: {e}")).with_source(e)
}

fn bad_reply(what: &str) -> FirewallError {
    FirewallError::new(FirewallErrorKind::Other, format!("nf_tables sent a reply this SDK cannot read ({what})"))
}

/// One message of a batch: what it does (for errors), its family, flags and content.
#[derive(Debug)]
struct BatchMessage {
    what: String,
    family: TableFamily,
    flags: u16,
    msg: NfTablesMessage,
}

/// A netfilter netlink socket, used from one (namespace) thread.
struct Session {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// The receive buffer: above the 32 KiB the kernel fills a dump datagram with.
const RECEIVE_BUFFER: usize = 64 * 1024;

/// NLMSGERR_ATTR_MSG: the kernel's error string in an extended ack.
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// NFNL_SUBSYS_NFTABLES: the high byte of nf_tables message types.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWRULE: u8 = 6;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;

/// One message received: an acknowledgement (error code 0) or error, the end of a dump, an
/// nf_tables object (family, message type, attributes), or anything else.
enum Received {
    Ack { seq: u32, code: i32, rest: Vec<u8> },
    Done { seq: u32, code: i32, rest: Vec<u8> },
    Nft { seq: u32, family: u8, msg_type: u8, attrs: Vec<u8> },
    Other,
}

impl Session {
    fn open(timeout: Duration) -> FirewallResult<Self> {
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(|e| io_error("open a netfilter netlink socket", e))?;
        sock.bind_auto().map_err(|e| io_error("bind a netfilter netlink socket", e))?;
        // Errors without the request echoed, with the kernel's message when it has one.
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_ext_ack(true);
        let tv = libc::timeval {
            tv_sec: timeout.as_secs().try_into().unwrap_or(libc::time_t::MAX),
            tv_usec: timeout.subsec_micros().into(),
        };
        // SAFETY: a valid socket and a timeval that outlives the call.
        let rc = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&sock),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io_error("set a receive timeout", io::Error::last_os_error()));
        }
        Ok(Self { sock, seq: 0, buf: Vec::with_capacity(RECEIVE_BUFFER) })
    }

    fn message(
        &mut self,
        inner: NetfilterMessageInner,
        family: NetfilterProtoFamily,
        res_id: u16,
        flags: u16,
    ) -> (u32, Vec<u8>) {
        self.seq += 1;
        let mut msg = NetlinkMessage::from(NetfilterMessage::new(NetfilterHeader::new(family, 0, res_id), inner));
        msg.header.flags = flags;
        msg.header.sequence_number = self.seq;
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        (self.seq, buf)
    }

    fn send(&mut self, buf: &[u8]) -> FirewallResult<()> {
        self.sock.send(buf, 0).map_err(|e| io_error("send to nf_tables", e))?;
        Ok(())
    }

    /// The next datagram's messages.
    fn receive(&mut self) -> FirewallResult<Vec<Received>> {
        // A large buffer matters: the kernel sizes the next part of a dump after the buffer of
        // the last read (up to 32 KiB), and resumes a rule dump by walking the chain from its
        // start, so small reads make dumping a chain quadratic in its rules.
        self.buf.clear();
        let n = self.sock.recv(&mut self.buf, libc::MSG_TRUNC).map_err(|e| {
            if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) {
                FirewallError::new(FirewallErrorKind::Other, "nf_tables did not answer in time".to_owned())
            } else {
                io_error("receive from nf_tables", e)
            }
        })?;
        if n > self.buf.len() {
            return Err(bad_reply(&format!("a {n}-byte datagram (larger than {RECEIVE_BUFFER} bytes)")));
        }
        let buf = &self.buf;
        let mut out = Vec::new();
        let mut at = 0;
        while at + 16 <= buf.len() {
            let word = |i: usize| u32::from_ne_bytes(buf[at + i..at + i + 4].try_into().expect("4 bytes"));
            let len = word(0) as usize;
            if len < 16 || at + len > buf.len() {
                return Err(bad_reply("truncated message"));
            }
            let ty = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
            let seq = word(8);
            let payload = &buf[at + 16..at + len];
            let code = || payload.get(..4).map(|c| i32::from_ne_bytes(c.try_into().expect("4 bytes")));
            out.push(match ty {
                NLMSG_ERROR => Received::Ack {
                    seq,
                    code: code().ok_or_else(|| bad_reply("short error"))?,
                    rest: payload[4..].to_vec(),
                },
                NLMSG_DONE => Received::Done {
                    seq,
                    code: code().unwrap_or(0),
                    rest: payload.get(4..).unwrap_or_default().to_vec(),
                },
                t if t >> 8 == NFNL_SUBSYS_NFTABLES && payload.len() >= 4 => {
                    Received::Nft { seq, family: payload[0], msg_type: (t & 0xff) as u8, attrs: payload[4..].to_vec() }
                }
                _ => Received::Other,
            });
            at += (len + 3) & !3;
        }
        Ok(out)
    }

    /// The kernel's message in an error's extended ack, if any.
    fn ext_ack_message(payload: &[u8]) -> Option<String> {
        // With NETLINK_CAP_ACK the original header (16 bytes) is followed by the TLVs.
        nlas(payload.get(16..)?).find(|(kind, _)| *kind == NLMSGERR_ATTR_MSG).map(|(_, v)| {
            let s = v.split(|b| *b == 0).next().unwrap_or_default();
            String::from_utf8_lossy(s).into_owned()
        })
    }

    fn errno_error(what: &str, code: i32, payload: &[u8]) -> FirewallError {
        let errno = code.abs();
        let mut msg = format!("{what}: {}", io::Error::from_raw_os_error(errno));
        if let Some(m) = Self::ext_ack_message(payload).filter(|m| !m.is_empty()) {
            msg.push_str(&format!(" ({m})"));
        }
        FirewallError::new(errno_kind(errno), msg)
    }

    /// Sends one request (acknowledged) and returns the message answering it (type and
    /// attributes); `None` when the object does not exist (ENOENT).
    fn request(&mut self, msg: NfTablesMessage, family: TableFamily) -> FirewallResult<Option<(u8, Vec<u8>)>> {
        let (seq, buf) = self.message(msg.into(), nl_family(family), 0, NLM_F_REQUEST | NLM_F_ACK);
        self.send(&buf)?;
        let mut answer = None;
        loop {
            for m in self.receive()? {
                match m {
                    Received::Nft { seq: s, msg_type, attrs, .. } if s == seq => answer = Some((msg_type, attrs)),
                    Received::Ack { seq: s, code, rest } if s == seq => {
                        return match code {
                            0 => Ok(answer),
                            c if -c == libc::ENOENT => Ok(None),
                            c => Err(Self::errno_error("request", c, &rest)),
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// Dumps objects (of `family`, or of every family): (family, message type, attributes).
    fn dump(&mut self, msg: NfTablesMessage, family: Option<TableFamily>) -> FirewallResult<Vec<(u8, u8, Vec<u8>)>> {
        let nf = family.map_or(NetfilterProtoFamily::Unspec, nl_family);
        let (seq, buf) = self.message(msg.into(), nf, 0, NLM_F_REQUEST | NLM_F_DUMP);
        self.send(&buf)?;
        let mut out = Vec::new();
        loop {
            for m in self.receive()? {
                match m {
                    Received::Nft { seq: s, family, msg_type, attrs } if s == seq => {
                        out.push((family, msg_type, attrs))
                    }
                    Received::Done { seq: s, code, rest } if s == seq => {
                        return match code {
                            0 => Ok(out),
                            c if -c == libc::ENOENT => Ok(out),
                            c => Err(Self::errno_error("dump", c, &rest)),
                        };
                    }
                    Received::Ack { seq: s, code, rest } if s == seq && code != 0 => {
                        if -code == libc::ENOENT {
                            return Ok(out);
                        }
                        return Err(Self::errno_error("dump", code, &rest));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Dumps objects and parses them with `netlink-packet-netfilter` (tables, chains, sets).
    fn dump_parsed(
        &mut self,
        msg: NfTablesMessage,
        family: Option<TableFamily>,
    ) -> FirewallResult<Vec<(Option<TableFamily>, NfTablesMessage)>> {
        self.dump(msg, family)?
            .into_iter()
            .map(|(f, t, attrs)| Ok((table_family(NetfilterProtoFamily::from(f)), parse_nft(t, &attrs)?)))
            .collect()
    }

    /// Commits messages as one transaction; each is acknowledged, so the first failure is known.
    fn batch(&mut self, msgs: &[BatchMessage]) -> FirewallResult<()> {
        let res_id = NFNL_SUBSYS_NFTABLES;
        let mut buf = Vec::new();
        let (_, begin) =
            self.message(ControlMessage::BatchBegin.into(), NetfilterProtoFamily::Unspec, res_id, NLM_F_REQUEST);
        buf.extend(begin);
        let mut seqs: Vec<(u32, &str)> = Vec::new();
        for m in msgs {
            let (seq, b) =
                self.message(m.msg.clone().into(), nl_family(m.family), 0, NLM_F_REQUEST | NLM_F_ACK | m.flags);
            seqs.push((seq, &m.what));
            buf.extend(b);
        }
        let (_, end) =
            self.message(ControlMessage::BatchEnd.into(), NetfilterProtoFamily::Unspec, res_id, NLM_F_REQUEST);
        buf.extend(end);
        self.send(&buf)?;
        // The kernel processes the batch while sending; every answer is queued by now.
        let mut pending: BTreeSet<u32> = seqs.iter().map(|(s, _)| *s).collect();
        let mut first_error: Option<(u32, FirewallError)> = None;
        while !pending.is_empty() {
            let got = match self.receive() {
                Ok(got) => got,
                // Acks of messages after a failed one may never come: the error is the answer.
                Err(e) if first_error.is_some() => {
                    tracing::debug!(error = %e, "no more answers after a failed nf_tables transaction");
                    break;
                }
                Err(e) => return Err(e),
            };
            for m in got {
                let Received::Ack { seq, code, rest } = m else { continue };
                pending.remove(&seq);
                if code != 0 && first_error.as_ref().is_none_or(|(s, _)| seq < *s) {
                    let what = seqs.iter().find(|(s, _)| *s == seq).map_or("nftables transaction", |(_, w)| w);
                    first_error = Some((seq, Self::errno_error(what, code, &rest)));
                }
            }
            if first_error.is_some() && pending.iter().all(|s| first_error.as_ref().is_some_and(|(f, _)| s > f)) {
                break;
            }
        }
        match first_error {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Reads a table: all its chains, or only `chains`, with their rules and the elements of
    /// the anonymous sets those rules look up.
    fn read(&mut self, id: &TableId, chains: Option<&[String]>) -> FirewallResult<Option<TableState>> {
        let family = id.family;
        let Some((ty, attrs)) = self.request(
            NfTablesMessage::GetTable(TableMessage { attributes: vec![TableAttribute::Name(id.name.clone())] }),
            family,
        )?
        else {
            return Ok(None);
        };
        let NfTablesMessage::NewTable(t) = parse_nft(ty, &attrs)? else { return Err(bad_reply("not a table")) };
        let mut state = TableState::new(parse_table(family, &t.attributes));
        let chain_msgs: Vec<ChainMessage> = match chains {
            None => self
                .dump_parsed(NfTablesMessage::GetChain(ChainMessage { attributes: vec![] }), Some(family))?
                .into_iter()
                .filter_map(|(_, m)| match m {
                    NfTablesMessage::NewChain(c) => Some(c),
                    _ => None,
                })
                .filter(|c| chain_table(&c.attributes) == Some(id.name.as_str()))
                .collect(),
            Some(names) => {
                let mut v = Vec::new();
                for name in names {
                    let req = NfTablesMessage::GetChain(ChainMessage {
                        attributes: vec![ChainAttribute::Table(id.name.clone()), ChainAttribute::Name(name.clone())],
                    });
                    if let Some((ty, attrs)) = self.request(req, family)?
                        && let NfTablesMessage::NewChain(c) = parse_nft(ty, &attrs)?
                    {
                        v.push(c);
                    }
                }
                v
            }
        };
        for c in &chain_msgs {
            state.chains.push(ChainState { chain: parse_chain(id, &c.attributes)?, rules: Vec::new() });
        }
        // Rules: of the whole table, or of each chain read.
        // Rules are parsed here rather than by netlink-packet-netfilter, whose expression parser
        // formats every attribute's buffer for its error context (190 ms for 1 000 rules).
        let mut rule_msgs: Vec<Vec<u8>> = Vec::new();
        let filters: Vec<Option<String>> = match chains {
            None => vec![None],
            Some(_) => state.chains.iter().map(|c| Some(c.chain.name.clone())).collect(),
        };
        for chain in filters {
            let mut attributes = vec![RuleAttribute::Table(id.name.clone())];
            attributes.extend(chain.map(RuleAttribute::Chain));
            for (_, ty, attrs) in self.dump(NfTablesMessage::GetRule(RuleMessage { attributes }), Some(family))? {
                if ty == NFT_MSG_NEWRULE {
                    rule_msgs.push(attrs);
                }
            }
        }
        // The anonymous sets the rules look up.
        let mut sets: Vec<(String, Option<AnonSet>)> = Vec::new();
        let mut parsed: Vec<(String, u64, Vec<Expr>, Option<String>)> = Vec::new();
        for r in rule_msgs {
            let (chain, handle, exprs, comment) = parse_rule(&r)?;
            if chain.is_empty() {
                continue;
            }
            for e in &exprs {
                if let Expr::Lookup { set: LookupSet::Listed { name, .. }, .. } = e
                    && !sets.iter().any(|(n, _)| n == name)
                {
                    sets.push((name.clone(), None));
                }
            }
            parsed.push((chain, handle, exprs, comment));
        }
        for (name, content) in &mut sets {
            *content = self.set_elements(id, name)?;
        }
        for (chain, handle, mut exprs, comment) in parsed {
            for e in &mut exprs {
                if let Expr::Lookup { set: LookupSet::Listed { name, set }, .. } = e {
                    *set = sets.iter().find(|(n, _)| n == name).and_then(|(_, s)| s.clone());
                }
            }
            let mut rule = decode_rule(family, &exprs).normalized(BackendKind::Nftables);
            rule.comment = comment;
            match state.chains.iter_mut().find(|c| c.chain.name == chain) {
                Some(c) => c.rules.push(ListedRule { rule, handle: RuleHandle(HandleRepr::Number(handle)) }),
                None if chains.is_some() => {}
                None => {
                    return Err(FirewallError::new(
                        FirewallErrorKind::Other,
                        format!("nf_tables listed a rule of unknown chain {chain:?} in table {id}"),
                    ));
                }
            }
        }
        Ok(Some(state))
    }

    /// The elements of a set; `None` when it cannot be read.
    fn set_elements(&mut self, table: &TableId, set: &str) -> FirewallResult<Option<AnonSet>> {
        let req = NfTablesMessage::GetSetElement(SetElementMessage {
            attributes: vec![SetElementList::Table(table.name.clone()), SetElementList::Set(set.to_owned())],
        });
        let mut elements: Vec<(Vec<u8>, bool)> = Vec::new();
        for (_, m) in self.dump_parsed(req, Some(table.family))? {
            let NfTablesMessage::NewSetElement(SetElementMessage { attributes }) = m else { continue };
            for a in attributes {
                let SetElementList::Elements(list) = a else { continue };
                for item in list {
                    let ListAttribute::Element(attrs) = item else { continue };
                    let mut key = None;
                    let mut end = false;
                    for a in attrs {
                        match a {
                            SetElementAttribute::Key(DataAttribute::Value(k)) => key = Some(k),
                            SetElementAttribute::Flags(f) => end = f.contains(SetElementFlags::IntervalEnd),
                            _ => {}
                        }
                    }
                    if let Some(k) = key {
                        elements.push((k, end));
                    }
                }
            }
        }
        let Some(key_len) = elements.first().map(|(k, _)| k.len() as u32) else { return Ok(None) };
        let interval = elements.iter().any(|(_, end)| *end);
        Ok(Some(AnonSet { key_type: 0, key_len, interval, elements }))
    }
}

// ---------------------------------------------------------------------------------------------
// Objects

/// `comment` as nftables stores it in user data: TLV type 0, the text with its NUL.
fn comment_udata(comment: &str) -> Vec<u8> {
    let mut v = vec![0u8, (comment.len() + 1) as u8];
    v.extend_from_slice(comment.as_bytes());
    v.push(0);
    v
}

/// The comment (TLV type 0) in user data.
fn udata_comment(udata: &[u8]) -> Option<String> {
    let mut rest = udata;
    while rest.len() >= 2 {
        let (kind, len) = (rest[0], rest[1] as usize);
        let value = rest.get(2..2 + len)?;
        if kind == 0 {
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        rest = &rest[2 + len..];
    }
    None
}

fn parse_table(family: TableFamily, attrs: &[TableAttribute]) -> Table {
    let mut t = Table::new(family, "");
    for a in attrs {
        match a {
            TableAttribute::Name(n) => t.name = n.clone(),
            TableAttribute::UserData(u) => t.comment = udata_comment(u),
            _ => {}
        }
    }
    t
}

fn chain_table(attrs: &[ChainAttribute]) -> Option<&str> {
    attrs.iter().find_map(|a| match a {
        ChainAttribute::Table(t) => Some(t.as_str()),
        _ => None,
    })
}

fn hook_number(hook: Hook) -> InetHookNumber {
    match hook {
        Hook::Prerouting => InetHookNumber::PreRouting,
        Hook::Input => InetHookNumber::LocalIn,
        Hook::Forward => InetHookNumber::Forward,
        Hook::Output => InetHookNumber::LocalOut,
        Hook::Postrouting => InetHookNumber::PostRouting,
    }
}

fn hook_of(n: u32) -> Option<Hook> {
    Some(match n {
        0 => Hook::Prerouting,
        1 => Hook::Input,
        2 => Hook::Forward,
        3 => Hook::Output,
        4 => Hook::Postrouting,
        _ => return None,
    })
}

fn parse_chain(table: &TableId, attrs: &[ChainAttribute]) -> FirewallResult<Chain> {
    let mut chain = Chain::regular("");
    let (mut hook, mut prio, mut ty, mut policy) = (None, None, None, Policy::Accept);
    for a in attrs {
        match a {
            ChainAttribute::Name(n) => chain.name = n.clone(),
            ChainAttribute::UserData(u) => chain.comment = udata_comment(u),
            ChainAttribute::Type(t) => ty = Some(t.clone()),
            ChainAttribute::Policy(p) => policy = if *p == 0 { Policy::Drop } else { Policy::Accept },
            ChainAttribute::Hook(h) => {
                for x in h {
                    match x {
                        NlHook::Number(n) => hook = Some(u32::from(*n)),
                        NlHook::Priority(p) => prio = Some(*p as i32),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if let (Some(h), Some(p)) = (hook, prio) {
        let base = match (ty.as_deref().and_then(ChainType::parse), hook_of(h)) {
            (Some(ty), Some(hook)) => BaseChain { chain_type: ty, hook, priority: p, policy },
            _ => {
                return Err(FirewallError::new(
                    FirewallErrorKind::Other,
                    format!(
                        "chain {} of table {table} has a base definition this SDK does not model (type {ty:?} hook {h})",
                        chain.name
                    ),
                ));
            }
        };
        chain.kind = ChainKind::Base(base);
    }
    Ok(chain)
}

fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

fn be64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

/// The attributes (type without flags, value) of a netlink attribute stream.
fn nlas(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);
        if len < 4 || len > b.len() {
            return None;
        }
        let value = &b[4..len];
        b = b.get((len + 3) & !3..).unwrap_or_default();
        Some((kind, value))
    })
}

fn nla_string(v: &[u8]) -> String {
    String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
}

/// The `NFTA_DATA_VALUE` inside a data attribute.
fn nested_value(v: &[u8]) -> Option<Vec<u8>> {
    nlas(v).find(|(k, _)| *k == 1).map(|(_, v)| v.to_vec())
}

/// One listed expression from its name and `NFTA_EXPR_DATA` attributes.
fn parse_expr(name: &str, data: &[u8]) -> Expr {
    // Looked up in place: expressions have a handful of attributes, and rules are many.
    let get = |k: u16| nlas(data).find(|(x, _)| *x == k).map(|(_, v)| v);
    let num = |k: u16| get(k).and_then(be32);
    let only = |allowed: &[u16]| nlas(data).all(|(k, _)| allowed.contains(&k));
    let parsed = match name {
        "payload" if get(5).is_none() && get(1).is_some() => match (num(2), num(3), num(4)) {
            (Some(base), Some(offset), Some(len)) => Some(Expr::Payload { base, offset, len }),
            _ => None,
        },
        "meta" => match (num(2), get(1).is_some(), get(3).is_some()) {
            (Some(key), true, false) => Some(Expr::Meta { key }),
            (Some(key), false, true) => Some(Expr::MetaSet { key }),
            _ => None,
        },
        "cmp" => match (num(2).and_then(CmpOp::from_code), get(3).and_then(nested_value)) {
            (Some(op), Some(data)) => Some(Expr::Cmp { op, data }),
            _ => None,
        },
        "bitwise" if matches!(num(6), None | Some(0)) => {
            match (get(4).and_then(nested_value), get(5).and_then(nested_value)) {
                (Some(mask), Some(xor)) => Some(Expr::Bitwise { mask, xor }),
                _ => None,
            }
        }
        "immediate" => {
            let reg = num(1);
            let inner: Vec<(u16, &[u8])> = get(2).map(|d| nlas(d).collect()).unwrap_or_default();
            match (reg, inner.as_slice()) {
                (Some(reg), [(1, value)]) if reg != 0 => Some(Expr::Immediate { reg, data: value.to_vec() }),
                (Some(0), [(2, verdict)]) => {
                    let mut code = None;
                    let mut chain = None;
                    for (k, v) in nlas(verdict) {
                        match k {
                            1 => code = be32(v).map(|c| c as i32),
                            2 => chain = Some(nla_string(v)),
                            _ => {}
                        }
                    }
                    code.map(|code| Expr::Verdict { code, chain })
                }
                _ => None,
            }
        }
        "lookup" if get(3).is_none() => get(1).map(|set| Expr::Lookup {
            set: LookupSet::Listed { name: nla_string(set), set: None },
            inverted: num(5).is_some_and(|f| f & 1 != 0),
        }),
        "masq" if nlas(data).next().is_none() => Some(Expr::Masq),
        "ct" if only(&[1, 2]) && get(1).is_some() => num(2).map(|key| Expr::Ct { key }),
        "fib" if only(&[1, 2, 3]) && get(1).is_some() => match (num(2), num(3)) {
            (Some(result), Some(flags)) => Some(Expr::Fib { flags, result }),
            _ => None,
        },
        "range" if only(&[1, 2, 3, 4]) => {
            match (num(2), get(3).and_then(nested_value), get(4).and_then(nested_value)) {
                (Some(op @ (0 | 1)), Some(from), Some(to)) => Some(Expr::Range { negated: op == 1, from, to }),
                _ => None,
            }
        }
        "nat" if only(&[1, 2, 3, 4, 5, 6, 7]) => {
            // The kernel lists a missing maximum as the minimum's register, and adds
            // NF_NAT_RANGE_MAP_IPS (1) to the flags when there is an address.
            let addr_max_ok = matches!(num(4), None | Some(1));
            let proto_max = num(6).filter(|r| Some(*r) != num(5));
            match (num(1), num(2), addr_max_ok, proto_max) {
                (Some(ty @ (0 | 1)), Some(family), true, None | Some(3)) => Some(Expr::Nat {
                    dnat: ty == 1,
                    family: family as u8,
                    addr_reg: num(3) == Some(1),
                    proto_min_reg: num(5) == Some(2),
                    proto_max_reg: proto_max == Some(3),
                    flags: num(7).unwrap_or(0) & !1,
                }),
                _ => None,
            }
        }
        "counter" if only(&[1, 2, 3]) => Some(Expr::Counter {
            packets: get(2).and_then(be64).unwrap_or(0),
            bytes: get(1).and_then(be64).unwrap_or(0),
        }),
        _ => None,
    };
    parsed.unwrap_or_else(|| Expr::Other {
        name: name.to_owned(),
        attrs: nlas(data).map(|(k, v)| (k, v.to_vec())).collect(),
    })
}

/// The expression of one `NFTA_LIST_ELEM` (name and data).
fn parse_elem(elem: &[u8]) -> Expr {
    let mut name = String::new();
    let mut data: &[u8] = &[];
    for (k, v) in nlas(elem) {
        match k {
            1 => name = nla_string(v),
            2 => data = v,
            _ => {}
        }
    }
    parse_expr(&name, data)
}

/// (chain, handle, expressions, comment) of a listed rule, from its attributes.
fn parse_rule(attrs: &[u8]) -> FirewallResult<(String, u64, Vec<Expr>, Option<String>)> {
    let (mut chain, mut handle, mut exprs, mut comment) = (String::new(), None, Vec::new(), None);
    for (kind, value) in nlas(attrs) {
        match kind {
            NFTA_RULE_CHAIN => chain = nla_string(value),
            NFTA_RULE_HANDLE => handle = be64(value),
            NFTA_RULE_EXPRESSIONS => exprs = nlas(value).map(|(_, elem)| parse_elem(elem)).collect(),
            NFTA_RULE_USERDATA => comment = udata_comment(value),
            _ => {}
        }
    }
    let handle = handle.ok_or_else(|| bad_reply("a rule without handle"))?;
    Ok((chain, handle, exprs, comment))
}

/// Parses an nf_tables message other than a rule with `netlink-packet-netfilter`.
fn parse_nft(msg_type: u8, attrs: &[u8]) -> FirewallResult<NfTablesMessage> {
    NfTablesMessage::parse_with_param(attrs, msg_type).map_err(|e| bad_reply(&e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Building a transaction

fn u32_nla(kind: u16, v: u32) -> DefaultNla {
    DefaultNla::new(kind, v.to_be_bytes().to_vec())
}

fn data_nla(kind: u16, value: &[u8]) -> DefaultNla {
    let inner = DataAttribute::Value(value.to_vec());
    let mut buf = vec![0; inner.buffer_len()];
    inner.emit(&mut buf);
    DefaultNla::new(kind | NLA_F_NESTED, buf)
}

fn element(name: &str, data: Expressions) -> ListAttribute<ExpressionAttribute> {
    ListAttribute::Element(vec![ExpressionAttribute::Name(name.to_owned()), ExpressionAttribute::Data(data)])
}

fn other(name: &str, attributes: Vec<DefaultNla>) -> ListAttribute<ExpressionAttribute> {
    element(name, Expressions::Other { expression_type: name.to_owned(), attributes })
}

fn register(n: u32) -> Register {
    match n {
        0 => Register::Verdict,
        1 => Register::Reg1,
        2 => Register::Reg2,
        3 => Register::Reg3,
        _ => Register::Reg4,
    }
}

fn verdict_code(code: i32) -> NlVerdict {
    NlVerdict::from(code as u32)
}

/// One expression as netlink attributes; `set_id` names the set a new lookup's set gets.
fn expr_attr(e: &Expr, set_id: u32) -> ListAttribute<ExpressionAttribute> {
    match e {
        Expr::Payload { base, offset, len } => element(
            "payload",
            Expressions::Payload(vec![
                Payload::DestinationRegister(Register::Reg1),
                Payload::Base(*base),
                Payload::Offset(*offset),
                Payload::Len(*len),
            ]),
        ),
        Expr::Meta { key } => element(
            "meta",
            Expressions::Meta(vec![Meta::Key(MetaKey::from(*key)), Meta::DestinationRegister(Register::Reg1)]),
        ),
        Expr::MetaSet { key } => element(
            "meta",
            Expressions::Meta(vec![Meta::Key(MetaKey::from(*key)), Meta::SourceRegister(Register::Reg1)]),
        ),
        Expr::Ct { key } => other("ct", vec![u32_nla(1, 1), u32_nla(2, *key)]),
        Expr::Fib { flags, result } => other("fib", vec![u32_nla(1, 1), u32_nla(2, *result), u32_nla(3, *flags)]),
        Expr::Cmp { op, data } => element(
            "cmp",
            Expressions::Cmp(vec![
                Cmp::SourceRegister(Register::Reg1),
                Cmp::Op(Operator::from(op.code())),
                Cmp::Data(DataAttribute::Value(data.clone())),
            ]),
        ),
        Expr::Bitwise { mask, xor } => element(
            "bitwise",
            Expressions::Bitwise(vec![
                Bitwise::SourceRegister(Register::Reg1),
                Bitwise::DestinationRegister(Register::Reg1),
                Bitwise::Length(mask.len() as u32),
                Bitwise::Mask(DataAttribute::Value(mask.clone())),
                Bitwise::Xor(DataAttribute::Value(xor.clone())),
            ]),
        ),
        Expr::Range { negated, from, to } => {
            other("range", vec![u32_nla(1, 1), u32_nla(2, u32::from(*negated)), data_nla(3, from), data_nla(4, to)])
        }
        Expr::Lookup { set, inverted } => {
            let mut attrs = vec![Lookup::SourceRegister(Register::Reg1)];
            match set {
                LookupSet::New(_) => {
                    attrs.push(Lookup::Set("__set%d".to_owned()));
                    attrs.push(Lookup::SetId(set_id));
                }
                LookupSet::Listed { name, .. } => attrs.push(Lookup::Set(name.clone())),
            }
            if *inverted {
                attrs.push(Lookup::Flags(1));
            }
            element("lookup", Expressions::Lookup(attrs))
        }
        Expr::Immediate { reg, data } => element(
            "immediate",
            Expressions::Immediate(vec![
                Immediate::DestinationRegister(register(*reg)),
                Immediate::Data(DataAttribute::Value(data.clone())),
            ]),
        ),
        Expr::Verdict { code, chain } => {
            let mut v = vec![VerdictAttribute::Code(verdict_code(*code))];
            v.extend(chain.clone().map(VerdictAttribute::Chain));
            element(
                "immediate",
                Expressions::Immediate(vec![
                    Immediate::DestinationRegister(Register::Verdict),
                    Immediate::Data(DataAttribute::Verdict(v)),
                ]),
            )
        }
        Expr::Nat { dnat, family, addr_reg, proto_min_reg, proto_max_reg, flags } => {
            let mut attrs = vec![u32_nla(1, u32::from(*dnat)), u32_nla(2, u32::from(*family))];
            if *addr_reg {
                attrs.push(u32_nla(3, 1));
            }
            if *proto_min_reg {
                attrs.push(u32_nla(5, 2));
            }
            if *proto_max_reg {
                attrs.push(u32_nla(6, 3));
            }
            if *flags != 0 {
                attrs.push(u32_nla(7, *flags));
            }
            other("nat", attrs)
        }
        Expr::Masq => other("masq", vec![]),
        Expr::Counter { packets, bytes } => other(
            "counter",
            vec![DefaultNla::new(1, bytes.to_be_bytes().to_vec()), DefaultNla::new(2, packets.to_be_bytes().to_vec())],
        ),
        Expr::Other { name, attrs } => other(name, attrs.iter().map(|(k, v)| DefaultNla::new(*k, v.clone())).collect()),
    }
}

/// The user data nft gives an anonymous set: the key byte order, and for intervals that the
/// elements were merged.
fn set_udata(set: &AnonSet) -> Vec<u8> {
    // NFTNL_UDATA_SET_KEYBYTEORDER: BYTEORDER_BIG_ENDIAN (2) for ports, host order (1) else.
    let order: u32 = if set.key_type == super::nft_expr::TYPE_INET_SERVICE { 2 } else { 1 };
    let mut v = vec![0u8, 4];
    v.extend_from_slice(&order.to_ne_bytes());
    if set.interval {
        // NFTNL_UDATA_SET_MERGE_ELEMENTS.
        v.extend_from_slice(&[2, 4]);
        v.extend_from_slice(&1u32.to_ne_bytes());
    }
    v
}

/// The messages of a transaction for `changes`.
fn build_batch(changes: &[Change]) -> FirewallResult<Vec<BatchMessage>> {
    let mut out = Vec::new();
    let mut next_set_id = 1u32;
    for change in changes {
        let family = change.table().family;
        let mut push =
            |what: String, flags: u16, msg: NfTablesMessage| out.push(BatchMessage { what, family, flags, msg });
        match change {
            Change::AddTable(t) => {
                let mut attributes = vec![TableAttribute::Name(t.name.clone())];
                attributes.extend(t.comment.as_deref().map(|c| TableAttribute::UserData(comment_udata(c))));
                push(
                    format!("add table {}", t.id()),
                    NLM_F_CREATE,
                    NfTablesMessage::NewTable(TableMessage { attributes }),
                );
            }
            Change::DeleteTable(t) => push(
                format!("delete table {t}"),
                0,
                NfTablesMessage::DeleteTable(TableMessage { attributes: vec![TableAttribute::Name(t.name.clone())] }),
            ),
            Change::AddChain { table, chain } => {
                push(format!("add chain {}", table.chain(chain.name.clone())), NLM_F_CREATE, new_chain(table, chain));
            }
            Change::SetPolicy { chain, base } => push(
                format!("set the policy of {chain}"),
                NLM_F_CREATE,
                new_chain(&chain.table, &Chain::base(chain.name.clone(), *base)),
            ),
            Change::FlushChain(c) => push(
                format!("flush chain {c}"),
                0,
                NfTablesMessage::DeleteRule(RuleMessage {
                    attributes: vec![RuleAttribute::Table(c.table.name.clone()), RuleAttribute::Chain(c.name.clone())],
                }),
            ),
            Change::DeleteChain(c) => push(
                format!("delete chain {c}"),
                0,
                NfTablesMessage::DeleteChain(ChainMessage {
                    attributes: vec![ChainAttribute::Table(c.table.name.clone()), ChainAttribute::Name(c.name.clone())],
                }),
            ),
            Change::AppendRule { chain, rule } | Change::InsertRule { chain, rule } => {
                let exprs = encode_rule(family, rule)?;
                let mut list = Vec::with_capacity(exprs.len());
                for e in &exprs {
                    let mut id = 0;
                    if let Expr::Lookup { set: LookupSet::New(set), .. } = e {
                        id = next_set_id;
                        next_set_id += 1;
                        for (flags, msg) in new_set(&chain.table, id, set) {
                            push(format!("add a set for [{rule}] in {chain}"), flags, msg);
                        }
                    }
                    list.push(expr_attr(e, id));
                }
                let mut attributes = vec![
                    RuleAttribute::Table(chain.table.name.clone()),
                    RuleAttribute::Chain(chain.name.clone()),
                    RuleAttribute::Expressions(list),
                ];
                attributes.extend(rule.comment.as_deref().map(|c| RuleAttribute::UserData(comment_udata(c))));
                let append = matches!(change, Change::AppendRule { .. });
                let flags = if append { NLM_F_CREATE | NLM_F_APPEND } else { NLM_F_CREATE };
                let verb = if append { "append" } else { "insert" };
                push(
                    format!("{verb} [{rule}] to {chain}"),
                    flags,
                    NfTablesMessage::NewRule(RuleMessage { attributes }),
                );
            }
            Change::DeleteRule { chain, handle, rule } => {
                let HandleRepr::Number(n) = handle.0 else {
                    return Err(FirewallError::invalid(format!(
                        "cannot delete rule [{rule}] from {chain}: {handle:?} is not an nft rule handle"
                    )));
                };
                push(
                    format!("delete rule [{rule}] ({handle:?}) from {chain}"),
                    0,
                    NfTablesMessage::DeleteRule(RuleMessage {
                        attributes: vec![
                            RuleAttribute::Table(chain.table.name.clone()),
                            RuleAttribute::Chain(chain.name.clone()),
                            RuleAttribute::Handle(n),
                        ],
                    }),
                );
            }
        }
    }
    Ok(out)
}

fn new_chain(table: &TableId, chain: &Chain) -> NfTablesMessage {
    let mut attributes = vec![ChainAttribute::Table(table.name.clone()), ChainAttribute::Name(chain.name.clone())];
    if let ChainKind::Base(b) = &chain.kind {
        attributes.push(ChainAttribute::Hook(vec![
            NlHook::Number(HookNumber::Inet(hook_number(b.hook))),
            NlHook::Priority(b.priority as u32),
        ]));
        attributes.push(ChainAttribute::Policy(match b.policy {
            Policy::Accept => 1,
            Policy::Drop => 0,
        }));
        attributes.push(ChainAttribute::Type(b.chain_type.as_str().to_owned()));
    }
    attributes.extend(chain.comment.as_deref().map(|c| ChainAttribute::UserData(comment_udata(c))));
    NfTablesMessage::NewChain(ChainMessage { attributes })
}

/// NEWSET and NEWSETELEM for an anonymous constant set.
fn new_set(table: &TableId, id: u32, set: &AnonSet) -> Vec<(u16, NfTablesMessage)> {
    let mut flags = SetFlags::Anonymous | SetFlags::Constant;
    if set.interval {
        flags |= SetFlags::Interval;
    }
    let set_msg = NfTablesMessage::NewSet(SetMessage {
        attributes: vec![
            SetAttribute::Table(table.name.clone()),
            SetAttribute::Name("__set%d".to_owned()),
            SetAttribute::Flags(flags),
            SetAttribute::KeyType(set.key_type),
            SetAttribute::KeyLen(set.key_len),
            SetAttribute::Id(id),
            SetAttribute::Description(vec![SetDescription::Size(set.elements.len() as u32)]),
            SetAttribute::UserData(set_udata(set)),
        ],
    });
    let elements = set
        .elements
        .iter()
        .map(|(key, end)| {
            let mut attrs = vec![SetElementAttribute::Key(DataAttribute::Value(key.clone()))];
            if *end {
                attrs.push(SetElementAttribute::Flags(SetElementFlags::IntervalEnd));
            }
            ListAttribute::Element(attrs)
        })
        .collect();
    let elem_msg = NfTablesMessage::NewSetElement(SetElementMessage {
        attributes: vec![
            SetElementList::Table(table.name.clone()),
            SetElementList::Set("__set%d".to_owned()),
            SetElementList::SetId(id),
            SetElementList::Elements(elements),
        ],
    });
    vec![(NLM_F_CREATE, set_msg), (NLM_F_CREATE, elem_msg)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::model::{Match, PortRange, Ports, Protocol, Rule, Verdict};

    #[test]
    fn comments_round_trip_through_user_data() {
        for c in ["", "hello", "name: \"n\" id: \"c\"", "line\nbreak", &"x".repeat(128)] {
            assert_eq!(udata_comment(&comment_udata(c)).as_deref(), Some(c));
        }
        // nft's own bytes for `comment "hello"`.
        assert_eq!(comment_udata("hello"), b"\x00\x06hello\x00");
        assert_eq!(udata_comment(b"\x01\x02ab\x00\x02x\x00").as_deref(), Some("x"));
        assert_eq!(udata_comment(b"\x00\x09short"), None);
    }

    /// Every expression survives being written as netlink attributes and parsed back.
    #[test]
    fn expressions_round_trip_through_attributes() {
        let rule = Rule::new(Verdict::Dnat { addr: "10.0.0.1".parse().unwrap(), port: Some(PortRange::new(80, 90)) })
            .when(Match::Destination("10.1.0.0/23".parse().unwrap()))
            .when(Match::Protocol(Protocol::Tcp))
            .when(!Match::DestinationPort(Ports::Single(PortRange::new(1, 2))))
            .when(Match::SourcePort(Ports::List(vec![PortRange::single(7), PortRange::single(9)])))
            .when(Match::ConnState(vec![super::super::ConnState::New]))
            .when(Match::DestinationAddrType(super::super::AddrType::Local))
            .normalized(BackendKind::Nftables);
        let mut exprs = encode_rule(TableFamily::Inet, &rule).unwrap();
        exprs.push(Expr::Counter { packets: 3, bytes: 4 });
        exprs.push(Expr::Masq);
        exprs.push(Expr::Other { name: "log".into(), attrs: vec![(2, b"pfx\0".to_vec())] });
        for e in &exprs {
            let attr = expr_attr(e, 7);
            // Through bytes, as the kernel would echo it.
            let mut buf = vec![0; attr.buffer_len()];
            attr.emit(&mut buf);
            let (_, elem) = nlas(&buf).next().expect("one list element");
            let want = match e {
                Expr::Lookup { inverted, .. } => {
                    Expr::Lookup { set: LookupSet::Listed { name: "__set%d".into(), set: None }, inverted: *inverted }
                }
                e => e.clone(),
            };
            assert_eq!(parse_elem(elem), want);
        }
        // A whole rule message: chain, handle, expressions, comment.
        let msg = NfTablesMessage::NewRule(RuleMessage {
            attributes: vec![
                RuleAttribute::Table("t".into()),
                RuleAttribute::Chain("c".into()),
                RuleAttribute::Handle(42),
                RuleAttribute::Expressions(exprs.iter().map(|e| expr_attr(e, 1)).collect()),
                RuleAttribute::UserData(comment_udata("hi")),
            ],
        });
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        let (chain, handle, parsed, comment) = parse_rule(&buf).unwrap();
        assert_eq!((chain.as_str(), handle, parsed.len(), comment.as_deref()), ("c", 42, exprs.len(), Some("hi")));
    }

    #[test]
    fn batches_name_what_each_message_does() {
        let t = TableId::new(TableFamily::Inet, "t");
        let rule = Rule::new(Verdict::Accept)
            .when(Match::Protocol(Protocol::Tcp))
            .when(Match::DestinationPort(Ports::List(vec![PortRange::single(80), PortRange::single(443)])))
            .with_comment("c");
        let b = build_batch(&[
            Change::AddTable(Table::new(TableFamily::Inet, "t").with_comment("x")),
            Change::AddChain { table: t.clone(), chain: Chain::regular("c") },
            Change::AppendRule { chain: t.chain("c"), rule: rule.clone() },
            Change::InsertRule { chain: t.chain("c"), rule },
            Change::DeleteRule { chain: t.chain("c"), handle: RuleHandle::number(4), rule: Rule::new(Verdict::Drop) },
        ])
        .unwrap();
        // Table, chain, and each rule after its set and elements.
        assert_eq!(b.len(), 2 + 3 + 3 + 1);
        assert!(matches!(b[2].msg, NfTablesMessage::NewSet(_)));
        assert!(matches!(b[3].msg, NfTablesMessage::NewSetElement(_)));
        assert_eq!(b[4].flags, NLM_F_CREATE | NLM_F_APPEND);
        assert_eq!(b[7].flags, NLM_F_CREATE);
        assert!(b[8].what.starts_with("delete rule"), "{}", b[8].what);
        let bad = Change::DeleteRule {
            chain: t.chain("c"),
            handle: RuleHandle::spec(vec![]),
            rule: Rule::new(Verdict::Drop),
        };
        assert!(build_batch(&[bad]).is_err());
    }

    #[test]
    fn errnos_have_kinds() {
        assert_eq!(errno_kind(libc::ENOENT), FirewallErrorKind::NotFound);
        assert_eq!(errno_kind(libc::EBUSY), FirewallErrorKind::InUse);
        assert_eq!(errno_kind(libc::ELOOP), FirewallErrorKind::InvalidArgument);
        assert_eq!(errno_kind(libc::EOPNOTSUPP), FirewallErrorKind::InvalidArgument);
        assert_eq!(errno_kind(libc::EEXIST), FirewallErrorKind::Exists);
        assert_eq!(errno_kind(libc::EPERM), FirewallErrorKind::PermissionDenied);
        assert_eq!(errno_kind(libc::ENOMEM), FirewallErrorKind::Other);
    }
}
