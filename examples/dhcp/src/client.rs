//! The DHCP exchanges of one client (DISCOVER/OFFER/REQUEST/ACK, renew, rebind, release) over a
//! [`Port`], and Go's retry schedule.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode, UnknownOption};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use tokio::time::Instant;

use crate::config::ClientOptions;
use crate::lease::Lease;
use crate::port::Port;

/// BOOTP's minimum message size; Go pads to it (`PadToMinSize`).
const MIN_MESSAGE: usize = 300;

/// Go's schedule: 4 quick retries after 2 s (±1 s), then 4 s doubling while below `-resendmax`.
const FAST_RETRIES: u32 = 4;
const FAST_DELAY: Duration = Duration::from_secs(2);
const FIRST_DELAY: Duration = Duration::from_secs(4);

/// Why one attempt failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No answer in time; the message names what was awaited.
    Timeout(&'static str, Duration),
    /// The server refused (DHCPNAK).
    Nak(&'static str),
    /// The socket failed.
    Io(io::Error),
    /// The offer could not be recorded before the REQUEST; retrying does not help.
    Store(io::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(what, after) => write!(f, "no {what} received within {after:?}"),
            Self::Nak(text) => f.write_str(text),
            Self::Io(e) => write!(f, "{e}"),
            Self::Store(e) => write!(f, "could not record the offered lease: {e}"),
        }
    }
}

/// All attempts failed within the budget: Go's `no more tries`, with what happened.
#[derive(Debug)]
pub(crate) struct GiveUp {
    /// Attempts made.
    pub(crate) attempts: u32,
    /// How long it tried.
    pub(crate) elapsed: Duration,
    /// The last failure.
    pub(crate) last: Failure,
}

impl GiveUp {
    /// Go's message.
    pub(crate) const MESSAGE: &'static str = "no more tries";

    /// The explanation for the error's details.
    pub(crate) fn details(&self) -> String {
        format!("{} attempt(s) in {:.1?} failed; the last one: {}", self.attempts, self.elapsed, self.last)
    }
}

/// A random duration in [-span, span).
fn jitter(span: Duration) -> f64 {
    span.as_secs_f64() * (2.0 * rand::random::<f64>() - 1.0)
}

/// Go's `backoffRetry` delays.
#[derive(Debug)]
pub(crate) struct Backoff {
    fast_left: u32,
    base: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(max: Duration) -> Self {
        Self { fast_left: FAST_RETRIES, base: FIRST_DELAY, max }
    }

    pub(crate) fn next(&mut self) -> Duration {
        let delay = if self.fast_left > 0 {
            self.fast_left -= 1;
            FAST_DELAY
        } else {
            let d = self.base;
            if self.base < self.max {
                self.base *= 2;
            }
            d
        };
        Duration::from_secs_f64((delay.as_secs_f64() + jitter(Duration::from_secs(1))).max(0.0))
    }
}

/// Runs `attempt` until it succeeds or `budget` is spent (`-resendtimeout`), sleeping Go's
/// backoff (capped by `resend_max`) in between.
pub(crate) async fn with_retries<T, F, Fut>(resend_max: Duration, budget: Duration, mut attempt: F) -> Result<T, GiveUp>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let start = Instant::now();
    let deadline = start + budget;
    let mut backoff = Backoff::new(resend_max);
    let mut attempts = 0;
    let mut previous: Option<Failure> = None;
    loop {
        attempts += 1;
        let last = match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e @ Failure::Store(_))) => return Err(GiveUp { attempts, elapsed: start.elapsed(), last: e }),
            Ok(Err(e)) => e,
            Err(_) => {
                // The budget ran out in the middle of an attempt: report what the last complete
                // attempt saw.
                let last = previous.unwrap_or(Failure::Timeout("answer", budget));
                return Err(GiveUp { attempts, elapsed: start.elapsed(), last });
            }
        };
        tracing::info!("{last}");
        let delay = backoff.next();
        if Instant::now() + delay >= deadline {
            return Err(GiveUp { attempts, elapsed: start.elapsed(), last });
        }
        previous = Some(last);
        tracing::info!("retrying in {:.6} seconds", delay.as_secs_f64());
        tokio::time::sleep(delay).await;
    }
}

/// One client on one interface.
#[derive(Debug)]
pub(crate) struct Client<'a> {
    /// Where packets go.
    pub(crate) port: &'a Port,
    /// The interface's hardware address (`chaddr`).
    pub(crate) mac: [u8; 6],
    /// The client identifier string (`<cid>/<net>/<if>`), sent after a type byte 0.
    pub(crate) client_id: &'a str,
    /// `provide` and `request` options.
    pub(crate) options: &'a ClientOptions,
    /// Set the BOOTP broadcast flag (`-broadcast`).
    pub(crate) broadcast: bool,
    /// How long to wait for each reply (`-timeout`).
    pub(crate) timeout: Duration,
}

