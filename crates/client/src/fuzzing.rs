//! The body of the `client_allocation` fuzz target, kept in the crate so
//! that `cargo test` replays its committed corpus, and the scripted TURN
//! server it and the unit tests answer requests with.
//!
//! The input is a script: raw bytes fed to `handle_input`, proper or
//! corrupted answers to the request the allocation just sent (challenges,
//! stale nonces, errors, successes), Data indications and ChannelData the
//! script fills, API calls and jumps in time. It reaches every state —
//! idle, challenged, allocated with permissions and channels, releasing,
//! released, failed — and whatever it does, the allocation must not panic
//! and must stay bounded.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use edgeice_stun::attribute::PasswordAlgorithm;
use edgeice_stun::credentials::{Preparation, long_term_key};
use edgeice_stun::{
    Attribute, AttributeType, ChannelData, Class, ErrorCode, IntegrityKey, Message, MessageBuilder,
    MessageType, Method, TransactionId,
};

use crate::{Allocation, AllocationConfig, AllocationState, Credentials, RelayProtocol, Transport};

/// The server's address in scripted runs.
pub const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 3478);
/// The relayed address the scripted server hands out.
pub const RELAYED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 61000);
/// The mapped address the scripted server reports.
pub const MAPPED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 40000);

/// A TURN server that answers requests as told: user `user`, password
/// `pass`, realm `realm`.
#[derive(Debug)]
pub struct ScriptedServer {
    key: IntegrityKey,
    /// The nonce it hands out; change it to make the client's stale.
    pub nonce: String,
    /// The lifetime it grants.
    pub lifetime: u32,
}

impl Default for ScriptedServer {
    fn default() -> Self {
        Self::new()
    }
}

impl ScriptedServer {
    /// The realm.
    pub const REALM: &'static str = "realm";

    /// A server with nonce `n1` granting 600 s.
    pub fn new() -> Self {
        let key = long_term_key(
            "user",
            Self::REALM,
            "pass",
            PasswordAlgorithm::MD5,
            Preparation::OpaqueString,
        )
        .unwrap_or_else(|_| IntegrityKey::new(b""));
        ScriptedServer {
            key,
            nonce: "n1".to_owned(),
            lifetime: 600,
        }
    }

    /// Settings for an allocation on this server with the right password.
    pub fn config(transport: Transport) -> AllocationConfig {
        AllocationConfig::new(
            SERVER,
            transport,
            Credentials {
                username: "user".to_owned(),
                password: "pass".to_owned(),
            },
        )
    }

    /// What a real server would answer: 401 without credentials, 438 when
    /// the nonce is not the current one, else success. `None` if `request`
    /// is not a request.
    pub fn answer(&self, request: &[u8], out: &mut Vec<u8>) -> Option<()> {
        let message = Message::parse(request).ok()?;
        if message.class() != Class::Request {
            return None;
        }
        let nonce = match message.get(AttributeType::NONCE) {
            Some(Ok(Attribute::Nonce(n))) => Some(n),
            _ => None,
        };
        match nonce {
            None => self.error(&message, ErrorCode::UNAUTHENTICATED, out),
            Some(n) if n != self.nonce => self.error(&message, ErrorCode::STALE_NONCE, out),
            Some(_) if message.verify_integrity(&self.key).is_err() => {
                self.error(&message, ErrorCode::UNAUTHENTICATED, out)
            }
            Some(_) => self.success(&message, out),
        }
    }

