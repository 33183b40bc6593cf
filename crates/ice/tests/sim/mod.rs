//! A simulated network for whole calls between two agents: virtual time,
//! latency, loss, NATs of the four classic behaviours, firewalls, and
//! edgeice's own STUN/TURN server core as the server on the "internet".
//! Everything is deterministic: the same test always sees the same run.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use edgeice_ice::{
    Agent, AgentConfig, ConnectionId, Datagram, Event, Input as AgentInput, Route, State,
    StunServer, TcpCommand, TurnServer,
};
use edgeice_server::{
    Event as ServerEvent, FiveTuple, Input, PEER_DATA_HEADROOM, Server, ServerConfig, Transport,
};

/// How a NAT maps and filters (RFC 4787 terms in parentheses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatKind {
    /// Endpoint-independent mapping and filtering.
    FullCone,
    /// Endpoint-independent mapping, address-dependent filtering.
    AddressRestricted,
    /// Endpoint-independent mapping, address-and-port-dependent filtering.
    PortRestricted,
    /// Address-and-port-dependent mapping and filtering.
    Symmetric,
}

/// A NAT in front of one agent.
pub struct Nat {
    pub kind: NatKind,
    pub public_ip: IpAddr,
    /// The private network behind it: addresses sharing its first three
    /// octets.
    pub inside: IpAddr,
    next_port: u16,
    /// (private source, remote if symmetric) → public address.
    mappings: Vec<(SocketAddr, Option<SocketAddr>, SocketAddr)>,
    /// (public address, remote it sent to).
    sent_to: Vec<(SocketAddr, SocketAddr)>,
}

impl Nat {
    pub fn new(kind: NatKind, public_ip: &str, inside: &str) -> Nat {
        Nat {
            kind,
            public_ip: public_ip.parse().unwrap(),
            inside: inside.parse().unwrap(),
            next_port: 40000,
            mappings: Vec::new(),
            sent_to: Vec::new(),
        }
    }

    fn outbound(&mut self, source: SocketAddr, destination: SocketAddr) -> SocketAddr {
        let key_remote = (self.kind == NatKind::Symmetric).then_some(destination);
        let public = match self
            .mappings
            .iter()
            .find(|m| m.0 == source && m.1 == key_remote)
        {
            Some(m) => m.2,
            None => {
                let public = SocketAddr::new(self.public_ip, self.next_port);
                self.next_port += 1;
                self.mappings.push((source, key_remote, public));
                public
            }
        };
        if !self.sent_to.contains(&(public, destination)) {
            self.sent_to.push((public, destination));
        }
        public
    }

    fn inbound(&self, destination: SocketAddr, source: SocketAddr) -> Option<SocketAddr> {
        let mapping = self.mappings.iter().find(|m| m.2 == destination)?;
        let allowed = match self.kind {
            NatKind::FullCone => true,
            NatKind::AddressRestricted => self
                .sent_to
                .iter()
                .any(|(p, r)| *p == destination && r.ip() == source.ip()),
            NatKind::PortRestricted | NatKind::Symmetric => {
                self.sent_to.contains(&(destination, source))
            }
        };
        allowed.then_some(mapping.0)
    }
}

/// One side of the call.
pub struct Peer {
    pub agent: Agent,
    pub sockets: Vec<SocketAddr>,
    pub nat: Option<Nat>,
    /// Drop every UDP datagram in or out (a firewall that blocks UDP).
    pub block_udp: bool,
    /// ICE-TCP listeners and simultaneous-open ports.
    pub tcp_listeners: Vec<SocketAddr>,
    pub so_ports: Vec<SocketAddr>,
    pub events: Vec<(Duration, Event)>,
    pub received: Vec<Vec<u8>>,
}

impl Peer {
    pub fn new(config: AgentConfig, now: Instant, sockets: &[&str], nat: Option<Nat>) -> Peer {
        let mut agent = Agent::new(config, now);
        let sockets: Vec<SocketAddr> = sockets.iter().map(|s| s.parse().unwrap()).collect();
        for socket in &sockets {
            agent.add_host_socket(now, 1, *socket);
        }
        Peer {
            agent,
            sockets,
            nat,
            block_udp: false,
            tcp_listeners: Vec::new(),
            so_ports: Vec::new(),
            events: Vec::new(),
            received: Vec::new(),
        }
    }

