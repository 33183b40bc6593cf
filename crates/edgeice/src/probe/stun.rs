//! STUN checks: a Binding request (the probe's mapped address and the
//! round trip) and, when the server offers RFC 5780 (its answer carries
//! OTHER-ADDRESS), the NAT's mapping and filtering behaviour seen from here.

use std::net::SocketAddr;
use std::time::Instant;

use edgeice_client::{BindingClient, BindingEvent, Transport};

use super::error::ProbeError;
use super::link::Link;
use super::report::Check;
use super::{Settings, ms, transactions};

/// What one Binding request came to.
struct Answer {
    mapped: SocketAddr,
    /// OTHER-ADDRESS: the server's alternate IP and port (RFC 5780).
    other: Option<SocketAddr>,
    rtt_ms: f64,
}

/// Sends one Binding request to `server` over `link` and waits for its
/// answer. `Ok(Err(text))`: the server answered with an error or never did.
fn binding(
    link: &mut Link,
    server: SocketAddr,
    settings: &Settings,
) -> Result<Result<Answer, String>, ProbeError> {
    // The link takes answers only from the server asked.
    if let Link::Udp { server: from, .. } = link {
        *from = server;
    }
    let mut client = BindingClient::new(server, Transport::Udp, transactions(settings.timeout));
    let start = Instant::now();
    client.send_request(start)?;
    let deadline = start + settings.timeout * 2;
    let mut buf = Vec::with_capacity(1500);
    loop {
        while let Some(transmit) = client.poll_transmit() {
            link.send(transmit.payload)?;
        }
        if let Some(event) = client.poll_event() {
            return Ok(match event {
                BindingEvent::Mapped { mapped, other, .. } => Ok(Answer {
                    mapped,
                    other,
                    rtt_ms: ms(start.elapsed()),
                }),
                BindingEvent::Failed { code, reason, .. } => Err(format!("error {code} {reason}")),
                BindingEvent::TimedOut { .. } => Err(format!(
                    "no answer within {:.1} s",
                    start.elapsed().as_secs_f64()
                )),
            });
        }
        if Instant::now() >= deadline {
            return Ok(Err(format!(
                "no answer within {:.1} s",
                start.elapsed().as_secs_f64()
            )));
        }
        let wake = client.poll_timeout().map_or(deadline, |t| t.min(deadline));
        if link.recv(wake, &mut buf)? {
            let _ = client.handle_input(Instant::now(), &buf);
        }
        client.handle_timeout(Instant::now());
    }
}

/// The Binding check over UDP, and the RFC 5780 mapping check when the
/// server offers it.
pub fn checks(server: SocketAddr, settings: &Settings) -> Vec<Check> {
    let name = "binding udp";
    let mut link = match Link::udp(server) {
        Ok(link) => link,
        Err(e) => return vec![Check::fail(name, e.to_string(), "check the local network")],
    };
    let answer = match binding(&mut link, server, settings) {
        Ok(Ok(answer)) => answer,
        Ok(Err(why)) => {
            return vec![Check::fail(
                name,
                format!("Binding to {server}: {why}"),
                format!(
                    "is the server running, and UDP port {} open on the way to it?",
                    server.port()
                ),
            )];
        }
        Err(e) => {
            return vec![Check::fail(
                name,
                e.to_string(),
                "check the path to the server (firewalls, routes)",
            )];
        }
    };
    let mut checks = vec![
        Check::pass(name, format!("mapped address {}", answer.mapped)).with_rtt(answer.rtt_ms),
    ];
    if let Some(other) = answer.other {
        checks.push(mapping(&mut link, answer.mapped, other, settings));
        checks.push(filtering(server, settings));
    }
    checks
}

