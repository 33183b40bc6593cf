//! The body of the `server_core` fuzz target, kept in the crate so that
//! `cargo test` replays its committed corpus. The input is a script of
//! operations: raw datagrams and stream frames from several clients,
//! properly signed TURN requests whose attributes the input chooses, peer
//! datagrams, relay-binding answers, connection closes and jumps in time.
//! Whatever the script, the server must not panic, and its state must stay
//! bounded by the clients it serves.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgeice_stun::attribute::{PasswordAlgorithm, TRANSPORT_UDP};
use edgeice_stun::credentials::{Preparation, long_term_key};
use edgeice_stun::{
    Attribute, AttributeType, Class, Message, MessageBuilder, MessageType, Method, TransactionId,
    ms,
};

use crate::{Event, FiveTuple, Input, PEER_DATA_HEADROOM, Server, ServerConfig, Transport};

const REALM: &str = "fuzz";

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
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = usize::from(self.byte()).min(max).min(self.0.len());
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        taken.to_vec()
    }
}

/// Runs one script against a fresh server.
pub fn server_core(data: &[u8]) {
    let t0 = Instant::now();
    let mut config = ServerConfig {
        realm: REALM.to_owned(),
        max_allocations_per_user: 3,
        kernel_fast_path: data.first().is_some_and(|b| b & 1 == 1),
        // Capped allocations lend bytes to the kernel fast path.
        max_bytes_per_second: data.first().is_some_and(|b| b & 2 == 2).then_some(1_000),
        ..ServerConfig::default()
    };
    config
        .peer_policy
        .allow
        .push("127.0.0.0/8".parse().unwrap_or_else(|_| unreachable!()));
    let flags = data.first().copied().unwrap_or(0);
    if flags & 4 != 0 {
        // Tight caps, the server's own address as a peer, an IPv6-form
        // deny entry, RFC 5780 answers.
        config.max_permissions_per_allocation = 2;
        config.max_channels_per_allocation = 2;
        config.peer_policy.own_addresses = ["10.0.0.1", "198.51.100.2"]
            .iter()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        config.peer_policy.deny = ["64:ff9b::/96"]
            .iter()
            .filter_map(|net| net.parse().ok())
            .collect();
        config.peer_policy.deny_private = flags & 8 != 0;
        // Peers at an own address on a relay port are another allocation.
        config.peer_policy.relay_ports = (flags & 16 != 0).then_some(9..=9);
        if let (Ok(primary), Ok(alternate)) = ("10.0.0.1:3478".parse(), "10.0.0.2:3479".parse()) {
            config.alternates = vec![crate::AlternateAddress { primary, alternate }];
        }
    }
    if flags & 32 != 0 {
        // Steering: alternates of both families and the server's own
        // address, a drain, a threshold of one allocation.
        let alternates = ["10.0.0.9:3478", "[2001:db8::9]:3478", "10.0.0.1:3478"]
            .iter()
            .filter_map(|a| a.parse().ok())
            .map(|address| crate::Alternate {
                address,
                domain: Some("turn9.example.org".to_owned()),
            })
            .collect::<Vec<_>>();
        config.shared.set_tls_alternates(alternates.clone());
        config.shared.set_alternates(alternates);
        config.shared.set_draining(flags & 64 != 0);
        config.redirect_above = (flags & 128 != 0).then_some(1);
    }
    let _ = config.add_user("user", "pass");
    // A guesser's key: requests signed with it fail their integrity check
    // and run into the guessing backoff.
    let Ok(wrong_key) = long_term_key(
        "user",
        REALM,
        "guess",
        PasswordAlgorithm::MD5,
        Preparation::OpaqueString,
    ) else {
        return;
    };
    let Ok(key) = long_term_key(
        "user",
        REALM,
        "pass",
        PasswordAlgorithm::MD5,
        Preparation::OpaqueString,
    ) else {
        return;
    };
    let mut server = Server::new(config, t0);
    let clients: Vec<FiveTuple> = [
        (Transport::Udp, "192.0.2.1:5000", "10.0.0.1:3478"),
        (Transport::Udp, "192.0.2.2:5000", "10.0.0.1:3478"),
        (Transport::Tcp, "192.0.2.3:5000", "10.0.0.1:3478"),
        (Transport::Udp, "[2001:db8::1]:5000", "[2001:db8::100]:3478"),
    ]
    .iter()
    .filter_map(|(transport, client, server)| {
        Some(FiveTuple {
            transport: *transport,
            client: client.parse().ok()?,
            server: server.parse().ok()?,
        })
    })
    .collect();
    let peers: Vec<SocketAddr> = [
        "198.51.100.1:9",
        "198.51.100.2:9",
        "127.0.0.1:22",
        "[2001:db8::9]:9",
        "169.254.169.254:80",
        "[64:ff9b::c633:6401]:9",
        "[::ffff:198.51.100.1]:9",
        "[2001:0:c000:201::39cc:9bfe]:9",
    ]
    .iter()
    .filter_map(|p| p.parse().ok())
    .collect();
    let mut nonces: Vec<String> = vec![String::new(); clients.len()];
    let mut relays: Vec<SocketAddr> = Vec::new();
    let mut next_port: u16 = 61000;
    let mut now = t0;
    let mut script = Script(data);
    let mut buf = Vec::new();
    let mut id = 0u8;
    let mut connection_ids: Vec<crate::ConnectionId> = Vec::new();
    // Channels the kernel fast path holds, as a driver would track them.
    // Routes in the kernel, each with the deadline it was given.
    let mut in_kernel: Vec<(crate::FastRoute, Instant)> = Vec::new();
    // Bytes lent to the kernel, per allocation.
    let mut loans: Vec<(crate::FiveTuple, u64)> = Vec::new();

    while !script.0.is_empty() {
        let op = script.byte();
        let k = usize::from(script.byte()) % clients.len();
        let from = clients[k];
        match op % 7 {
            0 => {
                let bytes = script.bytes(600);
                let answer = server.handle_input(
                    now,
                    Input::Client {
                        from,
                        contents: &bytes,
                    },
                );
                learn_nonce(answer.map(|t| t.contents), &mut nonces[k]);
            }
            1 | 2 if script.0.first().is_some_and(|b| b & 0x80 != 0) => {
                id = id.wrapping_add(1);
                let pick = script.byte();
                let choices = script.byte();
                let peer = peers[usize::from(script.byte()) % peers.len()];
                ms_turn_request(&mut buf, id, pick, choices, peer, &nonces[k], &key);
                let answer = server.handle_input(
                    now,
                    Input::Client {
                        from,
                        contents: &buf,
                    },
                );
                learn_nonce(answer.map(|t| t.contents), &mut nonces[k]);
            }
            1 | 2 => {
                id = id.wrapping_add(1);
                let method = [
                    Method::ALLOCATE,
                    Method::REFRESH,
                    Method::CREATE_PERMISSION,
                    Method::CHANNEL_BIND,
                ][usize::from(script.byte() % 4)];
                let mut b = MessageBuilder::new(
                    &mut buf,
                    MessageType::new(method, Class::Request),
                    TransactionId([id; 12]),
                );
                let choices = script.byte();
                let peer_byte = script.byte();
                let peer = peers[usize::from(peer_byte & 0x7f) % peers.len()];
                let key = if peer_byte & 0x80 != 0 {
                    &wrong_key
                } else {
                    &key
                };
                let _ = (|| -> Result<(), edgeice_stun::BuildError> {
                    if choices & 1 != 0 {
                        b.add(&Attribute::RequestedTransport(if choices & 2 != 0 {
                            TRANSPORT_UDP
                        } else {
                            6
                        }))?;
                    }
                    if choices & 4 != 0 {
                        b.add(&Attribute::Lifetime(u32::from(choices >> 4) * 60))?;
                    }
                    if choices & 8 != 0 {
                        b.add(&Attribute::XorPeerAddress(peer))?;
                    }
                    if choices & 16 != 0 {
                        b.add(&Attribute::ChannelNumber(0x4000 + u16::from(choices & 7)))?;
                        if let Some(id) = connection_ids.last() {
                            b.add(&Attribute::ConnectionId(id.0))?;
                        }
                    }
                    if choices & 32 != 0 {
                        b.add(&Attribute::EvenPort(choices & 64 != 0))?;
                    }
                    if choices & 128 != 0 {
                        b.add(&Attribute::AdditionalAddressFamily(
                            edgeice_stun::AddressFamily::V6,
                        ))?;
                    }
                    b.add(&Attribute::Username("user"))?;
                    b.add(&Attribute::Realm(REALM))?;
                    b.add(&Attribute::Nonce(&nonces[k]))?;
                    b.add_integrity_sha1(key)?;
                    b.add_fingerprint()?;
                    Ok(())
                })();
                let answer = server.handle_input(
                    now,
                    Input::Client {
                        from,
                        contents: &buf,
                    },
                );
                learn_nonce(answer.map(|t| t.contents), &mut nonces[k]);
            }
            3 => {
                let Some(&relay) = relays.get(usize::from(script.byte()) % relays.len().max(1))
                else {
                    continue;
                };
                let peer = peers[k % peers.len()];
                let mut datagram = vec![0u8; PEER_DATA_HEADROOM];
                datagram.extend(script.bytes(200));
                let _ = server.handle_input(
                    now,
                    Input::PeerData {
                        relay,
                        peer,
                        datagram: &mut datagram,
                    },
                );
            }
            4 => {
                now += Duration::from_secs(u64::from(script.byte()) * 5);
                server.handle_timeout(now);
            }
            5 if script.byte() & 1 == 0 => {
                // A peer connects to a relay over TCP.
                let Some(&relay) = relays.get(usize::from(script.byte()) % relays.len().max(1))
                else {
                    continue;
                };
                let peer = peers[k % peers.len()];
                let _ = server.handle_input(now, Input::PeerConnection { relay, peer });
            }
            _ => {
                let _ = server.handle_input(now, Input::ConnectionClosed { from });
            }
        }
        // Carry out the server's requests as a driver would.
        while let Some(event) = server.poll_event() {
            match event {
                Event::BindRelay {
                    id,
                    additional_family,
                    ..
                } => {
                    let relay = (script.byte() != 0xff).then(|| {
                        next_port = next_port.wrapping_add(2).max(61000);
                        SocketAddr::new(
                            "10.0.0.1".parse().unwrap_or_else(|_| unreachable!()),
                            next_port,
                        )
                    });
                    let additional = additional_family.and_then(|_| {
                        next_port = next_port.wrapping_add(2).max(61000);
                        (script.byte() != 0xff).then(|| {
                            SocketAddr::new(
                                "2001:db8::100".parse().unwrap_or_else(|_| unreachable!()),
                                next_port,
                            )
                        })
                    });
                    relays.extend(relay.into_iter().chain(additional));
                    let answer = server.handle_input(
                        now,
                        Input::RelayBound {
                            id,
                            relay,
                            reserved: None,
                            additional,
                        },
                    );
                    learn_nonce(answer.map(|t| t.contents), &mut nonces[k]);
                }
                Event::ReleaseRelay { relay } => relays.retain(|r| *r != relay),
                Event::ConnectPeer { id, .. } => {
                    connection_ids.push(id);
                    let connected = script.byte() != 0xff;
                    let answer = server.handle_input(now, Input::PeerConnected { id, connected });
                    learn_nonce(answer.map(|t| t.contents), &mut nonces[k]);
                }
                Event::AcceptPeer { id, .. } => connection_ids.push(id),
                Event::RefusePeer { .. } | Event::Splice { .. } => {}
                Event::ClosePeerConnection { id } => {
                    let _ = server.handle_input(now, Input::PeerConnectionClosed { id });
                }
                Event::FastPathAllowance { client, bytes } => {
                    // The kernel spent part of the last loan: the rest goes
                    // back, as the driver does.
                    let previous = loans.iter().position(|(c, _)| *c == client);
                    if let Some(at) = previous {
                        let (_, lent) = loans.swap_remove(at);
                        let spent = lent.min(u64::from(script.byte()) * 8);
                        server.return_fast_path_allowance(&client, lent - spent);
                    }
                    loans.push((client, bytes));
                }
                Event::FastPathInstall { route, until, .. } => {
                    // A route comes again only to move its deadline.
                    assert!(until > now, "installed lapsed: {route:?}");
                    in_kernel.retain(|(r, _)| *r != route);
                    in_kernel.push((route, until));
                }
                Event::FastPathRemove(route) => {
                    let before = in_kernel.len();
                    in_kernel.retain(|(r, _)| *r != route);
                    assert_eq!(in_kernel.len() + 1, before, "removed unknown {route:?}");
                }
                Event::PrivateRelayAdvertised(_) => {}
            }
        }
        // One allocation per 5-tuple at most: state is bounded by clients.
        assert!(server.allocation_count() <= clients.len());
        // Each within its caps, and nothing the peer rule refuses in it.
        for allocation in server.allocations.values() {
            let policy = &server.config.peer_policy;
            assert!(allocation.permissions().count() <= allocation.limits.max_permissions);
            assert!(allocation.channels().len() <= allocation.limits.max_channels);
            for permission in allocation.permissions() {
                let ip = permission.ip;
                let ok = policy.permits(ip) || policy.only_on_relay_ports(ip);
                assert!(ok, "{permission:?} refused");
            }
            for channel in allocation.channels() {
                assert!(policy.permits_peer(channel.peer), "{channel:?} refused");
            }
        }
        // Nothing stays in the kernel without its allocation; after a
        // sweep nothing without a live channel and permission; and at every
        // moment, a route the kernel would still relay (its deadline not
        // reached) has its channel, its permission and its allocation live.
        for (route, until) in &in_kernel {
            let allocation = server.allocation(&route.client);
            assert!(
                allocation.is_some(),
                "in the kernel without an allocation: {route:?}"
            );
            let Some(allocation) = allocation else {
                continue;
            };
            if op % 7 == 4 || *until > now {
                let live = allocation
                    .channel(route.channel, now)
                    .is_some_and(|c| c.peer == route.peer);
                assert!(live, "relayed without its channel: {route:?}");
                assert!(
                    allocation.permits(route.peer.ip(), now),
                    "relayed without permission: {route:?}"
                );
                assert!(
                    allocation.expires > now,
                    "relayed after its allocation: {route:?}"
                );
            }
        }
    }
}

