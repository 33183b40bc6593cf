//! The UDP listener's driver: each datagram goes to the core.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use edgeice_server::{FiveTuple, Input, Transport};
use tokio::net::UdpSocket;

use super::driver::Shared;
use super::log_throttle::LogThrottle;

pub async fn bind(addr: SocketAddr) -> Result<UdpSocket> {
    bind_with(addr, false)
}

/// Binds `count` sockets to `addr` with SO_REUSEPORT, each to be read by
/// one task: the kernel hands all of a client's datagrams to the same
/// share, so they are relayed in the order they came, while the shares
/// are read on as many threads. (Several tasks reading one socket would
/// take two datagrams of one client at once and could relay them swapped.)
/// `addr`'s port may be 0: the first share picks it.
pub async fn bind_shares(addr: SocketAddr, count: usize) -> Result<Vec<UdpSocket>> {
    if addr.port() != 0 {
        // SO_REUSEPORT would quietly share the port with another server
        // run by the same user: make sure nobody holds it first.
        drop(bind_with(addr, false)?);
    }
    let first = bind_with(addr, true)?;
    let local = first.local_addr()?;
    let mut shares = vec![first];
    for _ in 1..count.max(1) {
        shares.push(bind_with(local, true)?);
    }
    Ok(shares)
}

fn bind_with(addr: SocketAddr, reuse_port: bool) -> Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        // Keep [::] to IPv6 so that 0.0.0.0 can be bound on the same port.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    size_buffers(&socket);
    socket
        .bind(&addr.into())
        .with_context(|| format!("binding UDP {addr} (is another STUN/TURN server running?)"))?;
    Ok(UdpSocket::from_std(socket.into())?)
}

/// Socket buffers big enough to ride out a burst while the cores are busy
/// (the kernel caps them at net.core.rmem_max / wmem_max).
pub const SOCKET_BUFFER: usize = 4 << 20;

/// Asks for [`SOCKET_BUFFER`]-sized buffers; the kernel's cap applies.
pub fn size_buffers(socket: &socket2::Socket) {
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
}

pub async fn run(socket: Arc<UdpSocket>, shared: Arc<Shared>) -> Result<()> {
    let server = socket.local_addr()?;
    let mut buf = vec![0u8; 65_536];
    let mut failures = LogThrottle::new(Duration::from_secs(10));
    let mut backoff = Duration::ZERO;
    loop {
        let (len, client) = match socket.recv_from(&mut buf).await {
            Ok(received) => {
                backoff = Duration::ZERO;
                received
            }
            // ICMP errors from earlier sends surface here on some systems.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => continue,
            // Out of memory or buffers: nothing a client did, and no reason
            // to stop answering the others. Back off rather than spin.
            Err(e) => {
                if let Some(suppressed) = failures.ready(std::time::Instant::now()) {
                    tracing::warn!(%server, suppressed, "receiving on UDP: {e}; retrying");
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(1), Duration::from_secs(1));
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let from = FiveTuple {
            transport: Transport::Udp,
            client,
            server,
        };
        shared.drive(
            shared.shard_of(&from),
            Input::Client {
                from,
                payload: &buf[..len],
            },
        );
    }
}
