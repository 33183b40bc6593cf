//! Relay sockets: the pool they are bound from, and the task that feeds
//! each one's datagrams to the core.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use edgeice_server::{Input, PEER_DATA_HEADROOM};
use edgeice_stun::AddressFamily;
use tokio::net::UdpSocket;
use tokio::task::AbortHandle;

use super::driver::{ShardId, Shared};

/// Where relay sockets are bound: one IP per family, a range of ports.
#[derive(Debug)]
pub struct RelayPool {
    v4: Option<IpAddr>,
    v6: Option<IpAddr>,
    ports: RangeInclusive<u16>,
    /// Where the next search for a free port starts, so ports are spread
    /// and a port just released is not handed out again at once.
    cursor: AtomicU32,
}

impl RelayPool {
    /// Relay IPs from `--relay-ip`; else a listener's own address; else,
    /// for a family listened on through a wildcard, the first address of
    /// that family on a non-loopback interface.
    pub fn new(relay_ips: &[IpAddr], listeners: &[SocketAddr], ports: RangeInclusive<u16>) -> Self {
        let interfaces: Vec<IpAddr> = if_addrs::get_if_addrs()
            .map(|all| {
                all.into_iter()
                    .filter(|i| !i.is_loopback() && !i.is_link_local())
                    .map(|i| i.ip())
                    .collect()
            })
            .unwrap_or_default();
        let pick = |v4: bool| {
            let listened = listeners
                .iter()
                .map(SocketAddr::ip)
                .filter(|ip| ip.is_ipv4() == v4);
            relay_ips
                .iter()
                .copied()
                .find(|ip| ip.is_ipv4() == v4)
                .or_else(|| listened.clone().find(|ip| !ip.is_unspecified()))
                .or_else(|| {
                    let wildcard = listened.clone().any(|ip| ip.is_unspecified());
                    wildcard
                        .then(|| interfaces.iter().copied().find(|ip| ip.is_ipv4() == v4))
                        .flatten()
                })
        };
        RelayPool {
            v4: pick(true),
            v6: pick(false),
            ports,
            cursor: AtomicU32::new(0),
        }
    }

    /// How many ports the range has.
    pub fn port_count(&self) -> u64 {
        u64::from(*self.ports.end()).saturating_sub(u64::from(*self.ports.start())) + 1
    }

    /// The relay IPs in use.
    pub fn ips(&self) -> Vec<IpAddr> {
        self.v4.into_iter().chain(self.v6).collect()
    }

    /// The relay IP of `family`.
    fn ip(&self, family: AddressFamily) -> io::Result<IpAddr> {
        match family {
            AddressFamily::V4 => self.v4,
            AddressFamily::V6 => self.v6,
        }
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "no relay IP of that family",
            )
        })
    }

    /// Binds a listening TCP relay (RFC 6062) of `family` on a free port:
    /// one no other TCP relay listens on, so that a peer connecting to an
    /// allocation's relayed address reaches that allocation and no other.
    pub fn bind_tcp(
        &self,
        family: AddressFamily,
    ) -> io::Result<(tokio::net::TcpListener, SocketAddr)> {
        let ip = self.ip(family)?;
        let lo = u32::from(*self.ports.start());
        let count = u32::from(*self.ports.end()) - lo + 1;
        let start = self.cursor.fetch_add(2, Ordering::Relaxed);
        for i in 0..count {
            let port = (lo + (start.wrapping_add(i) % count)) as u16;
            let socket = super::tcp_relay::listener_at(SocketAddr::new(ip, port))?;
            match socket.bind(SocketAddr::new(ip, port)) {
                Ok(()) => {
                    let listener = socket.listen(128)?;
                    super::tcp_relay::share_with_connections(&listener)?;
                    let addr = listener.local_addr()?;
                    return Ok((listener, addr));
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "every relay port is in use",
        ))
    }

    /// Binds a UDP socket of `family` on a free port of the range (an
    /// even one if `even`, with the odd one above it bound too if
    /// `reserve_next`). A port in use is skipped, never turned into a failed
    /// allocation while others remain.
    pub fn bind(&self, family: AddressFamily, even: bool, reserve_next: bool) -> io::Result<Bound> {
        let ip = self.ip(family)?;
        let lo = u32::from(*self.ports.start());
        let count = u32::from(*self.ports.end()) - lo + 1;
        let start = self.cursor.fetch_add(2, Ordering::Relaxed);
        for i in 0..count {
            let port = lo + (start.wrapping_add(i) % count);
            if even && port % 2 != 0 {
                continue;
            }
            let Some(socket) = try_bind(SocketAddr::new(ip, port as u16))? else {
                continue;
            };
            let next = if reserve_next {
                let next_port = port + 1;
                if next_port > u32::from(*self.ports.end()) {
                    continue;
                }
                match try_bind(SocketAddr::new(ip, next_port as u16))? {
                    Some(next) => Some(next),
                    None => continue,
                }
            } else {
                None
            };
            self.cursor
                .store(start.wrapping_add(i + 2), Ordering::Relaxed);
            return Ok(Bound { socket, next });
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "every relay port is in use",
        ))
    }
}

