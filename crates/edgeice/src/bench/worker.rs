//! One generator thread and its share of the clients: setup through the
//! sans-IO TURN client (`edgeice_client::Allocation`), then a hand-rolled
//! data path — packets written straight into a reused [`Batch`], a
//! `sendmmsg` per client per tick, a `recvmmsg` per readable socket — that
//! allocates, locks and logs nothing per packet.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use edgeice_client::{Allocation, AllocationConfig, AllocationEvent, AllocationState, Transport};
use edgeice_stun::ChannelData;

use super::conn::{Conn, TCP_BACKLOG};
use super::histogram::Histogram;
use super::sys::{BATCH, Batch, Poller, realtime_ns};
use super::{Mode, Plan};

/// Marks the generator's own payloads (after the 8-byte timestamp), so
/// stray datagrams are not counted.
const MAGIC: [u8; 4] = *b"eIcB";
/// Payload bytes the generator needs: timestamp and marker.
pub const MIN_SIZE: usize = 12;
/// How often allocations' timers run and the progress counters are
/// published during the data phase.
const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// With `--max`, a client whose window has had no answer for this long
/// writes its outstanding packets off as lost and sends again.
const STALL: Duration = Duration::from_millis(200);
/// How long to wait for the answers to the final releases.
const RELEASE_WAIT: Duration = Duration::from_millis(500);
/// Most 300 (Try Alternate) redirections one client follows during setup;
/// with the servers already visited refused, this keeps two edges that
/// name each other from bouncing a client for ever (RFC 8489 §10).
const MAX_REDIRECTS: usize = 3;
/// Time between sending (and, over UDP, reading) rounds at a fixed rate.
const TICK: Duration = Duration::from_millis(1);
/// The same with `--max`, where a round refills each client's window.
const MAX_TICK: Duration = Duration::from_micros(100);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Allocating,
    Binding,
    Ready,
    Failed,
}

struct Client {
    conn: Conn,
    /// The server this client allocates on: the URL's, or where a 300
    /// (Try Alternate) sent it.
    server: SocketAddr,
    /// The servers that redirected this client, so that it never goes
    /// back to one.
    redirected_from: Vec<SocketAddr>,
    /// The local address its connections come from.
    bind: IpAddr,
    allocation: Option<Allocation>,
    phase: Phase,
    channel: u16,
    /// Offset of this client's sending schedule, so clients do not all
    /// send in the same instant.
    phase_offset: f64,
    sent: u64,
    received: u64,
    written_off: u64,
    last_progress: Instant,
}

/// What one thread measured.
#[derive(Default)]
pub struct Outcome {
    /// Allocations that succeeded.
    pub allocated: u64,
    /// Clients that became ready to send (allocated, channel bound or
    /// permission installed).
    pub ready: u64,
    /// Clients that failed during setup.
    pub failed: u64,
    /// When the last allocation succeeded, from the setup's start.
    pub last_allocated: Option<Duration>,
    /// When the last client became ready, from the setup's start.
    pub last_ready: Option<Duration>,
    /// Errors by ERROR-CODE (or `timeout`, `io`...).
    pub errors: BTreeMap<String, u64>,
    /// Allocations that followed a 300 (Try Alternate) to another server.
    pub redirected: u64,
    /// Allocations by the server they were made on (after redirections).
    pub allocated_on: BTreeMap<SocketAddr, u64>,
    /// Packets sent and echoed back.
    pub sent: u64,
    /// See `sent`.
    pub received: u64,
    /// Inputs that could not be read (bad frames, unknown channels).
    pub bad_input: u64,
    /// Round-trip times.
    pub latency: Histogram,
    /// Allocations whose release (Refresh with LIFETIME 0) was answered.
    pub released: u64,
    /// From the first release sent to the last answer.
    pub release_time: Option<Duration>,
}

