//! Candidate lines as real agents write them, in each dialect.

use std::net::IpAddr;

use edgeice_candidate::*;

fn ip(s: &str) -> CandidateAddress<'static> {
    CandidateAddress::Ip(s.parse::<IpAddr>().unwrap())
}

#[test]
fn a_browser_server_reflexive_candidate() {
    let line = "candidate:842163049 1 udp 1677729535 203.0.113.7 61665 typ srflx raddr 192.168.1.10 rport 61665 generation 0 ufrag sXrA network-id 1 network-cost 10";
    let c = Candidate::parse(line).unwrap();
    assert_eq!(c.dialect, Dialect::Rfc);
    assert_eq!(c.component, 1);
    assert_eq!(c.transport, Transport::Udp);
    assert_eq!(c.kind, Some(CandidateType::ServerReflexive));
    assert_eq!(c.address, ip("203.0.113.7"));
    assert_eq!(c.related, Some((ip("192.168.1.10"), 61665)));
    assert_eq!(c.ufrag(), Some("sXrA"));
    assert_eq!(c.generation(), Some("0"));
    assert_eq!(c.extension("network-cost"), Some("10"));
    assert_eq!(c.priority.type_preference(), Some(100));
    assert_eq!(c.address.class(), AddressClass::Public);
    assert_eq!(c.related.unwrap().0.class(), AddressClass::Private);
}

#[test]
fn an_mdns_host_candidate_and_an_rfc6544_tcp_one() {
    let mdns = Candidate::parse(
        "a=candidate:1 1 udp 2122260223 6b3c9f0e-1f2e-4d3c-9a8b-7c6d5e4f3a2b.local 54321 typ host generation 0",
    )
    .unwrap();
    assert_eq!(mdns.address.class(), AddressClass::Mdns);
    let tcp = Candidate::parse(
        "candidate:3 1 tcp 1518280447 192.168.1.10 9 typ host tcptype active generation 0",
    )
    .unwrap();
    assert_eq!(tcp.tcp_type, Some(TcpType::Active));
    assert!(tcp.transport.is_tcp());
}

#[test]
fn lync_ms_ice2_lines_from_an_invite() {
    // The seed's lines: a host UDP pair, then TCP relay candidates on the
    // edge's private address, forwarding to the client.
    let host =
        Candidate::parse("a=candidate:1 1 UDP 2130706431 192.168.1.10 50010 typ host").unwrap();
    assert_eq!(host.priority.type_preference(), Some(126));
    let relay = Candidate::parse(
        "a=candidate:3 1 TCP-PASS 6556159 10.0.1.5 53186 typ relay raddr 192.168.1.10 rport 50012",
    )
    .unwrap();
    assert_eq!(relay.dialect, Dialect::MsIce2);
    assert_eq!(relay.transport, Transport::TcpPassive);
    assert_eq!(relay.kind, Some(CandidateType::Relay));
    assert_eq!(relay.address.class(), AddressClass::Private);
    assert!(!relay.address.class().is_reachable_from_internet());
    let active = Candidate::parse(
        "a=candidate:4 2 TCP-ACT 7075838 192.168.1.10 50012 typ srflx raddr 192.168.1.10 rport 50012",
    )
    .unwrap();
    assert_eq!(active.transport, Transport::TcpActive);
    assert_eq!(active.component, 2);
    let v6 = Candidate::parse("a=x-candidate-ipv6:5 1 UDP 2130705919 2001:db8::10 50020 typ host")
        .unwrap();
    assert!(v6.ipv6_attribute);
    assert_eq!(v6.dialect, Dialect::MsIce2);
    assert_eq!(
        v6.to_string(),
        "x-candidate-ipv6:5 1 UDP 2130705919 2001:db8::10 50020 typ host"
    );
}

#[test]
fn an_ocs_2007_fallback_line() {
    let line = "a=candidate:qlGEgH0q1e/t+NR6XOdjY8JAKE8vIIgYbCR8C8eJgC8 1 5yhCtCBRrxbdq4pXf1DnMg UDP 0.830 192.168.1.10 50012";
    let c = Candidate::parse(line).unwrap();
    assert_eq!(c.dialect, Dialect::MsIceDraft6);
    assert_eq!(c.foundation, "qlGEgH0q1e/t+NR6XOdjY8JAKE8vIIgYbCR8C8eJgC8");
    assert_eq!(c.password, Some("5yhCtCBRrxbdq4pXf1DnMg"));
    assert_eq!(c.priority, Priority::QValue(830));
    assert_eq!(c.kind, None);
    assert_eq!(format!("a={c}"), line);
}

#[test]
fn broken_lines_are_errors_that_say_what_is_wrong() {
    let err = |line: &str| Candidate::parse(line).unwrap_err().to_string();
    assert_eq!(
        err("candidate:1 1 UDP 2130706431 192.0.2.1 5000"),
        "candidate line ends before its typ"
    );
    assert!(err("candidate:1 0 UDP 1 192.0.2.1 5000 typ host").contains("component"));
    assert!(err("candidate:1 999 UDP 1 192.0.2.1 5000 typ host").contains("component"));
    assert!(err("candidate:1 1 UDP 99999999999 192.0.2.1 5000 typ host").contains("priority"));
    assert!(err("candidate:1 1 UDP 1 192.0.2.1 70000 typ host").contains("port"));
    assert!(err("candidate:1 1 UDP 1 192.0.2.1 5000 typ host generation").contains("no value"));
    assert!(err("candidate:1 1 UDP 1 192.0.2.1 5000 typ srflx raddr 10.0.0.1").contains("rport"));
    assert!(
        err("candidate:1 1 TCP 1 192.0.2.1 5000 typ host tcptype sideways").contains("tcptype")
    );
    assert!(err("").contains("foundation"));
}

#[test]
fn remote_candidates() {
    let list =
        parse_remote_candidates("a=remote-candidates:1 192.0.2.1 5000 2 192.0.2.1 5001").unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].component, 2);
    assert_eq!(list[1].port, 5001);
    assert!(parse_remote_candidates("a=remote-candidates:1 192.0.2.1").is_err());
}