    /// A signed success response to `request`.
    pub fn success(&self, request: &Message<'_>, out: &mut Vec<u8>) -> Option<()> {
        let kind = MessageType::new(request.method(), Class::Success);
        let mut b = MessageBuilder::new(out, kind, *request.transaction_id());
        match request.method() {
            Method::ALLOCATE => {
                b.add(&Attribute::XorRelayedAddress(RELAYED)).ok()?;
                b.add(&Attribute::XorMappedAddress(MAPPED)).ok()?;
                b.add(&Attribute::Lifetime(self.lifetime)).ok()?;
            }
            Method::REFRESH => {
                let lifetime = match request.get(AttributeType::LIFETIME) {
                    Some(Ok(Attribute::Lifetime(0))) => 0,
                    _ => self.lifetime,
                };
                b.add(&Attribute::Lifetime(lifetime)).ok()?;
            }
            Method::CONNECT => {
                b.add(&Attribute::ConnectionId(7)).ok()?;
            }
            _ => {}
        }
        b.add_integrity_sha1(&self.key).ok()?;
        b.add_fingerprint().ok()?;
        Some(())
    }

    /// An error response with `code`; 401 and 438 carry REALM and NONCE.
    pub fn error(&self, request: &Message<'_>, code: u16, out: &mut Vec<u8>) -> Option<()> {
        let kind = MessageType::new(request.method(), Class::Error);
        let mut b = MessageBuilder::new(out, kind, *request.transaction_id());
        b.add(&Attribute::ErrorCode(ErrorCode::with_default_reason(code)))
            .ok()?;
        if code == ErrorCode::UNAUTHENTICATED || code == ErrorCode::STALE_NONCE {
            b.add(&Attribute::Realm(Self::REALM)).ok()?;
            b.add(&Attribute::Nonce(&self.nonce)).ok()?;
        }
        b.add_fingerprint().ok()?;
        Some(())
    }
}

/// Reads bytes off the script; zeros once it runs out.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    fn bytes(&mut self, max: usize) -> &[u8] {
        let len = usize::from(self.byte()).min(max).min(self.0.len());
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        taken
    }

    fn peer(&mut self) -> SocketAddr {
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, self.byte() % 4)),
            5000 + u16::from(self.byte() % 4),
        )
    }
}

/// Runs one script against a fresh allocation.
pub fn client_allocation(data: &[u8]) {
    run(data);
}

