//! `edgeice probe --dialect ms-turn`: checks an edge the way a Lync or
//! Skype for Business client uses it — MS-TURN Allocate, the relayed
//! address's class, a Send request out to a peer and its answer back in a
//! Data indication, then Set Active Destination and raw datagrams both
//! ways.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use edgeice_client::{Credentials, MsTurnClient, MsTurnConfig, MsTurnEvent, Transport};
use edgeice_stun::Framing;

use super::error::ProbeError;
use super::link;
use super::report::Check;
use super::turn::{Session, Silent, allocated, class_check, connect, public_guess, transport_name};

type MsSession = Session<MsTurnClient>;
use super::{Settings, ms, transactions};

/// The MS-TURN checks of one `turn:` URL over `transport`.
pub fn checks(
    server: SocketAddr,
    host: &str,
    transport: Transport,
    credentials: &Credentials,
    settings: &Settings,
) -> Vec<Check> {
    let name = format!("ms-turn allocate {}", transport_name(transport));
    if transport == Transport::Tls {
        return vec![Check::warn(
            name,
            "MS-TURN over TLS is not probed",
            "probe turn:HOST (UDP) or turn:HOST?transport=tcp with --dialect ms-turn",
        )];
    }
    let mut link = match connect(server, host, transport, settings) {
        Ok(link) => link,
        Err(e) => {
            return vec![Check::fail(
                name,
                e.to_string(),
                "is the edge listening there?",
            )];
        }
    };
    link.set_framing(Framing::MsTurn);
    let client = MsTurnClient::new(MsTurnConfig {
        server,
        transport,
        username: credentials.username.clone(),
        password: credentials.password.clone(),
        transactions: transactions(settings.timeout),
    });
    let client = match client {
        Ok(client) => client,
        Err(e) => return vec![Check::fail(name, e.to_string(), "see the error")],
    };
    let mut session = Session::new(link, client);
    let checks = match allocate_and_check(&mut session, &name, server, settings) {
        Ok(checks) => checks,
        Err(e) => vec![Check::fail(
            name,
            e.to_string(),
            "check the path to the edge (firewalls, routes) and that it runs",
        )],
    };
    if session.turn.release(Instant::now()).is_ok() {
        let deadline = Instant::now() + Duration::from_millis(500);
        let _ = session.until(deadline, |e| {
            matches!(e, MsTurnEvent::Released | MsTurnEvent::Failed { .. }).then_some(())
        });
    }
    checks
}

fn allocate_and_check(
    session: &mut MsSession,
    name: &str,
    server: SocketAddr,
    settings: &Settings,
) -> Result<Vec<Check>, ProbeError> {
    let start = Instant::now();
    session.turn.allocate(start)?;
    let outcome = session.until(start + settings.timeout * 2, |event| match event {
        MsTurnEvent::Allocated {
            relayed, reflexive, ..
        } => Some(Ok((*relayed, *reflexive))),
        MsTurnEvent::Failed { code, reason, .. } => Some(Err((*code, reason.clone()))),
        _ => None,
    })?;
    let silent = Silent {
        what: "an MS-TURN Allocate",
        waited: settings.timeout * 2,
        fix: "does the edge speak MS-TURN? (coturn does not: use a Lync/Skype for Business edge or edgeice serve)",
    };
    let (relayed, reflexive) = match allocated(name, outcome, &silent) {
        Ok(addresses) => addresses,
        Err(check) => return Ok(vec![check]),
    };
    let reflexive_text = reflexive.map_or_else(|| "not given".to_owned(), |m| m.to_string());
    let mut checks = vec![
        Check::pass(
            name,
            format!("relayed address {relayed}, reflexive address {reflexive_text}"),
        )
        .with_rtt(ms(start.elapsed())),
    ];
    let class = edgeice_candidate::AddressClass::of(relayed.ip());
    checks.push(class_check(relayed, class, &public_guess(server)));
    checks.extend(exchange(session, relayed, settings)?);
    Ok(checks)
}

