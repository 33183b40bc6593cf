//! What an embedding application decides: role, timers, servers.

use std::net::SocketAddr;
use std::time::Duration;

/// How the controlling agent nominates (RFC 8445 §8.1.1; aggressive is the
/// RFC 5245 variant many stacks still accept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Nomination {
    /// Check first, then nominate the best pair that worked with a second
    /// check carrying USE-CANDIDATE.
    #[default]
    Regular,
    /// Every check carries USE-CANDIDATE: the first pair that works is
    /// selected at once, better ones replace it as they succeed.
    Aggressive,
}

/// Which ICE dialect the agent speaks on the wire: how checks and their
/// answers are encoded and authenticated, and how priorities are formed.
/// Everything else (pairing, pacing, nomination, consent) is shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// RFC 8445 (and RFC 5245 peers): padded attributes, RFC 8489
    /// MESSAGE-INTEGRITY and FINGERPRINT, RFC 8445 §5.1.2 priorities.
    #[default]
    Rfc8445,
    /// Microsoft's MS-ICE2, as Lync/Skype for Business clients and libnice's
    /// `OC2007R2` mode speak it: unpadded attributes, a NUL-padded USERNAME,
    /// CANDIDATE-IDENTIFIER and IMPLEMENTATION-VERSION 2, RFC 3489-style
    /// MESSAGE-INTEGRITY that counts FINGERPRINT (which is required), and
    /// Microsoft's priorities (host 120; transport, direction, TURN server
    /// and address index in the local preference). Checks are accepted in
    /// either attribute layout.
    MsIce2,
}

/// A STUN server to learn server-reflexive candidates from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StunServer {
    /// Where it listens.
    pub address: SocketAddr,
    /// How to name it in events and traces (`stun:host:port`).
    pub url: String,
}

/// How the agent reaches a server: UDP from the host socket, or a TCP
/// connection the application opens from the host socket's IP (for
/// networks that block UDP), or TLS over one (`turns:`). The one
/// `Transport` of `edgeice-stun`, under the name the agent's API has
/// always used.
pub use edgeice_stun::Transport as ServerTransport;

/// A TURN server to allocate relayed candidates on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnServer {
    /// Where it listens.
    pub address: SocketAddr,
    /// UDP or TCP to the server (the relay itself is UDP either way).
    pub transport: ServerTransport,
    /// How to name it in events and traces (`turn:host:port?transport=udp`).
    pub url: String,
    /// Long-term credential user name.
    pub username: String,
    /// Long-term credential password.
    pub password: String,
}

/// Everything the agent is told rather than decides.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Start as the controlling agent (the offerer, by JSEP convention).
    pub controlling: bool,
    /// Components per stream: 1 (RTP and RTCP multiplexed) or 2.
    pub components: u16,
    /// Pacing: one new check every `ta`. 20 ms by default: RFC 5245's value
    /// for RTP streams, which libnice and aioice use too; RFC 8445 §14.2
    /// suggests 50 ms and leaves the value configurable. A nominating check
    /// goes at once and takes the next slot (docs/ice.md).
    pub ta: Duration,
    /// Regular or aggressive nomination.
    pub nomination: Nomination,
    /// First retransmission timeout of a check (RFC 8445 §14.3 floor 500 ms).
    pub initial_rto: Duration,
    /// Longest gap between retransmissions: with 7 transmissions, a pair
    /// that never answers fails after about `initial_rto * 3 + 5 * max_rto`.
    pub max_rto: Duration,
    /// Transmissions of one check before its pair fails (RFC 8489 Rc = 7).
    pub max_transmissions: u32,
    /// How long the controlling agent waits, after its first pair works,
    /// for a better pair before nominating (regular nomination).
    pub nomination_delay: Duration,
    /// Consent checks on the selected pair every this much, ±20%
    /// (RFC 7675: 5 s by default).
    pub consent_interval: Duration,
    /// Without an answer for this long the agent reports `Disconnected`
    /// (long enough that one lost consent check does not).
    pub disconnected_after: Duration,
    /// Without an answer for this long consent is lost: `Failed`
    /// (RFC 7675: 30 s).
    pub consent_timeout: Duration,
    /// Servers for server-reflexive candidates.
    pub stun_servers: Vec<StunServer>,
    /// Servers for relayed candidates.
    pub turn_servers: Vec<TurnServer>,
    /// Offer relayed candidates only (host addresses stay private).
    pub relay_only: bool,
    /// Also allocate TCP relays (RFC 6062) on TURN servers reached over TCP
    /// or TLS: passive relayed ICE-TCP candidates, for peers that can only
    /// reach the TURN server over TCP.
    pub tcp_relays: bool,
    /// The wire dialect: RFC 8445 or Microsoft's MS-ICE2.
    pub dialect: Dialect,
    /// Local credentials; random if unset (RFC 8445 §5.3: 6 and 24
    /// characters; MS-ICE2: 4 and 22, as its peers expect).
    pub credentials: Option<(String, String)>,
    /// At most this many pairs (RFC 8445 §6.1.2.5 suggests 100).
    pub max_pairs: usize,
    /// Be an ICE-lite agent (RFC 8445 §2.5), as servers on public
    /// addresses are: host candidates only, no checks of its own, always
    /// controlled; a pair works once a check arrives on it, and is selected
    /// when the other side nominates it.
    pub lite: bool,
    /// Seed for every random choice the agent makes (credentials,
    /// tie-breaker, transaction IDs, consent jitter); drawn from the
    /// system when unset. Set it only to replay a run (simulations, tests):
    /// a known seed makes credentials guessable.
    pub rng_seed: Option<[u8; 32]>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            controlling: true,
            components: 1,
            ta: Duration::from_millis(20),
            nomination: Nomination::Regular,
            initial_rto: Duration::from_millis(500),
            max_rto: Duration::from_millis(1600),
            max_transmissions: 7,
            nomination_delay: Duration::from_millis(300),
            consent_interval: Duration::from_secs(5),
            disconnected_after: Duration::from_secs(12),
            consent_timeout: Duration::from_secs(30),
            stun_servers: Vec::new(),
            turn_servers: Vec::new(),
            relay_only: false,
            tcp_relays: false,
            dialect: Dialect::Rfc8445,
            credentials: None,
            max_pairs: 100,
            lite: false,
            rng_seed: None,
        }
    }
}
