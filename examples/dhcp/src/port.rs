//! Where DHCP packets go: a packet socket on the container's interface, created inside the
//! container's namespace on a dedicated thread (never by switching a tokio worker), and used
//! from the daemon's runtime afterwards (a socket stays in the namespace it was created in).
//!
//! Outgoing messages are link-layer broadcasts with the IPv4 and UDP headers built here (the
//! interface has no address yet); incoming ones are IPv4 packets for UDP port 68, whatever
//! their link-layer destination.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use cni_sdk::net::{Link, Net};
use tokio::io::unix::AsyncFd;

/// The client port.
pub(crate) const CLIENT_PORT: u16 = 68;
/// The server port.
pub(crate) const SERVER_PORT: u16 = 67;

/// How ports are opened: the kernel's packet sockets, or an in-process server in unit tests.
#[derive(Debug, Clone, Default)]
pub(crate) enum Ports {
    /// Packet sockets in the link's namespace.
    #[default]
    Packet,
    /// The in-process server of the unit tests.
    #[cfg(test)]
    Fake(std::rc::Rc<crate::fake::FakeServer>),
}

impl Ports {
    /// Opens `link` of the namespace of `net` for one exchange.
    pub(crate) async fn open(&self, net: &Net, link: &Link) -> io::Result<Port> {
        match self {
            Self::Packet => PacketPort::open(net, link).await.map(Port::Packet),
            #[cfg(test)]
            Self::Fake(server) => Ok(Port::Fake(server.port(link))),
        }
    }
}

/// An open port.
#[derive(Debug)]
pub(crate) enum Port {
    /// A packet socket.
    Packet(PacketPort),
    /// A port of the in-process server.
    #[cfg(test)]
    Fake(crate::fake::FakePort),
}

impl Port {
    /// Sends a DHCP message from `src` to `dst` (port 67) as a link-layer broadcast.
    pub(crate) async fn send(&self, payload: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> io::Result<()> {
        match self {
            Self::Packet(p) => p.send(payload, src, dst).await,
            #[cfg(test)]
            Self::Fake(p) => p.send(payload, src, dst),
        }
    }

    /// The next UDP payload sent to port 68.
    pub(crate) async fn recv(&self) -> io::Result<Vec<u8>> {
        match self {
            Self::Packet(p) => p.recv().await,
            #[cfg(test)]
            Self::Fake(p) => p.recv().await,
        }
    }
}

/// A packet socket (`AF_PACKET`, `SOCK_DGRAM`, IPv4) bound to one interface.
#[derive(Debug)]
pub(crate) struct PacketPort {
    fd: AsyncFd<OwnedFd>,
    ifindex: i32,
}

fn last_os_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn link_addr(ifindex: i32, broadcast: bool) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = (libc::ETH_P_IP as u16).to_be();
    sa.sll_ifindex = ifindex;
    if broadcast {
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    }
    sa
}

/// Creates the socket in the calling thread's namespace. It is created with protocol 0 (it
/// receives nothing) and only starts receiving once bound to the interface.
fn socket_on(ifindex: i32) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(last_os_error("socket(AF_PACKET)"));
    }
    // SAFETY: `raw` is a descriptor we own from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let sa = link_addr(ifindex, false);
    // SAFETY: `sa` is a valid sockaddr_ll and the length passed is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sa).cast::<libc::sockaddr>(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(last_os_error("bind(AF_PACKET)"));
    }
    Ok(fd)
}

impl PacketPort {
    /// Opens a packet socket on `link`, inside the namespace of `net`.
    pub(crate) async fn open(net: &Net, link: &Link) -> io::Result<Self> {
        let ns = net.netns().cloned().ok_or_else(|| io::Error::other("not a kernel network namespace"))?;
        let ifindex = i32::try_from(link.index).map_err(|_| io::Error::other("interface index out of range"))?;
        let fd = ns
            .run_async(move || async move { socket_on(ifindex) })
            .await
            .map_err(|e| io::Error::other(format!("entering {}: {e}", ns.path().display())))??;
        // SAFETY: the AsyncFd owns the OwnedFd, which stays open (and keeps its number) until the
        // AsyncFd is dropped.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Self { fd, ifindex })
    }

    async fn send(&self, payload: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> io::Result<()> {
        let builder = etherparse::PacketBuilder::ipv4(src.octets(), dst.octets(), 64).udp(CLIENT_PORT, SERVER_PORT);
        let mut packet = Vec::with_capacity(builder.size(payload.len()));
        builder.write(&mut packet, payload).map_err(io::Error::other)?;
        let sa = link_addr(self.ifindex, true);
        loop {
            let mut guard = self.fd.writable().await?;
            let sent = guard.try_io(|fd| {
                // SAFETY: the buffer and address are valid for the duration of the call.
                let rc = unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        packet.as_ptr().cast(),
                        packet.len(),
                        0,
                        (&raw const sa).cast::<libc::sockaddr>(),
                        std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                    )
                };
                if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
            });
            match sent {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    async fn recv(&self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        loop {
            let mut guard = self.fd.readable().await?;
            let got = guard.try_io(|fd| {
                // SAFETY: `buf` is valid for writes of its length.
                let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
            });
            let n = match got {
                Ok(result) => result?,
                Err(_would_block) => continue,
            };
            if let Some(payload) = udp_to_client(&buf[..n]) {
                return Ok(payload.to_vec());
            }
        }
    }
}

/// The UDP payload of an unfragmented IPv4 packet to port 68.
fn udp_to_client(packet: &[u8]) -> Option<&[u8]> {
    let ip = etherparse::Ipv4Slice::from_slice(packet).ok()?;
    if ip.is_payload_fragmented() || ip.header().protocol() != etherparse::IpNumber::UDP {
        return None;
    }
    let udp = etherparse::UdpSlice::from_slice(ip.payload().payload).ok()?;
    (udp.destination_port() == CLIENT_PORT).then(|| udp.payload())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_udp_to_port_68_is_taken() {
        let packet = |sport, dport| {
            let b = etherparse::PacketBuilder::ipv4([10, 219, 0, 1], [255, 255, 255, 255], 64).udp(sport, dport);
            let mut v = Vec::new();
            b.write(&mut v, b"hello").unwrap();
            v
        };
        assert_eq!(udp_to_client(&packet(67, 68)), Some(&b"hello"[..]));
        assert_eq!(udp_to_client(&packet(67, 67)), None);
        assert_eq!(udp_to_client(b"garbage"), None);
        let tcp = etherparse::PacketBuilder::ipv4([10, 219, 0, 1], [10, 219, 0, 2], 64).tcp(67, 68, 1, 100);
        let mut v = Vec::new();
        tcp.write(&mut v, b"x").unwrap();
        assert_eq!(udp_to_client(&v), None);
    }
}