/// RFC 5780 §4.4: which unsolicited senders this host's NAT lets in. The
/// server is asked to answer from its other IP and port, then from its
/// other port only; an answer that arrives tells how open the filter is.
fn filtering(server: SocketAddr, settings: &Settings) -> Check {
    let name = "nat filtering";
    // A fresh socket: the mapping check's socket has already sent to the
    // server's other address, which opened the filter for it.
    let socket = match std::net::UdpSocket::bind(super::link::wildcard(server)) {
        Ok(socket) => socket,
        Err(e) => return Check::warn(name, format!("not tested: {e}"), "check the local network"),
    };
    let socket = &socket;
    let wait = settings.timeout;
    let other_ip_and_port = match change_request(socket, server, true, wait) {
        Ok(answered) => answered,
        Err(e) => return Check::warn(name, format!("not tested: {e}"), "check the local network"),
    };
    if other_ip_and_port {
        return Check::pass(
            name,
            "endpoint-independent: an answer from the server's other IP and port got in (RFC 5780)",
        );
    }
    match change_request(socket, server, false, wait) {
        Ok(true) => Check::pass(
            name,
            "address-dependent: an answer from another port of the server got in, not one from its other IP (RFC 5780)",
        ),
        Ok(false) => Check::pass(
            name,
            "address-and-port-dependent: only answers from the exact address asked got in (RFC 5780); direct paths need both sides to send",
        ),
        Err(e) => Check::warn(name, format!("not tested: {e}"), "check the local network"),
    }
}

/// Sends a Binding request with CHANGE-REQUEST (the other port, and the
/// other IP too when `change_ip`), retransmitted by the client state
/// machine (three requests within about `wait`), and says whether an answer
/// came back — from wherever: that is the point.
fn change_request(
    socket: &std::net::UdpSocket,
    server: SocketAddr,
    change_ip: bool,
    wait: std::time::Duration,
) -> Result<bool, ProbeError> {
    let config = edgeice_client::TransactionConfig {
        rto: wait / 7,
        max_requests: 3,
        last_wait_factor: 3,
        stream_timeout: wait,
        id_seed: None,
    };
    let mut client = BindingClient::new(server, Transport::Udp, config);
    client.send_change_request(Instant::now(), change_ip, true)?;
    let mut buf = [0u8; 1500];
    loop {
        while let Some(transmit) = client.poll_transmit() {
            socket
                .send_to(transmit.payload, transmit.destination)
                .map_err(ProbeError::Send)?;
        }
        match client.poll_event() {
            Some(BindingEvent::TimedOut { .. }) => return Ok(false),
            Some(_) => return Ok(true),
            None => {}
        }
        let Some(next) = client.poll_timeout() else {
            return Ok(false);
        };
        let left = next.saturating_duration_since(Instant::now());
        socket
            .set_read_timeout(Some(left.max(std::time::Duration::from_millis(1))))
            .map_err(ProbeError::Socket)?;
        match socket.recv_from(&mut buf) {
            // The answer comes from the server's other address: the client
            // matches it by transaction alone.
            Ok((n, _)) => {
                let _ = client.handle_input(Instant::now(), &buf[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(ProbeError::Receive(e)),
        }
        client.handle_timeout(Instant::now());
    }
}

/// RFC 5780 §4.3: whether this host's NAT keeps one mapping for every
/// destination (endpoint-independent, what ICE needs for direct paths) or
/// gives each destination its own (symmetric: only relays will work).
fn mapping(link: &mut Link, first: SocketAddr, other: SocketAddr, settings: &Settings) -> Check {
    let name = "nat mapping";
    // Same socket, the server's other IP and port.
    match binding(link, other, settings) {
        Ok(Ok(answer)) if answer.mapped == first => Check::pass(
            name,
            format!(
                "endpoint-independent: {} towards both of the server's addresses (RFC 5780)",
                answer.mapped
            ),
        ),
        Ok(Ok(answer)) => Check::warn(
            name,
            format!(
                "dependent on the destination: {first} towards the server, {} towards its other address — a symmetric NAT, direct paths will fail",
                answer.mapped
            ),
            "calls from here need a TURN relay; prefer an endpoint-independent NAT (RFC 4787)",
        ),
        Ok(Err(why)) => Check::warn(
            name,
            format!("the server's other address {other} did not answer: {why}"),
            "the server advertises OTHER-ADDRESS but does not answer there: check its --alternate-ip",
        ),
        Err(e) => Check::warn(name, format!("not tested: {e}"), "check the local network"),
    }
}