    /// Adds an ICE-TCP listener (passive and active candidates).
    pub fn listen_tcp(&mut self, now: Instant, address: &str) {
        let address: SocketAddr = address.parse().unwrap();
        self.tcp_listeners.push(address);
        self.agent.add_tcp_listener(now, 1, address);
    }

    /// Adds an ICE-TCP simultaneous-open port.
    pub fn simultaneous_open(&mut self, now: Instant, address: &str) {
        let address: SocketAddr = address.parse().unwrap();
        self.so_ports.push(address);
        self.agent.add_tcp_simultaneous_open(now, 1, address);
    }

    pub fn state_changes(&self) -> Vec<State> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::StateChanged { state, .. } => Some(*state),
                _ => None,
            })
            .collect()
    }
}

/// A datagram on the wire, with the addresses it has there.
#[derive(Debug)]
struct Flight {
    source: SocketAddr,
    destination: SocketAddr,
    payload: Vec<u8>,
    /// For a frame on an ICE-TCP connection: the receiving side and its id.
    connection: Option<(usize, ConnectionId)>,
}

/// An open ICE-TCP connection: each side's id for it.
#[derive(Debug)]
struct Link {
    ends: [(usize, ConnectionId); 2],
}

/// The STUN/TURN server on the simulated internet: edgeice's own core.
pub const SERVER: &str = "198.51.100.1:3478";
/// An address where nothing answers (a dead STUN server).
pub const DEAD_SERVER: &str = "198.51.100.99:3478";
pub const TURN_USER: &str = "alice";
pub const TURN_PASSWORD: &str = "secret";

pub fn stun_server(address: &str) -> StunServer {
    StunServer {
        address: address.parse().unwrap(),
        url: format!("stun:{address}"),
    }
}

pub fn turn_server() -> TurnServer {
    TurnServer {
        address: SERVER.parse().unwrap(),
        url: format!("turn:{SERVER}?transport=udp"),
        transport: edgeice_ice::ServerTransport::Udp,
        username: TURN_USER.into(),
        password: TURN_PASSWORD.into(),
    }
}

pub struct SimServer {
    core: Server,
    listener: SocketAddr,
    relays: Vec<SocketAddr>,
    next_port: u16,
}

impl SimServer {
    fn new(now: Instant) -> SimServer {
        let mut config = ServerConfig {
            realm: "sim".into(),
            nonce_secret: [9; 32],
            ..ServerConfig::default()
        };
        config.add_user(TURN_USER, TURN_PASSWORD).unwrap();
        SimServer {
            core: Server::new(config, now),
            listener: SERVER.parse().unwrap(),
            relays: Vec::new(),
            next_port: 50000,
        }
    }
}

/// Two peers, the network between them and the clock.
pub struct Sim {
    pub server: SimServer,
    pub start: Instant,
    pub now: Instant,
    pub peers: [Peer; 2],
    pub latency: Duration,
    /// Drop one datagram in `loss_one_in` (0: none), deterministically.
    pub loss_one_in: u32,
    /// While true, nothing gets through (consent loss tests).
    pub cut: bool,
    counter: u32,
    /// Deliveries in time order (time, sequence) → flight.
    queue: BTreeMap<(Instant, u64), Flight>,
    sequence: u64,
    /// Whether candidates are exchanged as gathered (trickle).
    pub signalled: [usize; 2],
    links: Vec<Link>,
    /// Simultaneous-open connects waiting for the other side's:
    /// (side, id, local, remote).
    half_open: Vec<(usize, ConnectionId, SocketAddr, SocketAddr)>,
    next_ephemeral: u16,
    /// Everything that happened, in order: each delivery (virtual time,
    /// addresses, bytes) and each event of either agent. Two runs are the
    /// same run when their traces are equal byte for byte.
    pub trace: Vec<u8>,
}

