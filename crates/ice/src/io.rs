//! What goes between the agent and the application's sockets: a leaf
//! (it imports only the configuration's `ServerTransport`), so the agent
//! and the gatherer both use it without importing each other.

use std::net::SocketAddr;

use crate::config::ServerTransport;

/// Names an ICE-TCP connection between the agent and its application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// How a datagram travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// A UDP datagram from the host socket `source`.
    Udp,
    /// Bytes (already framed) on the TCP connection to a TURN server, from
    /// the host socket `source`'s IP: the application opens one connection
    /// per (source, destination), writes to it, and hands back what it
    /// reads frame by frame ([`edgeice_stun::StreamDecoder::next_raw`]) to
    /// [`crate::Agent::handle_server_stream`] with the same two addresses; a
    /// connection that ends goes to [`crate::Agent::stream_closed`].
    ServerTcp,
    /// As [`Route::ServerTcp`], over TLS: the application runs TLS on the
    /// connection and hands back what it decrypts, frame by frame.
    ServerTls,
    /// An ICE-TCP connection (RFC 6544): the application writes the
    /// payload (already framed) to that connection as it is.
    Connection(ConnectionId),
}

impl From<ServerTransport> for Route {
    fn from(transport: ServerTransport) -> Route {
        match transport {
            ServerTransport::Udp => Route::Udp,
            ServerTransport::Tcp => Route::ServerTcp,
            ServerTransport::Tls => Route::ServerTls,
        }
    }
}

/// A datagram for the application to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// The local socket to send from (as given to [`crate::Agent::add_host_socket`]),
    /// or the candidate base an ICE-TCP connection belongs to.
    pub source: SocketAddr,
    /// How: UDP, a TCP connection to a TURN server, or an ICE-TCP connection.
    pub route: Route,
    /// Where to.
    pub destination: SocketAddr,
    /// The bytes.
    pub payload: Vec<u8>,
}

/// Application data sent through the selected pair, borrowing the agent's
/// buffer or the caller's data: sending copies or allocates nothing more.
#[derive(Debug, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// The local socket to send from (see [`Datagram::source`]).
    pub source: SocketAddr,
    /// How (see [`Datagram::route`]).
    pub route: Route,
    /// Where to.
    pub destination: SocketAddr,
    /// The bytes.
    pub payload: &'a [u8],
}
