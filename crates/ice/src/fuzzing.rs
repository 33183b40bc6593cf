//! Bodies of the ICE fuzz targets, kept in the crate so that `cargo test`
//! replays their committed corpora.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgeice_stun::{
    AttributeType, Class, IntegrityKey, Layout, MessageBuilder, MessageType, Method, TransactionId,
};

use crate::sdp::DescriptionReader;
use crate::{Agent, AgentConfig, Candidate, Dialect};

const LOCAL: &str = "192.0.2.1:5000";
const TCP_LISTENER: &str = "192.0.2.1:5001";
const REMOTE: &str = "192.0.2.2:6000";
const LOCAL_PWD: &str = "localpasswordlocalpassword";
const REMOTE_PWD: &str = "remotepasswordremotepassword";

fn agent(now: Instant, controlling: bool, dialect: Dialect) -> Agent {
    let config = AgentConfig {
        controlling,
        dialect,
        credentials: Some(("locl".into(), LOCAL_PWD.into())),
        ..AgentConfig::default()
    };
    let mut agent = Agent::new(config, now);
    let local: SocketAddr = LOCAL.parse().unwrap_or_else(|_| unreachable!());
    agent.add_host_socket(now, 1, local);
    agent.set_remote_credentials(now, "rmte", REMOTE_PWD, false);
    if let Ok(candidate) = Candidate::parse("candidate:1 1 udp 2130706431 192.0.2.2 6000 typ host")
    {
        agent.add_remote_candidate(now, candidate);
    }
    agent
}

/// Feeds an agent datagrams cut from `data` (a length byte before each),
/// from its remote candidate, with time moving on between them. The first
/// byte's low bit picks the role; its second bit wraps each chunk's bytes
/// as the attributes of a Binding message (class from the chunk's first
/// byte) signed with the right key, so the checks behind integrity are
/// reached too; its third bit sends them over an ICE-TCP connection; its
/// fourth makes the agent speak MS-ICE2 (and signed messages are then
/// written and sealed that dialect's way: unpadded, RFC 3489 integrity,
/// the standard or, with the fifth bit, the legacy FINGERPRINT).
pub fn agent_input(data: &[u8]) {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let dialect = if flags & 8 == 8 {
        Dialect::MsIce2
    } else {
        Dialect::Rfc8445
    };
    let mut agent = agent(now, flags & 1 == 1, dialect);
    let legacy = flags & 16 == 16;
    let local: SocketAddr = LOCAL.parse().unwrap_or_else(|_| unreachable!());
    let remote: SocketAddr = REMOTE.parse().unwrap_or_else(|_| unreachable!());
    // With the third bit, the bytes arrive on an ICE-TCP connection a peer
    // opened to our listener (RFC 4571 framing, cut anywhere).
    let mut tcp = None;
    if flags & 4 == 4 {
        let listener: SocketAddr = TCP_LISTENER.parse().unwrap_or_else(|_| unreachable!());
        agent.add_tcp_listener(now, 1, listener);
        tcp = agent.tcp_accepted(now, listener, remote);
    }
    let mut buf = Vec::new();
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        rest = tail;
        let datagram: &[u8] = if flags & 2 == 2 {
            signed(&mut buf, chunk, dialect, legacy);
            &buf
        } else {
            chunk
        };
        match tcp {
            Some(id) => {
                let mut framed = Vec::new();
                if flags & 2 == 2 {
                    crate::framing::frame(datagram, &mut framed);
                } else {
                    framed.extend_from_slice(datagram);
                }
                agent.handle_input(now, crate::Input::TcpData { id, data: &framed });
                while agent.poll_received().is_some() {}
            }
            None => {
                let _ = agent.handle_input(
                    now,
                    crate::Input::Datagram {
                        socket: local,
                        from: remote,
                        payload: datagram,
                    },
                );
            }
        }
        now += Duration::from_millis(37);
        agent.handle_timeout(now);
        while agent.poll_transmit().is_some() {}
        while agent.poll_event().is_some() {}
        while agent.poll_tcp_command().is_some() {}
        let _ = agent.send(now, 1, b"data");
    }
    // Let every timer run out: nothing may loop or panic.
    for _ in 0..200 {
        let Some(next) = agent.poll_timeout() else {
            break;
        };
        now = now.max(next);
        agent.handle_timeout(now);
        while agent.poll_transmit().is_some() {}
        while agent.poll_event().is_some() {}
    }
}

/// A Binding message whose attributes are `chunk[1..]` (type, length,
/// value as on the wire, cut short where they end), signed as the remote
/// agent would: requests with the local password, responses with the remote;
/// in `dialect`'s way (`legacy`: MS-ICE2's legacy FINGERPRINT).
fn signed(buf: &mut Vec<u8>, chunk: &[u8], dialect: Dialect, legacy: bool) {
    let class = match chunk.first().map(|b| b % 3) {
        Some(0) => Class::Request,
        Some(1) => Class::Success,
        _ => Class::Error,
    };
    let key = if class == Class::Request {
        IntegrityKey::new(LOCAL_PWD.as_bytes())
    } else {
        IntegrityKey::new(REMOTE_PWD.as_bytes())
    };
    let mut id = [0u8; 12];
    id.iter_mut()
        .zip(chunk.iter().rev())
        .for_each(|(d, s)| *d = *s);
    let mut builder = MessageBuilder::new(
        buf,
        MessageType::new(Method::BINDING, class),
        TransactionId(id),
    );
    if dialect == Dialect::MsIce2 {
        builder = builder.layout(Layout::Unpadded);
    }
    let mut attributes = chunk.get(1..).unwrap_or_default();
    while attributes.len() >= 4 {
        let kind = u16::from_be_bytes([attributes[0], attributes[1]]);
        let len = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]))
            .min(attributes.len() - 4);
        let value = &attributes[4..4 + len];
        attributes = &attributes[4 + len..];
        // Integrity and fingerprint are added below, where they belong.
        if kind == AttributeType::MESSAGE_INTEGRITY.0 || kind == AttributeType::FINGERPRINT.0 {
            continue;
        }
        if builder.add_raw(AttributeType(kind), value).is_err() {
            break;
        }
    }
    match dialect {
        Dialect::Rfc8445 => {
            let _ = builder.add_integrity_sha1(&key);
            let _ = builder.add_fingerprint();
        }
        Dialect::MsIce2 => {
            let _ = builder.add_integrity_sha1_rfc3489(&key, true);
            let _ = if legacy {
                builder.add_fingerprint_legacy()
            } else {
                builder.add_fingerprint()
            };
        }
    }
    builder.finish();
}

/// Reads any bytes as a remote description, line by line.
pub fn description(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut reader = DescriptionReader::new();
    for line in text.lines() {
        let _ = reader.read_line(line);
    }
}
