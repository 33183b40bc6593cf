//! The first datagram relayed from a relay socket just bound reaches the
//! peer: an Allocate, a ChannelBind and a ChannelData sent back to back
//! (so the server relays the data a few microseconds after binding the
//! relay socket) get the data to the peer, every time. It once did not:
//! the send went through tokio's `try_send_to`, which says WouldBlock
//! without trying until the reactor has seen the socket's first writable
//! event, and the datagram was counted as relayed and dropped.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use edgeice_stun::credentials::{Preparation, long_term_key};
use edgeice_stun::*;

use common::stun_request as request;

fn id(round: u8, step: u8) -> [u8; 12] {
    let mut id = [7u8; 12];
    id[0] = round;
    id[1] = step;
    id
}

#[test]
fn channel_data_right_after_its_allocate_reaches_the_peer() {
    let (_server, server) = common::start_turn_server();
    let peer = UdpSocket::bind("127.0.0.1:0").expect("bind the peer");
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let peer_addr: SocketAddr = peer.local_addr().unwrap();
    for round in 0..20u8 {
        let client = UdpSocket::bind("127.0.0.1:0").expect("bind a client");
        client.connect(server).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let transport = Attribute::RequestedTransport(17);
        client
            .send(&request(Method::ALLOCATE, id(round, 0), &[transport], None))
            .unwrap();
        let mut buf = [0u8; 2048];
        let n = client.recv(&mut buf).expect("a 401 to the first Allocate");
        let challenge = Message::parse(&buf[..n]).expect("a STUN answer");
        let (Some(Ok(Attribute::Realm(realm))), Some(Ok(Attribute::Nonce(nonce)))) = (
            challenge.get(AttributeType::REALM),
            challenge.get(AttributeType::NONCE),
        ) else {
            panic!("no REALM and NONCE in {challenge:?}");
        };
        let key = long_term_key("user", realm, "pass", 1, Preparation::OpaqueString).unwrap();
        let credentials = [
            Attribute::Username("user"),
            Attribute::Realm(realm),
            Attribute::Nonce(nonce),
        ];
        let allocate = [&[transport][..], &credentials[..]].concat();
        let bind = [
            &[
                Attribute::ChannelNumber(0x4000),
                Attribute::XorPeerAddress(peer_addr),
            ][..],
            &credentials[..],
        ]
        .concat();
        let data = format!("first datagram of allocation {round}");
        let mut channel_data = Vec::new();
        ChannelData {
            channel: 0x4000,
            data: data.as_bytes(),
        }
        .encode(false, &mut channel_data)
        .unwrap();
        // Back to back: the server takes them in order.
        for datagram in [
            request(Method::ALLOCATE, id(round, 1), &allocate, Some(&key)),
            request(Method::CHANNEL_BIND, id(round, 2), &bind, Some(&key)),
            channel_data,
        ] {
            client.send(&datagram).unwrap();
        }
        for step in [1, 2] {
            let n = client.recv(&mut buf).expect("an answer");
            let answer = Message::parse(&buf[..n]).expect("a STUN answer");
            assert_eq!(answer.transaction_id().0, id(round, step));
            assert_eq!(answer.class(), Class::Success, "{answer:?}");
        }
        let mut got = [0u8; 2048];
        match peer.recv_from(&mut got) {
            Ok((n, _)) => assert_eq!(&got[..n], data.as_bytes()),
            Err(e) => panic!(
                "allocation {round}: the ChannelData sent right after its ChannelBind \
                 never reached the peer ({e})"
            ),
        }
    }
}
