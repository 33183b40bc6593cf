//! MS-ICE2 ([`Dialect::MsIce2`]): two such agents call each other over the
//! simulated network, through NATs too; and one agent is handed checks
//! written the way libnice's OC2007R2 mode writes them (unpadded, or
//! padded as other stacks do), with the standard or the legacy
//! FINGERPRINT, to see which it answers.

mod sim;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgeice_ice::{Agent, AgentConfig, Candidate, CandidateKind, Dialect, Nomination};
use edgeice_stun::ms::{CANDIDATE_IDENTIFIER, IMPLEMENTATION_VERSION};
use edgeice_stun::{
    Attribute, AttributeType, Class, IntegrityKey, Layout, Message, MessageBuilder, MessageType,
    Method, TransactionId,
};
use sim::{Nat, NatKind, Peer, SERVER, Sim, stun_server, turn_server};

fn ms_config(controlling: bool) -> AgentConfig {
    AgentConfig {
        controlling,
        dialect: Dialect::MsIce2,
        ..AgentConfig::default()
    }
}

#[test]
fn two_ms_ice2_agents_connect_and_carry_data() {
    let now = Instant::now();
    let a = Peer::new(ms_config(true), now, &["192.0.2.1:5000"], None);
    let b = Peer::new(ms_config(false), now, &["192.0.2.2:6000"], None);
    for peer in [&a, &b] {
        assert_eq!(peer.agent.local_ufrag().len(), 4);
        assert_eq!(peer.agent.local_password().len(), 22);
        let host = &peer.agent.local_candidates()[0];
        assert_eq!(host.priority >> 24, 120, "MS-ICE2 host type preference");
        assert_eq!(host.priority >> 20 & 0xf, 15, "UDP in the local preference");
    }
    let mut sim = Sim::new(now, a, b);
    assert!(sim.run_until_connected(Duration::from_secs(5)));
    assert!(sim.send_data(0, b"ping"));
    assert!(sim.send_data(1, b"pong"));
    sim.run(Duration::from_secs(6), |_| false);
    assert_eq!(sim.peers[1].received, vec![b"ping".to_vec()]);
    assert_eq!(sim.peers[0].received, vec![b"pong".to_vec()]);
}

/// A behind `a_nat`, B behind `b_nat`, both speaking MS-ICE2, with
/// edgeice's STUN/TURN server core on the simulated internet.
fn call_through_nats(a_nat: NatKind, b_nat: NatKind, turn: bool) -> Sim {
    let now = Instant::now();
    let config = |controlling: bool| {
        let mut config = ms_config(controlling);
        config.stun_servers.push(stun_server(SERVER));
        if turn {
            config.turn_servers.push(turn_server());
        }
        config
    };
    let mut controlling = config(true);
    controlling.nomination = Nomination::Aggressive;
    let a = Peer::new(
        controlling,
        now,
        &["10.0.1.2:5000"],
        Some(Nat::new(a_nat, "203.0.113.1", "10.0.1.0")),
    );
    let b = Peer::new(
        config(false),
        now,
        &["10.0.2.2:6000"],
        Some(Nat::new(b_nat, "203.0.113.2", "10.0.2.0")),
    );
    Sim::new(now, a, b)
}

#[test]
fn ms_ice2_agents_connect_through_cone_nats() {
    let mut sim = call_through_nats(NatKind::PortRestricted, NatKind::FullCone, false);
    assert!(sim.run_until_connected(Duration::from_secs(10)));
    let local = sim.peers[0].agent.selected_pair(1).map(|p| p.local.kind);
    assert!(
        matches!(
            local,
            Some(CandidateKind::ServerReflexive | CandidateKind::PeerReflexive)
        ),
        "{local:?}"
    );
}