impl Sim {
    pub fn new(start: Instant, a: Peer, b: Peer) -> Sim {
        let mut sim = Sim {
            server: SimServer::new(start),
            start,
            now: start,
            peers: [a, b],
            latency: Duration::from_millis(10),
            loss_one_in: 0,
            cut: false,
            counter: 0,
            queue: BTreeMap::new(),
            sequence: 0,
            signalled: [0, 0],
            links: Vec::new(),
            half_open: Vec::new(),
            next_ephemeral: 45000,
            trace: Vec::new(),
        };
        let (ua, pa) = (
            sim.peers[0].agent.local_ufrag().to_string(),
            sim.peers[0].agent.local_password().to_string(),
        );
        let (ub, pb) = (
            sim.peers[1].agent.local_ufrag().to_string(),
            sim.peers[1].agent.local_password().to_string(),
        );
        sim.peers[0]
            .agent
            .set_remote_credentials(start, &ub, &pb, false);
        sim.peers[1]
            .agent
            .set_remote_credentials(start, &ua, &pa, false);
        sim
    }

    /// Moves events out of both agents, trickling gathered candidates to
    /// the other side as signalling would.
    fn pump_events(&mut self) {
        for side in 0..2 {
            while let Some(event) = self.peers[side].agent.poll_event() {
                match &event {
                    Event::CandidateGathered { candidate, .. } => {
                        let candidate = candidate.clone();
                        self.peers[1 - side]
                            .agent
                            .add_remote_candidate(self.now, candidate);
                    }
                    Event::GatheringComplete => {
                        self.peers[1 - side].agent.end_of_remote_candidates();
                    }
                    _ => {}
                }
                let at = self.now - self.start;
                self.trace
                    .extend_from_slice(format!("{at:?} {side} {event:?}\n").as_bytes());
                self.peers[side].events.push((at, event));
            }
        }
    }

    fn send(&mut self, side: usize, datagram: Datagram) {
        if let Route::Connection(id) = datagram.route {
            return self.send_on_connection(side, id, datagram);
        }
        let peer = &mut self.peers[side];
        if peer.block_udp || self.cut {
            return;
        }
        self.counter += 1;
        if self.loss_one_in != 0 && self.counter.is_multiple_of(self.loss_one_in) {
            return;
        }
        let mut source = datagram.source;
        if let Some(nat) = &mut peer.nat
            && !is_inside(nat, datagram.destination)
        {
            source = nat.outbound(datagram.source, datagram.destination);
        }
        self.sequence += 1;
        self.queue.insert(
            (self.now + self.latency, self.sequence),
            Flight {
                source,
                destination: datagram.destination,
                payload: datagram.payload,
                connection: None,
            },
        );
    }

    fn send_on_connection(&mut self, side: usize, id: ConnectionId, datagram: Datagram) {
        if self.cut {
            return;
        }
        let Some(link) = self.links.iter().find(|l| l.ends.contains(&(side, id))) else {
            return;
        };
        let other = if link.ends[0] == (side, id) {
            link.ends[1]
        } else {
            link.ends[0]
        };
        self.sequence += 1;
        self.queue.insert(
            (self.now + self.latency, self.sequence),
            Flight {
                source: datagram.source,
                destination: datagram.destination,
                payload: datagram.payload,
                connection: Some(other),
            },
        );
    }

