//! The UDP driver: receive a datagram, hand it to the core, send what the
//! core answers.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{Context, Result};
use edgeice_server::{Input, Transport};
use tokio::net::UdpSocket;

use super::SharedServer;

pub async fn bind(addr: SocketAddr) -> Result<UdpSocket> {
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
    socket
        .bind(&addr.into())
        .with_context(|| format!("binding UDP {addr} (is another STUN/TURN server running?)"))?;
    Ok(UdpSocket::from_std(socket.into())?)
}

pub async fn run(socket: UdpSocket, server: SharedServer) -> Result<()> {
    let local = socket.local_addr()?;
    let mut buf = vec![0u8; 65_536];
    let mut out = Vec::new();
    loop {
        let (len, remote) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            // ICMP errors from earlier sends surface here on some systems.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => continue,
            Err(e) => return Err(e).context("receiving on UDP"),
        };
        {
            let mut server = server
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            server.handle_input(
                Instant::now(),
                Input::Receive {
                    transport: Transport::Udp,
                    local,
                    remote,
                    contents: &buf[..len],
                },
            );
            out.extend(std::iter::from_fn(|| server.poll_transmit()));
        }
        for transmit in out.drain(..) {
            if let Err(e) = socket
                .send_to(&transmit.contents, transmit.destination)
                .await
            {
                tracing::debug!(destination = %transmit.destination, error = %e, "UDP send failed");
            }
        }
    }
}
