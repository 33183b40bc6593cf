//! The allocation state machine against a scripted server, on a fake
//! clock: challenge, stale nonce, refresh scheduling, failures and the
//! data path.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgeice_client::fuzzing::{MAPPED, RELAYED, ScriptedServer};
use edgeice_client::{
    Allocation, AllocationEvent, AllocationState, BindingClient, BindingEvent, ClientError,
    Credentials, TransactionConfig, Transport,
};
use edgeice_stun::{
    Attribute, AttributeType, ChannelData, Class, Message, MessageBuilder, MessageType, Method,
    TransactionId,
};

fn peer() -> SocketAddr {
    "127.0.0.1:5000".parse().unwrap()
}

/// Sends the pending request to the scripted server and feeds its answer
/// back; returns the request's method.
fn exchange(allocation: &mut Allocation, server: &ScriptedServer, now: Instant) -> Method {
    let request = allocation
        .poll_transmit()
        .expect("a request")
        .payload
        .to_vec();
    let mut response = Vec::new();
    server.answer(&request, &mut response).expect("an answer");
    allocation.handle_input(now, &response).expect("taken");
    Message::parse(&request).unwrap().method()
}

fn events(allocation: &mut Allocation) -> Vec<AllocationEvent> {
    std::iter::from_fn(|| allocation.poll_event()).collect()
}

fn allocated(transport: Transport, t0: Instant) -> (Allocation, ScriptedServer) {
    let server = ScriptedServer::new();
    let mut allocation = Allocation::new(ScriptedServer::config(transport));
    allocation.allocate(t0).unwrap();
    // 401, then success.
    assert_eq!(exchange(&mut allocation, &server, t0), Method::ALLOCATE);
    assert_eq!(exchange(&mut allocation, &server, t0), Method::ALLOCATE);
    assert_eq!(
        events(&mut allocation),
        [AllocationEvent::Allocated {
            relayed: RELAYED,
            mapped: Some(MAPPED),
            lifetime: Duration::from_secs(600),
        }]
    );
    assert_eq!(allocation.state(), AllocationState::Allocated);
    assert_eq!(allocation.realm(), Some(ScriptedServer::REALM));
    (allocation, server)
}

#[test]
fn challenge_then_credentials_allocate() {
    let t0 = Instant::now();
    let server = ScriptedServer::new();
    let mut allocation = Allocation::new(ScriptedServer::config(Transport::Udp));
    allocation.allocate(t0).unwrap();
    let first = allocation.poll_transmit().unwrap().payload.to_vec();
    let first = Message::parse(&first).unwrap();
    assert!(!first.has_integrity());
    assert_eq!(
        first.get(AttributeType::REQUESTED_TRANSPORT),
        Some(Ok(Attribute::RequestedTransport(17)))
    );
    let mut response = Vec::new();
    server.answer(first.as_bytes(), &mut response).unwrap();
    allocation.handle_input(t0, &response).unwrap();
    let second = allocation.poll_transmit().unwrap().payload.to_vec();
    let second = Message::parse(&second).unwrap();
    assert_ne!(second.transaction_id(), first.transaction_id());
    assert_eq!(
        second.get(AttributeType::USERNAME),
        Some(Ok(Attribute::Username("user")))
    );
    assert_eq!(
        second.get(AttributeType::NONCE),
        Some(Ok(Attribute::Nonce("n1")))
    );
    assert!(second.has_integrity() && second.has_fingerprint());
}

#[test]
fn wrong_password_fails_with_401_after_one_retry() {
    let t0 = Instant::now();
    let server = ScriptedServer::new();
    let mut config = ScriptedServer::config(Transport::Udp);
    config.credentials = Credentials {
        username: "user".into(),
        password: "wrong".into(),
    };
    let mut allocation = Allocation::new(config);
    allocation.allocate(t0).unwrap();
    exchange(&mut allocation, &server, t0);
    exchange(&mut allocation, &server, t0);
    assert!(allocation.poll_transmit().is_none());
    assert!(matches!(
        &events(&mut allocation)[..],
        [AllocationEvent::Failed {
            code: Some(401),
            ..
        }]
    ));
    assert_eq!(allocation.state(), AllocationState::Failed);
}

