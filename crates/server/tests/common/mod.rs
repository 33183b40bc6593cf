//! What the hardening tests share: a configured server, a TURN client that
//! signs its requests, allocation in one call.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Instant;

use edgeice_server::{
    Event, FiveTuple, Input, PEER_DATA_HEADROOM, Server, ServerConfig, Transport,
};
use edgeice_stun::attribute::TRANSPORT_UDP;
use edgeice_stun::credentials::{Preparation, long_term_key};
use edgeice_stun::*;

pub const REALM: &str = "example.org";
pub const RELAY: &str = "10.0.1.5:61000";
pub const RELAY_V6: &str = "[2001:db8::5]:61002";

pub fn config() -> ServerConfig {
    let mut config = ServerConfig {
        realm: REALM.to_owned(),
        nonce_secret: [3; 32],
        private_relay_ok: true,
        ..ServerConfig::default()
    };
    config.add_user("alice", "secret").unwrap();
    config.add_user("bob", "hunter2").unwrap();
    config
}

pub fn five_tuple(transport: Transport, client: &str) -> FiveTuple {
    FiveTuple {
        transport,
        client: client.parse().unwrap(),
        server: "10.0.1.5:3478".parse().unwrap(),
    }
}

/// A TURN client: its credentials and the nonce it was last given.
pub struct Client {
    pub from: FiveTuple,
    pub username: &'static str,
    pub key: IntegrityKey,
    pub nonce: String,
    pub next_id: u32,
}

impl Client {
    pub fn new(from: FiveTuple, username: &'static str, password: &str) -> Self {
        let key = long_term_key(username, REALM, password, 1, Preparation::OpaqueString).unwrap();
        Client {
            from,
            username,
            key,
            nonce: String::new(),
            next_id: 0,
        }
    }

    fn transaction_id(&mut self) -> TransactionId {
        self.next_id += 1;
        let mut id = [0u8; 12];
        id[..4].copy_from_slice(&self.next_id.to_be_bytes());
        TransactionId(id)
    }

    /// A signed request of `method` with the attributes `add` adds.
    pub fn request(
        &mut self,
        method: Method,
        add: impl FnOnce(&mut MessageBuilder<'_>),
    ) -> Vec<u8> {
        let id = self.transaction_id();
        let mut buf = Vec::new();
        let mut b = MessageBuilder::new(&mut buf, MessageType::new(method, Class::Request), id);
        add(&mut b);
        b.add(&Attribute::Username(self.username)).unwrap();
        b.add(&Attribute::Realm(REALM)).unwrap();
        b.add(&Attribute::Nonce(&self.nonce)).unwrap();
        b.add_integrity_sha1(&self.key).unwrap();
        b.add_fingerprint().unwrap();
        buf
    }

    /// An unsigned Allocate, as a client's first request is.
    pub fn unauthenticated_allocate(&mut self) -> Vec<u8> {
        let id = self.transaction_id();
        let mut buf = Vec::new();
        let kind = MessageType::new(Method::ALLOCATE, Class::Request);
        let mut b = MessageBuilder::new(&mut buf, kind, id);
        b.add(&Attribute::RequestedTransport(TRANSPORT_UDP))
            .unwrap();
        buf
    }

    /// A Send indication of `data` to `peer`.
    pub fn send_indication(&mut self, peer: SocketAddr, data: &[u8]) -> Vec<u8> {
        let id = self.transaction_id();
        let mut buf = Vec::new();
        let kind = MessageType::new(Method::SEND, Class::Indication);
        let mut b = MessageBuilder::new(&mut buf, kind, id);
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
        b.add(&Attribute::Data(data)).unwrap();
        buf
    }
}

pub fn send(server: &mut Server, now: Instant, from: FiveTuple, bytes: &[u8]) -> Option<Vec<u8>> {
    let t = server.handle_input(
        now,
        Input::Client {
            from,
            payload: bytes,
        },
    )?;
    Some(t.payload.to_vec())
}

pub fn error_code(response: &[u8]) -> Option<u16> {
    let m = Message::parse(response).unwrap();
    match m.get(AttributeType::ERROR_CODE) {
        Some(Ok(Attribute::ErrorCode(e))) => Some(e.code),
        _ => None,
    }
}

/// The class and error code of an answer.
pub fn outcome(response: &[u8]) -> (Class, Option<u16>) {
    (
        Message::parse(response).unwrap().class(),
        error_code(response),
    )
}

/// Gets a nonce the way clients do: an unauthenticated request, a 401.
pub fn learn_nonce(server: &mut Server, now: Instant, client: &mut Client) {
    let request = client.unauthenticated_allocate();
    let response = send(server, now, client.from, &request).expect("a 401");
    assert_eq!(error_code(&response), Some(401));
    let m = Message::parse(&response).unwrap();
    let Some(Ok(Attribute::Nonce(nonce))) = m.get(AttributeType::NONCE) else {
        panic!("401 without NONCE")
    };
    client.nonce = nonce.to_owned();
}

/// Learns a nonce and allocates: a UDP relay (`transport` 17) or a TCP
/// one (6), with an IPv6 relay too when `dual`.
pub fn allocate(server: &mut Server, now: Instant, client: &mut Client, transport: u8, dual: bool) {
    learn_nonce(server, now, client);
    let request = client.request(Method::ALLOCATE, |b| {
        b.add(&Attribute::RequestedTransport(transport)).unwrap();
        if dual {
            b.add(&Attribute::AdditionalAddressFamily(AddressFamily::V6))
                .unwrap();
        }
    });
    assert!(send(server, now, client.from, &request).is_none());
    let Some(Event::BindRelay { id, .. }) = server.poll_event() else {
        panic!("no BindRelay")
    };
    let input = Input::RelayBound {
        id,
        relay: Some(RELAY.parse().unwrap()),
        reserved: None,
        additional: dual.then(|| RELAY_V6.parse().unwrap()),
    };
    let t = server.handle_input(now, input).expect("Allocate answered");
    let bytes = t.payload.to_vec();
    assert_eq!(outcome(&bytes), (Class::Success, None));
}

/// A datagram from `peer` to `relay`: where it went, if anywhere.
pub fn peer_data(
    server: &mut Server,
    now: Instant,
    relay: &str,
    peer: SocketAddr,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let mut datagram = vec![0u8; PEER_DATA_HEADROOM];
    datagram.extend_from_slice(payload);
    let t = server.handle_input(
        now,
        Input::PeerData {
            relay: relay.parse().unwrap(),
            peer,
            datagram: &mut datagram,
        },
    )?;
    Some(t.payload.to_vec())
}

/// REQUESTED-TRANSPORT values.
pub const UDP: u8 = 17;
pub const TCP: u8 = 6;
