//! The transport a STUN/TURN message travels over — one type for the
//! server core, the client and the ICE agent, since they all mean the same
//! three things by it.

/// UDP, or a byte stream (TCP, or TLS over TCP) whose messages are framed
/// as RFC 8656 §12.5 says ([`crate::StreamDecoder`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Transport {
    /// UDP datagrams: requests are retransmitted, ChannelData is not padded.
    #[default]
    Udp,
    /// A TCP connection: requests are sent once, ChannelData is padded to
    /// 4 bytes.
    Tcp,
    /// TLS over a TCP connection (`turns:`, often on port 443): as TCP.
    Tls,
}

impl Transport {
    /// Every transport, in [`Transport::index`] order.
    pub const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

    /// Whether this is a byte stream (TCP or TLS), on which requests are
    /// not retransmitted and ChannelData is padded (RFC 8656 §12.5).
    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// 0, 1 and 2 for UDP, TCP and TLS: where per-transport counters go.
    pub fn index(self) -> usize {
        match self {
            Transport::Udp => 0,
            Transport::Tcp => 1,
            Transport::Tls => 2,
        }
    }
}