impl Client<'_> {
    fn message(&self, kind: MessageType, ciaddr: Ipv4Addr) -> Message {
        let u = Ipv4Addr::UNSPECIFIED;
        let mut m = Message::new(ciaddr, u, u, u, &self.mac);
        if self.broadcast {
            m.set_flags(Flags::default().set_broadcast());
        }
        let opts = m.opts_mut();
        let mut cid = vec![0u8];
        cid.extend_from_slice(self.client_id.as_bytes());
        opts.insert(DhcpOption::ClientIdentifier(cid));
        // `provide` may override the client identifier, as in Go.
        for (code, value) in &self.options.provide {
            opts.insert(DhcpOption::Unknown(UnknownOption::new((*code).into(), value.clone())));
        }
        if !self.options.params.is_empty() {
            opts.insert(DhcpOption::ParameterRequestList(self.options.params.iter().map(|c| (*c).into()).collect()));
        }
        opts.insert(DhcpOption::MessageType(kind));
        m
    }

    async fn send(&self, m: &Message, src: Ipv4Addr, dst: Ipv4Addr) -> Result<(), Failure> {
        let mut buf = Vec::with_capacity(MIN_MESSAGE);
        m.encode(&mut Encoder::new(&mut buf)).map_err(|e| Failure::Io(io::Error::other(e)))?;
        if buf.len() < MIN_MESSAGE {
            buf.resize(MIN_MESSAGE, 0);
        }
        self.port.send(&buf, src, dst).await.map_err(Failure::Io)
    }

    /// The next reply to `xid` of one of `kinds`, within `-timeout`.
    async fn wait(&self, xid: u32, kinds: &[MessageType], what: &'static str) -> Result<Message, Failure> {
        let wait = async {
            loop {
                let bytes = self.port.recv().await.map_err(Failure::Io)?;
                let Ok(m) = Message::decode(&mut Decoder::new(&bytes)) else { continue };
                if m.opcode() != Opcode::BootReply || m.xid() != xid || m.chaddr().get(..6) != Some(&self.mac[..]) {
                    continue;
                }
                match m.opts().msg_type() {
                    Some(t) if kinds.contains(&t) => return Ok(m),
                    _ => continue,
                }
            }
        };
        tokio::time::timeout(self.timeout, wait).await.map_err(|_| Failure::Timeout(what, self.timeout))?
    }

    /// DISCOVER → OFFER → REQUEST → ACK. Returns the ACK and the offer's server identifier.
    /// `before_request` gets the offered address and server before the REQUEST goes out (the
    /// daemon records them there); its error ends the exchange with [`Failure::Store`].
    pub(crate) async fn acquire(
        &self,
        before_request: &dyn Fn(Ipv4Addr, Option<Ipv4Addr>) -> io::Result<()>,
    ) -> Result<(Message, Option<Ipv4Addr>), Failure> {
        let u = Ipv4Addr::UNSPECIFIED;
        let discover = self.message(MessageType::Discover, u);
        self.send(&discover, u, Ipv4Addr::BROADCAST).await?;
        let offer = self.wait(discover.xid(), &[MessageType::Offer], "DHCPOFFER").await?;
        let server = match offer.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(s)) => Some(*s),
            _ => None,
        };
        before_request(offer.yiaddr(), server).map_err(Failure::Store)?;
        let mut request = self.message(MessageType::Request, u);
        request.set_xid(discover.xid());
        request.opts_mut().insert(DhcpOption::RequestedIpAddress(offer.yiaddr()));
        if let Some(s) = server {
            request.opts_mut().insert(DhcpOption::ServerIdentifier(s));
        }
        self.send(&request, u, Ipv4Addr::BROADCAST).await?;
        let reply = self.wait(request.xid(), &[MessageType::Ack, MessageType::Nak], "DHCPACK").await?;
        if reply.opts().msg_type() == Some(MessageType::Nak) {
            return Err(Failure::Nak("DHCP server NACK'd own offer"));
        }
        Ok((reply, server))
    }

    /// RENEWING (to the server) or REBINDING (broadcast): a REQUEST with `ciaddr`, without
    /// requested address or server identifier (RFC 2131 4.3.2).
    pub(crate) async fn renew(&self, lease: &Lease, rebinding: bool) -> Result<Message, Failure> {
        let ip = lease.address.addr();
        let request = self.message(MessageType::Request, ip);
        let dst = if rebinding { Ipv4Addr::BROADCAST } else { lease.server };
        self.send(&request, ip, dst).await?;
        let reply = self.wait(request.xid(), &[MessageType::Ack, MessageType::Nak], "DHCPACK").await?;
        if reply.opts().msg_type() == Some(MessageType::Nak) {
            return Err(Failure::Nak("DHCP server did not renew lease"));
        }
        Ok(reply)
    }

    /// DHCPRELEASE to the server (no answer expected).
    pub(crate) async fn release(&self, lease: &Lease) -> Result<(), Failure> {
        let ip = lease.address.addr();
        let mut release = self.message(MessageType::Release, ip);
        release.opts_mut().remove(OptionCode::ParameterRequestList);
        release.opts_mut().insert(DhcpOption::ServerIdentifier(lease.server));
        self.send(&release, ip, lease.server).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_gos_schedule() {
        let mut b = Backoff::new(Duration::from_secs(62));
        let secs: Vec<f64> = (0..10).map(|_| b.next().as_secs_f64()).collect();
        let want = [2.0, 2.0, 2.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 64.0];
        for (got, want) in secs.iter().zip(want) {
            assert!((got - want).abs() <= 1.0, "{secs:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_budget() {
        let mut calls = 0;
        let start = Instant::now();
        let out: Result<(), GiveUp> = with_retries(Duration::from_secs(4), Duration::from_secs(13), || {
            calls += 1;
            async { Err(Failure::Timeout("DHCPOFFER", Duration::from_secs(1))) }
        })
        .await;
        let e = out.unwrap_err();
        assert_eq!(e.attempts, calls);
        assert!((4..=7).contains(&calls), "{calls} attempts");
        assert!(start.elapsed() <= Duration::from_secs(13));
        assert!(e.details().contains("no DHCPOFFER received within 1s"), "{}", e.details());
        let mut n = 0;
        let ok = with_retries(Duration::from_secs(4), Duration::from_secs(60), || {
            n += 1;
            let fail = n < 3;
            async move { if fail { Err(Failure::Nak("DHCP server NACK'd own offer")) } else { Ok(n) } }
        })
        .await;
        assert_eq!(ok.unwrap(), 3);
    }
}
