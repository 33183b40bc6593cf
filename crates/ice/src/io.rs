//! What goes between the agent and the application's sockets: a leaf
//! (it imports only the configuration's `ServerTransport`, `Event` and
//! `Timer`), so the agent and the gatherer both use it without importing
//! each other. [`Input`] and [`Output`] are the agent's whole vocabulary
//! with its driver.

use std::net::SocketAddr;

use std::time::Instant;

use crate::config::ServerTransport;
use crate::event::Event;
use crate::timer::Timer;

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
    /// [`Input::ServerFrame`] with the same two addresses; a connection that
    /// ends goes in as [`Input::ServerClosed`].
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

/// What the application must do with TCP sockets for the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpCommand {
    /// Open a connection from `local` (port 0: any port on that IP; else
    /// bind that very port, with address reuse, for a simultaneous open)
    /// to `remote`, then hand in [`crate::Input::TcpConnected`] or
    /// [`crate::Input::TcpClosed`] with `id`.
    Connect {
        /// Names the connection.
        id: ConnectionId,
        /// Where to connect from.
        local: SocketAddr,
        /// Where to connect to.
        remote: SocketAddr,
        /// Run TLS on it: a data connection (RFC 6062) to a `turns:` server.
        tls: bool,
    },
    /// Close the connection; nothing more will be sent on it.
    Close {
        /// The connection.
        id: ConnectionId,
    },
}

/// Something that happened outside the agent, for
/// [`crate::Agent::handle_input`].
#[derive(Debug)]
pub enum Input<'a> {
    /// The deadline [`Output::Timeout`] gave has come (or passed).
    Timeout,
    /// A UDP datagram arrived on host socket `socket` from `from`.
    Datagram {
        /// The local socket (as given to [`crate::Agent::add_host_socket`]).
        socket: SocketAddr,
        /// Who sent it.
        from: SocketAddr,
        /// The bytes.
        payload: &'a [u8],
    },
    /// One frame read from the TCP or TLS connection to a TURN server
    /// ([`Route::ServerTcp`], [`Route::ServerTls`]), named by the same
    /// (`socket`, `server`) its datagrams were sent with; frames are cut
    /// with [`edgeice_stun::StreamDecoder::next_raw`].
    ServerFrame {
        /// The host socket the connection was opened from.
        socket: SocketAddr,
        /// The TURN server.
        server: SocketAddr,
        /// One whole frame.
        frame: &'a [u8],
    },
    /// The connection to a TURN server closed or could not be opened:
    /// what was allocated over it is lost.
    ServerClosed {
        /// The host socket it was opened from.
        socket: SocketAddr,
        /// The TURN server.
        server: SocketAddr,
    },
    /// The connection [`TcpCommand::Connect`] asked for is open. If the
    /// agent gave up on it meanwhile, a [`TcpCommand::Close`] follows.
    TcpConnected {
        /// Which one.
        id: ConnectionId,
    },
    /// Bytes read from an ICE-TCP connection, as they came (the agent cuts
    /// the frames).
    TcpData {
        /// Which connection.
        id: ConnectionId,
        /// The bytes.
        data: &'a [u8],
    },
    /// An ICE-TCP connection closed, or could not be opened.
    TcpClosed {
        /// Which one.
        id: ConnectionId,
    },
}

/// What the agent has for the application, from
/// [`crate::Agent::poll_output`].
#[derive(Debug)]
// An output is moved out once and handled at once, never stored in bulk:
// boxing the large `Event` would cost an allocation for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Output {
    /// Open or close a TCP connection.
    Tcp(TcpCommand),
    /// Send this.
    Transmit(Datagram),
    /// Application data read from an ICE-TCP connection.
    Received {
        /// Its component.
        component: u16,
        /// Who sent it.
        from: SocketAddr,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Something happened (candidates, checks, selection, state).
    Event(Event),
    /// Nothing more until `at` (or the next input): then hand in
    /// [`Input::Timeout`]. `reason` says what set the deadline.
    Timeout {
        /// When.
        at: Instant,
        /// Why.
        reason: Timer,
    },
}
