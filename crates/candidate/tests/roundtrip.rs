//! Every candidate written back parses to the same candidate; any input at
//! all parses or fails without panicking.

use std::net::IpAddr;

use edgeice_candidate::*;
use proptest::prelude::*;

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn token() -> impl Strategy<Value = &'static str> {
    "[a-zA-Z0-9+/]{1,32}".prop_map(leak)
}

fn address() -> impl Strategy<Value = CandidateAddress<'static>> {
    prop_oneof![
        any::<IpAddr>().prop_map(CandidateAddress::Ip),
        "[a-f0-9-]{8,36}\\.local".prop_map(|s| CandidateAddress::Name(leak(s))),
    ]
}

fn candidate() -> impl Strategy<Value = Candidate<'static>> {
    let transport = prop_oneof![
        Just(Transport::Udp),
        Just(Transport::Tcp),
        Just(Transport::TcpActive),
        Just(Transport::TcpPassive),
    ];
    let kind = prop_oneof![
        Just(CandidateType::Host),
        Just(CandidateType::ServerReflexive),
        Just(CandidateType::PeerReflexive),
        Just(CandidateType::Relay),
    ];
    let tcp_type = proptest::option::of(prop_oneof![
        Just(TcpType::Active),
        Just(TcpType::Passive),
        Just(TcpType::SimultaneousOpen),
    ]);
    let extensions = proptest::collection::vec(
        ("[a-z][a-z-]{0,12}", "[a-zA-Z0-9]{1,8}").prop_filter("reserved names", |(n, _)| {
            !matches!(n.as_str(), "typ" | "raddr" | "rport" | "tcptype")
        }),
        0..4,
    );
    (
        (
            token(),
            1u16..=256,
            transport,
            any::<u32>(),
            address(),
            any::<u16>(),
        ),
        (
            kind,
            proptest::option::of((address(), any::<u16>())),
            tcp_type,
            extensions,
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (foundation, component, transport, priority, address, port),
                (kind, related, tcp_type, extensions, ipv6_attribute),
            )| {
                let dialect = if ipv6_attribute
                    || matches!(transport, Transport::TcpActive | Transport::TcpPassive)
                {
                    Dialect::MsIce2
                } else {
                    Dialect::Rfc
                };
                Candidate {
                    dialect,
                    ipv6_attribute,
                    foundation,
                    component,
                    password: None,
                    transport,
                    priority: Priority::Ice(priority),
                    address,
                    port,
                    kind: Some(kind),
                    related,
                    tcp_type,
                    extensions: extensions
                        .into_iter()
                        .map(|(n, v)| (leak(n), leak(v)))
                        .collect(),
                }
            },
        )
}

proptest! {
    #[test]
    fn written_candidates_parse_back(c in candidate()) {
        let line = format!("a={c}");
        let parsed = Candidate::parse(&line).unwrap();
        prop_assert_eq!(parsed, c);
    }

    #[test]
    fn any_text_parses_or_fails_cleanly(line in "\\PC{0,200}") {
        if let Ok(c) = Candidate::parse(&line) {
            let again = c.to_string();
            prop_assert_eq!(Candidate::parse(&again).unwrap(), c);
        }
        let _ = parse_remote_candidates(&line);
    }
}
