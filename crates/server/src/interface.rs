//! What crosses between the server core and its I/O driver: inputs, the
//! datagrams to send, and requests for the driver to act (bind a relay
//! socket, release one).

use std::net::SocketAddr;
use std::time::Instant;

use edgeice_stun::AddressFamily;

/// The transport between a client and the server (shared with the
/// client and the ICE agent).
pub use edgeice_stun::Transport;

/// A client's 5-tuple as the server sees it (RFC 8656 §2): the transport,
/// the client's address and the server address it talks to. An allocation
/// belongs to exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FiveTuple {
    /// Transport.
    pub transport: Transport,
    /// The client's address (its server-reflexive address).
    pub client: SocketAddr,
    /// The server's listening address the client sent to.
    pub server: SocketAddr,
}

/// The transport between a relay and its peers: UDP (RFC 8656), or TCP
/// (RFC 6062).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RelayTransport {
    /// A UDP socket.
    Udp,
    /// A listening TCP socket, plus outgoing connections from its address.
    Tcp,
}

/// A TCP connection between a relay and a peer (RFC 6062 CONNECTION-ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u32);

/// Identifies a relay the server asked the driver to bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelayRequestId(pub u64);

/// Headroom a driver leaves before a peer's datagram in
/// [`Input::PeerData`], so the ChannelData header can be written in place.
pub const PEER_DATA_HEADROOM: usize = edgeice_stun::CHANNEL_DATA_HEADER_LEN;

/// What the I/O driver hands the server.
#[derive(Debug)]
pub enum Input<'a> {
    /// A datagram, or one frame cut from a stream, from a client.
    Client {
        /// Who sent it and to which listener.
        from: FiveTuple,
        /// The bytes.
        payload: &'a [u8],
    },
    /// A datagram a peer sent to a relay address. Its payload starts at
    /// `datagram[PEER_DATA_HEADROOM..]`; the bytes before are scratch space.
    PeerData {
        /// The relay address it arrived at.
        relay: SocketAddr,
        /// The peer that sent it.
        peer: SocketAddr,
        /// Headroom followed by the payload.
        datagram: &'a mut [u8],
    },
    /// A client's TCP or TLS connection closed: its allocation goes with it
    /// (RFC 8656 §3.1).
    ConnectionClosed {
        /// The connection's 5-tuple.
        from: FiveTuple,
    },
    /// The driver's answer to [`Event::ConnectPeer`].
    PeerConnected {
        /// The connection.
        id: ConnectionId,
        /// Whether the TCP connection to the peer was established.
        connected: bool,
    },
    /// A peer opened a TCP connection to a TCP relay address. The driver
    /// holds it until [`Event::AcceptPeer`] or [`Event::RefusePeer`].
    PeerConnection {
        /// The relay address it connected to.
        relay: SocketAddr,
        /// The peer.
        peer: SocketAddr,
    },
    /// A spliced (or waiting) peer connection ended.
    PeerConnectionClosed {
        /// The connection.
        id: ConnectionId,
    },
    /// The driver's answer to [`Event::BindRelay`].
    RelayBound {
        /// Which request this answers.
        id: RelayRequestId,
        /// The bound relay address, or `None` if no port was free.
        relay: Option<SocketAddr>,
        /// With [`RelayPort::Even`] and `reserve_next`: the next port, bound
        /// and held unused for a later Allocate with a RESERVATION-TOKEN.
        reserved: Option<SocketAddr>,
        /// The second relay of a dual allocation, or `None` if that family
        /// could not be bound (the client is told with ADDRESS-ERROR-CODE).
        additional: Option<SocketAddr>,
    },
}

/// One datagram or stream frame to send, borrowing the server's buffer or
/// the input it answers: handing one out costs no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// Transport to send on.
    pub transport: Transport,
    /// The local address to send from: a listener, or a relay address.
    pub source: SocketAddr,
    /// Where to send it.
    pub destination: SocketAddr,
    /// The bytes.
    pub payload: &'a [u8],
}

/// Which relay port an Allocate needs (RFC 8656 §7.2, EVEN-PORT and
/// RESERVATION-TOKEN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayPort {
    /// Any free port of the range.
    Any,
    /// An even port; with `reserve_next`, the odd port above it is bound
    /// too and held (for RTP and RTCP).
    Even {
        /// Hold the next port as well.
        reserve_next: bool,
    },
    /// The socket already bound and held at this address, reserved by an
    /// earlier Allocate.
    Reserved(SocketAddr),
}