/// A peer socket on this host: a Send request to it, its answer back
/// through a Data indication, then the same raw after Set Active
/// Destination.
fn exchange(
    session: &mut MsSession,
    relayed: SocketAddr,
    settings: &Settings,
) -> Result<Vec<Check>, ProbeError> {
    let local_ip = link::local_ip_towards(relayed)?;
    let peer = UdpSocket::bind(SocketAddr::new(local_ip, 0)).map_err(ProbeError::Socket)?;
    let peer_addr = peer.local_addr().map_err(ProbeError::Socket)?;
    peer.set_read_timeout(Some(settings.timeout))
        .map_err(ProbeError::Socket)?;
    let mut checks = Vec::new();

    let start = Instant::now();
    let relayed_both_ways = round_trip(
        session,
        &peer,
        peer_addr,
        relayed,
        b"ms-turn send",
        settings,
    )?;
    checks.push(match relayed_both_ways {
        Ok(()) => Check::pass(
            "send and data indication",
            format!("a Send request reached {peer_addr} from {relayed}, and its answer came back in a Data indication"),
        )
        .with_rtt(ms(start.elapsed())),
        Err(what) => Check::fail(
            "send and data indication",
            what,
            "open the edge's relay port range (UDP) between it and its peers; behind NAT, check its external address",
        ),
    });

    let start = Instant::now();
    session.turn.set_active_destination(start, peer_addr)?;
    let set = session.until(start + settings.timeout, |event| match event {
        MsTurnEvent::ActiveDestination { .. } => Some(Ok(())),
        MsTurnEvent::Failed { code, reason, .. } => Some(Err((*code, reason.clone()))),
        _ => None,
    })?;
    match set {
        Some(Ok(())) => {}
        Some(Err((code, reason))) => {
            let code = code.map_or_else(String::new, |c| format!("{c} "));
            checks.push(Check::fail(
                "active destination",
                format!("Set Active Destination refused: {code}{reason}"),
                "see the edge's logs; its peer policy may refuse this address",
            ));
            return Ok(checks);
        }
        None => {
            checks.push(Check::fail(
                "active destination",
                "no answer to Set Active Destination",
                "see the edge's logs",
            ));
            return Ok(checks);
        }
    }
    let raw = round_trip(session, &peer, peer_addr, relayed, b"ms-turn raw", settings)?;
    checks.push(match raw {
        Ok(()) => Check::pass(
            "active destination",
            format!("raw datagrams went both ways between here and {peer_addr}"),
        )
        .with_rtt(ms(start.elapsed())),
        Err(what) => Check::fail(
            "active destination",
            what,
            "the edge accepted Set Active Destination but does not relay raw data: see its logs",
        ),
    });
    Ok(checks)
}

/// Sends `payload` through the relay to `peer`, and `peer`'s answer back.
fn round_trip(
    session: &mut MsSession,
    peer: &UdpSocket,
    peer_addr: SocketAddr,
    relayed: SocketAddr,
    payload: &[u8],
    settings: &Settings,
) -> Result<Result<(), String>, ProbeError> {
    let mut out = Vec::new();
    session.turn.send_to(peer_addr, payload, &mut out)?;
    session.link.send(&out)?;
    let mut buf = [0u8; 2048];
    let arrived = match peer.recv_from(&mut buf) {
        Ok((n, from)) => buf[..n] == *payload && from == relayed,
        Err(_) => false,
    };
    if !arrived {
        return Ok(Err(format!(
            "data sent through the relay never reached {peer_addr} from {relayed}"
        )));
    }
    let answer = [payload, b" answer"].concat();
    peer.send_to(&answer, relayed).map_err(ProbeError::Send)?;
    session.received.clear();
    let deadline = Instant::now() + settings.timeout;
    while Instant::now() < deadline && session.received.is_empty() {
        session.until_data(deadline)?;
    }
    if session
        .received
        .iter()
        .any(|(from, data)| *from == peer_addr && *data == answer)
    {
        Ok(Ok(()))
    } else {
        Ok(Err(format!(
            "{peer_addr} answered to {relayed}, but the answer never came back through the relay"
        )))
    }
}