#[test]
fn ms_ice2_agents_connect_through_a_relay_between_symmetric_nats() {
    let mut sim = call_through_nats(NatKind::Symmetric, NatKind::Symmetric, true);
    assert!(sim.run_until_connected(Duration::from_secs(15)));
    let pair = sim.peers[0]
        .agent
        .selected_pair(1)
        .expect("a selected pair");
    assert!(
        pair.local.kind == CandidateKind::Relayed || pair.remote.kind == CandidateKind::Relayed,
        "{pair:?}"
    );
    let relayed = sim.peers[0]
        .agent
        .local_candidates()
        .into_iter()
        .find(|c| c.kind == CandidateKind::Relayed)
        .expect("a relayed candidate");
    assert_eq!(
        relayed.priority >> 24,
        30,
        "MS-ICE2 relayed type preference"
    );
    assert!(sim.send_data(0, b"through the relay"));
    sim.run(Duration::from_secs(3), |_| false);
    assert_eq!(sim.peers[1].received, vec![b"through the relay".to_vec()]);
}

const OURS: &str = "192.0.2.1:5000";
const THEIRS: &str = "192.0.2.2:6000";
const LOCAL_PWD: &str = "abcdefghijklmnopqrstuv";

/// A controlled MS-ICE2 agent with fixed credentials (`ours` /
/// `LOCAL_PWD`) that knows the other side (`them`) and its candidate.
fn agent(now: Instant) -> Agent {
    let config = AgentConfig {
        credentials: Some(("ours".into(), LOCAL_PWD.into())),
        ..ms_config(false)
    };
    let mut agent = Agent::new(config, now);
    agent.add_host_socket(now, 1, OURS.parse().unwrap());
    agent.set_remote_credentials(now, "them", "0123456789012345678901", false);
    let candidate = Candidate::parse("candidate:1 1 UDP 2028995583 192.0.2.2 6000 typ host");
    agent.add_remote_candidate(now, candidate.unwrap());
    agent.end_of_remote_candidates();
    agent.handle_timeout(now);
    while agent.poll_transmit().is_some() {}
    agent
}

/// How a check is written.
#[derive(Clone, Copy)]
struct Check {
    layout: Layout,
    implementation_version: bool,
    legacy_fingerprint: bool,
}

/// A check from the other side as libnice's OC2007R2 mode builds one:
/// PRIORITY, ICE-CONTROLLING, USERNAME `ours:them` NUL-padded (its
/// padding counted), CANDIDATE-IDENTIFIER, optionally
/// IMPLEMENTATION-VERSION 2, MESSAGE-INTEGRITY the RFC 3489 way, then
/// the standard or Microsoft's legacy FINGERPRINT.
fn check(id: TransactionId, how: &Check) -> Vec<u8> {
    let mut buf = Vec::new();
    let kind = MessageType::new(Method::BINDING, Class::Request);
    let mut builder = MessageBuilder::new(&mut buf, kind, id).layout(how.layout);
    builder.add(&Attribute::Priority(0x6ef0_03ff)).unwrap();
    builder.add(&Attribute::IceControlling(42)).unwrap();
    builder
        .add_raw(AttributeType::USERNAME, b"ours:them\0\0\0")
        .unwrap();
    builder.add_raw(CANDIDATE_IDENTIFIER, b"1\0\0\0").unwrap();
    if how.implementation_version {
        builder
            .add_raw(IMPLEMENTATION_VERSION, &2u32.to_be_bytes())
            .unwrap();
    }
    let key = IntegrityKey::new(LOCAL_PWD.as_bytes());
    builder.add_integrity_sha1_rfc3489(&key, true).unwrap();
    if how.legacy_fingerprint {
        builder.add_fingerprint_legacy().unwrap();
    } else {
        builder.add_fingerprint().unwrap();
    }
    builder.finish().to_vec()
}

/// Hands `datagram` in; returns the agent's answer to transaction `id`.
fn answer(agent: &mut Agent, now: Instant, id: TransactionId, datagram: &[u8]) -> Option<Vec<u8>> {
    let ours: SocketAddr = OURS.parse().unwrap();
    let theirs: SocketAddr = THEIRS.parse().unwrap();
    assert!(
        agent
            .handle_input(now, datagram_from(ours, theirs, datagram))
            .is_none()
    );
    let mut found = None;
    while let Some(d) = agent.poll_transmit() {
        let Ok(message) = Message::parse_unpadded(&d.payload) else {
            continue;
        };
        if *message.transaction_id() == id && message.class() != Class::Request {
            assert_eq!(d.destination, theirs);
            found = Some(d.payload.clone());
        }
    }
    found
}