#[test]
fn stale_nonce_is_retried_with_the_new_one() {
    let t0 = Instant::now();
    let (mut allocation, mut server) = allocated(Transport::Udp, t0);
    server.nonce = "n2".into();
    allocation.create_permission(t0, peer().ip()).unwrap();
    // 438 with n2, then the retry succeeds.
    assert_eq!(
        exchange(&mut allocation, &server, t0),
        Method::CREATE_PERMISSION
    );
    let retry = allocation.poll_transmit().unwrap().payload.to_vec();
    assert_eq!(
        Message::parse(&retry).unwrap().get(AttributeType::NONCE),
        Some(Ok(Attribute::Nonce("n2")))
    );
    let mut response = Vec::new();
    server.answer(&retry, &mut response).unwrap();
    allocation.handle_input(t0, &response).unwrap();
    assert_eq!(
        events(&mut allocation),
        [AllocationEvent::PermissionCreated { ip: peer().ip() }]
    );
    assert!(allocation.has_permission(peer().ip()));
}

#[test]
fn endless_stale_nonces_end_in_failure() {
    let t0 = Instant::now();
    let (mut allocation, mut server) = allocated(Transport::Udp, t0);
    allocation.create_permission(t0, peer().ip()).unwrap();
    for round in 0..10 {
        let Some(transmit) = allocation.poll_transmit() else {
            assert!(round > 1, "gave up too early");
            break;
        };
        let request = transmit.payload.to_vec();
        server.nonce = format!("n{}", round + 10);
        let mut response = Vec::new();
        server.answer(&request, &mut response).unwrap();
        allocation.handle_input(t0, &response).unwrap();
    }
    assert!(allocation.poll_transmit().is_none());
    assert!(matches!(
        &events(&mut allocation)[..],
        [AllocationEvent::PermissionFailed {
            code: Some(438),
            ..
        }]
    ));
    // The allocation itself lives on.
    assert_eq!(allocation.state(), AllocationState::Allocated);
}

#[test]
fn refreshes_are_scheduled_before_expiry() {
    let t0 = Instant::now();
    let (mut allocation, server) = allocated(Transport::Udp, t0);
    allocation.create_permission(t0, peer().ip()).unwrap();
    exchange(&mut allocation, &server, t0);
    let channel = allocation.bind_channel(t0, peer()).unwrap();
    assert_eq!(channel, 0x4000);
    exchange(&mut allocation, &server, t0);
    assert_eq!(
        events(&mut allocation),
        [
            AllocationEvent::PermissionCreated { ip: peer().ip() },
            AllocationEvent::ChannelBound {
                peer: peer(),
                channel
            }
        ]
    );

    // Permission: 300 s, refreshed at 240 s.
    assert_eq!(
        allocation.poll_timeout(),
        Some(t0 + Duration::from_secs(240))
    );
    allocation.handle_timeout(t0 + Duration::from_secs(239));
    assert!(allocation.poll_transmit().is_none());
    let t = t0 + Duration::from_secs(240);
    allocation.handle_timeout(t);
    assert_eq!(
        exchange(&mut allocation, &server, t),
        Method::CREATE_PERMISSION
    );
    // Allocation: 600 s, refreshed at 540 s, with the channel (600 s).
    let t = t0 + Duration::from_secs(540);
    assert_eq!(allocation.poll_timeout(), Some(t - Duration::from_secs(60)));
    allocation.handle_timeout(t - Duration::from_secs(60));
    exchange(&mut allocation, &server, t - Duration::from_secs(60));
    allocation.handle_timeout(t);
    let mut methods = vec![
        exchange(&mut allocation, &server, t),
        exchange(&mut allocation, &server, t),
    ];
    methods.sort();
    assert_eq!(methods, [Method::REFRESH, Method::CHANNEL_BIND]);
    assert!(allocation.poll_transmit().is_none());
    assert_eq!(
        events(&mut allocation),
        [AllocationEvent::Refreshed {
            lifetime: Duration::from_secs(600)
        }]
    );
    assert_eq!(allocation.state(), AllocationState::Allocated);
}