/// Runs one thread's clients: setup, data phase, release.
pub fn run(plan: Arc<Plan>, index: usize, count: usize, first_id: usize) -> Outcome {
    let mut outcome = Outcome::default();
    let mut worker = match Worker::new(&plan, index, count, first_id) {
        Ok(w) => w,
        Err(e) => {
            *outcome.errors.entry(format!("io: {e}")).or_default() += count as u64;
            outcome.failed = count as u64;
            plan.setup_barrier.wait();
            plan.data_barrier.wait();
            return outcome;
        }
    };
    plan.setup_barrier.wait();
    worker.setup(&mut outcome);
    plan.data_barrier.wait();
    if plan.setup_only {
        let until = Instant::now() + plan.hold;
        while Instant::now() < until && !plan.stop.load(Ordering::Relaxed) {
            worker.idle(&mut outcome, until);
        }
    } else {
        worker.data(&mut outcome);
    }
    worker.release(&mut outcome);
    outcome
}

struct Worker<'p> {
    plan: &'p Plan,
    index: usize,
    clients: Vec<Client>,
    poller: Poller,
    tx: Batch,
    rx: Batch,
    tokens: Vec<u64>,
    scratch: Vec<u8>,
    payload: Vec<u8>,
}

impl<'p> Worker<'p> {
    fn new(plan: &'p Plan, index: usize, count: usize, first_id: usize) -> io::Result<Self> {
        let mut clients = Vec::with_capacity(count);
        let poller = Poller::new(1024)?;
        let buffer = if count > 1000 { 256 * 1024 } else { 4 << 20 };
        for k in 0..count {
            let id = first_id + k;
            let bind = plan.binds[id % plan.binds.len()];
            let conn = Conn::open(plan.server, bind, plan.stream_kind(), buffer)?;
            poller.add(conn.fd(), k as u64)?;
            let phase_offset = match plan.rate {
                Some(rate) if rate > 0.0 => (id as f64 * 0.618_033_988_7).fract() / rate,
                _ => 0.0,
            };
            clients.push(Client {
                conn,
                server: plan.server,
                redirected_from: Vec::new(),
                bind,
                allocation: None,
                phase: Phase::Waiting,
                channel: 0,
                phase_offset,
                sent: 0,
                received: 0,
                written_off: 0,
                last_progress: Instant::now(),
            });
        }
        Ok(Worker {
            plan,
            index,
            clients,
            poller,
            tx: Batch::new(),
            rx: Batch::new(),
            tokens: Vec::with_capacity(1024),
            scratch: Vec::with_capacity(super::sys::SLOT),
            payload: vec![0; plan.size],
        })
    }

    fn progress(&self, outcome: &Outcome) {
        let p = &self.plan.progress[self.index];
        p.allocated.store(outcome.allocated, Ordering::Relaxed);
        p.ready.store(outcome.ready, Ordering::Relaxed);
        p.failed.store(outcome.failed, Ordering::Relaxed);
        p.sent.store(outcome.sent, Ordering::Relaxed);
        p.received.store(outcome.received, Ordering::Relaxed);
    }

    /// Allocates (and binds channels or installs permissions), at most
    /// `setup_concurrency` clients in flight at a time.
    fn setup(&mut self, outcome: &mut Outcome) {
        let start = self.plan.setup_start();
        let deadline = Instant::now() + self.plan.setup_timeout;
        if !self.plan.mode.allocates() {
            for c in &mut self.clients {
                c.phase = Phase::Ready;
            }
            outcome.ready = self.clients.len() as u64;
            return;
        }
        let mut next = 0;
        let mut in_flight: Vec<usize> = Vec::new();
        loop {
            let now = Instant::now();
            while in_flight.len() < self.plan.setup_concurrency && next < self.clients.len() {
                let mut allocation = Allocation::new(self.allocation_config(self.plan.server));
                let k = next;
                next += 1;
                match allocation.allocate(now) {
                    Ok(()) => {
                        self.clients[k].allocation = Some(allocation);
                        self.clients[k].phase = Phase::Allocating;
                        self.flush_control(k, outcome);
                        in_flight.push(k);
                    }
                    Err(e) => self.fail(k, format!("client: {e}"), outcome),
                }
            }
            in_flight
                .retain(|&k| matches!(self.clients[k].phase, Phase::Allocating | Phase::Binding));
            if in_flight.is_empty() && next >= self.clients.len() {
                break;
            }
            if now >= deadline || self.plan.stop.load(Ordering::Relaxed) {
                for k in in_flight.drain(..) {
                    self.fail(k, "setup timeout".to_owned(), outcome);
                }
                for k in next..self.clients.len() {
                    self.fail(k, "setup timeout".to_owned(), outcome);
                }
                break;
            }
            self.receive(5, outcome, Some(start));
            let now = Instant::now();
            for &k in &in_flight {
                let due = self.clients[k]
                    .allocation
                    .as_ref()
                    .and_then(Allocation::poll_timeout)
                    .is_some_and(|t| t <= now);
                if due {
                    if let Some(a) = self.clients[k].allocation.as_mut() {
                        a.handle_timeout(now);
                    }
                    self.flush_control(k, outcome);
                    self.events(k, outcome, Some(start));
                }
            }
            self.progress(outcome);
        }
        self.progress(outcome);
    }

