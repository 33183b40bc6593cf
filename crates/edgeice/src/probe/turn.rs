//! TURN checks: Allocate over the URL's transport, the relayed address's
//! class, and whether it is reachable from where the probe runs — the check
//! that catches an edge behind NAT handing out its private address.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use edgeice_candidate::AddressClass;
use edgeice_client::{
    Allocation, AllocationConfig, AllocationEvent, Credentials, InputError, Transmit, Transport,
};

use super::error::ProbeError;
use super::link::{self, Link};
use super::report::Check;
use super::{Settings, ms, transactions};

/// How many times the reachability datagram is sent before giving up.
const REACH_TRIES: u32 = 3;

/// What the probe drives in a TURN client, standard (RFC 8656) or
/// Microsoft's (MS-TURN): both are sans-IO machines of the same shape.
pub(super) trait RelayClient {
    /// What happened.
    type Event;
    fn poll_transmit(&mut self) -> Option<Transmit<'_>>;
    fn poll_event(&mut self) -> Option<Self::Event>;
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_input<'a>(
        &mut self,
        now: Instant,
        bytes: &'a [u8],
    ) -> Result<Option<(SocketAddr, &'a [u8])>, InputError>;
    fn handle_timeout(&mut self, now: Instant);
}

macro_rules! relay_client {
    ($client:ty, $event:ty) => {
        impl RelayClient for $client {
            type Event = $event;
            fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
                <$client>::poll_transmit(self)
            }
            fn poll_event(&mut self) -> Option<$event> {
                <$client>::poll_event(self)
            }
            fn poll_timeout(&self) -> Option<Instant> {
                <$client>::poll_timeout(self)
            }
            fn handle_input<'a>(
                &mut self,
                now: Instant,
                bytes: &'a [u8],
            ) -> Result<Option<(SocketAddr, &'a [u8])>, InputError> {
                <$client>::handle_input(self, now, bytes)
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$client>::handle_timeout(self, now)
            }
        }
    };
}

relay_client!(Allocation, AllocationEvent);
relay_client!(edgeice_client::MsTurnClient, edgeice_client::MsTurnEvent);

/// A TURN client and the link it lives on, driven together.
pub(super) struct Session<C: RelayClient> {
    pub(super) link: Link,
    pub(super) turn: C,
    buf: Vec<u8>,
    /// Data the relay handed back: (peer, payload).
    pub(super) received: Vec<(SocketAddr, Vec<u8>)>,
}

impl<C: RelayClient> Session<C> {
    pub(super) fn new(link: Link, turn: C) -> Self {
        Session {
            link,
            turn,
            buf: Vec::with_capacity(2048),
            received: Vec::new(),
        }
    }

    /// Sends whatever the client has queued.
    fn flush(&mut self) -> Result<(), ProbeError> {
        while let Some(transmit) = self.turn.poll_transmit() {
            self.link.send(transmit.payload)?;
        }
        Ok(())
    }

    /// Drives the client until `want` picks an event (its value is
    /// returned) or `deadline` passes (`None`). Relayed data is kept in
    /// `received` on the way.
    pub(super) fn until<T>(
        &mut self,
        deadline: Instant,
        want: impl FnMut(&C::Event) -> Option<T>,
    ) -> Result<Option<T>, ProbeError> {
        self.drive(deadline, false, want)
    }

    /// Drives the client until relayed data arrives or `deadline` passes.
    pub(super) fn until_data(&mut self, deadline: Instant) -> Result<(), ProbeError> {
        self.drive(deadline, true, |_| None::<()>).map(|_| ())
    }

