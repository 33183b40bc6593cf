//! The probe's connection to one server: a UDP socket, a TCP stream or a
//! TLS stream, with blocking I/O bounded by deadlines. Streams are cut into
//! STUN/ChannelData frames here, so the client state machines above see
//! one message at a time whatever the transport.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgeice_client::StreamDecoder;
use rustls_pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::error::ProbeError;

/// The shortest wait handed to the socket: a zero read timeout would mean
/// "block forever" to the standard library.
const MIN_WAIT: Duration = Duration::from_millis(1);

/// A connection to the server under test.
pub enum Link {
    /// UDP: datagrams from anyone but the server are ignored.
    Udp {
        /// The socket.
        socket: UdpSocket,
        /// The server's address.
        server: SocketAddr,
    },
    /// TCP, cut into frames.
    Tcp {
        /// The stream.
        stream: TcpStream,
        /// Bytes read and not yet taken as frames.
        decoder: StreamDecoder,
    },
    /// TLS over TCP, cut into frames.
    Tls {
        /// The stream (boxed: a TLS connection's state is large).
        stream: Box<StreamOwned<ClientConnection, TcpStream>>,
        /// Bytes read and not yet taken as frames.
        decoder: StreamDecoder,
    },
}

impl Link {
    /// A UDP socket on the wildcard address of `server`'s family.
    pub fn udp(server: SocketAddr) -> Result<Link, ProbeError> {
        // Not connected: the RFC 5780 tests send to the server's other
        // address from the same socket.
        let socket = UdpSocket::bind(wildcard(server)).map_err(ProbeError::Socket)?;
        Ok(Link::Udp { socket, server })
    }

    /// A TCP connection to `server`, given up after `timeout`.
    pub fn tcp(server: SocketAddr, timeout: Duration) -> Result<Link, ProbeError> {
        let stream = TcpStream::connect_timeout(&server, timeout)
            .map_err(|e| ProbeError::Connect(server, e))?;
        let _ = stream.set_nodelay(true);
        Ok(Link::Tcp {
            stream,
            decoder: StreamDecoder::new(),
        })
    }

    /// A TLS connection to `server`, whose certificate must name `name`.
    pub fn tls(
        server: SocketAddr,
        name: ServerName<'static>,
        config: Arc<ClientConfig>,
        timeout: Duration,
    ) -> Result<Link, ProbeError> {
        let tcp = TcpStream::connect_timeout(&server, timeout)
            .map_err(|e| ProbeError::Connect(server, e))?;
        let _ = tcp.set_nodelay(true);
        let connection = ClientConnection::new(config, name)
            .map_err(|e| ProbeError::Tls(format!("cannot start TLS: {e}")))?;
        let mut stream = StreamOwned::new(connection, tcp);
        // Finish the handshake now, so a refused certificate is reported as
        // such rather than as a failed Allocate.
        stream
            .sock
            .set_read_timeout(Some(timeout))
            .map_err(ProbeError::Socket)?;
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| ProbeError::Tls(format!("handshake with {server}: {e}")))?;
        }
        Ok(Link::Tls {
            stream: Box::new(stream),
            decoder: StreamDecoder::new(),
        })
    }

    /// The local address the server sees this link come from (before any
    /// NAT on the way).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Link::Udp { socket, .. } => socket.local_addr(),
            Link::Tcp { stream, .. } => stream.local_addr(),
            Link::Tls { stream, .. } => stream.sock.local_addr(),
        }
    }

    /// Sends one datagram (UDP) or already framed bytes (streams).
    pub fn send(&mut self, data: &[u8]) -> Result<(), ProbeError> {
        match self {
            Link::Udp { socket, server } => socket
                .send_to(data, *server)
                .map(|_| ())
                .map_err(ProbeError::Send),
            Link::Tcp { stream, .. } => stream.write_all(data).map_err(ProbeError::Send),
            Link::Tls { stream, .. } => stream
                .write_all(data)
                .and_then(|()| stream.flush())
                .map_err(ProbeError::Send),
        }
    }

    /// Waits until `deadline` for the next message from the server and
    /// copies it into `out`. `Ok(false)`: nothing came in time.
    pub fn recv(&mut self, deadline: Instant, out: &mut Vec<u8>) -> Result<bool, ProbeError> {
        let mut buf = [0u8; 65536];
        loop {
            // A frame already buffered needs no read.
            if let Some(decoder) = self.decoder() {
                match decoder.next_raw() {
                    Ok(Some(frame)) => {
                        out.clear();
                        out.extend_from_slice(frame);
                        return Ok(true);
                    }
                    Ok(None) => {}
                    Err(e) => return Err(ProbeError::Framing(e.to_string())),
                }
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return Ok(false);
            }
            let read = match self {
                Link::Udp { socket, server } => {
                    socket
                        .set_read_timeout(Some(wait.max(MIN_WAIT)))
                        .map_err(ProbeError::Socket)?;
                    match socket.recv_from(&mut buf) {
                        Ok((n, from)) if from == *server => {
                            out.clear();
                            out.extend_from_slice(&buf[..n]);
                            return Ok(true);
                        }
                        Ok(_) => continue,
                        Err(e) => Err(e),
                    }
                }
                Link::Tcp { stream, .. } => stream
                    .set_read_timeout(Some(wait.max(MIN_WAIT)))
                    .and_then(|()| stream.read(&mut buf)),
                Link::Tls { stream, .. } => stream
                    .sock
                    .set_read_timeout(Some(wait.max(MIN_WAIT)))
                    .and_then(|()| stream.read(&mut buf)),
            };
            match read {
                Ok(0) => return Err(ProbeError::Closed),
                Ok(n) => {
                    if let Some(decoder) = self.decoder() {
                        decoder.push(&buf[..n]);
                    }
                }
                Err(e) if is_timeout(&e) => continue,
                // An ICMP port unreachable reported on the socket says
                // nobody answers there: the same as no answer.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(ProbeError::Receive(e)),
            }
        }
    }

    /// Cuts what the server sends with `framing` (MS-TURN's over TCP).
    pub fn set_framing(&mut self, framing: edgeice_stun::Framing) {
        if let Some(decoder) = self.decoder() {
            decoder.set_framing(framing);
        }
    }

    fn decoder(&mut self) -> Option<&mut StreamDecoder> {
        match self {
            Link::Udp { .. } => None,
            Link::Tcp { decoder, .. } | Link::Tls { decoder, .. } => Some(decoder),
        }
    }
}

/// The local IP the route to `server` leaves from (what the server sees
/// when no NAT is in between).
pub fn local_ip_towards(server: SocketAddr) -> Result<IpAddr, ProbeError> {
    let socket = UdpSocket::bind(wildcard(server)).map_err(ProbeError::Socket)?;
    // Connecting a UDP socket sends nothing; it only picks the route.
    socket.connect(server).map_err(ProbeError::Socket)?;
    Ok(socket.local_addr().map_err(ProbeError::Socket)?.ip())
}

/// Whether a read error is the read timeout expiring.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// The wildcard address of `to`'s family, port 0.
pub fn wildcard(to: SocketAddr) -> SocketAddr {
    match to {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}