/// Something the driver must do for the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Bind a UDP relay socket of `family` on a relay port, then answer
    /// with [`Input::RelayBound`].
    BindRelay {
        /// Identifies the answer.
        id: RelayRequestId,
        /// The address family wanted.
        family: AddressFamily,
        /// Which port.
        port: RelayPort,
        /// For a dual allocation, a second socket of this family is wanted
        /// too (any port), answered in [`Input::RelayBound`]'s `additional`.
        additional_family: Option<AddressFamily>,
        /// UDP socket, or TCP listener (RFC 6062).
        transport: RelayTransport,
    },
    /// Open a TCP connection from the TCP relay address `relay` to `peer`,
    /// then answer with [`Input::PeerConnected`].
    ConnectPeer {
        /// Names the connection from now on.
        id: ConnectionId,
        /// The relay address to connect from.
        relay: SocketAddr,
        /// The peer.
        peer: SocketAddr,
    },
    /// Keep the connection announced by [`Input::PeerConnection`] under `id`.
    AcceptPeer {
        /// Names the connection from now on.
        id: ConnectionId,
        /// The relay address.
        relay: SocketAddr,
        /// The peer.
        peer: SocketAddr,
    },
    /// Close the connection announced by [`Input::PeerConnection`]: no
    /// permission covers that peer.
    RefusePeer {
        /// The relay address.
        relay: SocketAddr,
        /// The peer.
        peer: SocketAddr,
    },
    /// The client's data connection `data` is bound to peer connection
    /// `id`: from now on pass bytes between the two unchanged.
    Splice {
        /// The peer connection.
        id: ConnectionId,
        /// The client's data connection.
        data: FiveTuple,
    },
    /// Close peer connection `id` (its allocation ended, or no
    /// ConnectionBind came in time).
    ClosePeerConnection {
        /// The connection.
        id: ConnectionId,
    },
    /// An allocation was just given a relay address that clients outside
    /// this network cannot reach (reported once per address): the driver
    /// should log the warning.
    PrivateRelayAdvertised(crate::nat::PrivateRelay),
    /// Close the relay socket bound at `relay`: its allocation (or its
    /// reservation) is gone.
    ReleaseRelay {
        /// The relay address.
        relay: SocketAddr,
    },
    /// A channel is bound and its peer permitted: the driver may relay it
    /// in the kernel from now on (with [`crate::ServerConfig::kernel_fast_path`]).
    /// Given again with the new `until` when a request moves it (a
    /// refresh, or a Refresh asking for a shorter lifetime).
    FastPathInstall {
        /// The channel, both ways.
        route: FastRoute,
        /// When the kernel must stop on its own: the first of the channel's,
        /// the permission's and the allocation's expiry. The program checks
        /// it on every packet, so a lapse stops the fast path at once,
        /// without waiting for a sweep.
        until: Instant,
        /// The allocation has a bandwidth cap: the kernel relays only while
        /// the bytes lent to it ([`Event::FastPathAllowance`]) last.
        capped: bool,
    },
    /// The bytes a capped allocation's kernel routes may relay until the
    /// next loan, taken from its bandwidth budget (given at the first
    /// route and at every sweep). The driver replaces the kernel's
    /// remainder with it and hands that remainder back with
    /// [`crate::Server::return_fast_path_allowance`], so every byte is
    /// spent once, by the kernel or by the socket path.
    FastPathAllowance {
        /// The allocation's 5-tuple.
        client: FiveTuple,
        /// Bytes of payload.
        bytes: u64,
    },
    /// The channel, its permission or its allocation lapsed: stop relaying
    /// it in the kernel, and count what went that way. For a capped
    /// allocation's last route there, the driver hands what the loan had
    /// left back with [`crate::Server::return_fast_path_allowance`].
    FastPathRemove(FastRoute),
}

/// A bound channel the kernel may relay: everything it rewrites a packet
/// with, both ways (a UDP client; IPv4 throughout, or IPv6 throughout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FastRoute {
    /// The client's 5-tuple (UDP).
    pub client: FiveTuple,
    /// The relayed address.
    pub relay: SocketAddr,
    /// The peer the channel is bound to.
    pub peer: SocketAddr,
    /// The channel number.
    pub channel: u16,
}