    fn drive<T>(
        &mut self,
        deadline: Instant,
        stop_on_data: bool,
        mut want: impl FnMut(&C::Event) -> Option<T>,
    ) -> Result<Option<T>, ProbeError> {
        loop {
            self.flush()?;
            while let Some(event) = self.turn.poll_event() {
                if let Some(value) = want(&event) {
                    return Ok(Some(value));
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            let wake = self
                .turn
                .poll_timeout()
                .map_or(deadline, |t| t.min(deadline));
            if self.link.recv(wake, &mut self.buf)? {
                // What is not for this client is dropped, as a lost
                // datagram would be.
                if let Ok(Some((peer, data))) = self.turn.handle_input(Instant::now(), &self.buf) {
                    self.received.push((peer, data.to_vec()));
                    if stop_on_data {
                        return Ok(None);
                    }
                }
            }
            self.turn.handle_timeout(Instant::now());
        }
    }
}

/// The Allocate checks of one `turn:`/`turns:` URL over `transport`.
pub fn checks(
    server: SocketAddr,
    host: &str,
    transport: Transport,
    credentials: &Credentials,
    settings: &Settings,
) -> Vec<Check> {
    let name = format!("allocate {}", transport_name(transport));
    let link = match connect(server, host, transport, settings) {
        Ok(link) => link,
        Err(e) => {
            return vec![Check::fail(
                name,
                e.to_string(),
                format!(
                    "is the server listening on {} port {}, and is no firewall in the way?",
                    transport_name(transport).to_uppercase(),
                    server.port()
                ),
            )];
        }
    };
    let mut config = AllocationConfig::new(server, transport, credentials.clone());
    config.transactions = transactions(settings.timeout);
    let mut session = Session::new(link, Allocation::new(config));
    match allocate_and_check(&mut session, &name, settings) {
        Ok(checks) => {
            release(&mut session);
            checks
        }
        Err(e) => vec![Check::fail(
            name,
            e.to_string(),
            "check the path to the server (firewalls, routes) and that it runs",
        )],
    }
}

/// The link for `transport`.
pub(super) fn connect(
    server: SocketAddr,
    host: &str,
    transport: Transport,
    settings: &Settings,
) -> Result<Link, ProbeError> {
    match transport {
        Transport::Udp => Link::udp(server),
        Transport::Tcp => Link::tcp(server, settings.timeout),
        Transport::Tls => {
            let tls = settings.tls.as_ref().ok_or_else(|| {
                ProbeError::Tls("no trusted certificates loaded (--ca)".to_owned())
            })?;
            let name = rustls_pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
                ProbeError::Tls(format!("{host:?} cannot be a certificate name: {e}"))
            })?;
            Link::tls(server, name, tls.clone(), settings.timeout)
        }
    }
}

/// Allocate, then the relayed address's class and reachability.
fn allocate_and_check(
    session: &mut Session<Allocation>,
    name: &str,
    settings: &Settings,
) -> Result<Vec<Check>, ProbeError> {
    let start = Instant::now();
    session.turn.allocate(start)?;
    let outcome = session.until(start + settings.timeout * 2, |event| match event {
        AllocationEvent::Allocated {
            relayed, mapped, ..
        } => Some(Ok((*relayed, *mapped))),
        AllocationEvent::Failed { code, reason } => Some(Err((*code, reason.clone()))),
        _ => None,
    })?;
    let rtt = ms(start.elapsed());
    let silent = Silent {
        what: "Allocate",
        waited: settings.timeout * 2,
        fix: "is the server running and its port open on this transport?",
    };
    let (relayed, mapped) = match allocated(name, outcome, &silent) {
        Ok(addresses) => addresses,
        Err(check) => return Ok(vec![check]),
    };
    let mapped_text = mapped.map_or_else(|| "not given".to_owned(), |m| m.to_string());
    let mut checks = vec![
        Check::pass(
            name,
            format!("relayed address {relayed}, mapped address {mapped_text}"),
        )
        .with_rtt(rtt),
    ];
    let class = AddressClass::of(relayed.ip());
    let public = public_guess(session.turn.config().server);
    checks.push(class_check(relayed, class, &public));
    // The probe's own address as the server sees it: a permission for it
    // lets what the probe sends straight to the relay in.
    let own_ip = match mapped {
        Some(m) => m.ip(),
        None => link::local_ip_towards(session.turn.config().server)?,
    };
    checks.push(reachability(
        session, relayed, class, own_ip, &public, settings,
    )?);
    Ok(checks)
}

/// What to say when an Allocate goes unanswered.
pub(super) struct Silent {
    /// The request, as named in the check.
    pub what: &'static str,
    /// How long the probe waited.
    pub waited: std::time::Duration,
    /// What to look at.
    pub fix: &'static str,
}

/// The addresses an Allocate gave, or the failed check to report: refused
/// (with the fix for its code) or unanswered (as `silent` says).
pub(super) fn allocated<T>(
    name: &str,
    outcome: Option<Result<T, (Option<u16>, String)>>,
    silent: &Silent,
) -> Result<T, Check> {
    match outcome {
        Some(Ok(addresses)) => Ok(addresses),
        Some(Err((code, reason))) => Err(refused(name, code, &reason)),
        None => Err(Check::fail(
            name,
            format!(
                "no answer to {} within {} s",
                silent.what,
                silent.waited.as_secs()
            ),
            silent.fix,
        )),
    }
}