    fn allocation_config(&self, server: SocketAddr) -> AllocationConfig {
        let transport = if self.plan.tcp {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let mut config = AllocationConfig::new(server, transport, self.plan.credentials.clone());
        config.lifetime = self.plan.lifetime;
        config
    }

    fn fail(&mut self, k: usize, error: String, outcome: &mut Outcome) {
        if self.clients[k].phase == Phase::Failed {
            return;
        }
        self.clients[k].phase = Phase::Failed;
        outcome.failed += 1;
        *outcome.errors.entry(error).or_default() += 1;
    }

    /// Sends what client `k`'s allocation has queued.
    fn flush_control(&mut self, k: usize, outcome: &mut Outcome) {
        let client = &mut self.clients[k];
        let Some(allocation) = client.allocation.as_mut() else {
            return;
        };
        let mut error = None;
        while let Some(t) = allocation.poll_transmit() {
            if let Err(e) = client.conn.send_control(t.payload) {
                error = Some(e);
                break;
            }
        }
        if let Some(e) = error {
            self.fail(k, format!("io: {}", e.kind()), outcome);
        }
    }

    /// Acts on client `k`'s allocation events. `setup_start` is set during
    /// setup, to time allocations.
    fn events(&mut self, k: usize, outcome: &mut Outcome, setup_start: Option<Instant>) {
        let now = Instant::now();
        let peer = self.plan.peer;
        let mode = self.plan.mode;
        while let Some(event) = self.clients[k]
            .allocation
            .as_mut()
            .and_then(Allocation::poll_event)
        {
            let client = &mut self.clients[k];
            match event {
                AllocationEvent::Allocated { .. } => {
                    outcome.allocated += 1;
                    *outcome.allocated_on.entry(client.server).or_default() += 1;
                    if let Some(start) = setup_start {
                        outcome.last_allocated = Some(now - start);
                    }
                    let Some(allocation) = client.allocation.as_mut() else {
                        continue;
                    };
                    let started = match (mode, peer) {
                        (Mode::Channels, Some(peer)) => {
                            allocation.bind_channel(now, peer).map(|channel| {
                                client.channel = channel;
                            })
                        }
                        (Mode::Indications, Some(peer)) => {
                            allocation.create_permission(now, peer.ip())
                        }
                        _ => {
                            client.phase = Phase::Ready;
                            outcome.ready += 1;
                            if let Some(start) = setup_start {
                                outcome.last_ready = Some(now - start);
                            }
                            Ok(())
                        }
                    };
                    match started {
                        Ok(()) if client.phase != Phase::Ready => client.phase = Phase::Binding,
                        Ok(()) => {}
                        Err(e) => self.fail(k, format!("client: {e}"), outcome),
                    }
                    self.flush_control(k, outcome);
                }
                AllocationEvent::ChannelBound { .. }
                | AllocationEvent::PermissionCreated { .. }
                    if client.phase == Phase::Binding =>
                {
                    client.phase = Phase::Ready;
                    outcome.ready += 1;
                    if let Some(start) = setup_start {
                        outcome.last_ready = Some(now - start);
                    }
                }
                AllocationEvent::Failed { code, .. } => {
                    let error = code.map_or_else(|| "timeout".to_owned(), |c| c.to_string());
                    if client.phase == Phase::Ready {
                        // A refresh failed mid-run: count it, keep going.
                        *outcome
                            .errors
                            .entry(format!("Refresh {error}"))
                            .or_default() += 1;
                    } else if let Some(alternate) = client
                        .allocation
                        .as_ref()
                        .and_then(Allocation::alternate_server)
                    {
                        self.redirect(k, alternate, outcome);
                    } else {
                        self.fail(k, format!("Allocate {error}"), outcome);
                    }
                }
                AllocationEvent::ChannelBindFailed { code, .. }
                | AllocationEvent::PermissionFailed { code, .. } => {
                    let request = if mode == Mode::Channels {
                        "ChannelBind"
                    } else {
                        "CreatePermission"
                    };
                    let error = code.map_or_else(|| "timeout".to_owned(), |c| c.to_string());
                    if client.phase == Phase::Ready {
                        *outcome
                            .errors
                            .entry(format!("{request} refresh {error}"))
                            .or_default() += 1;
                    } else {
                        self.fail(k, format!("{request} {error}"), outcome);
                    }
                }
                _ => {}
            }
        }
    }

    /// Follows a 300 (Try Alternate): client `k` opens a new connection
    /// to `alternate`, from the same local address, and allocates there
    /// (over TLS, still checking the URL's name). A server already
    /// visited, or one redirection too many, fails the client instead.
    fn redirect(&mut self, k: usize, alternate: SocketAddr, outcome: &mut Outcome) {
        let client = &mut self.clients[k];
        client.redirected_from.push(client.server);
        if client.redirected_from.contains(&alternate) {
            self.fail(k, "Allocate 300 (redirected back)".to_owned(), outcome);
            return;
        }
        if client.redirected_from.len() > MAX_REDIRECTS {
            self.fail(
                k,
                "Allocate 300 (too many redirections)".to_owned(),
                outcome,
            );
            return;
        }
        let bind = client.bind;
        let buffer = if self.clients.len() > 1000 {
            256 * 1024
        } else {
            4 << 20
        };
        let conn = match Conn::open(alternate, bind, self.plan.stream_kind(), buffer) {
            Ok(conn) => conn,
            Err(e) => {
                self.fail(k, format!("io: redirected: {}", e.kind()), outcome);
                return;
            }
        };
        // The old socket leaves the poller as it closes; the new one
        // takes its token.
        if let Err(e) = self.poller.add(conn.fd(), k as u64) {
            self.fail(k, format!("epoll: {}", e.kind()), outcome);
            return;
        }
        let mut allocation = Allocation::new(self.allocation_config(alternate));
        let now = Instant::now();
        let client = &mut self.clients[k];
        client.conn = conn;
        client.server = alternate;
        match allocation.allocate(now) {
            Ok(()) => {
                client.allocation = Some(allocation);
                outcome.redirected += 1;
                self.flush_control(k, outcome);
            }
            Err(e) => self.fail(k, format!("client: {e}"), outcome),
        }
    }

    /// Waits up to `timeout_ms` and handles what arrived.
    fn receive(&mut self, timeout_ms: i32, outcome: &mut Outcome, setup_start: Option<Instant>) {
        self.tokens.clear();
        match self.poller.wait(timeout_ms) {
            Ok(tokens) => self.tokens.extend(tokens),
            Err(e) => {
                *outcome
                    .errors
                    .entry(format!("epoll: {}", e.kind()))
                    .or_default() += 1;
                return;
            }
        }
        for t in 0..self.tokens.len() {
            let k = self.tokens[t] as usize;
            if k < self.clients.len() {
                self.read_client(k, outcome, setup_start);
            }
        }
    }

    fn read_client(&mut self, k: usize, outcome: &mut Outcome, setup_start: Option<Instant>) {
        let mode = self.plan.mode;
        if let Conn::Udp(socket) = &self.clients[k].conn {
            let fd = std::os::fd::AsRawFd::as_raw_fd(socket);
            loop {
                let n = match self.rx.recv(fd) {
                    Ok(n) => n,
                    Err(e) => {
                        *outcome
                            .errors
                            .entry(format!("recv: {}", e.kind()))
                            .or_default() += 1;
                        0
                    }
                };
                if n == 0 {
                    break;
                }
                let read_at = realtime_ns();
                for i in 0..n {
                    let now_ns = self.rx.stamp(i).unwrap_or(read_at);
                    let client = &mut self.clients[k];
                    let packet = self.rx.packet(i);
                    match payload_of(mode, packet, client.allocation.as_mut()) {
                        Payload::Data(p) => record(client, &mut outcome.latency, p, now_ns),
                        Payload::Control => {}
                        Payload::Bad => outcome.bad_input += 1,
                    }
                }
                if n < BATCH {
                    break;
                }
            }
        } else {
            let open = self.clients[k].conn.fill().unwrap_or_default();
            let now_ns = realtime_ns();
            let client = &mut self.clients[k];
            if let Conn::Stream { decoder, .. } = &mut client.conn {
                loop {
                    let frame = match decoder.next_raw() {
                        Ok(Some(frame)) => frame,
                        Ok(None) => break,
                        Err(_) => {
                            outcome.bad_input += 1;
                            break;
                        }
                    };
                    match payload_of(mode, frame, client.allocation.as_mut()) {
                        Payload::Data(p) => {
                            if p.len() >= MIN_SIZE && p[8..12] == MAGIC {
                                let sent_at =
                                    u64::from_le_bytes(p[..8].try_into().unwrap_or([0; 8]));
                                outcome.latency.record(now_ns.saturating_sub(sent_at));
                                client.received += 1;
                                client.last_progress = Instant::now();
                            }
                        }
                        Payload::Control => {}
                        Payload::Bad => outcome.bad_input += 1,
                    }
                }
            }
            if !open {
                if let Some(a) = self.clients[k].allocation.as_mut() {
                    a.connection_closed();
                }
                if self.clients[k].phase != Phase::Ready {
                    self.fail(k, "connection closed".to_owned(), outcome);
                } else {
                    *outcome
                        .errors
                        .entry("connection closed".to_owned())
                        .or_default() += 1;
                    self.clients[k].phase = Phase::Failed;
                }
            }
        }
        self.events(k, outcome, setup_start);
        self.flush_control(k, outcome);
    }

    /// The data phase: send at the planned rate (or keep a window full),
    /// read the echoes, keep allocations alive; then wait for stragglers.
    fn data(&mut self, outcome: &mut Outcome) {
        let start = Instant::now();
        let start_s = start.duration_since(self.plan.epoch).as_secs_f64();
        let end_send = start + self.plan.duration;
        let end = end_send + self.plan.drain;
        let tick = if self.plan.rate.is_some() {
            TICK
        } else {
            MAX_TICK
        };
        let mut next_tick = start;
        let mut next_housekeeping = start + HOUSEKEEPING;
        loop {
            let now = Instant::now();
            if now >= end || self.plan.stop.load(Ordering::Relaxed) {
                break;
            }
            if now >= next_tick {
                next_tick = (next_tick + tick).max(now);
                if now < end_send {
                    let elapsed = now.duration_since(self.plan.epoch).as_secs_f64() - start_s;
                    for k in 0..self.clients.len() {
                        if self.clients[k].phase == Phase::Ready {
                            self.send_due(k, elapsed, now, outcome);
                        }
                    }
                } else if self.clients.iter().all(|c| c.received >= c.sent) {
                    break;
                }
            }
            if self.plan.tcp {
                // No kernel timestamps on a stream: read as soon as bytes
                // arrive, so that round trips are timed when they end.
                let wait = next_tick.saturating_duration_since(Instant::now());
                let ms = wait.as_micros().div_ceil(1000).min(1000) as i32;
                self.receive(ms, outcome, None);
            } else {
                // Datagrams carry their arrival time: read once per tick,
                // in whole batches, rather than wake for each arrival.
                self.receive(0, outcome, None);
                let wait = next_tick.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
            }
            if now >= next_housekeeping {
                next_housekeeping = now + HOUSEKEEPING;
                self.housekeeping(now, outcome);
            }
        }
        self.housekeeping(Instant::now(), outcome);
    }

    fn housekeeping(&mut self, now: Instant, outcome: &mut Outcome) {
        outcome.sent = self.clients.iter().map(|c| c.sent).sum();
        outcome.received = self.clients.iter().map(|c| c.received).sum();
        for k in 0..self.clients.len() {
            let client = &mut self.clients[k];
            if self.plan.rate.is_none() && now.duration_since(client.last_progress) > STALL {
                client.written_off = client.sent.saturating_sub(client.received);
                client.last_progress = now;
            }
            let due = client
                .allocation
                .as_ref()
                .and_then(Allocation::poll_timeout)
                .is_some_and(|t| t <= now);
            if due {
                if let Some(a) = client.allocation.as_mut() {
                    a.handle_timeout(now);
                }
                self.flush_control(k, outcome);
                self.events(k, outcome, None);
            }
            let _ = self.clients[k].conn.flush();
        }
        self.progress(outcome);
    }

    /// Sends what client `k` owes: at a rate, what its schedule says by
    /// now; with `--max`, what refills its window. At most one batch.
    fn send_due(&mut self, k: usize, elapsed: f64, now: Instant, outcome: &mut Outcome) {
        let plan = self.plan;
        let client = &mut self.clients[k];
        let owed = match plan.rate {
            Some(rate) => {
                (((elapsed + client.phase_offset) * rate) as u64).saturating_sub(client.sent)
            }
            None => {
                let outstanding = client
                    .sent
                    .saturating_sub(client.received)
                    .saturating_sub(client.written_off);
                (plan.window as u64).saturating_sub(outstanding)
            }
        };
        let count = (owed as usize).min(BATCH);
        if count == 0 {
            return;
        }
        let stamp = realtime_ns();
        match &mut client.conn {
            Conn::Udp(socket) => {
                for i in 0..count {
                    let len = write_packet(
                        plan,
                        client.channel,
                        client.allocation.as_mut(),
                        stamp,
                        now,
                        &mut self.payload,
                        &mut self.scratch,
                        self.tx.slot_mut(i),
                        false,
                    );
                    self.tx.set_len(i, len);
                }
                let fd = std::os::fd::AsRawFd::as_raw_fd(socket);
                match self.tx.send(fd, count, false) {
                    Ok(n) => client.sent += n as u64,
                    Err(e) => {
                        *outcome
                            .errors
                            .entry(format!("send: {}", e.kind()))
                            .or_default() += 1
                    }
                }
            }
            Conn::Stream { out, .. } => {
                if out.len() > TCP_BACKLOG {
                    let _ = client.conn.flush();
                    return;
                }
                for _ in 0..count {
                    let slot = self.tx.slot_mut(0);
                    let len = write_packet(
                        plan,
                        client.channel,
                        client.allocation.as_mut(),
                        stamp,
                        now,
                        &mut self.payload,
                        &mut self.scratch,
                        slot,
                        true,
                    );
                    if let Conn::Stream { out, .. } = &mut client.conn {
                        out.extend_from_slice(&self.tx.slot_mut(0)[..len]);
                    }
                }
                client.sent += count as u64;
                if let Err(e) = client.conn.flush() {
                    *outcome
                        .errors
                        .entry(format!("send: {}", e.kind()))
                        .or_default() += 1;
                }
            }
        }
    }

    /// `--setup-only --hold`: keeps allocations alive while the caller
    /// measures the server.
    fn idle(&mut self, outcome: &mut Outcome, until: Instant) {
        let wait = until
            .saturating_duration_since(Instant::now())
            .min(HOUSEKEEPING);
        self.receive(wait.as_millis() as i32, outcome, None);
        self.housekeeping(Instant::now(), outcome);
    }

    /// Releases every allocation (Refresh with lifetime 0), so that the
    /// next run starts on an empty server, and waits briefly for answers;
    /// counts those answered, and how long they took (the Refresh rate).
    fn release(&mut self, outcome: &mut Outcome) {
        let now = Instant::now();
        let mut ignored = Outcome::default();
        for k in 0..self.clients.len() {
            let released = self.clients[k]
                .allocation
                .as_mut()
                .is_some_and(|a| a.release(now).is_ok());
            if released {
                self.flush_control(k, &mut ignored);
            }
        }
        let until = Instant::now() + RELEASE_WAIT;
        let in_state = |clients: &[Client], state| {
            clients
                .iter()
                .filter(|c| c.allocation.as_ref().is_some_and(|a| a.state() == state))
                .count() as u64
        };
        while Instant::now() < until && in_state(&self.clients, AllocationState::Releasing) > 0 {
            self.receive(10, &mut ignored, None);
        }
        outcome.released = in_state(&self.clients, AllocationState::Released);
        if outcome.released > 0 {
            outcome.release_time = Some(now.elapsed());
        }
    }
}

/// What a datagram from the server carried.
enum Payload<'a> {
    /// An echoed payload.
    Data(&'a [u8]),
    /// A response (refresh, binding) or indication handled by the client.
    Control,
    /// Unreadable.
    Bad,
}

fn payload_of<'a>(
    mode: Mode,
    packet: &'a [u8],
    allocation: Option<&mut Allocation>,
) -> Payload<'a> {
    match mode {
        Mode::Direct => Payload::Data(packet),
        Mode::Binding => {
            // A Binding success response: the payload's timestamp and
            // marker travel as the transaction ID.
            if packet.len() >= 20 && packet[0] == 0x01 && packet[1] == 0x01 {
                Payload::Data(&packet[8..20])
            } else {
                Payload::Bad
            }
        }
        Mode::Channels | Mode::Indications => {
            if packet.first().is_some_and(|b| b >> 6 == 1) {
                return match ChannelData::parse(packet) {
                    Ok(data) => Payload::Data(data.data),
                    Err(_) => Payload::Bad,
                };
            }
            let Some(allocation) = allocation else {
                return Payload::Bad;
            };
            match allocation.handle_input(Instant::now(), packet) {
                Ok(Some((_, data))) => Payload::Data(data),
                Ok(None) => Payload::Control,
                Err(_) => Payload::Bad,
            }
        }
    }
}