#[test]
fn unanswered_allocate_times_out_after_39_5_s() {
    let t0 = Instant::now();
    let mut allocation = Allocation::new(ScriptedServer::config(Transport::Udp));
    allocation.allocate(t0).unwrap();
    let mut sends = 0;
    let mut now = t0;
    while allocation.state() == AllocationState::Allocating && sends < 20 {
        if allocation.poll_transmit().is_some() {
            sends += 1;
        }
        now = allocation.poll_timeout().unwrap();
        allocation.handle_timeout(now);
    }
    assert_eq!(sends, 7);
    assert_eq!(now - t0, Duration::from_millis(39_500));
    assert!(matches!(
        &events(&mut allocation)[..],
        [AllocationEvent::Failed { code: None, .. }]
    ));
}

#[test]
fn forged_success_without_integrity_is_ignored() {
    let t0 = Instant::now();
    let server = ScriptedServer::new();
    let mut allocation = Allocation::new(ScriptedServer::config(Transport::Udp));
    allocation.allocate(t0).unwrap();
    exchange(&mut allocation, &server, t0);
    let request = allocation.poll_transmit().unwrap().payload.to_vec();
    let request = Message::parse(&request).unwrap();
    let mut forged = Vec::new();
    let kind = MessageType::new(Method::ALLOCATE, Class::Success);
    let mut b = MessageBuilder::new(&mut forged, kind, *request.transaction_id());
    b.add(&Attribute::XorRelayedAddress("10.9.9.9:1".parse().unwrap()))
        .unwrap();
    assert!(allocation.handle_input(t0, &forged).is_err());
    assert_eq!(allocation.state(), AllocationState::Allocating);
    let mut response = Vec::new();
    server.success(&request, &mut response).unwrap();
    allocation.handle_input(t0, &response).unwrap();
    assert_eq!(allocation.relayed(), Some(RELAYED));
}

#[test]
fn errors_fail_the_allocation_with_their_code() {
    for code in [403, 437, 441, 486, 508] {
        let t0 = Instant::now();
        let server = ScriptedServer::new();
        let mut allocation = Allocation::new(ScriptedServer::config(Transport::Udp));
        allocation.allocate(t0).unwrap();
        exchange(&mut allocation, &server, t0);
        let request = allocation.poll_transmit().unwrap().payload.to_vec();
        let mut response = Vec::new();
        server
            .error(&Message::parse(&request).unwrap(), code, &mut response)
            .unwrap();
        allocation.handle_input(t0, &response).unwrap();
        assert!(
            matches!(&events(&mut allocation)[..], [AllocationEvent::Failed { code: Some(c), .. }] if *c == code)
        );
        assert!(matches!(
            allocation.send_to(t0, peer(), b"x", &mut Vec::new()),
            Err(ClientError::WrongState(_))
        ));
    }
}