    /// Carries out the agents' TCP commands: connections to a listener of
    /// the other side open at once (no NAT or firewall for TCP here unless
    /// `block_tcp`), simultaneous opens when both sides have asked.
    fn tcp_commands(&mut self) {
        for side in 0..2 {
            while let Some(command) = self.peers[side].agent.poll_tcp_command() {
                let now = self.now;
                match command {
                    TcpCommand::Connect {
                        id, local, remote, ..
                    } => {
                        let other = 1 - side;
                        if self.peers[other].tcp_listeners.contains(&remote) {
                            self.next_ephemeral += 1;
                            let from = SocketAddr::new(local.ip(), self.next_ephemeral);
                            match self.peers[other].agent.tcp_accepted(now, remote, from) {
                                Some(accepted) => {
                                    self.links.push(Link {
                                        ends: [(side, id), (other, accepted)],
                                    });
                                    self.peers[side]
                                        .agent
                                        .handle_input(now, AgentInput::TcpConnected { id });
                                }
                                None => {
                                    self.peers[side]
                                        .agent
                                        .handle_input(now, AgentInput::TcpClosed { id });
                                }
                            }
                        } else if self.peers[other].so_ports.contains(&remote) {
                            let matching = self
                                .half_open
                                .iter()
                                .position(|h| h.0 == other && h.2 == remote && h.3 == local);
                            match matching {
                                Some(index) => {
                                    let (_, other_id, _, _) = self.half_open.remove(index);
                                    self.links.push(Link {
                                        ends: [(side, id), (other, other_id)],
                                    });
                                    self.peers[side]
                                        .agent
                                        .handle_input(now, AgentInput::TcpConnected { id });
                                    self.peers[other].agent.handle_input(
                                        now,
                                        AgentInput::TcpConnected { id: other_id },
                                    );
                                }
                                None => self.half_open.push((side, id, local, remote)),
                            }
                        } else {
                            self.peers[side]
                                .agent
                                .handle_input(now, AgentInput::TcpClosed { id });
                        }
                    }
                    TcpCommand::Close { id } => {
                        self.links.retain(|l| !l.ends.contains(&(side, id)));
                        self.half_open.retain(|h| (h.0, h.1) != (side, id));
                    }
                }
            }
        }
    }

    fn deliver(&mut self, flight: Flight) {
        if self.cut {
            return;
        }
        let at = self.now - self.start;
        self.trace.extend_from_slice(
            format!(
                "{at:?} {} -> {} {:?} ",
                flight.source, flight.destination, flight.connection
            )
            .as_bytes(),
        );
        self.trace.extend_from_slice(&flight.payload);
        self.trace.push(b'\n');
        if let Some((side, id)) = flight.connection {
            let now = self.now;
            let peer = &mut self.peers[side];
            peer.agent.handle_input(
                now,
                AgentInput::TcpData {
                    id,
                    data: &flight.payload,
                },
            );
            while let Some((_, _, data)) = peer.agent.poll_received() {
                peer.received.push(data);
            }
            return;
        }
        if std::env::var_os("SIM_TRACE").is_some() {
            let kind = flight.payload.first().map_or(0, |b| *b);
            let method = flight
                .payload
                .get(..2)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
            eprintln!(
                "{:>8.3} {} -> {} {} bytes, first {kind:#04x} type {method:#06x}",
                (self.now - self.start).as_secs_f64(),
                flight.source,
                flight.destination,
                flight.payload.len()
            );
        }
        if flight.destination == self.server.listener
            || self.server.relays.contains(&flight.destination)
        {
            return self.deliver_to_server(flight);
        }
        for side in 0..2 {
            let peer = &mut self.peers[side];
            if peer.block_udp {
                continue;
            }
            let local = if peer.sockets.contains(&flight.destination) {
                // Straight to a host address: only from the same network
                // when the peer is behind a NAT (private addresses do not
                // route from outside).
                match &peer.nat {
                    Some(nat) if !is_inside(nat, flight.source) => continue,
                    _ => flight.destination,
                }
            } else if let Some(nat) = &peer.nat {
                match nat.inbound(flight.destination, flight.source) {
                    Some(local) => local,
                    None => continue,
                }
            } else {
                continue;
            };
            if let Some(data) = peer.agent.handle_input(
                self.now,
                AgentInput::Datagram {
                    socket: local,
                    from: flight.source,
                    payload: &flight.payload,
                },
            ) {
                let data = data.data.to_vec();
                peer.received.push(data);
            }
            return;
        }
    }

    fn deliver_to_server(&mut self, flight: Flight) {
        let now = self.now;
        let out = if flight.destination == self.server.listener {
            let from = FiveTuple {
                transport: Transport::Udp,
                client: flight.source,
                server: self.server.listener,
            };
            self.server
                .core
                .handle_input(
                    now,
                    Input::Client {
                        from,
                        payload: &flight.payload,
                    },
                )
                .map(|t| (t.source, t.destination, t.payload.to_vec()))
        } else {
            let mut datagram = vec![0u8; PEER_DATA_HEADROOM];
            datagram.extend_from_slice(&flight.payload);
            self.server
                .core
                .handle_input(
                    now,
                    Input::PeerData {
                        relay: flight.destination,
                        peer: flight.source,
                        datagram: &mut datagram,
                    },
                )
                .map(|t| (t.source, t.destination, t.payload.to_vec()))
        };
        if let Some(out) = out {
            self.server_send(out);
        }
        self.server_events();
    }