/// Runs one script; returns every state the allocation went through.
pub fn run(data: &[u8]) -> Vec<AllocationState> {
    let mut states = Vec::new();
    let mut script = Script(data);
    let t0 = Instant::now();
    let mut now = t0;
    let first = script.byte();
    let transport = match first % 3 {
        0 => Transport::Udp,
        1 => Transport::Tcp,
        _ => Transport::Tls,
    };
    let mut config = ScriptedServer::config(transport);
    if transport.is_stream() && first & 0x10 != 0 {
        config.relay = RelayProtocol::Tcp;
    }
    let mut server = ScriptedServer::new();
    server.lifetime = u32::from(script.byte());
    let mut allocation = Allocation::new(config);
    let _ = allocation.allocate(now);
    states.push(allocation.state());

    let mut last_request: Vec<u8> = Vec::new();
    let mut response = Vec::new();
    let mut out = Vec::new();
    for _ in 0..256 {
        if script.0.is_empty() {
            break;
        }
        if let Some(transmit) = allocation.poll_transmit() {
            last_request.clear();
            last_request.extend_from_slice(transmit.payload);
        }
        match script.byte() % 12 {
            0 => {
                let raw = script.bytes(255).to_vec();
                let _ = allocation.handle_input(now, &raw);
            }
            1 | 2 => {
                if server.answer(&last_request, &mut response).is_some() {
                    let _ = allocation.handle_input(now, &response);
                }
            }
            3 => {
                if let Ok(request) = Message::parse(&last_request) {
                    let code = match script.byte() % 8 {
                        0 => 401,
                        1 => 403,
                        2 => 437,
                        3 => 438,
                        4 => 441,
                        5 => 486,
                        6 => 508,
                        _ => 300 + u16::from(script.byte()),
                    };
                    if server.error(&request, code, &mut response).is_some() {
                        let _ = allocation.handle_input(now, &response);
                    }
                }
            }
            4 => {
                // A proper answer with one byte changed.
                if server.answer(&last_request, &mut response).is_some() && !response.is_empty() {
                    let at = usize::from(script.byte()) % response.len();
                    response[at] ^= script.byte() | 1;
                    let _ = allocation.handle_input(now, &response);
                }
            }
            5 => {
                let secs = u64::from(script.byte());
                now += Duration::from_secs(secs * secs);
                if let Some(deadline) = allocation.poll_timeout()
                    && script.byte() & 1 == 1
                {
                    now = now.max(deadline);
                }
                allocation.handle_timeout(now);
                // No busy loop: what was due has been dealt with.
                assert!(allocation.poll_timeout().is_none_or(|t| t > now));
            }
            6 => {
                let peer = script.peer();
                let payload = script.bytes(64).to_vec();
                let _ = allocation.send_to(now, peer, &payload, &mut out);
            }
            7 => {
                let peer = script.peer();
                let _ = match script.byte() % 3 {
                    0 => allocation.create_permission(now, peer.ip()),
                    1 => allocation.bind_channel(now, peer).map(drop),
                    _ => allocation.connect(now, peer),
                };
            }
            8 => {
                let peer = script.peer();
                let payload = script.bytes(64).to_vec();
                let kind = MessageType::new(Method::DATA, Class::Indication);
                let mut b = MessageBuilder::new(&mut response, kind, TransactionId([1; 12]));
                let _ = b.add(&Attribute::XorPeerAddress(peer));
                let _ = b.add(&Attribute::Data(&payload));
                let _ = allocation.handle_input(now, &response);
            }
            9 => {
                let channel = 0x4000 + u16::from(script.byte() % 8);
                let payload = script.bytes(64).to_vec();
                let pad = script.byte() & 1 == 1;
                let frame = ChannelData {
                    channel,
                    data: &payload,
                };
                if frame.encode(pad, &mut response).is_ok() {
                    let _ = allocation.handle_input(now, &response);
                }
            }
            10 => {
                let kind = MessageType::new(Method::CONNECTION_ATTEMPT, Class::Indication);
                let mut b = MessageBuilder::new(&mut response, kind, TransactionId([2; 12]));
                let _ = b.add(&Attribute::ConnectionId(u32::from(script.byte())));
                let _ = b.add(&Attribute::XorPeerAddress(script.peer()));
                let _ = allocation.handle_input(now, &response);
                if let Ok(bind) = allocation.connection_bind(now, 7) {
                    let raw = script.bytes(64).to_vec();
                    let _ = bind.handle_response(&raw);
                    if let Ok(request) = Message::parse(bind.request()) {
                        let _ = server.success(&request, &mut response);
                        let _ = bind.handle_response(&response);
                    }
                }
            }
            _ => {
                let choice = script.byte() % 8;
                if choice == 0 {
                    let _ = allocation.release(now);
                } else if choice == 1 {
                    allocation.connection_closed();
                } else {
                    server.nonce = format!("n{}", script.byte());
                }
            }
        }
        while allocation.poll_event().is_some() {}
        if states.last() != Some(&allocation.state()) {
            states.push(allocation.state());
        }
    }
    states
}