fn record(client: &mut Client, latency: &mut Histogram, payload: &[u8], now_ns: u64) {
    if payload.len() < MIN_SIZE || payload[8..12] != MAGIC {
        return;
    }
    let mut stamp = [0; 8];
    stamp.copy_from_slice(&payload[..8]);
    latency.record(now_ns.saturating_sub(u64::from_le_bytes(stamp)));
    client.received += 1;
    client.last_progress = Instant::now();
}

/// Writes one packet into `slot` and returns its length.
#[allow(clippy::too_many_arguments)]
fn write_packet(
    plan: &Plan,
    channel: u16,
    allocation: Option<&mut Allocation>,
    stamp: u64,
    now: Instant,
    payload: &mut [u8],
    scratch: &mut Vec<u8>,
    slot: &mut [u8],
    stream: bool,
) -> usize {
    let size = plan.size;
    match plan.mode {
        Mode::Direct => {
            slot[..8].copy_from_slice(&stamp.to_le_bytes());
            slot[8..12].copy_from_slice(&MAGIC);
            size
        }
        Mode::Binding => {
            // Binding request, no attributes; the transaction ID carries
            // the timestamp and the marker.
            let binding = edgeice_stun::MessageType::new(
                edgeice_stun::Method::BINDING,
                edgeice_stun::Class::Request,
            );
            slot[..2].copy_from_slice(&binding.to_u16().to_be_bytes());
            slot[2..4].copy_from_slice(&[0, 0]);
            slot[4..8].copy_from_slice(&edgeice_stun::MAGIC_COOKIE.to_be_bytes());
            slot[8..16].copy_from_slice(&stamp.to_le_bytes());
            slot[16..20].copy_from_slice(&MAGIC);
            20
        }
        Mode::Channels => {
            // `size` is at most MAX_PAYLOAD (checked when the run starts).
            let header = ChannelData::header(channel, u16::try_from(size).unwrap_or(u16::MAX));
            slot[..4].copy_from_slice(&header);
            slot[4..12].copy_from_slice(&stamp.to_le_bytes());
            slot[12..16].copy_from_slice(&MAGIC);
            let len = 4 + size;
            if stream { len.next_multiple_of(4) } else { len }
        }
        Mode::Indications => {
            payload[..8].copy_from_slice(&stamp.to_le_bytes());
            payload[8..12].copy_from_slice(&MAGIC);
            let (Some(allocation), Some(peer)) = (allocation, plan.peer) else {
                return 0;
            };
            if allocation.send_to(now, peer, payload, scratch).is_err() {
                return 0;
            }
            let len = scratch.len().min(slot.len());
            slot[..len].copy_from_slice(&scratch[..len]);
            len
        }
    }
}