/// A relay socket just bound, and the next port's when it was reserved.
pub struct Bound {
    pub socket: (UdpSocket, SocketAddr),
    pub next: Option<(UdpSocket, SocketAddr)>,
}

/// Binds `addr`; `None` if the port is taken.
fn try_bind(addr: SocketAddr) -> io::Result<Option<(UdpSocket, SocketAddr)>> {
    match StdUdpSocket::bind(addr) {
        Ok(socket) => {
            socket.set_nonblocking(true)?;
            super::udp::size_buffers(&socket2::SockRef::from(&socket));
            let addr = socket.local_addr()?;
            Ok(Some((UdpSocket::from_std(socket)?, addr)))
        }
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Ok(None),
        Err(e) => Err(e),
    }
}

thread_local! {
    /// Where relay sockets' datagrams are read, one per worker thread, with
    /// headroom before the payload so that the core writes the ChannelData
    /// header in place.
    static RECEIVE_BUFFER: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(vec![0u8; PEER_DATA_HEADROOM + 65_536]);
}

/// A bound relay socket and its receiving task, stopped when dropped.
pub struct RelaySocket {
    pub socket: Arc<UdpSocket>,
    task: AbortHandle,
}

impl RelaySocket {
    /// Starts feeding `socket`'s datagrams to the core.
    pub fn spawn(
        shared: Arc<Shared>,
        shard: ShardId,
        socket: UdpSocket,
        relay: SocketAddr,
    ) -> Self {
        let socket = Arc::new(socket);
        let receiver = socket.clone();
        let task = tokio::spawn(async move {
            // The task waits for readiness holding no buffer, and reads into
            // its worker thread's: an idle allocation then costs no 64 KiB
            // of memory. One datagram per wait, so that tokio's budget (it
            // counts readiness waits) keeps a flooded socket from starving
            // the others on its thread.
            loop {
                if let Err(e) = receiver.readable().await {
                    tracing::debug!(%relay, error = %e, "relay socket failed");
                    return;
                }
                let outcome = RECEIVE_BUFFER.with_borrow_mut(|buf| {
                    let (len, peer) = receiver.try_recv_from(&mut buf[PEER_DATA_HEADROOM..])?;
                    shared.drive(
                        shard,
                        Input::PeerData {
                            relay,
                            peer,
                            datagram: &mut buf[..PEER_DATA_HEADROOM + len],
                        },
                    );
                    Ok::<(), io::Error>(())
                });
                match outcome {
                    // WouldBlock: readiness was stale (try_recv_from cleared it).
                    Ok(()) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::ConnectionReset
                        ) => {}
                    Err(e) => {
                        tracing::debug!(%relay, error = %e, "relay socket failed");
                        return;
                    }
                }
            }
        })
        .abort_handle();
        RelaySocket { socket, task }
    }
}

impl Drop for RelaySocket {
    fn drop(&mut self) {
        self.task.abort();
    }
}