/// The body of the `ms_turn_client` fuzz target: a script of raw bytes,
/// the edge's proper or corrupted MS-TURN answers (challenge, success,
/// errors, Data indications), raw datagrams, API calls and time jumps
/// against an [`crate::MsTurnClient`]. Whatever it does, the client must
/// not panic.
pub fn ms_turn_client(data: &[u8]) {
    use edgeice_stun::{Layout, ms};

    let Ok(mut client) = crate::MsTurnClient::new(crate::MsTurnConfig {
        server: SERVER,
        transport: if data.first().is_some_and(|b| b & 1 == 1) {
            Transport::Tcp
        } else {
            Transport::Udp
        },
        username: "user".to_owned(),
        password: "pass".to_owned(),
        transactions: crate::TransactionConfig::default(),
    }) else {
        return;
    };
    let Ok(key) = long_term_key(
        "user",
        "realm",
        "pass",
        PasswordAlgorithm::MD5,
        Preparation::None,
    ) else {
        return;
    };
    let mut now = Instant::now();
    let _ = client.allocate(now);
    let mut last_request: Vec<u8> = Vec::new();
    let mut answer = Vec::new();
    let mut script = data.get(1..).unwrap_or_default();
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 9000);
    while let Some((&op, rest)) = script.split_first() {
        script = rest;
        while let Some(t) = client.poll_transmit() {
            // Over TCP the frame header comes first.
            let at = if t.payload.first().is_some_and(|b| *b == 2 || *b == 3) {
                4
            } else {
                0
            };
            if let Some(message) = t.payload.get(at..).filter(|m| ms::is_ms_turn(m)) {
                last_request = message.to_vec();
            }
        }
        while client.poll_event().is_some() {}
        let take = usize::from(op >> 4).min(script.len());
        let (arg, rest) = script.split_at(take);
        script = rest;
        match op & 0x0F {
            0 => {
                let _ = client.handle_input(now, arg);
            }
            1..=4 => {
                // An answer to the last request: 401, success, another
                // error, or a corrupted success.
                let Ok(request) = Message::parse_either_layout(&last_request) else {
                    continue;
                };
                let class = if op & 0x0F == 2 || op & 0x0F == 4 {
                    Class::Success
                } else {
                    Class::Error
                };
                let kind = MessageType::new(request.method(), class);
                let mut b = MessageBuilder::with_cookie(
                    &mut answer,
                    kind,
                    request.cookie_field(),
                    *request.transaction_id(),
                )
                .layout(Layout::Unpadded);
                let _ = (|| -> Result<(), edgeice_stun::BuildError> {
                    b.add_raw(ms::MAGIC_COOKIE, &ms::MAGIC_COOKIE_VALUE.to_be_bytes())?;
                    match op & 0x0F {
                        1 => {
                            b.add(&Attribute::ErrorCode(ErrorCode::with_default_reason(401)))?;
                            b.add_raw(ms::REALM, b"realm")?;
                            b.add_raw(ms::NONCE, arg)?;
                        }
                        3 => {
                            let code = 300 + u16::from(arg.first().copied().unwrap_or(0)) % 300;
                            b.add(&Attribute::ErrorCode(ErrorCode::with_default_reason(code)))?;
                            b.add_integrity_sha1_rfc3489(&key, false)?;
                        }
                        _ => {
                            b.add(&Attribute::MappedAddress(RELAYED))?;
                            b.add(&Attribute::Lifetime(
                                u32::from(arg.first().copied().unwrap_or(1)) * 10,
                            ))?;
                            b.add_raw(ms::MS_XOR_MAPPED_ADDRESS, arg)?;
                            b.add_integrity_sha1_rfc3489(&key, false)?;
                        }
                    }
                    Ok(())
                })();
                let corrupt_at = take % answer.len().max(1);
                if op & 0x0F == 4
                    && let Some(byte) = answer.get_mut(corrupt_at)
                {
                    *byte ^= 0x55;
                }
                let _ = client.handle_input(now, &answer);
            }
            5 => {
                let mut b = MessageBuilder::with_cookie(
                    &mut answer,
                    ms::DATA_INDICATION,
                    [1, 2, 3, 4],
                    TransactionId([7; 12]),
                )
                .layout(Layout::Unpadded);
                let _ = b.add_raw(ms::MAGIC_COOKIE, &ms::MAGIC_COOKIE_VALUE.to_be_bytes());
                let _ = b.add_raw(
                    ms::REMOTE_ADDRESS,
                    &edgeice_stun::attribute::address_value(&peer),
                );
                let _ = b.add_raw(ms::DATA, arg);
                let _ = client.handle_input(now, &answer);
            }
            6 => {
                let _ = client.send_to(peer, arg, &mut answer);
            }
            7 => {
                let _ = client.set_active_destination(now, peer);
            }
            8 => {
                let _ = client.release(now);
            }
            9 => {
                let _ = client.allocate(now);
            }
            _ => {
                now += Duration::from_millis(u64::from(op) * 100);
                client.handle_timeout(now);
            }
        }
    }
}