    fn server_send(&mut self, (source, destination, payload): (SocketAddr, SocketAddr, Vec<u8>)) {
        self.sequence += 1;
        self.queue.insert(
            (self.now + self.latency, self.sequence),
            Flight {
                source,
                destination,
                payload,
                connection: None,
            },
        );
    }

    /// Carries out what the server core asks of its driver (binding relays).
    fn server_events(&mut self) {
        while let Some(event) = self.server.core.poll_event() {
            if let ServerEvent::BindRelay { id, .. } = event {
                let relay = SocketAddr::new(self.server.listener.ip(), self.server.next_port);
                self.server.next_port += 1;
                self.server.relays.push(relay);
                let now = self.now;
                let out = self
                    .server
                    .core
                    .handle_input(
                        now,
                        Input::RelayBound {
                            id,
                            relay: Some(relay),
                            reserved: None,
                            additional: None,
                        },
                    )
                    .map(|t| (t.source, t.destination, t.payload.to_vec()));
                if let Some(out) = out {
                    self.server_send(out);
                }
            }
        }
    }

    /// Runs until `until` (virtual), or until `stop` says so; bounded.
    pub fn run(&mut self, until: Duration, mut stop: impl FnMut(&Sim) -> bool) {
        let deadline = self.start + until;
        for _ in 0..200_000 {
            self.pump_events();
            for _ in 0..4 {
                self.tcp_commands();
                for side in 0..2 {
                    while let Some(datagram) = self.peers[side].agent.poll_transmit() {
                        self.send(side, datagram);
                    }
                }
            }
            self.pump_events();
            if stop(self) {
                return;
            }
            let mut next = deadline;
            if let Some(t) = self.server.core.poll_timeout() {
                next = next.min(t.max(self.now));
            }
            for peer in &self.peers {
                if let Some(t) = peer.agent.poll_timeout() {
                    next = next.min(t.max(self.now));
                }
            }
            if let Some((&(t, seq), _)) = self.queue.iter().next() {
                next = next.min(t);
                if t <= next {
                    self.now = self.now.max(t);
                    let flight = self.queue.remove(&(t, seq)).unwrap();
                    self.deliver(flight);
                    continue;
                }
            }
            if next >= deadline {
                self.now = deadline;
                return;
            }
            self.now = self.now.max(next);
            if self
                .server
                .core
                .poll_timeout()
                .is_some_and(|t| t <= self.now)
            {
                self.server.core.handle_timeout(self.now);
                self.server_events();
            }
            for peer in &mut self.peers {
                if peer.agent.poll_timeout().is_some_and(|t| t <= self.now) {
                    peer.agent.handle_timeout(self.now);
                }
            }
        }
        panic!("simulation did not settle");
    }

    /// Runs until both agents are connected (or `until` passes).
    pub fn run_until_connected(&mut self, until: Duration) -> bool {
        self.run(until, |sim| {
            sim.peers.iter().all(|p| is_connected(p.agent.state()))
        });
        self.peers.iter().all(|p| is_connected(p.agent.state()))
    }

    /// Sends `data` from `side` over its selected pair, as an application would.
    pub fn send_data(&mut self, side: usize, data: &[u8]) -> bool {
        let now = self.now;
        let Ok(transmit) = self.peers[side].agent.send(now, 1, data) else {
            return false;
        };
        let datagram = Datagram {
            source: transmit.source,
            route: transmit.route,
            destination: transmit.destination,
            payload: transmit.payload.to_vec(),
        };
        self.send(side, datagram);
        true
    }
}

pub fn is_connected(state: State) -> bool {
    matches!(state, State::Connected | State::Completed)
}

fn is_inside(nat: &Nat, address: SocketAddr) -> bool {
    match (address.ip(), nat.inside) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.octets()[..3] == b.octets()[..3],
        _ => false,
    }
}

pub fn config(controlling: bool) -> AgentConfig {
    AgentConfig {
        controlling,
        ..AgentConfig::default()
    }
}
