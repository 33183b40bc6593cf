//! Spare relay sockets (bound ahead of demand, `serve/spare.rs`) change
//! nothing a client sees: a tiny relay range still serves as many
//! allocations as it has ports (the spares are ports of the range, handed
//! out rather than an Allocate failing), frees them when the allocations
//! end, and the first datagram relayed from a spare socket reaches its
//! peer as one from a socket bound on demand does.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use edgeice_stun::credentials::{Preparation, long_term_key};
use edgeice_stun::*;

use common::stun_request as request;

fn id(round: u8, step: u8) -> [u8; 12] {
    let mut id = [9u8; 12];
    id[0] = round;
    id[1] = step;
    id
}

/// A client that authenticated once: its socket, and what it signs with.
struct Client {
    socket: UdpSocket,
    key: IntegrityKey,
    realm: String,
    nonce: String,
    round: u8,
}

impl Client {
    fn new(server: SocketAddr, round: u8) -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a client");
        socket.connect(server).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let transport = Attribute::RequestedTransport(17);
        socket
            .send(&request(Method::ALLOCATE, id(round, 0), &[transport], None))
            .unwrap();
        let mut buf = [0u8; 2048];
        let n = socket.recv(&mut buf).expect("a 401 to the first Allocate");
        let challenge = Message::parse(&buf[..n]).expect("a STUN answer");
        let (Some(Ok(Attribute::Realm(realm))), Some(Ok(Attribute::Nonce(nonce)))) = (
            challenge.get(AttributeType::REALM),
            challenge.get(AttributeType::NONCE),
        ) else {
            panic!("no REALM and NONCE in {challenge:?}");
        };
        let key = long_term_key("user", realm, "pass", 1, Preparation::OpaqueString).unwrap();
        Client {
            socket,
            key,
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            round,
        }
    }

    fn credentials(&self) -> [Attribute<'_>; 3] {
        [
            Attribute::Username("user"),
            Attribute::Realm(&self.realm),
            Attribute::Nonce(&self.nonce),
        ]
    }

    /// Sends a signed request; the answer's class and, for an error, its
    /// code, and for a success its relayed address if any.
    fn ask(
        &self,
        method: Method,
        step: u8,
        extra: &[Attribute<'_>],
    ) -> Result<Option<SocketAddr>, u16> {
        let attributes = [extra, &self.credentials()[..]].concat();
        let message = request(method, id(self.round, step), &attributes, Some(&self.key));
        self.socket.send(&message).unwrap();
        let mut buf = [0u8; 2048];
        let n = self.socket.recv(&mut buf).expect("an answer");
        let answer = Message::parse(&buf[..n]).expect("a STUN answer");
        assert_eq!(answer.transaction_id().0, id(self.round, step));
        match answer.class() {
            Class::Success => Ok(match answer.get(AttributeType::XOR_RELAYED_ADDRESS) {
                Some(Ok(Attribute::XorRelayedAddress(addr))) => Some(addr),
                _ => None,
            }),
            _ => match answer.get(AttributeType::ERROR_CODE) {
                Some(Ok(Attribute::ErrorCode(e))) => Err(e.code),
                other => panic!("an error without ERROR-CODE: {other:?}"),
            },
        }
    }

    fn allocate(&self) -> Result<SocketAddr, u16> {
        self.ask(Method::ALLOCATE, 1, &[Attribute::RequestedTransport(17)])
            .map(|relay| relay.expect("a success with XOR-RELAYED-ADDRESS"))
    }

    fn release(&self, step: u8) {
        self.ask(Method::REFRESH, step, &[Attribute::Lifetime(0)])
            .expect("a Refresh of lifetime 0 succeeds");
    }
}

#[test]
fn a_tiny_relay_range_serves_every_port_and_frees_them() {
    let listen = format!("127.0.0.1:{}", common::free_udp_tcp_port());
    let args = common::turn_server_args(&listen, "65520-65523");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_server, listeners) = common::start_server(&args, 2);
    let server = listeners
        .iter()
        .find(|(proto, _)| proto == "udp")
        .expect("a UDP listener")
        .1;
    // Time for the spare (one, a quarter of four ports) to be bound.
    std::thread::sleep(Duration::from_millis(300));
    let mut round = 0u8;
    for pass in 0..3 {
        let mut clients = Vec::new();
        let mut relays = Vec::new();
        for _ in 0..4 {
            round += 1;
            let client = Client::new(server, round);
            let relay = client.allocate().unwrap_or_else(|code| {
                panic!(
                    "pass {pass}: allocation {} of a 4-port range failed with {code}",
                    relays.len() + 1
                )
            });
            assert!(
                (65520..=65523).contains(&relay.port()),
                "relay {relay} outside --relay-ports"
            );
            relays.push(relay.port());
            clients.push(client);
        }
        relays.sort_unstable();
        relays.dedup();
        assert_eq!(relays, [65520, 65521, 65522, 65523], "pass {pass}");
        round += 1;
        let extra = Client::new(server, round);
        assert_eq!(
            extra.allocate(),
            Err(ErrorCode::INSUFFICIENT_CAPACITY),
            "pass {pass}: a fifth allocation of a 4-port range"
        );
        for client in &clients {
            client.release(2);
        }
    }
}

#[test]
fn the_first_datagram_from_a_spare_relay_socket_reaches_the_peer() {
    let (_server, server) = common::start_turn_server();
    // The default test range (61000-65535) holds 64 spares: after this,
    // every allocation below takes one, bound before it was asked for.
    std::thread::sleep(Duration::from_millis(500));
    let peer = UdpSocket::bind("127.0.0.1:0").expect("bind the peer");
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let peer_addr: SocketAddr = peer.local_addr().unwrap();
    for round in 0..20u8 {
        let client = Client::new(server, round);
        let credentials = client.credentials();
        let allocate = [&[Attribute::RequestedTransport(17)][..], &credentials[..]].concat();
        let bind = [
            &[
                Attribute::ChannelNumber(0x4000),
                Attribute::XorPeerAddress(peer_addr),
            ][..],
            &credentials[..],
        ]
        .concat();
        let data = format!("first datagram of spare allocation {round}");
        let mut channel_data = Vec::new();
        ChannelData {
            channel: 0x4000,
            data: data.as_bytes(),
        }
        .encode(false, &mut channel_data)
        .unwrap();
        for datagram in [
            request(Method::ALLOCATE, id(round, 1), &allocate, Some(&client.key)),
            request(Method::CHANNEL_BIND, id(round, 2), &bind, Some(&client.key)),
            channel_data,
        ] {
            client.socket.send(&datagram).unwrap();
        }
        let mut buf = [0u8; 2048];
        for step in [1, 2] {
            let n = client.socket.recv(&mut buf).expect("an answer");
            let answer = Message::parse(&buf[..n]).expect("a STUN answer");
            assert_eq!(answer.transaction_id().0, id(round, step));
            assert_eq!(answer.class(), Class::Success, "{answer:?}");
        }
        let mut got = [0u8; 2048];
        match peer.recv_from(&mut got) {
            Ok((n, _)) => assert_eq!(&got[..n], data.as_bytes()),
            Err(e) => panic!(
                "allocation {round}: the ChannelData right after its ChannelBind, \
                 from a spare relay socket, never reached the peer ({e})"
            ),
        }
    }
}