/// Keeps the NONCE of a 401 or 438 answer, as a client would, in either
/// dialect.
fn learn_nonce(answer: Option<&[u8]>, nonce: &mut String) {
    let Some(bytes) = answer else { return };
    if ms::is_ms_turn(bytes) {
        let found = Message::parse_unpadded(bytes)
            .ok()
            .and_then(|m| m.get_raw(ms::NONCE))
            .and_then(|n| std::str::from_utf8(n).ok());
        if let Some(n) = found {
            *nonce = n.to_owned();
        }
        return;
    }
    let Ok(message) = Message::parse(bytes) else {
        return;
    };
    if let Some(Ok(Attribute::Nonce(n))) = message.get(AttributeType::NONCE) {
        *nonce = n.to_owned();
    }
}

/// Writes an MS-TURN request as libnice's OC2007R2 mode would: `pick`
/// chooses the method and layout, `choices` which attributes go in.
fn ms_turn_request(
    buf: &mut Vec<u8>,
    id: u8,
    pick: u8,
    choices: u8,
    peer: SocketAddr,
    nonce: &str,
    key: &edgeice_stun::IntegrityKey,
) {
    let method = [ms::ALLOCATE, ms::SEND, ms::SET_ACTIVE_DESTINATION][usize::from(pick % 3)];
    let layout = if pick & 4 != 0 {
        edgeice_stun::Layout::Padded
    } else {
        edgeice_stun::Layout::Unpadded
    };
    let kind = MessageType::new(method, Class::Request);
    let mut b = MessageBuilder::with_cookie(buf, kind, [id, 1, 2, 3], TransactionId([id; 12]))
        .layout(layout);
    let _ = (|| -> Result<(), edgeice_stun::BuildError> {
        b.add_raw(ms::MAGIC_COOKIE, &ms::MAGIC_COOKIE_VALUE.to_be_bytes())?;
        if choices & 1 != 0 {
            b.add_raw(ms::MS_VERSION, &1u32.to_be_bytes())?;
        }
        if choices & 2 != 0 {
            b.add(&Attribute::Lifetime(u32::from(choices >> 5) * 60))?;
        }
        if choices & 4 != 0 {
            let value = edgeice_stun::attribute::address_value(&peer);
            b.add_raw(ms::DESTINATION_ADDRESS, &value)?;
        }
        if choices & 8 != 0 {
            b.add_raw(ms::DATA, &[0x80, choices])?;
        }
        if choices & 16 != 0 {
            b.add(&Attribute::Username("user"))?;
            b.add_raw(ms::REALM, REALM.as_bytes())?;
            b.add_raw(ms::NONCE, nonce.as_bytes())?;
            b.add_integrity_sha1_rfc3489(key, false)?;
        }
        Ok(())
    })();
}
