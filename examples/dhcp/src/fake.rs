//! An in-process DHCP server for the unit tests: it answers DISCOVER, REQUEST (selecting,
//! renewing, rebinding) and records RELEASE, like a small dnsmasq, and can be told to stay silent
//! or to refuse.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::Ipv4Addr;
use std::rc::Rc;

use cni_sdk::net::Link;
use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use tokio::sync::Notify;

/// What the server saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) kind: MessageType,
    pub(crate) ciaddr: Ipv4Addr,
    pub(crate) src: Ipv4Addr,
    pub(crate) dst: Ipv4Addr,
    pub(crate) client_id: Vec<u8>,
    pub(crate) requested: Option<Ipv4Addr>,
    pub(crate) server_id: Option<Ipv4Addr>,
    pub(crate) params: Vec<u8>,
    pub(crate) options: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    /// client id → the address it gets (offered or leased)
    assigned: BTreeMap<Vec<u8>, Ipv4Addr>,
    /// client id → address leased
    bound: BTreeMap<Vec<u8>, Ipv4Addr>,
    seen: Vec<Seen>,
    /// Replies not yet received, with the client hardware address they are for (each port only
    /// receives its own, as on separate links).
    replies: VecDeque<([u8; 6], Vec<u8>)>,
    silent: bool,
    nak: bool,
    lease_secs: u32,
    t1_t2: Option<(u32, u32)>,
    extra: Vec<DhcpOption>,
    /// How long a reply takes to arrive.
    delay: std::time::Duration,
}

/// The server.
#[derive(Debug)]
pub(crate) struct FakeServer {
    state: RefCell<State>,
    notify: Notify,
}

pub(crate) const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 219, 0, 1);

impl FakeServer {
    /// A server for 10.219.0.0/24 handing out .10 to .250 (the lowest free one first; an
    /// address is free again once released) with 1-hour leases.
    pub(crate) fn new() -> Rc<Self> {
        Rc::new(Self { state: RefCell::new(State { lease_secs: 3600, ..State::default() }), notify: Notify::new() })
    }

    /// Replies arrive `delay` after the request (a slow server or network).
    pub(crate) fn set_reply_delay(&self, delay: std::time::Duration) {
        self.state.borrow_mut().delay = delay;
    }

    pub(crate) fn set_silent(&self, silent: bool) {
        self.state.borrow_mut().silent = silent;
    }

    pub(crate) fn set_nak(&self, nak: bool) {
        self.state.borrow_mut().nak = nak;
    }

    pub(crate) fn set_times(&self, lease: u32, t1: u32, t2: u32) {
        let mut s = self.state.borrow_mut();
        s.lease_secs = lease;
        s.t1_t2 = Some((t1, t2));
    }

    pub(crate) fn add_option(&self, opt: DhcpOption) {
        self.state.borrow_mut().extra.push(opt);
    }

    /// Everything received, in order.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.state.borrow().seen.clone()
    }

    /// The kinds received, in order.
    pub(crate) fn kinds(&self) -> Vec<MessageType> {
        self.state.borrow().seen.iter().map(|s| s.kind).collect()
    }

    /// Addresses currently leased.
    pub(crate) fn bound(&self) -> Vec<Ipv4Addr> {
        self.state.borrow().bound.values().copied().collect()
    }

    pub(crate) fn port(self: &Rc<Self>, link: &Link) -> FakePort {
        FakePort { server: self.clone(), mac: link.mac.octets() }
    }

    fn handle(&self, bytes: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
        let Ok(m) = Message::decode(&mut Decoder::new(bytes)) else { return };
        let Some(kind) = m.opts().msg_type() else { return };
        let get_ip = |code| match m.opts().get(code) {
            Some(DhcpOption::RequestedIpAddress(ip) | DhcpOption::ServerIdentifier(ip)) => Some(*ip),
            _ => None,
        };
        let client_id = match m.opts().get(OptionCode::ClientIdentifier) {
            Some(DhcpOption::ClientIdentifier(c)) => c.clone(),
            _ => Vec::new(),
        };
        let params = match m.opts().get(OptionCode::ParameterRequestList) {
            Some(DhcpOption::ParameterRequestList(p)) => p.iter().map(|c| u8::from(*c)).collect(),
            _ => Vec::new(),
        };
        let mut s = self.state.borrow_mut();
        s.seen.push(Seen {
            kind,
            ciaddr: m.ciaddr(),
            src,
            dst,
            client_id: client_id.clone(),
            requested: get_ip(OptionCode::RequestedIpAddress),
            server_id: get_ip(OptionCode::ServerIdentifier),
            params,
            options: m.opts().iter().map(|(c, _)| u8::from(*c)).collect(),
        });
        if s.silent {
            return;
        }
        let reply_kind = match kind {
            MessageType::Discover => MessageType::Offer,
            MessageType::Request if s.nak => MessageType::Nak,
            MessageType::Request => MessageType::Ack,
            MessageType::Release => {
                s.bound.remove(&client_id);
                s.assigned.remove(&client_id);
                return;
            }
            _ => return,
        };
        let addr = match s.assigned.get(&client_id) {
            Some(a) => *a,
            None => {
                // The lowest address nobody else was offered or holds (a released one is free).
                let Some(a) = (10..=250)
                    .map(|h| Ipv4Addr::new(10, 219, 0, h))
                    .find(|a| !s.assigned.values().any(|taken| taken == a))
                else {
                    return;
                };
                s.assigned.insert(client_id.clone(), a);
                a
            }
        };
        if reply_kind == MessageType::Ack {
            s.bound.insert(client_id, addr);
        }
        let mut r = Message::default();
        r.set_opcode(Opcode::BootReply).set_xid(m.xid()).set_chaddr(&m.chaddr()[..6]).set_yiaddr(addr);
        let o = r.opts_mut();
        o.insert(DhcpOption::MessageType(reply_kind));
        o.insert(DhcpOption::ServerIdentifier(SERVER_IP));
        if reply_kind != MessageType::Nak {
            o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
            o.insert(DhcpOption::Router(vec![SERVER_IP]));
            o.insert(DhcpOption::AddressLeaseTime(s.lease_secs));
            if let Some((t1, t2)) = s.t1_t2 {
                o.insert(DhcpOption::Renewal(t1));
                o.insert(DhcpOption::Rebinding(t2));
            }
            for opt in s.extra.clone() {
                o.insert(opt);
            }
        }
        let mut buf = Vec::new();
        r.encode(&mut Encoder::new(&mut buf)).expect("replies encode");
        let mut chaddr = [0u8; 6];
        chaddr.copy_from_slice(&m.chaddr()[..6]);
        s.replies.push_back((chaddr, buf));
        drop(s);
        self.notify.notify_waiters();
    }
}

/// A client's end.
#[derive(Debug)]
pub(crate) struct FakePort {
    server: Rc<FakeServer>,
    mac: [u8; 6],
}

impl FakePort {
    pub(crate) fn send(&self, payload: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> io::Result<()> {
        self.server.handle(payload, src, dst);
        Ok(())
    }

    pub(crate) async fn recv(&self) -> io::Result<Vec<u8>> {
        let delay = self.server.state.borrow().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        loop {
            let notified = self.server.notify.notified();
            let reply = {
                let mut state = self.server.state.borrow_mut();
                let i = state.replies.iter().position(|(mac, _)| *mac == self.mac);
                i.and_then(|i| state.replies.remove(i)).map(|(_, r)| r)
            };
            if let Some(r) = reply {
                return Ok(r);
            }
            notified.await;
        }
    }
}