#[test]
fn data_path_wraps_and_unwraps_in_place() {
    let t0 = Instant::now();
    for transport in [Transport::Udp, Transport::Tcp] {
        let (mut allocation, server) = allocated(transport, t0);
        let mut out = Vec::with_capacity(2048);
        // No permission yet: a Send indication, and a CreatePermission.
        allocation.send_to(t0, peer(), b"hello", &mut out).unwrap();
        let send = Message::parse(&out).unwrap();
        assert_eq!(
            send.kind(),
            MessageType::new(Method::SEND, Class::Indication)
        );
        assert_eq!(
            send.get(AttributeType::DATA),
            Some(Ok(Attribute::Data(b"hello")))
        );
        assert_eq!(
            send.get(AttributeType::XOR_PEER_ADDRESS),
            Some(Ok(Attribute::XorPeerAddress(peer())))
        );
        assert_eq!(
            exchange(&mut allocation, &server, t0),
            Method::CREATE_PERMISSION
        );
        let channel = allocation.bind_channel(t0, peer()).unwrap();
        // Until bound, still Send indications.
        allocation.send_to(t0, peer(), b"hello", &mut out).unwrap();
        assert!(Message::parse(&out).is_ok());
        exchange(&mut allocation, &server, t0);
        let capacity = out.capacity();
        allocation.send_to(t0, peer(), b"hello", &mut out).unwrap();
        let expected_len = if transport.is_stream() { 12 } else { 9 };
        assert_eq!(out.len(), expected_len);
        assert_eq!(
            ChannelData::parse(&out).unwrap(),
            ChannelData {
                channel,
                data: b"hello"
            }
        );
        assert_eq!(out.capacity(), capacity);

        // Back: ChannelData and a Data indication, as slices of the input.
        let (from, data) = allocation.handle_input(t0, &out).unwrap().unwrap();
        assert_eq!((from, data), (peer(), &b"hello"[..]));
        assert!(std::ptr::eq(data.as_ptr(), out[4..].as_ptr()));
        let mut indication = Vec::new();
        let kind = MessageType::new(Method::DATA, Class::Indication);
        let mut b = MessageBuilder::new(&mut indication, kind, TransactionId([3; 12]));
        b.add(&Attribute::XorPeerAddress(peer())).unwrap();
        b.add(&Attribute::Data(b"world")).unwrap();
        let (from, data) = allocation.handle_input(t0, &indication).unwrap().unwrap();
        assert_eq!((from, data), (peer(), &b"world"[..]));
        // Unknown channels are refused.
        ChannelData {
            channel: 0x4321,
            data: b"x",
        }
        .encode(false, &mut out)
        .unwrap();
        assert!(allocation.handle_input(t0, &out).is_err());
    }
}

#[test]
fn release_sends_lifetime_zero() {
    let t0 = Instant::now();
    let (mut allocation, server) = allocated(Transport::Udp, t0);
    allocation.release(t0).unwrap();
    let request = allocation.poll_transmit().unwrap().payload.to_vec();
    let message = Message::parse(&request).unwrap();
    assert_eq!(message.method(), Method::REFRESH);
    assert_eq!(
        message.get(AttributeType::LIFETIME),
        Some(Ok(Attribute::Lifetime(0)))
    );
    let mut response = Vec::new();
    server.answer(&request, &mut response).unwrap();
    allocation.handle_input(t0, &response).unwrap();
    assert_eq!(events(&mut allocation), [AllocationEvent::Released]);
    assert_eq!(allocation.state(), AllocationState::Released);
    assert_eq!(allocation.poll_timeout(), None);
}

#[test]
fn binding_reports_the_mapped_address() {
    let t0 = Instant::now();
    let server: SocketAddr = "127.0.0.1:3478".parse().unwrap();
    let mut client = BindingClient::new(server, Transport::Udp, TransactionConfig::default());
    let id = client.send_request(t0).unwrap();
    let request = client.poll_transmit().unwrap().payload.to_vec();
    let request = Message::parse(&request).unwrap();
    assert_eq!(*request.transaction_id(), id);
    let mut response = Vec::new();
    let kind = MessageType::new(Method::BINDING, Class::Success);
    let mut b = MessageBuilder::new(&mut response, kind, id);
    b.add(&Attribute::MappedAddress("192.0.2.1:1".parse().unwrap()))
        .unwrap();
    client.handle_input(t0, &response).unwrap();
    assert_eq!(
        client.poll_event(),
        Some(BindingEvent::Mapped {
            transaction_id: id,
            mapped: "192.0.2.1:1".parse().unwrap(),
            other: None,
        })
    );
    // A duplicate is refused, and so is a stranger's.
    assert!(client.handle_input(t0, &response).is_err());
    let id = client.send_request(t0).unwrap();
    let mut now = t0;
    for _ in 0..20 {
        let Some(t) = client.poll_timeout() else {
            break;
        };
        now = t;
        client.handle_timeout(now);
    }
    assert_eq!(now - t0, Duration::from_millis(39_500));
    assert_eq!(
        client.poll_event(),
        Some(BindingEvent::TimedOut { transaction_id: id })
    );
}