/// The check for an Allocate the server refused.
fn refused(name: &str, code: Option<u16>, reason: &str) -> Check {
    let fix = match code {
        Some(401) => {
            "the credentials were refused: check --user/--password (and the realm), or --secret"
        }
        Some(403) => {
            "the server forbids this allocation: check its policy for this user or address"
        }
        Some(437) => "the server already has an allocation for this 5-tuple: retry in a moment",
        Some(441) => "wrong credentials for this allocation: check --user/--password",
        Some(486) => "the user's or the server's allocation quota is used up",
        Some(508) => "the server has no relay port left: widen its relay port range",
        Some(_) => "see the server's logs for why it refused",
        None => "is the server running and its port open on this transport?",
    };
    let what = match code {
        Some(code) => format!("Allocate refused: {code} {reason}"),
        None => format!("Allocate failed: {reason}"),
    };
    Check::fail(name, what, fix)
}

/// What the relayed address's class means for clients.
pub(super) fn class_check(relayed: SocketAddr, class: AddressClass, public: &str) -> Check {
    let name = "relay address";
    let ip = relayed.ip();
    match class {
        AddressClass::Public | AddressClass::HostName => {
            Check::pass(name, format!("{relayed} is a public address"))
        }
        AddressClass::Loopback => Check::warn(
            name,
            format!("{relayed} is a loopback address: only this host can reach it"),
            "give the server a relay address other hosts can reach (edgeice serve --relay-ip)",
        ),
        AddressClass::Private
        | AddressClass::Cgnat
        | AddressClass::UniqueLocal
        | AddressClass::LinkLocal => Check::warn(
            name,
            format!(
                "{relayed} is a {} address: only clients inside the server's own network can reach it",
                class.as_str()
            ),
            format!(
                "behind a 1:1 NAT? advertise the public address: edgeice serve --external-ip {public}/{ip} (coturn: external-ip={public}/{ip})"
            ),
        ),
        AddressClass::Unusable | AddressClass::Mdns => Check::fail(
            name,
            format!("{relayed} is not an address a peer can send to"),
            "check the server's relay address settings (--relay-ip, --external-ip)",
        ),
    }
}

/// Sends a datagram straight from the probe to the relayed address and
/// waits for it to come back through the allocation, as a remote peer's
/// media would.
fn reachability(
    session: &mut Session<Allocation>,
    relayed: SocketAddr,
    class: AddressClass,
    own_ip: IpAddr,
    public: &str,
    settings: &Settings,
) -> Result<Check, ProbeError> {
    let name = "relay reachable";
    let start = Instant::now();
    session.turn.create_permission(start, own_ip)?;
    let permission = session.until(start + settings.timeout, |event| match event {
        AllocationEvent::PermissionCreated { ip } if *ip == own_ip => Some(Ok(())),
        AllocationEvent::PermissionFailed { ip, code, reason } if *ip == own_ip => {
            Some(Err((*code, reason.clone())))
        }
        AllocationEvent::Failed { code, reason } => Some(Err((*code, reason.clone()))),
        _ => None,
    })?;
    match permission {
        Some(Ok(())) => {}
        Some(Err((code, reason))) => {
            let code = code.map_or_else(String::new, |c| format!("{c} "));
            return Ok(Check::warn(
                name,
                format!("not tested: CreatePermission for {own_ip} refused ({code}{reason})"),
                "the server's peer policy refuses this address (edgeice serve --allow-peer; coturn --allow-loopback-peers for loopback)",
            ));
        }
        None => {
            return Ok(Check::warn(
                name,
                format!("not tested: no answer to CreatePermission for {own_ip}"),
                "see the server's logs",
            ));
        }
    }

    // A second socket, as another peer would be: same host, another port.
    let local_ip = link::local_ip_towards(relayed).or_else(|_| {
        session
            .link
            .local_addr()
            .map(|a| a.ip())
            .map_err(ProbeError::Socket)
    })?;
    let peer = UdpSocket::bind(SocketAddr::new(local_ip, 0));
    let outcome = match peer {
        Ok(peer) => send_direct(session, &peer, relayed, settings)?,
        // No local address routes to the relayed one.
        Err(e) => Direct::NoRoute(e.to_string()),
    };
    let outcome = match outcome {
        Direct::NoRoute(_) if !class.is_reachable_from_internet() => Direct::Lost,
        other => other,
    };
    Ok(match outcome {
        Direct::CameBack(rtt) => Check::pass(
            name,
            format!("data sent from here to {relayed} came back through the allocation"),
        )
        .with_rtt(rtt),
        Direct::Lost | Direct::NoRoute(_) if !class.is_reachable_from_internet() => {
            let ip = relayed.ip();
            Check::fail(
                name,
                format!(
                    "relayed address {relayed} is {} and unreachable from here: data sent to it never came back, so peers outside the server's network cannot use this relay",
                    class_words(class)
                ),
                format!(
                    "the server is behind NAT and hands out its private address: give it its public one, edgeice serve --external-ip {public}/{ip} (coturn: external-ip={public}/{ip})"
                ),
            )
        }
        Direct::NoRoute(e) => Check::fail(
            name,
            format!("relayed address {relayed} is unreachable from here ({e})"),
            "check the routes between here and the server's relay address",
        ),
        Direct::Lost => Check::fail(
            name,
            format!(
                "relayed address {relayed} is unreachable from here: data sent to it never came back through the allocation"
            ),
            "open the server's relay port range (UDP) in the firewall in front of it; behind NAT, check that --external-ip names this address",
        ),
    })
}

