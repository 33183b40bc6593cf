//! Times the relay path of the server core, with no sockets: how long one
//! relayed packet takes when its allocation has 1 or 256 permissions and
//! channels, the packet's peer being the last one installed.
//!
//! `cargo run --release -p edgeice-server --example relay_path`
//!
//! Three packets are timed: ChannelData from the client (channel lookup by
//! number, then the permission), a datagram from a bound peer (permission,
//! then channel lookup by peer), and a datagram from a peer with no
//! permission (the miss an attacker can send at will). Each figure is the
//! best of five runs of a million packets, in nanoseconds per packet.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgeice_server::{
    Event, FiveTuple, Input, PEER_DATA_HEADROOM, Server, ServerConfig, Transport,
};
use edgeice_stun::attribute::TRANSPORT_UDP;
use edgeice_stun::credentials::{Preparation, long_term_key};
use edgeice_stun::{
    Attribute, AttributeType, ChannelData, Class, IntegrityKey, Message, MessageBuilder,
    MessageType, Method, TransactionId,
};

const REALM: &str = "bench";
const RELAY: &str = "192.0.2.1:61000";
const PACKETS: u32 = 1_000_000;

struct Client {
    from: FiveTuple,
    key: IntegrityKey,
    nonce: String,
    next_id: u32,
}

impl Client {
    fn request(&mut self, method: Method, add: impl FnOnce(&mut MessageBuilder<'_>)) -> Vec<u8> {
        self.next_id += 1;
        let mut id = [0u8; 12];
        id[..4].copy_from_slice(&self.next_id.to_be_bytes());
        let mut buf = Vec::new();
        let mut b = MessageBuilder::new(
            &mut buf,
            MessageType::new(method, Class::Request),
            TransactionId(id),
        );
        add(&mut b);
        b.add(&Attribute::Username("bench")).unwrap();
        b.add(&Attribute::Realm(REALM)).unwrap();
        b.add(&Attribute::Nonce(&self.nonce)).unwrap();
        b.add_integrity_sha1(&self.key).unwrap();
        b.add_fingerprint().unwrap();
        buf
    }

    fn send(&mut self, server: &mut Server, now: Instant, bytes: &[u8]) -> Option<Vec<u8>> {
        let from = self.from;
        let t = server.handle_input(
            now,
            Input::Client {
                from,
                payload: bytes,
            },
        )?;
        Some(t.payload.to_vec())
    }
}

/// A server with one allocation holding `peers` channels (each with its
/// permission); returns the last peer.
fn setup(peers: u16, now: Instant) -> (Server, Client, SocketAddr) {
    let mut config = ServerConfig {
        realm: REALM.to_owned(),
        private_relay_ok: true,
        ..ServerConfig::default()
    };
    config.add_user("bench", "pw").unwrap();
    let mut server = Server::new(config, now);
    let key = long_term_key("bench", REALM, "pw", 1, Preparation::OpaqueString).unwrap();
    let mut client = Client {
        from: FiveTuple {
            transport: Transport::Udp,
            client: "198.51.100.1:50000".parse().unwrap(),
            server: "192.0.2.1:3478".parse().unwrap(),
        },
        key,
        nonce: String::new(),
        next_id: 0,
    };
    let mut buf = Vec::new();
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::new(Method::ALLOCATE, Class::Request),
        TransactionId([9; 12]),
    );
    b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
        .unwrap();
    let challenge = client.send(&mut server, now, &buf).expect("401");
    let m = Message::parse(&challenge).unwrap();
    let Some(Ok(Attribute::Nonce(nonce))) = m.get(AttributeType::NONCE) else {
        panic!("no nonce")
    };
    client.nonce = nonce.to_owned();
    let allocate = client.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
            .unwrap();
    });
    assert!(client.send(&mut server, now, &allocate).is_none());
    let Some(Event::BindRelay { id, .. }) = server.poll_event() else {
        panic!("no BindRelay")
    };
    server.handle_input(
        now,
        Input::RelayBound {
            id,
            relay: Some(RELAY.parse().unwrap()),
            reserved: None,
            additional: None,
        },
    );
    let mut last = None;
    for i in 0..peers {
        let peer = SocketAddr::from(([203, 0, (i >> 8) as u8, i as u8], 7000));
        let bind = client.request(Method::CHANNEL_BIND, |b| {
            b.add(&Attribute::ChannelNumber(0x4000 + i)).unwrap();
            b.add(&Attribute::XorPeerAddress(peer)).unwrap();
        });
        let answer = client.send(&mut server, now, &bind).expect("answered");
        assert_eq!(Message::parse(&answer).unwrap().class(), Class::Success);
        last = Some(peer);
    }
    (server, client, last.expect("at least one peer"))
}

/// The best of five runs of `PACKETS` calls of `packet`, in ns per packet.
fn time(mut packet: impl FnMut() -> bool) -> f64 {
    assert!(
        packet(),
        "the timed packet must be relayed (or dropped) as meant"
    );
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..PACKETS {
                black_box(packet());
            }
            start.elapsed()
        })
        .min()
        .map_or(f64::NAN, |d: Duration| {
            d.as_nanos() as f64 / f64::from(PACKETS)
        })
}

fn main() {
    println!("peers  channel-data-out  peer-data-in  peer-data-no-permission (ns/packet)");
    for peers in [1u16, 256] {
        let now = Instant::now();
        let (mut server, client, peer) = setup(peers, now);
        let mut frame = Vec::new();
        ChannelData {
            channel: 0x4000 + peers - 1,
            data: &[0u8; 160],
        }
        .encode(false, &mut frame)
        .unwrap();
        let from = client.from;
        let out = time(|| {
            server
                .handle_input(
                    now,
                    Input::Client {
                        from,
                        payload: &frame,
                    },
                )
                .is_some_and(|t| t.destination == peer)
        });
        let relay: SocketAddr = RELAY.parse().unwrap();
        let mut datagram = vec![0u8; PEER_DATA_HEADROOM + 160];
        let inbound = time(|| {
            server
                .handle_input(
                    now,
                    Input::PeerData {
                        relay,
                        peer,
                        datagram: &mut datagram,
                    },
                )
                .is_some()
        });
        let stranger: SocketAddr = "203.0.255.255:7000".parse().unwrap();
        let miss = time(|| {
            server
                .handle_input(
                    now,
                    Input::PeerData {
                        relay,
                        peer: stranger,
                        datagram: &mut datagram,
                    },
                )
                .is_none()
        });
        println!("{peers:5}  {out:16.1}  {inbound:12.1}  {miss:23.1}");
    }
}