#[test]
fn a_closed_stream_fails_the_allocation() {
    let t0 = Instant::now();
    let (mut allocation, _) = allocated(Transport::Tcp, t0);
    allocation.connection_closed();
    assert!(matches!(
        &events(&mut allocation)[..],
        [AllocationEvent::Failed { code: None, .. }]
    ));
    assert_eq!(allocation.poll_timeout(), None);
}

#[test]
fn tcp_relays_refuse_channels_and_send_indications() {
    let t0 = Instant::now();
    let server = ScriptedServer::new();
    let mut config = ScriptedServer::config(Transport::Tcp);
    config.relay = edgeice_client::RelayProtocol::Tcp;
    let mut allocation = Allocation::new(config);
    allocation.allocate(t0).unwrap();
    let request = allocation.poll_transmit().unwrap().payload.to_vec();
    assert_eq!(
        Message::parse(&request)
            .unwrap()
            .get(AttributeType::REQUESTED_TRANSPORT),
        Some(Ok(Attribute::RequestedTransport(6)))
    );
    let mut response = Vec::new();
    server.answer(&request, &mut response).unwrap();
    allocation.handle_input(t0, &response).unwrap();
    exchange(&mut allocation, &server, t0);
    assert_eq!(allocation.state(), AllocationState::Allocated);
    assert_eq!(
        allocation.bind_channel(t0, peer()),
        Err(ClientError::NotUdpRelay)
    );
    assert_eq!(
        allocation.send_to(t0, peer(), b"x", &mut Vec::new()),
        Err(ClientError::NotUdpRelay)
    );
    allocation.connect(t0, peer()).unwrap();
    exchange(&mut allocation, &server, t0);
    let events = events(&mut allocation);
    assert!(
        matches!(
            &events[..],
            [
                _,
                AllocationEvent::Connected {
                    connection_id: 7,
                    ..
                }
            ]
        ),
        "{events:?}"
    );
    // A UDP relay over UDP cannot be a TCP relay.
    let mut config = ScriptedServer::config(Transport::Udp);
    config.relay = edgeice_client::RelayProtocol::Tcp;
    assert_eq!(
        Allocation::new(config).allocate(t0),
        Err(ClientError::NotTcpRelay)
    );
}

#[test]
fn try_alternate_names_the_other_server() {
    let t0 = Instant::now();
    let mut allocation = Allocation::new(ScriptedServer::config(Transport::Udp));
    allocation.allocate(t0).unwrap();
    let request = allocation.poll_transmit().unwrap().payload.to_vec();
    let request = Message::parse(&request).unwrap();
    let mut response = Vec::new();
    let kind = MessageType::new(Method::ALLOCATE, Class::Error);
    let mut b = MessageBuilder::new(&mut response, kind, *request.transaction_id());
    b.add(&Attribute::ErrorCode(
        edgeice_stun::ErrorCode::with_default_reason(300),
    ))
    .unwrap();
    let alternate: SocketAddr = "192.0.2.9:3478".parse().unwrap();
    b.add(&Attribute::AlternateServer(alternate)).unwrap();
    allocation.handle_input(t0, &response).unwrap();
    assert!(matches!(
        &events(&mut allocation)[..],
        [AllocationEvent::Failed {
            code: Some(300),
            ..
        }]
    ));
    assert_eq!(allocation.alternate_server(), Some(alternate));
}