/// What became of the datagram sent straight to the relay.
enum Direct {
    /// It came back through the allocation after this many milliseconds.
    CameBack(f64),
    /// It never came back.
    Lost,
    /// The probe's host has no route to the relayed address.
    NoRoute(String),
}

/// Sends a nonce from `peer` to the relayed address, up to REACH_TRIES
/// times, and waits for it to arrive through the allocation.
fn send_direct(
    session: &mut Session<Allocation>,
    peer: &UdpSocket,
    relayed: SocketAddr,
    settings: &Settings,
) -> Result<Direct, ProbeError> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|_| ProbeError::NoRandomness)?;
    let wait = settings.timeout / REACH_TRIES;
    let start = Instant::now();
    for _ in 0..REACH_TRIES {
        if let Err(e) = peer.send_to(&nonce, relayed) {
            return Ok(Direct::NoRoute(e.to_string()));
        }
        // Matched by the random payload alone: behind a NAT the relay sees
        // another port (and maybe address) than the socket's own.
        let came_back = |received: &[(SocketAddr, Vec<u8>)]| {
            received.iter().any(|(_, data)| data[..] == nonce[..])
        };
        let deadline = Instant::now() + wait.max(Duration::from_millis(100));
        while Instant::now() < deadline {
            session.until_data(deadline)?;
            if came_back(&session.received) {
                return Ok(Direct::CameBack(ms(start.elapsed())));
            }
        }
    }
    Ok(Direct::Lost)
}

/// The public address to suggest for `--external-ip`: the address the
/// probe reached the server on when that one is public (the NAT's address
/// in front of it), else a placeholder.
pub(super) fn public_guess(server: SocketAddr) -> String {
    if AddressClass::of(server.ip()).is_reachable_from_internet() {
        server.ip().to_string()
    } else {
        "PUBLIC_IP".to_owned()
    }
}

/// "private (RFC 1918)" and the like, for the failure line.
fn class_words(class: AddressClass) -> &'static str {
    match class {
        AddressClass::Private => "private (RFC 1918)",
        AddressClass::Cgnat => "private (carrier-grade NAT space)",
        AddressClass::UniqueLocal => "private (IPv6 unique local)",
        AddressClass::LinkLocal => "private (link-local)",
        AddressClass::Loopback => "loopback",
        _ => "not routable",
    }
}

/// Releases the allocation, waiting briefly for the answer (best effort:
/// the server frees it at its lifetime's end anyway).
fn release(session: &mut Session<Allocation>) {
    if session.turn.release(Instant::now()).is_ok() {
        let deadline = Instant::now() + Duration::from_millis(500);
        let _ = session.until(deadline, |event| {
            matches!(
                event,
                AllocationEvent::Released | AllocationEvent::Failed { .. }
            )
            .then_some(())
        });
    }
}

/// `udp`, `tcp` or `tls`.
pub fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
    }
}