#[test]
fn libnice_style_checks_are_answered_the_ms_ice2_way() {
    let now = Instant::now();
    let mut agent = agent(now);
    let id = TransactionId([7; 12]);
    let how = Check {
        layout: Layout::Unpadded,
        implementation_version: true,
        legacy_fingerprint: false,
    };
    let response = answer(&mut agent, now, id, &check(id, &how)).expect("an answer");
    let message = Message::parse_unpadded(&response).unwrap();
    assert_eq!(message.class(), Class::Success);
    let kinds: Vec<AttributeType> = message.raw_attributes().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        [
            AttributeType::XOR_MAPPED_ADDRESS,
            AttributeType::USERNAME,
            IMPLEMENTATION_VERSION,
            AttributeType::MESSAGE_INTEGRITY,
            AttributeType::FINGERPRINT
        ]
    );
    assert_eq!(
        message.get_raw(AttributeType::USERNAME),
        Some(&b"ours:them\0\0\0"[..]),
        "USERNAME echoed as it came"
    );
    let key = IntegrityKey::new(LOCAL_PWD.as_bytes());
    assert!(message.verify_integrity_sha1_rfc3489(&key).is_ok());
    assert!(message.verify_fingerprint().is_ok());
    assert_eq!(
        message.get(AttributeType::XOR_MAPPED_ADDRESS),
        Some(Ok(Attribute::XorMappedAddress(THEIRS.parse().unwrap())))
    );
}

#[test]
fn checks_in_the_padded_layout_are_answered_too() {
    let now = Instant::now();
    let mut agent = agent(now);
    let id = TransactionId([8; 12]);
    // A USERNAME of 9 bytes: padded by the layout, not by its own NULs.
    let mut buf = Vec::new();
    let kind = MessageType::new(Method::BINDING, Class::Request);
    let mut builder = MessageBuilder::new(&mut buf, kind, id);
    builder.add(&Attribute::Priority(0x6ef0_03ff)).unwrap();
    builder.add(&Attribute::IceControlling(42)).unwrap();
    builder.add(&Attribute::Username("ours:them")).unwrap();
    builder
        .add_raw(IMPLEMENTATION_VERSION, &2u32.to_be_bytes())
        .unwrap();
    let key = IntegrityKey::new(LOCAL_PWD.as_bytes());
    builder.add_integrity_sha1_rfc3489(&key, true).unwrap();
    builder.add_fingerprint().unwrap();
    let request = builder.finish().to_vec();
    assert!(Message::parse_unpadded(&request).is_err(), "really padded");
    let response = answer(&mut agent, now, id, &request).expect("an answer");
    assert_eq!(
        Message::parse_unpadded(&response).unwrap().class(),
        Class::Success
    );
}

/// A transaction id for which the check written `how` has a legacy CRC
/// that differs from the standard one (the two tables differ in one entry,
/// so most messages get the same FINGERPRINT either way).
fn id_where_crcs_differ(how: &Check) -> TransactionId {
    (0..=255u8)
        .map(|b| TransactionId([b; 12]))
        .find(|id| {
            let legacy = check(*id, how);
            let standard = check(
                *id,
                &Check {
                    legacy_fingerprint: false,
                    ..*how
                },
            );
            legacy != standard
        })
        .expect("a message whose CRCs differ")
}

#[test]
fn a_legacy_fingerprint_is_accepted_only_without_implementation_version() {
    let now = Instant::now();
    let mut agent = agent(now);
    // A peer older than IMPLEMENTATION-VERSION: the legacy CRC is its own.
    let legacy = Check {
        layout: Layout::Unpadded,
        implementation_version: false,
        legacy_fingerprint: true,
    };
    let id = id_where_crcs_differ(&legacy);
    let bytes = check(id, &legacy);
    let message = Message::parse_unpadded(&bytes).unwrap();
    assert!(message.verify_fingerprint().is_err(), "really legacy");
    let response = answer(&mut agent, now, id, &bytes);
    let response = response.expect("the legacy check is answered");
    assert_eq!(
        Message::parse_unpadded(&response).unwrap().class(),
        Class::Success
    );
    // libnice's second copy of each check: IMPLEMENTATION-VERSION with the
    // legacy CRC. Dropped without an answer, as libnice drops it.
    let copy = Check {
        layout: Layout::Unpadded,
        implementation_version: true,
        legacy_fingerprint: true,
    };
    let id = id_where_crcs_differ(&copy);
    assert_eq!(answer(&mut agent, now, id, &check(id, &copy)), None);
    // The same check with the standard CRC is answered.
    let standard = Check {
        legacy_fingerprint: false,
        ..copy
    };
    assert!(answer(&mut agent, now, id, &check(id, &standard)).is_some());
}

#[test]
fn an_rfc_8445_agent_does_not_take_ms_ice2_integrity() {
    let now = Instant::now();
    let config = AgentConfig {
        credentials: Some(("ours".into(), LOCAL_PWD.into())),
        controlling: false,
        ..AgentConfig::default()
    };
    let mut agent = Agent::new(config, now);
    agent.add_host_socket(now, 1, OURS.parse().unwrap());
    agent.set_remote_credentials(now, "them", "0123456789012345678901", false);
    agent.handle_timeout(now);
    while agent.poll_transmit().is_some() {}
    let id = TransactionId([11; 12]);
    let how = Check {
        layout: Layout::Padded,
        implementation_version: true,
        legacy_fingerprint: false,
    };
    let ours: SocketAddr = OURS.parse().unwrap();
    let theirs: SocketAddr = THEIRS.parse().unwrap();
    let check = check(id, &how);
    agent.handle_input(now, datagram_from(ours, theirs, &check));
    let answer = agent.poll_transmit().expect("an error answer");
    let message = Message::parse(&answer.payload).unwrap();
    assert_eq!(message.class(), Class::Error, "401: wrong integrity");
}

/// Every answer to transaction `id` the agent sends for `datagram`.
fn answers(agent: &mut Agent, now: Instant, id: TransactionId, datagram: &[u8]) -> Vec<Vec<u8>> {
    let ours: SocketAddr = OURS.parse().unwrap();
    let theirs: SocketAddr = THEIRS.parse().unwrap();
    assert!(
        agent
            .handle_input(now, datagram_from(ours, theirs, datagram))
            .is_none()
    );
    let mut found = Vec::new();
    while let Some(d) = agent.poll_transmit() {
        let Ok(message) = Message::parse_unpadded(&d.payload) else {
            continue;
        };
        if *message.transaction_id() == id && message.class() != Class::Request {
            found.push(d.payload.clone());
        }
    }
    found
}

#[test]
fn legacy_copies_go_until_the_peer_shows_implementation_version() {
    let now = Instant::now();
    let mut agent = agent(now);
    let legacy = Check {
        layout: Layout::Unpadded,
        implementation_version: false,
        legacy_fingerprint: true,
    };
    // An answer whose two CRCs differ goes out twice: the standard one,
    // then the copy an older peer can verify.
    let mut doubled = false;
    for b in 0..=255u8 {
        let id = TransactionId([b; 12]);
        let sent = answers(&mut agent, now, id, &check(id, &legacy));
        assert!(!sent.is_empty(), "a legacy check is answered");
        assert!(
            Message::parse_unpadded(&sent[0])
                .unwrap()
                .verify_fingerprint()
                .is_ok()
        );
        if let Some(copy) = edgeice_stun::ms::legacy_fingerprint_copy(&sent[0]) {
            assert_eq!(sent, [sent[0].clone(), copy]);
            doubled = true;
            break;
        }
        assert_eq!(sent.len(), 1, "no copy when it would be the same bytes");
    }
    assert!(doubled, "no answer reached the legacy table entry");

    // Once the peer shows IMPLEMENTATION-VERSION, one copy only.
    let modern = Check {
        layout: Layout::Unpadded,
        implementation_version: true,
        legacy_fingerprint: false,
    };
    for b in 0..=255u8 {
        let id = TransactionId([b; 12]);
        let sent = answers(&mut agent, now, id, &check(id, &modern));
        assert_eq!(sent.len(), 1);
    }
}

/// A datagram from `theirs` arriving on our socket `ours`.
fn datagram_from<'a>(
    ours: std::net::SocketAddr,
    theirs: std::net::SocketAddr,
    data: &'a [u8],
) -> edgeice_ice::Input<'a> {
    edgeice_ice::Input::Datagram {
        socket: ours,
        from: theirs,
        payload: data,
    }
}
